package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/shopspring/decimal"

	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/record"
	"lockstep/sim"
)

func lectureReplay(t *testing.T, w, h int) *Model {
	t.Helper()
	rec, err := record.Open("../record/testdata/lecture-v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewReplay(context.Background(), rec, ReplayOptions{Volatile: masked{}})
	if err != nil {
		t.Fatal(err)
	}
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

// From the end of the recorded lecture, one key — D — steps back to the
// deadlock as it stood, and → to the server's verdict on it.
func TestReplayStepsBackToTheDeadlock(t *testing.T) {
	t.Parallel()
	m := lectureReplay(t, 120, 40)
	if m.tl.pos != 0 || !strings.Contains(stripped(m.View().Content), "REPLAY 1/") {
		t.Fatalf("the replay opens at its start:\n%s", stripped(m.View().Content))
	}
	// A replay steps nothing: its idle pane offers no keys that step sessions.
	if s := stripped(m.View().Content); !strings.Contains(s, "No session waits at this moment") || strings.Contains(s, "Step the sessions") {
		t.Errorf("the replay's idle explanation:\n%s", s)
	}
	press(m, "end", "D")
	if f := m.shown(); f.kind != sim.DeadlockFormed {
		t.Fatalf("D from the end: moment %d is %v %q", m.tl.pos+1, f.kind, f.what)
	}
	if s := stripped(m.View().Content); !strings.Contains(s, "DEADLOCK") || !strings.Contains(s, "FOR UPDATE") {
		t.Errorf("the deadlock as it stood:\n%s", s)
	}
	for m.shown().kind != sim.Error && m.tl.pos < m.tl.last() {
		press(m, "right")
	}
	if f := m.shown(); f.code != "40P01" || !strings.Contains(stripped(m.View().Content), "Deadlock broken") {
		t.Errorf("→ from the deadlock: moment %d is %v %q:\n%s", m.tl.pos+1, f.kind, f.what, stripped(m.View().Content))
	}
}

// TestRecordedScreens compares, at the three sizes, the screens of the
// moments whose look on a live run depends on a race — whether a poll saw
// the deadlock stand before the server broke it — as recordings hold them:
// the lecture's deadlock and a ring of nine, standing and broken. No pane
// may cut its text without a mark.
func TestRecordedScreens(t *testing.T) {
	t.Parallel()
	for _, rec := range []struct{ name, file string }{
		{"lecture", "../record/testdata/lecture-v1.jsonl"},
		{"ring", "../record/testdata/ring-v1.jsonl.gz"},
	} {
		r, err := record.Open(rec.file)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewReplay(context.Background(), r, ReplayOptions{Volatile: masked{}, At: "deadlock"})
		if err != nil {
			t.Fatal(err)
		}
		standing := m.tl.pos
		if f := m.shown(); f.kind != sim.DeadlockFormed || f.cycle == nil {
			t.Fatalf("%s: the recording's first deadlock moment is %v %q, not the cycle standing", rec.name, f.kind, f.what)
		}
		broken := standing
		for m.tl.Go(broken + 1); m.tl.pos > broken && !(m.shown().kind == sim.Error && m.shown().code == "40P01"); m.tl.Go(broken + 1) {
			broken = m.tl.pos
		}
		if m.tl.pos == broken {
			t.Fatalf("%s: no 40P01 after the standing deadlock", rec.name)
		}
		broken = m.tl.pos
		for _, moment := range []struct {
			name string
			at   int
		}{{"standing", standing}, {"broken", broken}} {
			for _, size := range sizes {
				m.tl.Go(moment.at)
				m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
				m.look.silent = nil
				screen := stripped(m.View().Content)
				silent := m.look.silent
				t.Run(fmt.Sprintf("%s-%s/%dx%d", rec.name, moment.name, size[0], size[1]), func(t *testing.T) {
					noSilentCuts(t, silent, screen)
					golden.RequireEqual(t, []byte(screen))
				})
			}
		}
	}
}

// Space plays the recording: each beat shows the next moment, until the end.
func TestReplayPlays(t *testing.T) {
	t.Parallel()
	m := lectureReplay(t, 120, 40)
	cmd := press(m, "space")
	if cmd == nil || !m.tl.playing {
		t.Fatal("space did not start playing")
	}
	for range len(m.hist.frames) + 2 {
		m.Update(timelineTickMsg{tl: m.tl, seq: m.tl.seq})
	}
	if m.tl.pos != len(m.hist.frames)-1 || m.tl.playing || !strings.Contains(m.status, "end of the recording") {
		t.Errorf("after playing: moment %d of %d, playing %v, %q", m.tl.pos+1, len(m.hist.frames), m.tl.playing, m.status)
	}
	// A stale beat (from before a pause) moves nothing.
	press(m, "home")
	m.Update(timelineTickMsg{tl: m.tl, seq: m.tl.seq - 1})
	if m.tl.pos != 0 {
		t.Errorf("a stale beat moved the replay to %d", m.tl.pos+1)
	}
	press(m, "w")
	if m.shown().kind != sim.WaitingForLock {
		t.Errorf("w: moment %d is %q", m.tl.pos+1, m.shown().what)
	}
}

// A recording of lockstep run made before run read the balances at each
// step holds them only in its outcome: the replay shows them at the moments
// after the run's last change, and says of the others that they were not
// recorded — never "reading the balances…", which nothing is doing, nor an
// older read as theirs.
func TestReplayBalancesOfARunRecording(t *testing.T) {
	t.Parallel()
	m := lectureReplay(t, 120, 40)
	rec, err := record.Open("../record/testdata/lecture-v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	end := rec.Outcome()
	if len(end.Accounts) == 0 {
		t.Fatal("the lecture's recording has no outcome balances")
	}
	for i := range m.hist.frames {
		m.tl.Go(i)
		s := stripped(m.View().Content)
		if strings.Contains(s, "reading the balances") {
			t.Errorf("moment %d says it is reading the balances:\n%s", i+1, s)
		}
		b := m.hist.frames[i].books
		switch {
		case i == len(m.hist.frames)-1:
			if !b.read || !b.accounts[0].Balance.Equal(end.Accounts[0].Balance) || !strings.Contains(s, end.Accounts[0].Balance.StringFixed(2)) {
				t.Errorf("the last moment shows %+v, not the balances the run ended with (%v):\n%s", b, end.Accounts, s)
			}
		case b.read:
			t.Errorf("moment %d (%s) shows balances the recording does not hold for it: %+v", i+1, m.hist.frames[i].what, b)
		case !strings.Contains(s, "balances not recorded at this moment"):
			t.Errorf("moment %d does not say its balances were not recorded:\n%s", i+1, s)
		}
	}
}

// A read of the balances shows a moment only when it began after the
// moment's last change: a read begun before T1's COMMIT ended, and reported
// after it, leaves the COMMIT's moment to the next read — the moment shows
// the balances the COMMIT made, not those from before it.
func TestReplayBalancesReadAfterTheChange(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	acct := func(a, b string) *sim.Balances {
		return &sim.Balances{Accounts: []ledger.Account{
			{ID: 1, Owner: "alice", Balance: decimal.RequireFromString(a), OpeningBalance: decimal.RequireFromString("100")},
			{ID: 2, Owner: "bob", Balance: decimal.RequireFromString(b), OpeningBalance: decimal.RequireFromString("100")}}}
	}
	read := func(ms, taken int, a, b string) record.Line {
		bs := acct(a, b)
		bs.Taken = at(taken)
		return record.Line{T: at(ms).Sub(start), Event: &sim.Event{Time: at(ms), Kind: sim.BooksRead, Index: -1, Step: -1, Books: bs}}
	}
	t1 := sim.SessionInfo{Name: "T1", State: sim.InTransaction, Statements: []string{"UPDATE accounts SET balance = 90 WHERE id = 1", "COMMIT"}, Next: 1}
	done := t1
	done.State, done.Next = sim.Committed, 2
	rec := &record.Recording{
		Header: record.Header{Format: record.Format, Version: record.Version, Command: "run", Started: start,
			Run: record.Run{Name: "naive", Sessions: 1, HasLedger: true}},
		Lines: []record.Line{
			{T: 0, Sessions: []sim.SessionInfo{t1}},
			read(1, 1, "100.00", "100.00"),
			{T: 10 * time.Millisecond, Event: &sim.Event{Time: at(10), Kind: sim.Completed, Session: "T1", Index: 0, Step: 1,
				SQL: "COMMIT", Tag: "COMMIT", State: sim.Committed}},
			{T: 10 * time.Millisecond, Sessions: []sim.SessionInfo{done}},
			read(11, 9, "100.00", "100.00"), // begun before the COMMIT ended
			read(20, 12, "90.00", "110.00"),
		},
	}
	m, err := NewReplay(context.Background(), rec, ReplayOptions{Volatile: masked{}})
	if err != nil {
		t.Fatal(err)
	}
	last := m.hist.frames[len(m.hist.frames)-1]
	if last.kind != sim.Completed || len(last.books.accounts) != 2 || last.books.accounts[0].Balance.StringFixed(2) != "90.00" {
		t.Errorf("the COMMIT's moment (%v %q) shows %+v; want alice 90.00, read after the COMMIT", last.kind, last.what, last.books.accounts)
	}
	if first := m.hist.frames[0]; first.books.accounts[0].Balance.StringFixed(2) != "100.00" {
		t.Errorf("the first moment shows %+v; want alice 100.00", first.books.accounts)
	}
}

// A moment shows its sessions as the poll that shows its locks found them:
// savepoint's T2, let go by T1's ROLLBACK TO SAVEPOINT and still finishing
// its UPDATE, stands as running at that moment — not as waiting for T1
// beside a Locks pane where it waits for nobody.
func TestReplayReleasedWaiterRuns(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	t1 := sim.SessionInfo{Name: "T1", Index: 0, State: sim.InTransaction, Statements: []string{"ROLLBACK TO SAVEPOINT s;", "COMMIT;"}}
	t2 := sim.SessionInfo{Name: "T2", Index: 1, State: sim.Waiting, Statements: []string{"UPDATE ls_items SET qty = 0 WHERE id = 2;"},
		Current: "UPDATE ls_items SET qty = 0 WHERE id = 2;", BlockedBy: []string{"T1"}}
	after := t1
	after.Next = 1
	snap := func(ms int, t2waits bool) *locks.Snapshot {
		s := &locks.Snapshot{Taken: at(ms), Backends: []locks.Backend{{Pid: 1, Session: "T1", State: "idle in transaction"},
			{Pid: 2, Session: "T2", State: "active"}}}
		if t2waits {
			s.Backends[1].WaitEventType, s.Backends[1].WaitEvent, s.Backends[1].BlockedBy = "Lock", "transactionid", []int32{1}
		}
		return s
	}
	rec := &record.Recording{
		Header: record.Header{Format: record.Format, Version: record.Version, Command: "run", Started: start,
			Run: record.Run{Name: "scenario savepoint", Sessions: 2}},
		Lines: []record.Line{
			{T: 0, Sessions: []sim.SessionInfo{t1, t2}},
			{T: 1 * time.Millisecond, Event: &sim.Event{Time: at(1), Kind: sim.Polled, Index: -1, Step: -1, Snapshot: snap(1, true)}},
			{T: 10 * time.Millisecond, Event: &sim.Event{Time: at(10), Kind: sim.Completed, Session: "T1", Index: 0, Step: 0,
				SQL: "ROLLBACK TO SAVEPOINT s;", Tag: "ROLLBACK", State: sim.InTransaction}},
			{T: 10 * time.Millisecond, Sessions: []sim.SessionInfo{after, t2}},
			{T: 12 * time.Millisecond, Event: &sim.Event{Time: at(12), Kind: sim.Polled, Index: -1, Step: -1, Snapshot: snap(12, false)}},
		},
	}
	m, err := NewReplay(context.Background(), rec, ReplayOptions{Volatile: masked{}})
	if err != nil {
		t.Fatal(err)
	}
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	if n := len(m.hist.frames); n != 2 {
		t.Fatalf("%d moments, want 2 (ready, ROLLBACK TO SAVEPOINT)", n)
	}
	if s := m.hist.frames[0].sessions[1]; s.State != sim.Waiting {
		t.Errorf("before the ROLLBACK TO SAVEPOINT, T2 is %v; want waiting", s.State)
	}
	m.tl.Go(1)
	if s := m.hist.frames[1].sessions[1]; s.State != sim.Running || len(s.BlockedBy) != 0 {
		t.Errorf("at the ROLLBACK TO SAVEPOINT, T2 is %v blocked by %v; want running, blocked by nobody", s.State, s.BlockedBy)
	}
	if screen := stripped(m.View().Content); strings.Contains(screen, "waits for T1") || strings.Contains(screen, "WAITING") {
		t.Errorf("at the ROLLBACK TO SAVEPOINT the screen still has T2 waiting:\n%s", screen)
	}
}
