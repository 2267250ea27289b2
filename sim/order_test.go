package sim_test

import (
	"context"
	"testing"
	"time"

	"lockstep/dbtest"
	"lockstep/scenario"
	"lockstep/sim"
)

// A waiter released by a COMMIT is reported after that COMMIT, however
// late the COMMIT's own event is sent: its session's state says idle a
// moment before its event goes out, and a waiter that looked only at the
// state overtook it (the stress run's `run --scenario savepoint` printed
// T3 completed before T1's COMMIT). The hook holds the COMMIT's event back
// 300 ms, longer than the waiter takes to end.
func TestReleasedWaiterReportedAfterTheCommitThatReleasedIt(t *testing.T) {
	// Not parallel: the hook is the test binary's.
	sc, err := scenario.Parse("order.spec", []byte(`
setup { CREATE TABLE ls_order (id int PRIMARY KEY, v int); INSERT INTO ls_order VALUES (1, 0); }
teardown { DROP TABLE ls_order; }
session a
step a1 { BEGIN; }
step a2 { UPDATE ls_order SET v = 1 WHERE id = 1; }
step a3 { COMMIT; }
session b
step b1 { UPDATE ls_order SET v = 2 WHERE id = 1; }
permutation a1 a2 b1 a3
`))
	if err != nil {
		t.Fatal(err)
	}
	order, err := sc.SessionOrder(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: dbtest.Schema(t), Scenario: sc, ScenarioName: "order", Sessions: 2,
		Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	sim.SetTestBeforeEmit(func(ev sim.Event) {
		if ev.Kind == sim.Completed && ev.Tag == "COMMIT" {
			time.Sleep(300 * time.Millisecond)
		}
	})
	t.Cleanup(func() { sim.SetTestBeforeEmit(nil) })
	_, events := playUntil(t, eng, order, nil)
	commit, released := -1, -1
	for i, ev := range events {
		switch {
		case ev.Kind == sim.Completed && ev.Index == 0 && ev.Tag == "COMMIT":
			commit = i
		case ev.Kind == sim.Completed && ev.Index == 1:
			released = i
		}
	}
	if commit < 0 || released < 0 || released < commit {
		t.Fatalf("T2's release reported at event %d, T1's COMMIT at %d: want the COMMIT first", released, commit)
	}
}
