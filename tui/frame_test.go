package tui

import (
	"strings"
	"testing"
	"time"

	"lockstep/locks"
	"lockstep/sim"
)

// twoWaiting is a frame with T1 and T2 each waiting for the other.
func twoWaiting() *frame {
	f := &frame{waitSince: map[string]time.Time{}, results: map[resultKey]result{}}
	for i, name := range []string{"T1", "T2"} {
		f.sessions = append(f.sessions, sim.SessionInfo{Name: name, Index: i, State: sim.InTransaction, CurrentStep: -1, ErrAt: -1})
	}
	return f
}

func ring() *locks.Cycle {
	return &locks.Cycle{Sessions: []string{"T1", "T2"}, Edges: []locks.Edge{{Waiter: "T1", Holder: "T2"}, {Waiter: "T2", Holder: "T1"}}}
}

func wait(name string, i int) sim.Event {
	return sim.Event{Kind: sim.WaitingForLock, Session: name, Index: i, Step: 4, SQL: "SELECT 1", State: sim.Waiting, Time: time.Now()}
}

func deadlockError() sim.Event {
	return sim.Event{Kind: sim.Error, Session: "T2", Index: 1, Step: 4, State: sim.Aborted, Time: time.Now(),
		Err: &sim.ServerMessage{SQLState: "40P01", Message: "deadlock detected", Detail: "Process 1 waits for ShareLock"}}
}

// TestDeadlockSeenBeforeItBreaks: the cycle stands until the server's
// 40P01, then stays drawn as the deadlock broken, with its victim.
func TestDeadlockSeenBeforeItBreaks(t *testing.T) {
	f := twoWaiting()
	f.apply(wait("T1", 0))
	f.apply(wait("T2", 1))
	if keep, line := f.apply(sim.Event{Kind: sim.DeadlockFormed, Cycle: ring(), Index: -1}); !keep || line.text != "⚠ deadlock: T1 → T2 → T1" {
		t.Fatalf("deadlock formed: keep %v, line %q", keep, line.text)
	}
	if f.cycle == nil {
		t.Fatal("the cycle should stand")
	}
	f.apply(deadlockError())
	if f.cycle != nil || f.broken == nil || f.broken.victim != "T2" || f.broken.cycle == nil {
		t.Fatalf("after 40P01: cycle %v, broken %+v", f.cycle, f.broken)
	}
}

// TestDeadlockSeenAfterItBroke: a poll that began before the server broke
// the cycle reports it after the 40P01; it must not stand again, and the
// broken deadlock gets its drawing.
func TestDeadlockSeenAfterItBroke(t *testing.T) {
	f := twoWaiting()
	f.apply(wait("T1", 0))
	f.apply(wait("T2", 1))
	f.apply(deadlockError())
	_, line := f.apply(sim.Event{Kind: sim.DeadlockFormed, Cycle: ring(), Index: -1})
	if f.cycle != nil {
		t.Error("a cycle the server already broke stands again")
	}
	if f.broken == nil || f.broken.victim != "T2" || f.broken.cycle == nil || cycleDrawing(f.broken.cycle) != "T1 ──▶ T2 ──▶ T1" {
		t.Errorf("broken deadlock: %+v", f.broken)
	}
	if !strings.Contains(line.text, "seen as the server broke it") {
		t.Errorf("log line %q", line.text)
	}
}

// TestDeadlockGoneWithItsVictimsError: the 40P01 comes before the poll that
// sees the break; until that poll the frame's locks are the last poll's
// without the victim's wait and locks, so the graph draws no deadlock
// beside "Deadlock broken: T2 was the victim".
func TestDeadlockGoneWithItsVictimsError(t *testing.T) {
	f := twoWaiting()
	xid := func(owner, holder string, granted bool) locks.Lock {
		return locks.Lock{Session: holder, Type: "transactionid", TxOwner: owner, Mode: "ShareLock", Granted: granted}
	}
	c := ring()
	snap := &locks.Snapshot{
		Locks: []locks.Lock{xid("T2", "T1", false), xid("T1", "T2", false), xid("T1", "T1", true), xid("T2", "T2", true),
			{Session: "T2", Type: "advisory", Mode: "ExclusiveLock", Granted: true}},
		Graph: locks.Graph{Edges: c.Edges, Cycles: []locks.Cycle{*c}},
	}
	f.apply(sim.Event{Kind: sim.Polled, Snapshot: snap, Index: -1})
	f.apply(wait("T1", 0))
	f.apply(wait("T2", 1))
	f.apply(sim.Event{Kind: sim.DeadlockFormed, Cycle: c, Index: -1})
	f.apply(deadlockError())
	if n := len(f.snap.Graph.Cycles); n != 0 {
		t.Errorf("after T2's 40P01 the graph still has %d cycles", n)
	}
	for _, e := range f.snap.Graph.Edges {
		if e.Waiter == "T2" || e.Holder == "T2" {
			t.Errorf("after T2's 40P01 the graph still has %s ──▶ %s", e.Waiter, e.Holder)
		}
	}
	for _, l := range f.snap.LocksOf("T2") {
		if l.Type != "advisory" {
			t.Errorf("after T2's 40P01 (its transaction aborted) T2 still holds %s on %s", l.Mode, l.Target())
		}
	}
	if len(f.snap.LocksOf("T2")) != 1 {
		t.Error("T2's advisory lock (perhaps a session's) should stay until the next poll says")
	}
	if len(snap.Graph.Cycles) != 1 || len(snap.Locks) != 5 {
		t.Error("the poll's own snapshot, which history frames share, changed")
	}
}
