package locks_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/locks"
)

// app is an application the watch tests start: plain pgx connections all
// named <prefix>, like two psql windows, with a table w of its own schema
// to lock.
type app struct {
	t      *testing.T
	d      *db.Database
	prefix string
	conns  map[string]*pgx.Conn
	pids   map[string]int32
	done   map[string]chan error
}

func newApp(t *testing.T, names ...string) *app {
	t.Helper()
	ctx := context.Background()
	a := &app{t: t, d: dbtest.Schema(t), prefix: "tapp_" + string(db.NewRunID()),
		conns: map[string]*pgx.Conn{}, pids: map[string]int32{}, done: map[string]chan error{}}
	for _, n := range names {
		c, err := pgx.ConnectConfig(ctx, a.d.ConnConfig(a.prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		a.conns[n], a.pids[n] = c, int32(c.PgConn().PID())
	}
	a.exec(names[0], "CREATE SCHEMA IF NOT EXISTS "+a.d.Schema()+"; CREATE TABLE "+a.d.Schema()+
		".w (id int PRIMARY KEY, v int); INSERT INTO "+a.d.Schema()+".w VALUES (1, 0), (2, 0)")
	return a
}

// exec runs sql on session n and fails the test on an error.
func (a *app) exec(n string, sql string) {
	a.t.Helper()
	if _, err := a.conns[n].Exec(context.Background(), sql); err != nil {
		a.t.Fatalf("%s: %s: %v", n, sql, err)
	}
}

// start runs sql on session n without waiting for it; wait collects it.
func (a *app) start(n string, sql string) {
	ch := make(chan error, 1)
	a.done[n] = ch
	go func() { _, err := a.conns[n].Exec(context.Background(), sql); ch <- err }()
}

func (a *app) wait(n string) error { return <-a.done[n] }

// name is how the watch names session n.
func (a *app) name(n string) string { return fmt.Sprintf("%s %d", a.prefix, a.pids[n]) }

// watch is a watch on the app's sessions, on a connection of the test's.
func (a *app) watch(opts locks.WatchOptions) *locks.Watch {
	a.t.Helper()
	return a.watchAs(a.d.ConnConfig("test-watch"), opts)
}

func (a *app) watchAs(cfg *pgx.ConnConfig, opts locks.WatchOptions) *locks.Watch {
	a.t.Helper()
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { conn.Close(context.Background()) })
	if opts.Filter.App == "" {
		opts.Filter.App = a.prefix + "%"
	}
	w, err := locks.NewWatch(ctx, conn, opts)
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(w.Close)
	return w
}

// until polls until ok says the look is the one wanted; the deadline only
// guards against a hang.
func until(t *testing.T, w *locks.Watch, what string, ok func(*locks.Look) bool) *locks.Look {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		look, err := w.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(look) {
			return look
		}
		if time.Now().After(deadline) {
			for _, b := range look.Snapshot.Backends {
				t.Logf("%+v", b)
			}
			t.Logf("%d locks, %+v", len(look.Snapshot.Locks), look)
			t.Fatalf("never saw %s; last tree:\n%s", what, look.Tree)
		}
	}
}

func find(t locks.Tree, session string) []locks.TreeNode {
	var out []locks.TreeNode
	t.Walk(func(n *locks.TreeNode, _ int) {
		if n.Session == session {
			out = append(out, *n)
		}
	})
	return out
}

