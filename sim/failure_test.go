package sim_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"lockstep/dbtest"
	"lockstep/scenario"
	"lockstep/sim"
)

// playScenario plays a built-in scenario's first permutation at an
// isolation level and returns its events.
func playScenario(t *testing.T, name, level string) []sim.Event {
	t.Helper()
	sc, err := scenario.LoadBuiltin(name, level)
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng, err := sim.New(ctx, sim.Config{DB: dbtest.Schema(t), Scenario: sc, ScenarioName: name, Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond})
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

// failureOf is the first failure with the SQLSTATE among the events.
func failureOf(t *testing.T, events []sim.Event, code string) *sim.Failure {
	t.Helper()
	for _, ev := range events {
		if ev.Kind == sim.Error && ev.Err.SQLState == code && ev.Failure != nil {
			return ev.Failure
		}
	}
	t.Fatalf("no %s among the events", code)
	return nil
}

// A 40001 carries what its explanation is built from: the statements the
// failing transaction ran and those of each transaction open alongside it,
// with how that one ended — write skew under SERIALIZABLE (read/write
// dependencies) and a lost update under REPEATABLE READ (first updater
// wins). The check session, which ran after, is not among them.
func TestSerializationFailureFacts(t *testing.T) {
	t.Parallel()
	t.Run("write-skew/serializable", func(t *testing.T) {
		t.Parallel()
		f := failureOf(t, playScenario(t, "write-skew", "serializable"), "40001")
		if f.Kind != sim.FailSerializable || f.Session != "T2" {
			t.Fatalf("%s's failure is %s, want T2's %s", f.Session, f.Kind, sim.FailSerializable)
		}
		wantOwn := []string{"SELECT count(*) AS on_call FROM anomaly WHERE on_call;", "UPDATE anomaly SET on_call = false WHERE id = 2;", "COMMIT;"}
		if !slices.Equal(f.Own, wantOwn) {
			t.Errorf("T2's transaction ran %q, want %q", f.Own, wantOwn)
		}
		if len(f.Overlapping) != 1 || f.Overlapping[0].Session != "T1" || !f.Overlapping[0].Committed || f.Overlapping[0].Open ||
			!slices.Equal(f.Overlapping[0].Statements, []string{"SELECT count(*) AS on_call FROM anomaly WHERE on_call;", "UPDATE anomaly SET on_call = false WHERE id = 1;", "COMMIT;"}) {
			t.Errorf("alongside T2's transaction: %+v; want T1's, committed, with its three statements", f.Overlapping)
		}
	})
	t.Run("lost-update/repeatable-read", func(t *testing.T) {
		t.Parallel()
		events := playScenario(t, "lost-update", "repeatable read")
		f := failureOf(t, events, "40001")
		if f.Kind != sim.FailFirstUpdaterWins || f.Session != "T2" {
			t.Fatalf("%s's failure is %s, want T2's %s", f.Session, f.Kind, sim.FailFirstUpdaterWins)
		}
		if len(f.Overlapping) != 1 || f.Overlapping[0].Session != "T1" || !f.Overlapping[0].Committed {
			t.Errorf("alongside T2's transaction: %+v; want T1's, committed", f.Overlapping)
		}
		// The error follows the COMMIT that caused it, in the events as in
		// the transcript.
		commit, failed := -1, -1
		for i, ev := range events {
			switch {
			case ev.Kind == sim.Completed && ev.Session == "T1" && ev.SQL == "COMMIT;":
				commit = i
			case ev.Kind == sim.Error && ev.Session == "T2":
				failed = i
			}
		}
		if commit < 0 || failed < commit {
			t.Errorf("T2's 40001 is event %d, T1's COMMIT event %d: the COMMIT that caused it must come first", failed, commit)
		}
	})
}

// A session of the stored order passed over after its statement failed is
// skipped with that reason — the victim of opposite-deadlock's 40P01, whose
// transaction is aborted and still open — not "waiting or finished".
func TestSkippedSaysWhy(t *testing.T) {
	t.Parallel()
	var skipped []sim.Event
	for _, ev := range playScenario(t, "opposite-deadlock", "") {
		if ev.Kind == sim.Skipped {
			skipped = append(skipped, ev)
		}
	}
	if len(skipped) != 1 || skipped[0].Session != "T2" {
		t.Fatalf("skipped %+v, want T2 once", skipped)
	}
	want := "its statement failed with 40P01 (deadlock detected) and its transaction is aborted, open until a ROLLBACK: its script stops there"
	if skipped[0].Why != want || skipped[0].State != sim.Aborted {
		t.Errorf("T2 skipped (%s): %q, want %q", skipped[0].State, skipped[0].Why, want)
	}
}

// The stored order's entries left when every session is done are skipped
// too, each with its reason: job-queue-nowait's w2_end (T2's ROLLBACK) never
// runs after T2's 55P03, and the run says so instead of dropping it.
func TestSkippedAtTheEnd(t *testing.T) {
	t.Parallel()
	var skipped []sim.Event
	for _, ev := range playScenario(t, "job-queue-nowait", "") {
		if ev.Kind == sim.Skipped {
			skipped = append(skipped, ev)
		}
	}
	want := "its statement failed with 55P03 (could not obtain lock on row in relation \"ls_jobs\") and its transaction is aborted, open until a ROLLBACK: its script stops there"
	if len(skipped) != 1 || skipped[0].Session != "T2" || skipped[0].Why != want {
		t.Fatalf("skipped %+v, want T2's w2_end once: %q", skipped, want)
	}
}

// A COMMIT typed in a session with no transaction open committed nothing:
// a 40001's facts do not name that session among those that committed
// while the failed transaction was open.
func TestNoOpCommitIsNoCommit(t *testing.T) {
	t.Parallel()
	sc, err := scenario.LoadBuiltin("lost-update", "repeatable read")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng, err := sim.New(ctx, sim.Config{DB: dbtest.Schema(t), Scenario: sc, ScenarioName: "lost-update", Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	step(t, eng, 0)           // t1r
	step(t, eng, 1)           // t2r
	exec(t, eng, 2, "COMMIT") // the check session: no transaction open
	step(t, eng, 0)           // t1w
	step(t, eng, 0)           // t1c
	ev := step(t, eng, 1)     // t2w: 40001
	failure := ev.Failure
	if failure == nil || failure.Err.SQLState != "40001" {
		t.Fatalf("T2's failure: %+v", failure)
	}
	if !slices.Equal(failure.Committed, []string{"T1"}) {
		t.Errorf("committed while T2's transaction was open: %v, want only T1", failure.Committed)
	}
}
