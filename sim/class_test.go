package sim_test

import (
	"context"
	"errors"
	"net/url"
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

// student creates a role that may only connect to the test database and
// create schemas in it, as a school server gives each student, and opens
// the database as that role with the default schema.
func student(t *testing.T, name string) *db.Database {
	t.Helper()
	return studentOn(t, name, "")
}

// studentOn is student on database dbname of the test server ("" the test
// database), which the role may connect to and create schemas in.
func studentOn(t *testing.T, name, dbname string) *db.Database {
	t.Helper()
	ctx := context.Background()
	admin := dbtest.DB(t)
	if dbname == "" {
		dbname = admin.Name()
	}
	conn, err := admin.Connect(ctx, db.AppName("test-roles"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	role := name + "_" + strings.ToLower(string(db.NewRunID()))
	for _, sql := range []string{
		"CREATE ROLE " + role + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE",
		"GRANT CONNECT, CREATE ON DATABASE " + dbname + " TO " + role,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		conn, err := admin.Connect(ctx, db.AppName("test-roles"))
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		for _, sql := range []string{"DROP OWNED BY " + role + " CASCADE", "DROP ROLE " + role} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Error(err)
			}
		}
	})
	u, err := url.Parse(dbtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	u.Path = "/" + dbname
	d, err := db.Open(ctx, db.Options{DSN: u.String()})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func engineFor(ctx context.Context, t *testing.T, d *db.Database) (*sim.Engine, error) {
	t.Helper()
	s, err := ledger.Lookup("for-update")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := sim.New(ctx, sim.Config{DB: d, Ledger: dbtest.Ledger(t), Strategy: s, Sessions: 2,
		Setup: ledger.DefaultSetup(), Poll: 50 * time.Millisecond})
	if err == nil {
		t.Cleanup(func() { eng.Close(ctx) })
	}
	return eng, err
}

// A class on one server: each student's runs go to a schema of their own by
// default; a second run on a live run's schema is refused, naming the run;
// another student's schema is refused, naming its owner.
func TestAClassSharesOneServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ann, bob := student(t, "ls_ann"), student(t, "ls_bob")
	if !strings.HasPrefix(ann.Schema(), "lockstep_ls_ann_") || ann.Schema() == bob.Schema() {
		t.Fatalf("default schemas %q and %q", ann.Schema(), bob.Schema())
	}
	first, err := engineFor(ctx, t, ann)
	if err != nil {
		t.Fatalf("ann's run, a role with CONNECT and CREATE only: %v", err)
	}
	if _, err := engineFor(ctx, t, bob); err != nil {
		t.Fatalf("bob's run beside ann's: %v", err)
	}

	_, err = engineFor(ctx, t, ann)
	if !errors.Is(err, ledger.ErrSchemaInUse) || !strings.Contains(err.Error(), "run "+string(first.RunID())) {
		t.Fatalf("a second run on ann's live schema: %v", err)
	}
	// The first run goes on, its ledger untouched.
	if _, books, err := first.Books(ctx); err != nil || !books.OK() {
		t.Fatalf("ann's first run after the refusal: books %+v, %v", books, err)
	}

	bobOnAnns, err := bob.WithSchema(ann.Schema())
	if err != nil {
		t.Fatal(err)
	}
	_, err = engineFor(ctx, t, bobOnAnns)
	annRole := strings.TrimPrefix(ann.Schema(), "lockstep_")
	if !errors.Is(err, ledger.ErrSchemaNotYours) || !strings.Contains(err.Error(), "belongs to role "+annRole) {
		t.Fatalf("bob on ann's schema: %v", err)
	}

	// Once the first run ends, its schema may be re-created.
	if err := first.Close(db.WithEndTime(ctx)); err != nil {
		t.Fatal(err)
	}
	if _, err := engineFor(ctx, t, ann); err != nil {
		t.Fatalf("ann's run after the first ended: %v", err)
	}
}

// Without pgrowlocks (a fresh database, a role that may not create the
// extension), the lecture's wait is still explained by its row modes —
// FOR KEY SHARE taken by T1's foreign-key check against T2's FOR UPDATE,
// Table 13.3 — known from the statements lockstep sent.
func TestRowModesWithoutPgrowlocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := dbtest.DB(t).Connect(ctx, db.AppName("test-createdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	dbname := "ls_class_" + strings.ToLower(string(db.NewRunID()))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbname); err != nil {
		t.Fatal(err)
	}
	d := studentOn(t, "ls_carol", dbname)
	t.Cleanup(func() { // before the role goes: the role has rights on it
		conn, err := dbtest.DB(t).Connect(ctx, db.AppName("test-createdb"))
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+dbname+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	eng, err := engineFor(ctx, t, d)
	if err != nil {
		t.Fatal(err)
	}
	if ok, note := eng.Observer().RowLocksAvailable(); ok || !strings.Contains(note, "CREATE EXTENSION pgrowlocks;") {
		t.Fatalf("pgrowlocks available %v, note %q", ok, note)
	}
	for range 4 { // BEGIN and the three inserts
		step(t, eng, 0)
		step(t, eng, 1)
	}
	// Both hold FOR KEY SHARE on account 1 (their foreign-key checks): T2's
	// SELECT … FOR UPDATE of it waits for T1.
	ev := step(t, eng, 1)
	if ev.Kind != sim.WaitingForLock || len(ev.Waits) != 1 {
		t.Fatalf("T1: %v, waits %+v", ev.Kind, ev.Waits)
	}
	e := ev.Waits[0]
	if e.HeldRow == nil || !e.HeldRow.Inferred || e.Conflict == nil || !e.Conflict.Row ||
		!strings.Contains(e.Why, "T1 holds FOR KEY SHARE on accounts id=1 (a foreign-key check), which conflicts with FOR UPDATE") {
		t.Fatalf("the wait's explanation: %+v", e)
	}
}

// CREATE INDEX CONCURRENTLY waits on an idle transaction's virtual
// transaction id: the wait is explained as a wait for that transaction to
// end, whatever it holds, with no conflict table deciding it.
func TestCICWaitsOnAVirtualTransaction(t *testing.T) {
	eng := scenarioEngine(t, "cic-waits")
	if ev := step(t, eng, 0); ev.Kind != sim.Completed { // the idle transaction's read
		t.Fatalf("i_read: %v", ev.Kind)
	}
	if err := eng.Step(1); err != nil {
		t.Fatal(err)
	}
	// It waits for every older transaction in the database, one after the
	// other (other tests' too, on a shared server), and at last for T1's.
	ev := next(t, eng, func(ev sim.Event) bool {
		return ev.Kind == sim.WaitingForLock && ev.Session == "T2" && len(ev.Waits) == 1 && ev.Waits[0].Holder == "T1"
	})
	e := ev.Waits[0]
	if e.Lock == nil || e.Lock.Type != "virtualxid" || e.Holder != "T1" || e.Conflict != nil ||
		!strings.Contains(e.Why, "T2 waits for T1's transaction to end, whatever it holds") ||
		!strings.Contains(e.Lock.Target(), "T1's transaction (virtual ") {
		t.Fatalf("the wait: %+v (target %q)", e, e.Lock.Target())
	}
	if ev := step(t, eng, 0); ev.Kind != sim.Completed { // COMMIT
		t.Fatalf("i_end: %v", ev.Kind)
	}
}

// A migration queued behind a long read: a later read waits behind the
// migration's queued request though it conflicts with nothing held. The
// lock's queue shows it: T1 holds, T2 waits for T1, T3 waits behind T2.
func TestDDLQueueSoftBlock(t *testing.T) {
	t.Parallel()
	eng := scenarioEngine(t, "ddl-queue")
	step(t, eng, 0) // the long read
	if ev := step(t, eng, 1); ev.Kind != sim.WaitingForLock || ev.Waits[0].Queued {
		t.Fatalf("the migration: %v %+v", ev.Kind, ev.Waits)
	}
	ev := step(t, eng, 2)
	if ev.Kind != sim.WaitingForLock || len(ev.Waits) != 1 || ev.Waits[0].Holder != "T2" || !ev.Waits[0].Queued {
		t.Fatalf("the read after the migration: %v %+v", ev.Kind, ev.Waits)
	}
	var q *locks.Queue
	for _, qq := range ev.Snapshot.Queues() {
		if strings.HasSuffix(qq.Target, "ls_orders") {
			q = &qq
		}
	}
	if q == nil || len(q.Holders) != 1 || q.Holders[0].Session != "T1" || len(q.Waiters) != 2 ||
		q.Waiters[0].Session != "T2" || q.Waiters[0].Soft || q.Waiters[1].Session != "T3" || !q.Waiters[1].Soft {
		t.Fatalf("the queue on ls_orders: %+v", q)
	}
	if got := q.String(); !strings.Contains(got, "1. T2 ACCESS EXCLUSIVE, waits for T1 · 2. T3 ACCESS SHARE, behind T2's queued request") {
		t.Errorf("queue line: %s", got)
	}
}

// scenarioEngine starts an engine on built-in scenario name, in a schema of
// the test's own, closed when the test ends.
func scenarioEngine(t *testing.T, name string) *sim.Engine {
	t.Helper()
	sc, err := scenario.LoadBuiltin(name, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: dbtest.Schema(t), Scenario: sc, ScenarioName: name, Sessions: len(sc.Sessions),
		Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	return eng
}

// poolerEngine is scenarioEngine with the sessions going through a
// transaction-pooling PgBouncer of lockstep's own.
func poolerEngine(t *testing.T, name string) *sim.Engine {
	t.Helper()
	sc, err := scenario.LoadBuiltin(name, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.FindPgbouncer()
	dbtest.Optional(t, err == nil, "PgBouncer", "pgbouncer")
	ctx := context.Background()
	d := dbtest.Schema(t)
	p, err := db.StartPooler(ctx, d)
	if err != nil {
		t.Fatalf("starting PgBouncer: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	eng, err := sim.New(ctx, sim.Config{DB: d, SessionDB: d.Through(p), Scenario: sc, ScenarioName: name,
		Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	return eng
}

func firstValue(t *testing.T, ev sim.Event) string {
	t.Helper()
	r := ev.LastRows()
	if ev.Kind != sim.Completed || r == nil || len(r.Rows) != 1 {
		t.Fatalf("%s: %v %+v", ev.SQL, ev.Kind, ev.Results)
	}
	return r.Rows[0][0]
}

// Through a transaction-pooling PgBouncer, a session-level advisory lock
// belongs to the server connection: the next client on it gets the lock
// too, and a client on the other connection waits for whoever uses the
// first one now. The fix, pg_advisory_xact_lock in a transaction, keeps
// lock and client together.
func TestPoolerAdvisoryLeak(t *testing.T) {
	eng := poolerEngine(t, "pooler-advisory")
	step(t, eng, 0) // T1: pg_advisory_lock(42), autocommit
	if got := firstValue(t, step(t, eng, 1)); got != "t" {
		t.Fatalf("T2's pg_try_advisory_lock(42) while T1 holds it: %q, want t (the same server connection)", got)
	}
	step(t, eng, 1) // T2 holds the connection in a transaction
	ev := step(t, eng, 2)
	if ev.Kind != sim.WaitingForLock || len(ev.Waits) != 1 || ev.Waits[0].Holder != "T2" {
		t.Fatalf("T3's pg_advisory_lock(42): %v %+v; want a wait for T2's connection", ev.Kind, ev.Waits)
	}
	// The connection took the key twice (T1's and T2's calls): one unlock
	// does not release it, and the words must not say it does.
	if why := ev.Waits[0].Why; !strings.Contains(why, "as many times as it took it") || !strings.Contains(why, "through the pooler") {
		t.Errorf("T3's wait explained as %q", why)
	}
	step(t, eng, 1) // T2: COMMIT
	if got := firstValue(t, step(t, eng, 0)); got != "t" {
		t.Fatalf("T1's unlock: %q", got)
	}
	if err := eng.Step(1); err != nil { // T2's unlock: the connection's second hold
		t.Fatal(err)
	}
	next(t, eng, func(ev sim.Event) bool { return ev.Kind == sim.Completed && ev.Session == "T3" })
}

func TestPoolerAdvisoryXactFix(t *testing.T) {
	eng := poolerEngine(t, "pooler-advisory-xact")
	step(t, eng, 0) // T1: BEGIN; pg_advisory_xact_lock(42)
	if got := firstValue(t, step(t, eng, 1)); got != "f" {
		t.Fatalf("T2's pg_try_advisory_xact_lock(42) while T1 holds it: %q, want f", got)
	}
	step(t, eng, 1) // T2: COMMIT
	ev := step(t, eng, 2)
	if ev.Kind != sim.WaitingForLock || len(ev.Waits) != 1 || ev.Waits[0].Holder != "T1" {
		t.Fatalf("T3: %v %+v; want a wait for T1", ev.Kind, ev.Waits)
	}
	// A transaction-level lock stays with the client in its transaction:
	// no word of a session-level lock left on the connection.
	if why := ev.Waits[0].Why; strings.Contains(why, "session-level lock stays") || !strings.Contains(why, "T1's transaction ends") {
		t.Errorf("T3's wait explained as %q", why)
	}
	step(t, eng, 0) // T1: COMMIT
	next(t, eng, func(ev sim.Event) bool { return ev.Kind == sim.Completed && ev.Session == "T3" })
}
