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
	"lockstep/scenario"
	"lockstep/sim"
)

// After a failed setup no teardown block runs, as PostgreSQL's isolation
// tester runs none: the table the setup could not create because the user
// has one of that name — the one the teardown would drop — stays.
func TestNoTeardownAfterAFailedSetup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Schema(t)
	conn, err := d.Connect(ctx, db.AppName("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := ledger.EnsureSchema(ctx, conn, d.Schema()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE "+d.Schema()+".anomaly (note text); INSERT INTO "+d.Schema()+".anomaly VALUES ('mine')"); err != nil {
		t.Fatal(err)
	}
	sc, err := scenario.LoadBuiltin("write-skew", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "write-skew", Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond})
	var be *sim.BlockError
	if !errors.As(err, &be) || be.Block.Teardown || !strings.Contains(err.Error(), `relation "anomaly" already exists`) {
		t.Fatalf("the run on a schema holding the user's anomaly: %v", err)
	}
	var note string
	if err := conn.QueryRow(ctx, "SELECT note FROM "+d.Schema()+".anomaly").Scan(&note); err != nil || note != "mine" {
		t.Fatalf("the user's table after the failed setup: %q, %v", note, err)
	}
}

// A run's claim outlives its control connection: an administrator ending
// it (or the observer's) leaves the other's claim; ending both, the
// observer takes the claim back by itself, and the control connection
// takes it again before anything else when it is next used.
func TestTheClaimComesBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Schema(t)
	eng, err := engineFor(ctx, t, d)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := dbtest.DB(t).Connect(ctx, db.AppName("test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	terminate := func(name string) {
		t.Helper()
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1",
			eng.RunID().AppName(name)); err != nil {
			t.Fatal(err)
		}
	}
	drop := func() error {
		conn, err := d.Connect(ctx, db.AppName("test-drop"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		return ledger.DropSchema(ctx, conn, d.Schema(), ledger.DropOptions{Made: true})
	}
	terminate("control")
	if err := drop(); !errors.Is(err, ledger.ErrSchemaInUse) || !strings.Contains(err.Error(), "run "+string(eng.RunID())) {
		t.Fatalf("dropping the schema of a run whose control connection was ended: %v", err)
	}
	terminate("observer")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.classid = hashtext($1)::oid AND l.objid = 0 AND a.application_name LIKE $2`,
			d.Schema(), eng.RunID().Like("")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not take its claim back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := drop(); !errors.Is(err, ledger.ErrSchemaInUse) {
		t.Fatalf("dropping the schema once the observer came back: %v", err)
	}
	// The run goes on, its ledger whole.
	if _, books, err := eng.Books(ctx); err != nil || !books.OK() {
		t.Fatalf("the run's books: %+v, %v", books, err)
	}
	if made := eng.MadeSchemas(); len(made) != 1 || made[0].Schema() != d.Schema() {
		t.Errorf("MadeSchemas: %v; the run created %s", made, d.Schema())
	}
}

// A session ended from outside while it sits idle in its transaction
// stands as without a connection in every view, not "in transaction"; a
// reset connects it again.
func TestASessionEndedWhileIdleIsSeenGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	eng := newEngine(t, "for-update", sim.Same)
	if ev := step(t, eng, 0); ev.Kind != sim.Completed { // BEGIN
		t.Fatalf("BEGIN: %v", ev.Kind)
	}
	if st := eng.Sessions()[0].State; st != sim.InTransaction {
		t.Fatalf("after BEGIN: %v", st)
	}
	admin, err := dbtest.DB(t).Connect(ctx, db.AppName("test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1, 5000)", eng.Sessions()[0].Pid); err != nil {
		t.Fatal(err)
	}
	ev := next(t, eng, func(ev sim.Event) bool { return ev.Kind == sim.ConnectionLost && ev.Session == "T1" })
	if ev.Step != -1 || ev.State != sim.Failed || !strings.Contains(ev.Cause.Error(), "its backend is gone") {
		t.Errorf("the event: step %d, state %v, cause %v", ev.Step, ev.State, ev.Cause)
	}
	s := eng.Sessions()
	if s[0].State != sim.Failed || s[0].Steppable() || s[1].State != sim.Idle {
		t.Errorf("after the terminate: T1 %v (steppable %v), T2 %v", s[0].State, s[0].Steppable(), s[1].State)
	}
	if err := eng.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if s := eng.Sessions()[0]; s.State != sim.Idle || !s.Steppable() {
		t.Errorf("after a reset: T1 %v, steppable %v", s.State, s.Steppable())
	}
	if ev := step(t, eng, 0); ev.Kind != sim.Completed {
		t.Errorf("T1's BEGIN after the reset: %v", ev.Kind)
	}
}