// A chain of three: c waits for b, which waits for a, idle in its transaction.
func TestWatchChain(t *testing.T) {
	t.Parallel()
	a := newApp(t, "a", "b", "c")
	w := a.watch(locks.WatchOptions{})
	look := until(t, w, "no wait", func(l *locks.Look) bool { return l.Watched == 3 })
	if look.ReadLocks || len(look.Tree.Roots) != 0 {
		t.Fatalf("no one waits, yet pg_locks was read (%v) or a tree drawn:\n%s", look.ReadLocks, look.Tree)
	}
	a.exec("a", "BEGIN; UPDATE w SET v = 1 WHERE id = 1")
	a.exec("b", "BEGIN; UPDATE w SET v = 2 WHERE id = 2")
	a.start("b", "UPDATE w SET v = 2 WHERE id = 1")
	a.start("c", "UPDATE w SET v = 3 WHERE id = 2")
	// The counts come from the look's first query, the tree from its
	// second: both must have seen b's and c's statements arrive, and
	// they are sent at once, so c's may reach the server first, when b
	// is still idle in its transaction.
	look = until(t, w, "the chain", func(l *locks.Look) bool {
		return len(l.Tree.Roots) == 1 && len(l.Tree.Roots[0].Waiters) == 1 && len(l.Tree.Roots[0].Waiters[0].Waiters) == 1 &&
			l.InTransaction == 3 && l.IdleInTransaction == 1
	})
	root := look.Tree.Roots[0]
	b, c := root.Waiters[0], root.Waiters[0].Waiters[0]
	if root.Session != a.name("a") || root.State != "idle in transaction" || root.User == "" || root.XactStart == nil {
		t.Errorf("root: %+v", root)
	}
	if b.Session != a.name("b") || c.Session != a.name("c") || b.Soft || c.Soft ||
		!strings.Contains(b.Lock, "ShareLock on "+a.name("a")+"'s transaction") || !strings.Contains(c.Waits, "waits for it to end") {
		t.Errorf("chain:\n%s", look.Tree)
	}
	if !look.ReadLocks || look.Watched != 3 || look.IdleInTransaction != 1 || look.InTransaction != 3 {
		t.Errorf("counts: %+v", look)
	}
	if s := look.Tree.String(); !strings.Contains(s, "└─ "+b.Session+" waits for it: UPDATE w SET v = 2 WHERE id = 1") ||
		!strings.Contains(s, "     └─ "+c.Session+" waits for it: UPDATE w SET v = 3 WHERE id = 2") {
		t.Errorf("drawn:\n%s", s)
	}
	a.exec("a", "COMMIT")
	if err := a.wait("b"); err != nil {
		t.Fatal(err)
	}
	a.exec("b", "COMMIT")
	if err := a.wait("c"); err != nil {
		t.Fatal(err)
	}
}

// Two blockers on one waiter: c's EXCLUSIVE waits for a's and b's SHARE,
// and is drawn under both, hard each time.
func TestWatchTwoBlockers(t *testing.T) {
	t.Parallel()
	a := newApp(t, "a", "b", "c")
	w := a.watch(locks.WatchOptions{})
	a.exec("a", "BEGIN; LOCK w IN SHARE MODE")
	a.exec("b", "BEGIN; LOCK w IN SHARE MODE")
	a.start("c", "BEGIN; LOCK w IN EXCLUSIVE MODE; COMMIT")
	look := until(t, w, "c under a and b", func(l *locks.Look) bool { return len(find(l.Tree, a.name("c"))) == 2 })
	if len(look.Tree.Roots) != 2 {
		t.Fatalf("roots:\n%s", look.Tree)
	}
	for _, c := range find(look.Tree, a.name("c")) {
		if c.Soft || c.Lock != "EXCLUSIVE on w" || !strings.Contains(c.Waits, "holds SHARE on it") {
			t.Errorf("c: %+v", c)
		}
	}
	a.exec("a", "COMMIT")
	a.exec("b", "COMMIT")
	if err := a.wait("c"); err != nil {
		t.Fatal(err)
	}
}

// A queue behind an ACCESS EXCLUSIVE request: b's LOCK waits for a's
// ACCESS SHARE; c's SELECT conflicts with nothing held, and queues behind b.
func TestWatchQueue(t *testing.T) {
	t.Parallel()
	a := newApp(t, "a", "b", "c")
	w := a.watch(locks.WatchOptions{})
	a.exec("a", "BEGIN; SELECT count(*) FROM w")
	a.start("b", "BEGIN; LOCK w; COMMIT")
	until(t, w, "b waiting", func(l *locks.Look) bool { return len(find(l.Tree, a.name("b"))) == 1 })
	a.start("c", "SELECT count(*) FROM w")
	look := until(t, w, "c queued behind b", func(l *locks.Look) bool {
		cs := find(l.Tree, a.name("c"))
		return len(cs) == 1 && cs[0].Soft
	})
	if len(look.Tree.Roots) != 1 || look.Tree.Roots[0].Session != a.name("a") {
		t.Fatalf("roots:\n%s", look.Tree)
	}
	b := look.Tree.Roots[0].Waiters[0]
	if b.Session != a.name("b") || b.Soft || b.Lock != "ACCESS EXCLUSIVE on w" || len(b.Waiters) != 1 ||
		!strings.Contains(b.Waiters[0].Waits, "queues behind "+a.name("b")) {
		t.Errorf("queue:\n%s", look.Tree)
	}
	if !strings.Contains(look.Tree.String(), a.name("c")+" queues behind it") {
		t.Errorf("drawn:\n%s", look.Tree)
	}
	a.exec("a", "COMMIT")
	for _, n := range []string{"b", "c"} {
		if err := a.wait(n); err != nil {
			t.Fatal(err)
		}
	}
}

