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

// TestQuickCloseLeavesNothingRunning: with QuickClose, as the isolation
// tester does, Close does not wait for the run's backends to be gone when
// every connection ended in order — and nothing of the run is left: every
// backend exits by itself, its transaction rolled back and its locks
// released, a statement that ran at Close cancelled first.
func TestQuickCloseLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	sc, err := scenario.Parse("quick.spec", []byte(`
setup { CREATE TABLE quick (id int PRIMARY KEY); INSERT INTO quick VALUES (1); }
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
	// The context a command gives its run (spec is QuickClose's user):
	// Close's clean-up then has CleanupUnhurried, not the 1.5 s an
	// interface's quit gets, which a loaded machine ran past (the stress
	// run: "releasing schema …: context deadline exceeded" after 1.57 s).
	ctx := db.WithEndTime(context.Background())
	eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "quick", Sessions: 2, Lean: true, OnDemand: true,
		QuickClose: true, KeepTransactions: true})
	if err != nil {
		t.Fatal(err)
	}
	if ev := exec(t, eng, 0, "BEGIN; UPDATE quick SET id = 1 WHERE id = 1"); ev.Kind != sim.Completed {
		t.Fatalf("a: %v %v", ev.Kind, ev.Err)
	}
	if err := eng.Exec(1, "SELECT pg_sleep(60)"); err != nil {
		t.Fatal(err)
	}
	eng.PollNow() // the observer connects, and ends with the rest
	next(t, eng, func(ev sim.Event) bool { return ev.Kind == sim.Polled })
	pids := eng.Pids()
	start := time.Now()
	if err := eng.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %s", took)
	}
	conn, err := d.Connect(ctx, db.AppName("test-quick"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(10 * time.Second); ; {
		var backends, held int
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1) OR application_name LIKE $2),
			(SELECT count(*) FROM pg_locks WHERE pid = ANY($1))`, pids, eng.RunID().Like("")).Scan(&backends, &held); err != nil {
			t.Fatal(err)
		}
		if backends == 0 && held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after Close: %d backends of the run, %d locks of its sessions", backends, held)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
