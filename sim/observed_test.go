package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

// observedRun plays cfg to its end with PollEachStep, as lockstep run
// --record does, and returns its events.
func observedRun(t *testing.T, cfg sim.Config, order []int) []sim.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.DB, cfg.Poll, cfg.PollEachStep = dbtest.Schema(t), 50*time.Millisecond, true
	eng, err := sim.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	var events []sim.Event
	if _, err := eng.PlayToEnd(ctx, sim.NewScheduler(order), true, func(ev sim.Event) { events = append(events, ev) }); err != nil {
		t.Fatal(err)
	}
	return events
}

// everyEndObserved checks that after each statement's end, before the next
// statement is sent (or the run ends), a poll — and with books a read of
// the balances — begun after that end is read: every moment a recording
// shows has the locks and balances it had.
func everyEndObserved(t *testing.T, events []sim.Event, books bool) {
	t.Helper()
	var pending *sim.Event
	var polled, read bool
	check := func(where string) {
		if pending == nil {
			return
		}
		if !polled || (books && !read) {
			t.Errorf("%s's %q ended at %s; %s came before it was observed (a poll begun after it read: %v; a read of the balances begun after it: %v)",
				pending.Session, pending.SQL, pending.Time.Format("15:04:05.000000"), where, polled, read)
		}
		pending = nil
	}
	for i, ev := range events {
		switch ev.Kind {
		case sim.Completed, sim.Error:
			if pending == nil {
				pending, polled, read = &events[i], false, false
			}
		case sim.Started:
			if ev.Auto {
				// The engine's own ROLLBACK after a failed statement follows
				// it at once, in the interface as here; the failure had
				// already released the transaction's locks.
				continue
			}
			check("the next statement (" + ev.Session + ": " + ev.SQL + ")")
		case sim.Polled:
			if pending != nil && ev.Snapshot.Taken.After(pending.Time) {
				polled = true
			}
		case sim.BooksRead:
			if pending != nil && ev.Books.Taken.After(pending.Time) {
				read = true
			}
		}
	}
	check("the run's end")
}

// A recorded run observes every moment, its last too, and a waiter the
// server lets go ends before the next step: savepoint's T2 goes on at T1's
// ROLLBACK TO SAVEPOINT, before T1's COMMIT is sent — as the isolation
// tester shows it — not after it, which would teach that it waited for the
// transaction.
func TestPollEachStepObservesEveryMoment(t *testing.T) {
	t.Parallel()
	t.Run("savepoint", func(t *testing.T) {
		t.Parallel()
		sc, err := scenario.LoadBuiltin("savepoint", "")
		if err != nil {
			t.Fatal(err)
		}
		var order []int
		for _, ps := range sc.Permutations[0].Steps {
			for i, ss := range sc.Sessions {
				if ps.Step.Session == ss {
					order = append(order, i)
				}
			}
		}
		events := observedRun(t, sim.Config{Scenario: sc, ScenarioName: "savepoint", Sessions: len(sc.Sessions)}, order)
		everyEndObserved(t, events, false)
		released, commitSent := -1, -1
		for i, ev := range events {
			switch {
			case ev.Kind == sim.Completed && ev.Session == "T2" && strings.HasPrefix(ev.SQL, "UPDATE"):
				released = i
			case ev.Kind == sim.Started && ev.Session == "T1" && strings.HasPrefix(ev.SQL, "COMMIT"):
				commitSent = i
			}
		}
		if released < 0 || commitSent < 0 || released > commitSent {
			t.Errorf("T2's UPDATE ended at event %d, T1's COMMIT was sent at event %d: T2 must end first", released, commitSent)
		}
	})
	t.Run("transfers", func(t *testing.T) {
		t.Parallel()
		s, err := ledger.Lookup("naive")
		if err != nil {
			t.Fatal(err)
		}
		events := observedRun(t, sim.Config{Ledger: dbtest.Ledger(t), Strategy: s, Sessions: 2, Direction: sim.Opposite,
			Setup: ledger.DefaultSetup(), Books: true}, nil)
		everyEndObserved(t, events, true)
	})
}