// A deadlock is recorded while it stands, with its statements; a read-only
// watch refuses to break it; cancelling one member does; and a deadlock the
// server breaks is recorded as its verdict.
func TestWatchDeadlockHistoryAndSignals(t *testing.T) {
	t.Parallel()
	a := newApp(t, "a", "b")
	w := a.watch(locks.WatchOptions{Threshold: time.Millisecond, ServerLog: a.d.ServerLog()})
	ro := a.watch(locks.WatchOptions{ReadOnly: true})
	// The server's check would break the cycle after deadlock_timeout: put it
	// off, so that it stands until the test breaks it.
	for _, n := range []string{"a", "b"} {
		a.exec(n, "SET deadlock_timeout = '1h'")
	}
	a.exec("a", "BEGIN; UPDATE w SET v = 1 WHERE id = 1")
	a.exec("b", "BEGIN; UPDATE w SET v = 2 WHERE id = 2")
	a.start("a", "UPDATE w SET v = 1 WHERE id = 2")
	a.start("b", "UPDATE w SET v = 2 WHERE id = 1")
	look := until(t, w, "the deadlock", func(l *locks.Look) bool { return len(l.Tree.Cycles) == 1 })
	var dl *locks.WatchEvent
	for _, ev := range w.History() {
		if ev.Kind == "deadlock" {
			dl = &ev
		}
	}
	if dl == nil || !strings.Contains(dl.What, a.name("a")) || !strings.Contains(dl.What, a.name("b")) || dl.Ended ||
		len(dl.Statements) != 2 || !strings.Contains(strings.Join(dl.Statements, "\n"), "UPDATE w SET v = 2 WHERE id = 1") ||
		len(dl.Tree.Cycles) != 1 {
		t.Fatalf("history: %+v (tree now:\n%s)", w.History(), look.Tree)
	}
	// The look that first saw the cycle may have seen the second wait
	// younger than the threshold; both stand, so a later look keeps both.
	waits := func() int {
		n := 0
		for _, ev := range w.History() {
			if ev.Kind == "wait" {
				n++
			}
		}
		return n
	}
	until(t, w, "both waits in the history", func(*locks.Look) bool { return waits() >= 2 })
	if waits() != 2 {
		t.Errorf("two waits over 1ms, history: %+v", w.History())
	}
	// Read-only: refused, and b still waits.
	if err := ro.Signal(context.Background(), a.pids["b"], false); !errors.Is(err, locks.ErrReadOnly) {
		t.Fatalf("read-only signal: %v", err)
	}
	until(t, ro, "b still waiting", func(l *locks.Look) bool { return len(find(l.Tree, a.name("b"))) > 0 })
	// Cancel b's statement: the cycle ends, b's transaction is aborted.
	if err := w.Signal(context.Background(), a.pids["b"], false); err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if err := a.wait("b"); !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.QueryCanceled {
		t.Fatalf("b after the cancel: %v", err)
	}
	a.exec("b", "ROLLBACK")
	if err := a.wait("a"); err != nil {
		t.Fatal(err)
	}
	a.exec("a", "COMMIT")
	until(t, w, "the deadlock ended", func(*locks.Look) bool {
		h := w.History()
		for _, ev := range h {
			if ev.Kind == "deadlock" && ev.Ended {
				return true
			}
		}
		return false
	})
	// Terminate ends the session itself.
	if err := w.Signal(context.Background(), a.pids["b"], true); err != nil {
		t.Fatal(err)
	}
	if err := a.conns["b"].Ping(context.Background()); err == nil {
		t.Error("b still answers after pg_terminate_backend")
	}
	if err := w.Signal(context.Background(), 1, false); err == nil || !strings.Contains(err.Error(), "not a backend") {
		t.Errorf("signal to pid 1: %v", err)
	}

	// Now a deadlock the server breaks, at once: its verdict is merged
	// into the deadlock's one entry, naming the victim from the server's
	// log, though the victim's application keeps its transaction open (the
	// counter would not rise until it ends).
	c := newApp(t, "a", "b")
	cw := c.watch(locks.WatchOptions{ServerLog: c.d.ServerLog()})
	until(t, cw, "the first look", func(*locks.Look) bool { return true })
	c.exec("a", "SET deadlock_timeout = '10ms'; BEGIN; UPDATE w SET v = 1 WHERE id = 1")
	c.exec("b", "SET deadlock_timeout = '10ms'; BEGIN; UPDATE w SET v = 2 WHERE id = 2")
	c.start("a", "UPDATE w SET v = 1 WHERE id = 2")
	until(t, cw, "a waiting", func(l *locks.Look) bool { return len(find(l.Tree, c.name("a"))) > 0 })
	c.start("b", "UPDATE w SET v = 2 WHERE id = 1")
	errA, errB := c.wait("a"), c.wait("b")
	if (errA == nil) == (errB == nil) {
		t.Fatalf("one of the two should be the victim: %v, %v", errA, errB)
	}
	victim := "a"
	if errB != nil {
		victim = "b"
	}
	deadlocks := func() []locks.WatchEvent {
		var out []locks.WatchEvent
		for _, ev := range cw.History() {
			if ev.Kind == "deadlock" {
				out = append(out, ev)
			}
		}
		return out
	}
	until(t, cw, "the server's verdict", func(*locks.Look) bool {
		ds := deadlocks()
		if c.d.ServerLog() == "" {
			return len(ds) == 1 && strings.Contains(ds[0].Verdict, "victim unknown") // no log: it says so
		}
		return len(ds) == 1 && ds[0].VictimPid == c.pids[victim]
	})
	ds := deadlocks()
	if c.d.ServerLog() != "" && (!strings.Contains(ds[0].Detail, fmt.Sprintf("Process %d", c.pids[victim])) ||
		!strings.Contains(ds[0].Verdict, "broken by the server") || ds[0].Victim != c.name(victim)) {
		t.Errorf("the verdict: %+v", ds[0])
	}
	c.exec("a", "ROLLBACK")
	c.exec("b", "ROLLBACK")
}

