package tui

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"lockstep/locks"
	"lockstep/scenario"
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

// TestAutoRollbackSaysWhatItGivesUp: in a two-database run the engine's
// ROLLBACK after T2@B's statement failed ends T2@B's transaction only;
// T2@A's stays open and its COMMIT may still run (a sweep committed it and
// the databases disagreed), so the log must not say the application gave
// the transfer up. With one database it does give the transfer up.
func TestAutoRollbackSaysWhatItGivesUp(t *testing.T) {
	coupled := &frame{waitSince: map[string]time.Time{}, results: map[resultKey]result{}}
	for i, name := range []string{"T1@A", "T1@B", "T2@A", "T2@B"} {
		coupled.sessions = append(coupled.sessions, sim.SessionInfo{Name: name, Index: i, State: sim.InTransaction, CurrentStep: -1, ErrAt: -1})
	}
	rollback := func(who string, i int) sim.Event {
		return sim.Event{Kind: sim.Started, Session: who, Index: i, Step: -2, Auto: true, SQL: "ROLLBACK", State: sim.Running, Time: time.Now()}
	}
	_, line := coupled.apply(rollback("T2@B", 3))
	if want := "↺ ROLLBACK  (the application rolls back T2@B only: T2@A's transaction stays as it is)"; line.text != want {
		t.Errorf("two databases: %q, want %q", line.text, want)
	}
	_, line = twoWaiting().apply(rollback("T2", 1))
	if want := "↺ ROLLBACK  (the application gives the transfer up)"; line.text != want {
		t.Errorf("one database: %q, want %q", line.text, want)
	}
}

// TestOutcomeWithoutOneSaysSo: the Outcome pane of a scenario that states
// no outcome (fk-deadlock) said only "a scenario has no ledger", false of
// the two-database scenarios, and nothing about an outcome; it says there
// is none to compare with and where the result is.
func TestOutcomeWithoutOneSaysSo(t *testing.T) {
	p := &accountsPane{box: box{look: &look{st: newStyles("", true), vol: asIs{}}}}
	p.Show(&frame{books: booksState{read: true}}, true, "")
	got := strings.Join(p.Lines(200), "\n")
	if strings.Contains(got, "a scenario has no ledger") || !strings.Contains(got, "this scenario states no outcome to compare with") {
		t.Errorf("no outcome stated:\n%s", got)
	}
	p.Show(&frame{books: booksState{read: true}}, true, "at SERIALIZABLE: prevented")
	got = strings.Join(p.Lines(200), "\n")
	if strings.Contains(got, "sessions' columns") || !strings.Contains(got, "compare it with the results in the Sessions pane") {
		t.Errorf("an outcome stated:\n%s", got)
	}
}

// TestFatalRemedyInAScenario: when a scenario's sessions could not start
// (a sweep hit "too many clients"), the screen offered "s another set-up",
// which a scenario refuses ("the set-up form is for the transfer
// strategies"); it offers only what acts — and in a family of fixes f,
// which now acts (f to coupled-2pc on a server without prepared
// transactions left no way on to the next fix but m).
func TestFatalRemedyInAScenario(t *testing.T) {
	err := errors.New("opening the control connection: too many clients")
	if got := fatalRemedy(err, true, false); strings.Contains(got, "s another set-up") || !strings.Contains(got, "m picks a transfer strategy instead") {
		t.Errorf("scenario: %q", got)
	}
	if got := fatalRemedy(err, true, true); !strings.Contains(got, "f starts the next fix") {
		t.Errorf("scenario with fixes: %q", got)
	}
	if got := fatalRemedy(err, false, false); !strings.Contains(got, "s another set-up") {
		t.Errorf("transfers: %q", got)
	}
	m := &Model{fatal: err.Error(), fatalErr: err, cfg: sim.Config{Scenario: &scenario.Spec{}, ScenarioName: "coupled-2pc"}}
	if got := m.notRunning(); strings.Contains(got, "s another set-up") || !strings.Contains(got, "f starts the next fix") {
		t.Errorf("scenario status: %q", got)
	}
	for _, a := range m.newTable() {
		if slices.Contains(a.Keys(), "f") {
			if why := a.why(); why != "" {
				t.Errorf("f after a fix could not start: %q", why)
			}
		}
	}
}
