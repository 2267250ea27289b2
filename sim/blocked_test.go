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

// TestBlockedAsksTheTestersQuestion: Engine.Blocked answers as the isolation
// tester's own query does — a session waiting for another session of the
// run is blocked; one running, idle, or waiting only for a connection that
// is not the run's is not — and the answer is the server's, checked here
// against pg_blocking_pids.
func TestBlockedAsksTheTestersQuestion(t *testing.T) {
	t.Parallel()
	sc, err := scenario.Parse("blocked.spec", []byte(`
setup { CREATE TABLE blk (id int PRIMARY KEY, v int); INSERT INTO blk VALUES (1, 0); }
teardown { DROP TABLE blk; }
session a
setup { BEGIN; }
step a1 { UPDATE blk SET v = 1 WHERE id = 1; }
step a2 { COMMIT; }
session b
step b1 { UPDATE blk SET v = 2 WHERE id = 1; }
permutation a1 b1 a2
`))
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.Schema(t)
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "blocked", Sessions: 2, Lean: true, OnDemand: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	blocked := func(i int) bool {
		t.Helper()
		b, err := eng.Blocked(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// awaitBlocked asks until the server says session i waits.
	awaitBlocked := func(i int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !blocked(i); {
			if time.Now().After(deadline) {
				t.Fatalf("session %d never reported blocked", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if ev := exec(t, eng, 0, "UPDATE blk SET v = 1 WHERE id = 1"); ev.Kind != sim.Completed {
		t.Fatalf("a1: %v %v", ev.Kind, ev.Err)
	}
	if blocked(0) || blocked(1) {
		t.Fatal("an idle session reported blocked")
	}
	if err := eng.Exec(1, "UPDATE blk SET v = 2 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	awaitBlocked(1)
	if blocked(0) {
		t.Fatal("the holder reported blocked")
	}
	if ev := exec(t, eng, 0, "COMMIT"); ev.Kind != sim.Completed {
		t.Fatalf("a2: %v %v", ev.Kind, ev.Err)
	}
	if ev := next(t, eng, settled(eng.Sessions()[1].Name)); ev.Kind != sim.Completed {
		t.Fatalf("b1 after the commit: %v %v", ev.Kind, ev.Err)
	}
	if blocked(1) {
		t.Fatal("b reported blocked after its statement ended")
	}

	// A connection that is not the run's holds the row: b waits, as the
	// server says, but not for a session of the run — the tester's
	// question answers no.
	other, err := d.Connect(ctx, db.AppName("test-other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, "BEGIN; UPDATE blk SET v = 9 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(1, "UPDATE blk SET v = 3 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	pid := eng.Pids()[1]
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		if err := other.QueryRow(ctx, "SELECT cardinality(pg_blocking_pids($1))", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never waited for the other connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if blocked(1) {
		t.Fatal("b reported blocked by a session of the run while only a foreign connection holds the row")
	}
	if _, err := other.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, eng, settled(eng.Sessions()[1].Name)); ev.Kind != sim.Completed {
		t.Fatalf("b after the other connection rolled back: %v %v", ev.Kind, ev.Err)
	}
}

// TestCloseAfterTheServerEndedASession: a session the server ended while
// it sat in its transaction (its FATAL never read, as in the tester's view)
// closes without an error: nothing of it is left to end.
func TestCloseAfterTheServerEndedASession(t *testing.T) {
	t.Parallel()
	sc, err := scenario.Parse("ended.spec", []byte(`
session a
setup { BEGIN; }
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
	eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "ended", Sessions: 2, Lean: true, OnDemand: true})
	if err != nil {
		t.Fatal(err)
	}
	if ev := exec(t, eng, 0, "SELECT 1"); ev.Kind != sim.Completed {
		t.Fatalf("a1: %v %v", ev.Kind, ev.Err)
	}
	conn, err := d.Connect(ctx, db.AppName("test-terminator"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := eng.Pids()[0]
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1, 5000)", pid); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(db.WithEndTime(ctx)); err != nil {
		t.Fatalf("Close after the server ended session a: %v", err)
	}
}