// A role without pg_read_all_stats sees the waits, not the statements, and is told so.
func TestWatchPlainRole(t *testing.T) {
	t.Parallel()
	a := newApp(t, "a", "b")
	role := "watcher_" + strings.ToLower(string(db.NewRunID()))
	a.exec("a", "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		c, err := pgx.ConnectConfig(context.Background(), a.d.ConnConfig("test-cleanup"))
		if err == nil {
			c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
			c.Close(context.Background())
		}
	})
	cfg := a.d.ConnConfig("test-watch")
	cfg.User = role
	w := a.watchAs(cfg, locks.WatchOptions{})
	if notes := strings.Join(w.Notes(), "\n"); !strings.Contains(notes, "lacks pg_read_all_stats") {
		t.Errorf("notes: %q", notes)
	}
	a.exec("a", "BEGIN; UPDATE w SET v = 1 WHERE id = 1")
	a.start("b", "UPDATE w SET v = 2 WHERE id = 1")
	look := until(t, w, "b under a", func(l *locks.Look) bool { return len(find(l.Tree, a.name("b"))) == 1 })
	b := find(look.Tree, a.name("b"))[0]
	if look.Tree.Roots[0].Session != a.name("a") || b.Query != locks.HiddenQuery || !strings.Contains(b.Lock, "ShareLock") {
		t.Errorf("tree as a plain role:\n%s", look.Tree)
	}
	if s := look.Tree.String(); !strings.Contains(s, "statement hidden") {
		t.Errorf("drawn:\n%s", s)
	}
	// The counts say they leave out what the role may not see: a and b
	// are in transactions, but another role's.
	if look.Hidden != 2 || !look.Partial() || look.InTransaction != 0 || !look.Document(nil).Partial {
		t.Errorf("counts as a plain role: %+v", look)
	}
	if notes := strings.Join(w.Notes(), "\n"); !strings.Contains(notes, "GRANT pg_read_all_stats TO "+role) {
		t.Errorf("notes do not say how to see it all: %q", notes)
	}
	a.exec("a", "COMMIT")
	if err := a.wait("b"); err != nil {
		t.Fatal(err)
	}
}
