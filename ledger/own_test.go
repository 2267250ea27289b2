package ledger_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
)

// connect opens a connection to d for the test, closed when it ends.
func connect(t *testing.T, d *db.Database) *pgx.Conn {
	t.Helper()
	conn, err := d.Connect(context.Background(), db.AppName("test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func leftovers(t *testing.T, conn *pgx.Conn, schema string, all bool) []string {
	t.Helper()
	list, err := ledger.Leftovers(context.Background(), conn, schema, all, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range list {
		if l.Kind == "schema" {
			out = append(out, l.Name)
		}
	}
	return out
}

// "Mine" is the current role's own, never a role it is a member of: a
// teacher who is a member of the students' roles, or a superuser, finds
// none of their schemas to clean or reset; a student finds only their own.
func TestMineIsTheCurrentRolesOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ann := dbtest.Role(t, "ls_ann")
	bob := dbtest.Role(t, "ls_bob")
	teacher := dbtest.Role(t, "ls_teacher", ann.User(), bob.User())
	for _, d := range []*db.Database{ann, bob} {
		if err := dbtest.Ledger(t).ResetDatabase(ctx, d, ledger.DefaultSetup()); err != nil {
			t.Fatal(err)
		}
	}
	annConn, tConn, admin := connect(t, ann), connect(t, teacher), connect(t, dbtest.DB(t))
	var comment string
	if err := annConn.QueryRow(ctx, "SELECT obj_description($1::regnamespace, 'pg_namespace')", ann.Schema()).Scan(&comment); err != nil ||
		comment != ledger.Mark(ann.User()) || !strings.Contains(comment, `role "`+ann.User()+`"`) {
		t.Fatalf("ann's schema's mark %q (%v), want it to name role %s", comment, err, ann.User())
	}
	if got := leftovers(t, annConn, ann.Schema(), true); !slices.Contains(got, ann.Schema()) || slices.Contains(got, bob.Schema()) {
		t.Errorf("ann's leftovers: %v; want hers, not bob's", got)
	}
	if got := leftovers(t, tConn, teacher.Schema(), true); slices.Contains(got, ann.Schema()) || slices.Contains(got, bob.Schema()) {
		t.Errorf("the teacher's leftovers list the students' schemas: %v", got)
	}
	if got := leftovers(t, admin, dbtest.DB(t).Schema(), true); slices.Contains(got, ann.Schema()) || slices.Contains(got, bob.Schema()) {
		t.Errorf("a superuser's leftovers list the students' schemas: %v", got)
	}
	onAnns, err := teacher.WithSchema(ann.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if err := dbtest.Ledger(t).ResetDatabase(ctx, onAnns, ledger.DefaultSetup()); !errors.Is(err, ledger.ErrSchemaNotYours) ||
		!strings.Contains(err.Error(), "belongs to role "+ann.User()) {
		t.Errorf("the teacher resetting ann's schema: %v", err)
	}
	if err := ledger.DropSchema(ctx, tConn, ann.Schema(), ledger.DropOptions{Made: true, Force: true}); !errors.Is(err, ledger.ErrSchemaNotYours) {
		t.Errorf("the teacher dropping ann's schema: %v", err)
	}

	// A schema an older lockstep marked counts as lockstep's for its
	// owner only; resetting it puts the mark naming the role on it.
	old := ann.Schema() + "_old"
	exec(t, annConn, "CREATE SCHEMA "+old, "COMMENT ON SCHEMA "+old+" IS 'lockstep ledger: created by lockstep, dropped by lockstep reset'")
	if got := leftovers(t, annConn, old, false); !slices.Equal(got, []string{old}) {
		t.Errorf("ann's old-marked schema: listed %v", got)
	}
	if got := leftovers(t, tConn, old, false); len(got) != 0 {
		t.Errorf("ann's old-marked schema, as the teacher: listed %v", got)
	}
	if _, err := dbtest.Ledger(t).Reset(ctx, annConn, old, ledger.DefaultSetup()); err != nil {
		t.Fatal(err)
	}
	if err := annConn.QueryRow(ctx, "SELECT obj_description($1::regnamespace, 'pg_namespace')", old).Scan(&comment); err != nil ||
		comment != ledger.Mark(ann.User()) {
		t.Errorf("after a reset, the old schema's mark: %q (%v)", comment, err)
	}
	// Given away, a schema is lockstep's for nobody: the mark names ann,
	// the owner is bob.
	exec(t, admin, "ALTER SCHEMA "+old+" OWNER TO "+bob.User())
	if got := leftovers(t, connect(t, bob), old, false); len(got) != 0 {
		t.Errorf("a schema marked for ann and owned by bob, as bob: listed %v", got)
	}
	onOld, _ := bob.WithSchema(old)
	if err := dbtest.Ledger(t).ResetDatabase(ctx, onOld, ledger.DefaultSetup()); !errors.Is(err, ledger.ErrUnmarkedSchema) ||
		!strings.Contains(err.Error(), "made by lockstep for role "+ann.User()) {
		t.Errorf("bob resetting a schema marked for ann: %v", err)
	}
}

// One role cannot take another's default schema, lockstep_<role>; and a
// role whose default was taken is not told to use it.
func TestNoSquattingOnAnotherRolesDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ann, bob := dbtest.Role(t, "ls_ann"), dbtest.Role(t, "ls_bob")
	bobOnAnns, err := bob.WithSchema(ann.Schema())
	if err != nil {
		t.Fatal(err)
	}
	err = dbtest.Ledger(t).ResetDatabase(ctx, bobOnAnns, ledger.DefaultSetup())
	if !errors.Is(err, ledger.ErrSchemaNotYours) || !strings.Contains(err.Error(), "is role "+ann.User()+"'s default") ||
		!strings.Contains(err.Error(), bob.Schema()) {
		t.Fatalf("bob creating ann's default schema: %v", err)
	}
	if _, err := ledger.EnsureSchema(ctx, connect(t, bob), ann.Schema()); !errors.Is(err, ledger.ErrSchemaNotYours) {
		t.Fatalf("bob creating ann's default schema for a scenario: %v", err)
	}
	// Taken by hand (or by an older lockstep): ann is told who has it.
	exec(t, connect(t, bob), "CREATE SCHEMA "+ann.Schema())
	err = dbtest.Ledger(t).ResetDatabase(ctx, ann, ledger.DefaultSetup())
	if !errors.Is(err, ledger.ErrSchemaNotYours) || !strings.Contains(err.Error(), "your default, was created by role "+bob.User()) ||
		strings.Contains(err.Error(), "pass --schema "+ann.Schema()) {
		t.Fatalf("ann, her default taken by bob: %v", err)
	}
}

// A reset replaces the ledger's tables and nothing else: a table the user
// added to lockstep's schema stays; a view or a foreign key elsewhere that
// depends on the ledger is named, and the reset refused, unless forced.
func TestResetTouchesOnlyTheLedgersTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Fresh(t, ledger.DefaultSetup())
	conn := connect(t, d)
	s := d.Schema()
	other := s + "_app"
	t.Cleanup(func() { exec(t, connect(t, dbtest.DB(t)), "DROP SCHEMA IF EXISTS "+other+" CASCADE") })
	exec(t, conn,
		"CREATE TABLE "+s+".notes (id int PRIMARY KEY, note text)",
		"INSERT INTO "+s+".notes VALUES (1, 'mine')",
		"CREATE SCHEMA "+other,
		"CREATE VIEW "+other+".rich AS SELECT owner FROM "+s+".accounts WHERE balance > 50",
		"CREATE TABLE "+other+".orders (id int, account bigint REFERENCES "+s+".accounts (id))",
	)
	_, err := dbtest.Ledger(t).Reset(ctx, conn, s, ledger.DefaultSetup())
	var ce *ledger.CasualtiesError
	if !errors.As(err, &ce) || !errors.Is(err, ledger.ErrNotLocksteps) ||
		!slices.Equal(ce.Objects, []string{"constraint orders_account_fkey on table " + other + ".orders", "view " + other + ".rich"}) ||
		!strings.Contains(err.Error(), "--force") {
		t.Fatalf("reset under a view and a foreign key: %v", err)
	}
	var said []string
	forced := dbtest.Ledger(t).Forced(func(s string) { said = append(said, s) })
	if made, err := forced.Reset(ctx, conn, s, ledger.Setup{Accounts: 3, Balance: ten}); err != nil || made {
		t.Fatalf("forced reset: made %v, %v", made, err)
	}
	if len(said) != 1 || !strings.Contains(said[0], "view "+other+".rich") {
		t.Errorf("the forced reset said %q", said)
	}
	var note string
	var views, fks int
	if err := conn.QueryRow(ctx, "SELECT note FROM "+s+".notes").Scan(&note); err != nil || note != "mine" {
		t.Errorf("the user's table in lockstep's schema after the reset: %q, %v", note, err)
	}
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_views WHERE schemaname = $1),
		(SELECT count(*) FROM pg_constraint WHERE conrelid = ($1 || '.orders')::regclass AND contype = 'f')`, other).Scan(&views, &fks); err != nil ||
		views != 0 || fks != 0 {
		t.Errorf("after --force: %d views, %d foreign keys (%v)", views, fks, err)
	}
	if accounts, err := ledger.Accounts(ctx, conn); err != nil || len(accounts) != 3 {
		t.Errorf("the new ledger: %v, %v", accounts, err)
	}
}

// DropSchema drops a schema only when lockstep made it for this role, no
// live run claims it, and nothing lockstep did not make goes with it.
func TestDropSchemaDropsOnlyLockstepsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Fresh(t, ledger.DefaultSetup())
	conn := connect(t, d)
	s := d.Schema()

	unmarked := s + "_u"
	exec(t, conn, "CREATE SCHEMA "+unmarked, "CREATE TABLE "+unmarked+".t (x int)")
	t.Cleanup(func() { exec(t, connect(t, dbtest.DB(t)), "DROP SCHEMA IF EXISTS "+unmarked+" CASCADE") })
	if err := ledger.DropSchema(ctx, conn, unmarked, ledger.DropOptions{Made: true, Force: true}); !errors.Is(err, ledger.ErrUnmarkedSchema) {
		t.Errorf("dropping an unmarked schema: %v", err)
	}

	exec(t, conn, "CREATE TABLE "+s+".notes (x int)")
	err := ledger.DropSchema(ctx, conn, s, ledger.DropOptions{})
	var ce *ledger.CasualtiesError
	if !errors.As(err, &ce) || !slices.Equal(ce.Objects, []string{"table " + s + ".notes"}) {
		t.Fatalf("dropping lockstep's schema holding the user's table: %v", err)
	}
	exec(t, conn, "DROP TABLE "+s+".notes")

	// A live run's claim keeps it.
	run, err := d.Connect(ctx, "lockstep/abcdef/control")
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Claim(ctx, run, s); err != nil {
		t.Fatal(err)
	}
	if err := ledger.DropSchema(ctx, conn, s, ledger.DropOptions{}); !errors.Is(err, ledger.ErrSchemaInUse) ||
		!strings.Contains(err.Error(), "run abcdef") {
		t.Errorf("dropping a claimed schema: %v", err)
	}
	runPid := run.PgConn().PID()
	run.Close(ctx)
	// Its backend lets the claim go as it exits, a moment after the client
	// hung up (a loaded machine showed the next drop refused for it).
	for guard := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var gone bool
		if err := conn.QueryRow(ctx, "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)", runPid).Scan(&gone); err != nil {
			t.Fatal(err)
		}
		if gone {
			break
		}
		if time.Now().After(guard) {
			t.Fatalf("the run's backend %d never exited", runPid)
		}
	}

	// A session holding a lock on it makes the drop give up, in bounded
	// time, naming the session.
	holder := connect(t, d)
	exec(t, holder, "BEGIN", "SELECT FROM "+s+".accounts LIMIT 1")
	start := time.Now()
	err = ledger.DropSchema(ctx, conn, s, ledger.DropOptions{})
	pid := holder.PgConn().PID()
	if !errors.Is(err, ledger.ErrSchemaLocked) || !strings.Contains(err.Error(), "idle in transaction") ||
		!strings.Contains(err.Error(), "pid "+strconv.Itoa(int(pid))) || time.Since(start) > 20*time.Second {
		t.Errorf("dropping a schema another session holds a lock on: %v after %s", err, time.Since(start))
	}
	exec(t, holder, "ROLLBACK")
	if err := ledger.DropSchema(ctx, conn, s, ledger.DropOptions{}); err != nil {
		t.Fatalf("dropping lockstep's own schema: %v", err)
	}
}

// A scenario's tables go only into a schema lockstep made: an existing
// schema it did not make is refused before anything runs.
func TestEnsureSchemaRefusesTheUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Schema(t)
	conn := connect(t, d)
	if made, err := ledger.EnsureSchema(ctx, conn, d.Schema()); err != nil || !made {
		t.Fatalf("a new schema: made %v, %v", made, err)
	}
	if made, err := ledger.EnsureSchema(ctx, conn, d.Schema()); err != nil || made {
		t.Fatalf("lockstep's schema again: made %v, %v", made, err)
	}
	users := d.Schema() + "_mine"
	exec(t, conn, "CREATE SCHEMA "+users)
	t.Cleanup(func() { exec(t, connect(t, dbtest.DB(t)), "DROP SCHEMA IF EXISTS "+users+" CASCADE") })
	if _, err := ledger.EnsureSchema(ctx, conn, users); !errors.Is(err, ledger.ErrUnmarkedSchema) ||
		!strings.Contains(err.Error(), "pass a new --schema, or leave --schema out") {
		t.Fatalf("the user's schema: %v", err)
	}
}

// A lock in the way that no session holds on the schema's tables is
// waited out: a control connection's 50 ms lock_timeout made a reset on a
// busy server fail with "another session holds one" (the stress run's
// coupled-2pc-interrupted, in a moment when autovacuum truncated a
// catalog). Here a session holds the schema itself — a DROP SCHEMA not
// yet committed, ACCESS EXCLUSIVE on the schema, which a CREATE TABLE in
// it must wait for — until the reset has been seen in two waits begun at
// different times (its first try gave up and it tried again), then rolls
// back.
func TestResetWaitsOutALockOffTheSchemasTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Schema(t)
	conn := connect(t, d)
	if _, err := ledger.EnsureSchema(ctx, conn, d.Schema()); err != nil {
		t.Fatal(err)
	}
	holder := connect(t, d)
	exec(t, conn, "SET lock_timeout = '50ms'")
	exec(t, holder, "BEGIN", "DROP SCHEMA "+d.Schema())
	done := make(chan error, 1)
	go func() {
		_, err := dbtest.Ledger(t).Reset(ctx, conn, d.Schema(), ledger.DefaultSetup())
		done <- err
	}()
	pid := conn.PgConn().PID()
	waits := map[time.Time]bool{}
	for guard := time.Now().Add(4 * time.Second); len(waits) < 2 && time.Now().Before(guard); time.Sleep(2 * time.Millisecond) {
		var began *time.Time
		if err := holder.QueryRow(ctx, "SELECT max(waitstart) FROM pg_locks WHERE pid = $1 AND NOT granted", pid).Scan(&began); err != nil {
			t.Fatal(err)
		}
		if began != nil {
			waits[*began] = true
		}
		select {
		case err := <-done:
			t.Fatalf("the reset ended while the schema was locked, after %d waits: %v", len(waits), err)
		default:
		}
	}
	exec(t, holder, "ROLLBACK")
	if len(waits) < 2 {
		t.Fatalf("the reset was seen waiting %d times, not twice", len(waits))
	}
	if err := <-done; err != nil {
		t.Fatalf("the reset failed on a lock that passed: %v", err)
	}
}
