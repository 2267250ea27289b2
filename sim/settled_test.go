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

// TestSettled: the server's word on whether the running statements can
// move without a new statement — true only while each waits for a session
// of the run and no wait is in a cycle; false while one runs, while one
// waits only for a connection outside the run, and in a deadlock the
// server has not broken yet.
func TestSettled(t *testing.T) {
	t.Parallel()
	sc, err := scenario.Parse("settled.spec", []byte(`
setup { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0); }
teardown { DROP TABLE t; }
session a
setup { SET deadlock_timeout = '10min'; }
step a1 { SELECT 1; }
session b
setup { SET deadlock_timeout = '10min'; }
step b1 { SELECT 1; }
session c
setup { SET deadlock_timeout = '10min'; }
step c1 { SELECT 1; }
`))
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.Schema(t)
	ctx := db.WithEndTime(context.Background())
	eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "settled", Sessions: 3, Lean: true, OnDemand: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := eng.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	const a, b, c = 0, 1, 2
	check := func(want bool, what string, sessions ...int) {
		t.Helper()
		got, err := eng.Settled(ctx, sessions)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s: Settled(%v) = %v, want %v", what, sessions, got, want)
		}
	}
	// blocked waits until the server says session i waits for the run (a
	// guard against a hang, not a timing).
	blocked := func(i int) {
		t.Helper()
		for guard := time.Now().Add(30 * time.Second); ; {
			is, err := eng.Blocked(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if is {
				return
			}
			if time.Now().After(guard) {
				t.Fatalf("session %d never waited", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	done := func(i int, what string) {
		t.Helper()
		if ev := next(t, eng, settled(eng.SessionName(i))); ev.Kind != sim.Completed {
			t.Fatalf("%s: %v %v", what, ev.Kind, ev.Err)
		}
	}
	outside, err := d.Connect(ctx, db.AppName("test-outside"))
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close(ctx)

	if ev := exec(t, eng, a, "BEGIN; UPDATE t SET v = v + 1 WHERE id = 1"); ev.Kind != sim.Completed {
		t.Fatalf("a locks row 1: %v %v", ev.Kind, ev.Err)
	}
	if err := eng.Exec(b, "UPDATE t SET v = v + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	blocked(b)
	check(true, "b waits for a, which sits in its transaction", b)

	if ev := exec(t, eng, c, "BEGIN"); ev.Kind != sim.Completed {
		t.Fatalf("c BEGIN: %v %v", ev.Kind, ev.Err)
	}
	if err := eng.Exec(c, "SELECT pg_sleep(600)"); err != nil {
		t.Fatal(err)
	}
	// Cancelled only once the server runs it: a cancel that came first
	// would find nothing to cancel.
	for guard := time.Now().Add(30 * time.Second); ; {
		var sleeping bool
		if err := outside.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%')",
			eng.Pids()[c]).Scan(&sleeping); err != nil {
			t.Fatal(err)
		}
		if sleeping {
			break
		}
		if time.Now().After(guard) {
			t.Fatal("c's sleep never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	check(false, "c runs", b, c)
	if err := eng.Cancel(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, eng, settled(eng.SessionName(c))); ev.Kind != sim.Error {
		t.Fatalf("c's sleep cancelled: %v", ev.Kind)
	}
	if ev := exec(t, eng, c, "ROLLBACK; BEGIN"); ev.Kind != sim.Completed {
		t.Fatalf("c begins again: %v %v", ev.Kind, ev.Err)
	}

	if _, err := outside.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := outside.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(c, "UPDATE t SET v = v + 1 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	for guard := time.Now().Add(30 * time.Second); ; {
		var waits bool
		if err := outside.QueryRow(ctx, "SELECT cardinality(pg_blocking_pids($1)) > 0", eng.Pids()[c]).Scan(&waits); err != nil {
			t.Fatal(err)
		}
		if waits {
			break
		}
		if time.Now().After(guard) {
			t.Fatal("c never waited for the outside connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	check(false, "c waits for a connection outside the run", b, c)
	if _, err := outside.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	done(c, "c locks row 2 once the outside connection rolls back")

	// a waits for c (row 2) and c for a (row 1): a deadlock the server
	// breaks only after deadlock_timeout.
	if err := eng.Exec(a, "UPDATE t SET v = v + 1 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	blocked(a)
	check(true, "a waits for c, b for a", a, b)
	if err := eng.Exec(c, "UPDATE t SET v = v + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	blocked(c)
	check(false, "a and c wait for each other", a, b, c)
}

// TestTimeouts: a timer a session starts with — here the role's
// idle_in_transaction_session_timeout — is found; none on the test server.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	sc, err := scenario.Parse("timeouts.spec", []byte(`
session a
step a1 { SELECT 1; }
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := db.WithEndTime(context.Background())
	timers := func(d *db.Database) bool {
		t.Helper()
		eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "timeouts", Sessions: 1, Lean: true, OnDemand: true})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := eng.Close(ctx); err != nil {
				t.Error(err)
			}
		}()
		set, err := eng.Timeouts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	if timers(dbtest.Schema(t)) {
		t.Fatal("a timeout found on the test server, which sets none")
	}
	student := dbtest.Role(t, "timers")
	admin, err := dbtest.DB(t).Connect(ctx, db.AppName("test-timeouts"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "ALTER ROLE "+student.User()+" SET idle_in_transaction_session_timeout = '1h'"); err != nil {
		t.Fatal(err)
	}
	if !timers(student) {
		t.Fatal("the role's idle_in_transaction_session_timeout was not found")
	}
}
