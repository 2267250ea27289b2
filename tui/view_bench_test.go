package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/sim"
)

// benchModel is a model in a busy state without a database: 8 sessions
// mid-transfer, 200 lock rows, a wait chain, log lines.
func benchModel() *Model {
	s, _ := ledger.Lookup("for-update")
	cfg := sim.Config{Strategy: s, Sessions: 8, Setup: ledger.DefaultSetup(), Poll: sim.DefaultPoll}
	now := time.Now()
	m := New(context.Background(), Options{Config: cfg, Server: "bench", Clock: func() time.Time { return now }})
	m.width, m.height = 120, 40
	var infos []sim.SessionInfo
	snap := &locks.Snapshot{Taken: now, DeadlockTimeout: time.Second}
	for i := range 8 {
		name := fmt.Sprintf("T%d", i+1)
		script := s.Script(ledger.Transfer{From: 1, To: 2, Amount: decimal.RequireFromString("10.00")}, "lockstep")
		info := sim.SessionInfo{Name: name, Index: i, Pid: int32(1000 + i), State: sim.InTransaction,
			Transfer: script.Transfer, Next: 5, CurrentStep: -1, ErrAt: -1}
		for k := range script.Statements {
			info.Statements = append(info.Statements, script.SQL(k))
		}
		if i > 0 {
			info.State, info.CurrentStep, info.BlockedBy = sim.Waiting, 5, []string{fmt.Sprintf("T%d", i)}
		}
		infos = append(infos, info)
		start := now.Add(-time.Second)
		snap.Backends = append(snap.Backends, locks.Backend{Pid: int32(1000 + i), Session: name, XactStart: &start})
		for k := range 25 {
			snap.Locks = append(snap.Locks, locks.Lock{Pid: int32(1000 + i), Session: name, Type: "relation",
				Relation: fmt.Sprintf("table_%d", k), RelKind: "r", Mode: "RowExclusiveLock", Granted: k != 0 || i == 0})
		}
		if i > 0 {
			snap.Graph.Edges = append(snap.Graph.Edges, locks.Edge{Waiter: name, Holder: fmt.Sprintf("T%d", i),
				Lock: &snap.Locks[len(snap.Locks)-25], Why: "waits", Conflict: &locks.Conflict{Held: 2, Wanted: 4}})
		}
	}
	m.live.sessions, m.live.snap = infos, snap
	for i, info := range infos {
		if info.State == sim.Waiting {
			m.live.waitSince[info.Name] = now.Add(-time.Duration(10-i) * time.Second)
		}
	}
	m.starting, m.runID, m.deadlock = false, "bench1", time.Second
	for k := range 50 {
		m.log.Add(logEntry{at: now, who: "T1", text: fmt.Sprintf("✓ statement %d", k)})
	}
	return m
}

// BenchmarkView is one frame with 8 sessions and 200 lock rows, seven of
// the sessions waiting in a chain: the newest wait explained.
func BenchmarkView(b *testing.B) {
	m := benchModel()
	if got := m.render(); !strings.Contains(got, "T1") || !strings.Contains(got, "table_1") || !strings.Contains(got, "Why T8 waits") {
		b.Fatalf("the bench screen is not the busy one:\n%s", got)
	}
	b.ReportMetric(float64(len(m.live.snap.Locks)), "lock-rows")
	for b.Loop() {
		_ = m.render()
	}
}

// BenchmarkViewAfterPoll is the frame after a poll: the lock list is
// rebuilt from the new snapshot.
func BenchmarkViewAfterPoll(b *testing.B) {
	m := benchModel()
	snap := m.live.snap
	for b.Loop() {
		next := *snap
		m.live.snap = &next
		_ = m.render()
	}
}

// BenchmarkWatchFrame is one frame of lockstep watch at 120×40 with 1,000
// sessions in the tree: one idle in its transaction, holding the table a
// migration's ACCESS EXCLUSIVE waits for, and 998 queries queued behind it.
func BenchmarkWatchFrame(b *testing.B) {
	now := time.Now()
	start := now.Add(-42 * time.Second)
	root := locks.TreeNode{Session: "app 1000", Pid: 1000, User: "shop", State: "idle in transaction", XactStart: &start,
		Query: "SELECT * FROM orders WHERE id = 1"}
	ddl := &locks.Edge{Waiter: "migrate 1001", Holder: "app 1000", Why: "migrate 1001 wants ACCESS EXCLUSIVE on orders: app 1000 holds ACCESS SHARE on it"}
	mig := locks.TreeNode{Session: "migrate 1001", Pid: 1001, State: "active", Query: "ALTER TABLE orders ADD COLUMN note text",
		Lock: "ACCESS EXCLUSIVE on orders", Waits: ddl.Why, Edge: ddl}
	for i := range 998 {
		name := fmt.Sprintf("app %d", 1002+i)
		e := &locks.Edge{Waiter: name, Holder: "migrate 1001", Queued: true, Why: name + " wants ACCESS SHARE on orders and queues behind migrate 1001"}
		mig.Waiters = append(mig.Waiters, locks.TreeNode{Session: name, Pid: int32(1002 + i), State: "active",
			Query: fmt.Sprintf("SELECT * FROM orders WHERE id = %d", i), Lock: "ACCESS SHARE on orders", Soft: true, Waits: e.Why, Edge: e})
	}
	root.Waiters = []locks.TreeNode{mig}
	m := newWatchModel(context.Background(), WatchOptions{Watch: &locks.Watch{}, Server: "bench", Filter: "every client session",
		Clock: func() time.Time { return now }})
	m.w, m.h, m.notes = 120, 40, nil
	m.look = &locks.Look{Taken: now, Tree: locks.Tree{Roots: []locks.TreeNode{root}}, Watched: 1000, InTransaction: 1000,
		IdleInTransaction: 1, ReadLocks: true}
	m.tree.sel, m.tree.moved = 500, true // deep in the queue
	for b.Loop() {
		if v := m.View(); !strings.Contains(v.Content, "queues behind it") {
			b.Fatal("no queue on screen")
		}
	}
}

// BenchmarkViewLedger is one frame of the lecture at rest on a ledger of 2
// and of 1,000,000 accounts, every account in the frame's books (more than
// the engine reads of a big ledger): the frame formats what the screen
// shows, not the ledger.
func BenchmarkViewLedger(b *testing.B) {
	for _, n := range []int{2, 1_000_000} {
		m := benchModel()
		accounts := make([]ledger.Account, n)
		for i := range accounts {
			accounts[i] = ledger.Account{ID: int64(i + 1), Owner: fmt.Sprintf("owner%d", i+1), Balance: decimal.RequireFromString("100.00")}
		}
		opening := decimal.NewFromInt(int64(n) * 100)
		m.live.books = booksState{accounts: accounts, books: &ledger.Books{Opening: opening, Total: opening}, read: true}
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			for b.Loop() {
				_ = m.render()
			}
		})
	}
}
