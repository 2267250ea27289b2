package sim_test

import (
	"context"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/scenario"
	"lockstep/sim"
)

// TestOnDemandObserverConnectsAtTheFirstPoll: a lean run on demand (the
// isolation tester's view) opens no observer connection until it asks for
// a poll — most specs never do — and then polls as ever.
func TestOnDemandObserverConnectsAtTheFirstPoll(t *testing.T) {
	t.Parallel()
	sc, err := scenario.Parse("lazy.spec", []byte(`
session a
step a1 { SELECT 1; }
session b
step b1 { SELECT 2; }
permutation a1 b1
`))
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.Schema(t)
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "lazy", Sessions: 2, Lean: true, OnDemand: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	conn, err := d.Connect(ctx, db.AppName("test-observers"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	observers := func() int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
			eng.RunID().AppName("observer")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if ev := exec(t, eng, 0, "SELECT 1"); ev.Kind != sim.Completed {
		t.Fatalf("a1: %v %v", ev.Kind, ev.Err)
	}
	if n := observers(); n != 0 {
		t.Fatalf("%d observer connections before any poll was asked for; want none", n)
	}
	if eng.Observer() != nil {
		t.Fatal("an observer before any poll was asked for")
	}
	asked := time.Now()
	eng.PollNow()
	ev := next(t, eng, func(ev sim.Event) bool { return ev.Kind == sim.Polled })
	if ev.Snapshot == nil || ev.Snapshot.Taken.Before(asked) {
		t.Fatalf("the poll asked for: %+v", ev)
	}
	if _, ok := ev.Snapshot.Backend(eng.SessionName(0)); !ok {
		t.Fatalf("the first poll does not see session %s", eng.SessionName(0))
	}
	if n := observers(); n != 1 {
		t.Fatalf("%d observer connections after the first poll; want 1", n)
	}
}
