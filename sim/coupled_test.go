package sim_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/scenario"
	"lockstep/sim"
)

const coupledPoll = 200 * time.Millisecond

// newCoupled starts a two-database engine on scenario name, on database
// first and lockstep_b beside it, each with a schema of the test's own, and
// checks at the end that nothing of the run is left: no backend, nothing
// prepared, in either database.
func newCoupled(t *testing.T, first *db.Database, name string) (*sim.Engine, []int) {
	t.Helper()
	sc, err := scenario.LoadBuiltin(name, "")
	if err != nil {
		t.Fatal(err)
	}
	order, err := sc.SessionOrder(1)
	if err != nil {
		t.Fatal(err)
	}
	a := dbtest.SchemaOn(t, first)
	b := dbtest.Second(t, a, nil)
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: a, DB2: b, Ledger: dbtest.Ledger(t), Scenario: sc, ScenarioName: name,
		Sessions: len(sc.Sessions), Setup: ledger.DefaultSetup(), Poll: coupledPoll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := eng.Close(db.WithEndTime(ctx)); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, d := range []*db.Database{a, b} {
			conn, err := d.Connect(ctx, db.AppName("test-check"))
			if err != nil {
				t.Fatal(err)
			}
			var backends, prepared int
			err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1),
				(SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE $1)`, eng.RunID().Like("")).Scan(&backends, &prepared)
			conn.Close(ctx)
			if err != nil || backends != 0 || prepared != 0 {
				t.Errorf("%s: %d backends and %d prepared transactions of run %s left after Close (err %v)",
					d.Name(), backends, prepared, eng.RunID(), err)
			}
		}
	})
	return eng, order
}

// playUntil plays the permutation and stops at the first event stop accepts
// (returning it), or at the end (returning nil).
func playUntil(t *testing.T, eng *sim.Engine, order []int, stop func(sim.Event) bool) (*sim.Event, []sim.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pctx, halt := context.WithCancel(ctx)
	defer halt()
	var hit *sim.Event
	var events []sim.Event
	err := eng.Play(pctx, sim.NewScheduler(order), func(ev sim.Event) {
		if ev.Kind != sim.Polled {
			events = append(events, ev)
		}
		if hit == nil && stop != nil && stop(ev) {
			hit = &ev
			halt()
		}
	})
	if err != nil && !(hit != nil && errors.Is(err, context.Canceled)) {
		t.Fatalf("playing: %v", err)
	}
	return hit, events
}

func balances(t *testing.T, eng *sim.Engine) map[string][]ledger.Account {
	t.Helper()
	b, err := eng.Balances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCoupledDistributedDeadlock(t *testing.T) {
	eng, order := newCoupled(t, dbtest.DB(t), "coupled")
	hit, events := playUntil(t, eng, order, func(ev sim.Event) bool {
		return ev.Kind == sim.DeadlockFormed
	})
	if hit == nil {
		t.Fatal("the permutation ended without a cycle")
	}
	c := hit.Cycle
	if !c.Distributed || c.BreakAt != nil || c.String() != "T1@A → T2@A → T2@B → T1@B → T1@A" {
		t.Fatalf("cycle %s: distributed %v, break at %v", c, c.Distributed, c.BreakAt)
	}
	var app, server int
	var closed time.Time
	for _, e := range c.Edges {
		if e.Application {
			app++
			continue
		}
		server++
		if e.Lock == nil || e.Lock.WaitStart == nil {
			t.Fatalf("server edge %s → %s without a wait start", e.Waiter, e.Holder)
		}
		if e.Lock.WaitStart.After(closed) {
			closed = *e.Lock.WaitStart
		}
	}
	if app != 2 || server != 2 {
		t.Fatalf("%d application and %d server edges, want 2 and 2", app, server)
	}
	// Reported within two poll intervals of the last wait beginning (the
	// server's own clock against the snapshot's: one machine).
	if late := hit.Snapshot.Taken.Sub(closed); late > 2*coupledPoll {
		t.Errorf("distributed deadlock reported %s after it closed; want within %s", late, 2*coupledPoll)
	}
	for _, ev := range events {
		if ev.Kind == sim.Error {
			t.Errorf("%s: error %s before lockstep reported the cycle", ev.Session, ev.Err.SQLState)
		}
	}
	// Each server, seen alone, has no cycle: each database's edges are one wait.
	for _, label := range []string{"A", "B"} {
		n := 0
		for _, e := range hit.Snapshot.Graph.Edges {
			if !e.Application && strings.HasSuffix(e.Waiter, "@"+label) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("database %s: %d server edges, want 1", label, n)
		}
	}
	// The application cannot use T1's other connection while T1@A waits.
	if err := eng.Step(1); !errors.Is(err, sim.ErrApplicationBusy) {
		t.Errorf("stepping T1@B while T1@A waits: %v, want ErrApplicationBusy", err)
	}
}

func TestCoupledLockTimeout(t *testing.T) {
	eng, order := newCoupled(t, dbtest.DB(t), "coupled-lock-timeout")
	_, events := playUntil(t, eng, order, nil)
	var timeouts []string
	var cycle *locks.Cycle
	for _, ev := range events {
		if ev.Kind == sim.Error && ev.Err.SQLState == "55P03" {
			timeouts = append(timeouts, ev.Session)
			// T1@A's UPDATE ran in its transaction block, which the
			// error aborted: the explanation must not offer to retry the
			// statement alone.
			if ev.Failure == nil || !ev.Failure.TxAborted {
				t.Errorf("T1@A's 55P03: failure %+v, want its transaction aborted", ev.Failure)
			}
		}
		if ev.Kind == sim.DeadlockFormed {
			cycle = ev.Cycle
		}
	}
	if len(timeouts) != 1 || timeouts[0] != "T1@A" {
		t.Fatalf("lock timeouts in %v, want T1@A once", timeouts)
	}
	if cycle == nil || !cycle.Distributed || cycle.BreakAt == nil || cycle.LikelyVictim != "T1@A" || cycle.LockTimeout != time.Second {
		t.Fatalf("cycle %+v: want a distributed one that T1@A's 1s lock_timeout breaks", cycle)
	}
	b := balances(t, eng)
	if !sim.InSync(b) || b["A"][0].Balance.StringFixed(2) != "90.00" {
		t.Fatalf("balances %v: want T2's transfer alone, in both", b)
	}
}

// twoPhaseServer is the server for two-phase tests; where the binary's own
// has max_prepared_transactions = 0, the engine must refuse in plain words.
func twoPhaseServer(t *testing.T, name string) *db.Database {
	t.Helper()
	ctx := context.Background()
	first := dbtest.DB(t)
	ok, err := dbtest.AllowsPrepared(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		sc, _ := scenario.LoadBuiltin(name, "")
		a := dbtest.Schema(t)
		b := dbtest.Second(t, a, nil)
		_, err := sim.New(ctx, sim.Config{DB: a, DB2: b, Ledger: dbtest.Ledger(t), Scenario: sc, Sessions: len(sc.Sessions), Setup: ledger.DefaultSetup()})
		if !errors.Is(err, sim.ErrNoPreparedTransactions) || !strings.Contains(err.Error(), "set max_prepared_transactions above 0") {
			t.Fatalf("two-phase commit on a server without it: %v", err)
		}
	}
	return dbtest.TwoPhase(t)
}

func TestCoupledTwoPhaseCommit(t *testing.T) {
	eng, order := newCoupled(t, twoPhaseServer(t, "coupled-2pc"), "coupled-2pc")
	var sawPrepared bool
	_, events := playUntil(t, eng, order, func(ev sim.Event) bool {
		if ev.Kind == sim.WaitingForLock && ev.Session == "T2@A" {
			// T2 waits for T1's prepared transaction, whose locks have no backend.
			b, ok := ev.Waits[0], len(ev.Waits) == 1
			sawPrepared = ok && b.Holder == "prepared T1@A" && b.HolderPid == 0
		}
		return false
	})
	if !sawPrepared {
		t.Error("T2@A was not reported waiting for prepared T1@A")
	}
	for _, ev := range events {
		if ev.Kind == sim.Error {
			t.Errorf("%s: %s", ev.Session, ev.Err.Message)
		}
	}
	if b := balances(t, eng); !sim.InSync(b) || b["B"][0].Balance.StringFixed(2) != "80.00" {
		t.Fatalf("balances %v: want both transfers in both databases", b)
	}
	if list, err := eng.Prepared(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("prepared after the run: %v (%v)", list, err)
	}
}

func TestInterruptedTwoPhaseCommit(t *testing.T) {
	for _, commit := range []bool{true, false} {
		eng, order := newCoupled(t, twoPhaseServer(t, "coupled-2pc-interrupted"), "coupled-2pc-interrupted")
		hit, _ := playUntil(t, eng, order, func(ev sim.Event) bool {
			return ev.Kind == sim.WaitingForLock && ev.Session == "T2@B"
		})
		if hit == nil || len(hit.BlockedBy) != 1 || hit.BlockedBy[0] != "prepared T1@B" {
			t.Fatalf("T2@B's wait: %+v", hit)
		}
		ctx := context.Background()
		list, err := eng.Prepared(ctx)
		if err != nil || len(list) != 1 || list[0].Database != "B" || !strings.HasSuffix(list[0].GID, "/T1@B") {
			t.Fatalf("prepared transactions: %+v (%v)", list, err)
		}
		// Its locks are in the next snapshot, held with no backend.
		polled := next(t, eng, func(ev sim.Event) bool { return ev.Kind == sim.Polled })
		var held int
		for _, l := range polled.Snapshot.Locks {
			if l.Session == "prepared T1@B" && l.Pid == 0 && l.Granted && l.Database == "B" {
				held++
			}
		}
		if held == 0 {
			t.Fatal("the prepared transaction's locks are not in the snapshot")
		}
		if err := eng.ResolvePrepared(ctx, list[0], commit); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, eng, settled("T2@B")); ev.Kind != sim.Completed {
			t.Fatalf("T2@B after the prepared transaction ended: %v", ev.Kind)
		}
		b := balances(t, eng)
		if sim.InSync(b) != commit {
			t.Errorf("resolve commit=%v: balances %v", commit, b)
		}
	}
}

// Two databases joined with postgres_fdw, updated in opposite orders: each
// server sees one lock wait and a statement waiting on its remote part
// (wait event Extension), no cycle. lockstep names the remote backends and
// finds the cycle across both; the run then ends cleanly on both sides.
func TestFDWDistributedDeadlock(t *testing.T) {
	eng, order := newCoupled(t, dbtest.DB(t), "fdw-deadlock")
	hit, _ := playUntil(t, eng, order, func(ev sim.Event) bool {
		return ev.Kind == sim.DeadlockFormed
	})
	if hit == nil {
		t.Fatal("the permutation ended without a cycle")
	}
	c := hit.Cycle
	if !c.Distributed || c.String() != "T1@A → T1@B → T2@B → T2@A → T1@A" {
		t.Fatalf("cycle %s: distributed %v", c, c.Distributed)
	}
	var app, server int
	for _, e := range c.Edges {
		if e.Application {
			app++
		} else {
			server++
		}
	}
	if app != 2 || server != 2 {
		t.Fatalf("%d application and %d server edges, want 2 and 2", app, server)
	}
	// T2@B is postgres_fdw's connection for T2@A, not the application's:
	// it ends with T2@A's transaction.
	for _, e := range c.Edges {
		if e.Waiter == "T2@B" && (!e.RemotePart || strings.Contains(e.Why, "application") || !strings.Contains(e.Why, "remote part (postgres_fdw) of T2@A's transaction")) {
			t.Errorf("T2@B ⇢ T2@A: %q", e.Why)
		}
		if e.Waiter == "T1@B" && strings.Contains(e.Why, "its application is waiting") {
			t.Errorf("T1@B ──▶ T2@B: %q", e.Why)
		}
	}
	// T1@A's statement waits for its remote part: the engine says so.
	var t1 sim.SessionInfo
	for _, s := range eng.Sessions() {
		if s.Name == "T1@A" {
			t1 = s
		}
	}
	if t1.State != sim.Waiting || len(t1.Waits) != 1 || !strings.Contains(t1.Waits[0].Why, "waits for its remote part, T1@B, in B (postgres_fdw)") {
		t.Fatalf("T1@A: %v, waits %+v", t1.State, t1.Waits)
	}
}

// Two databases on one server, one side's control connection ended by the
// server before Close: Close sweeps that side through a new connection only
// after the live control connection has taken a name outside the run — the
// sweep ended it first, and its own turn failed with a broken pipe (a
// lesson's part 2 failed so in CI).
func TestCloseWithOneControlConnectionGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sc, err := scenario.LoadBuiltin("coupled", "")
	if err != nil {
		t.Fatal(err)
	}
	a := dbtest.Schema(t)
	b := dbtest.Second(t, a, nil)
	eng, err := sim.New(ctx, sim.Config{DB: a, DB2: b, Ledger: dbtest.Ledger(t), Scenario: sc, ScenarioName: "coupled",
		Sessions: len(sc.Sessions), Setup: ledger.DefaultSetup(), Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := a.Connect(ctx, db.AppName("test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = $1",
		string(eng.RunID().AppName("controlB"))).Scan(&n); err != nil || n != 1 {
		t.Fatalf("ending B's control connection: %d ended, %v", n, err)
	}
	// Close finds B's gone as it releases the run's claim there.
	if err := eng.Close(db.WithEndTime(ctx)); err != nil {
		t.Errorf("Close: %v", err)
	}
	var left int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", eng.RunID().Like("")).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d backends of the run left after Close (%v)", left, err)
	}
}
