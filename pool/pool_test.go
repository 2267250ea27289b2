package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var runSeq atomic.Int64

// twoDatabases is A and B, each with a fresh ledger of the accounts tasks
// need, and a run id no other test uses. When the test ends it checks that
// no backend of the run is left on either database.
func twoDatabases(t *testing.T, tasks int) (a, b *db.Database, runID db.RunID) {
	t.Helper()
	setup := ledger.Setup{Accounts: 2 * tasks, Balance: decimal.RequireFromString("100.00")}
	a = dbtest.Fresh(t, setup)
	b = dbtest.Second(t, a, &setup)
	runID = db.RunID(fmt.Sprintf("t%d-%d", os.Getpid(), runSeq.Add(1)))
	t.Cleanup(func() { noBackendsLeft(t, runID, a, b) })
	return a, b, runID
}

// noBackendsLeft fails the test when pg_stat_activity, seen from each
// database, still lists a backend of run runID.
func noBackendsLeft(t *testing.T, runID db.RunID, dbs ...*db.Database) {
	t.Helper()
	ctx := context.Background()
	for _, d := range dbs {
		conn, err := d.Connect(ctx, db.AppName("test-check"))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
			"lockstep/"+runID+"/%").Scan(&n)
		conn.Close(ctx)
		if err != nil || n != 0 {
			t.Errorf("%s: %d backends of run %s left (err %v)", d.Name(), n, runID, err)
		}
	}
}

// books checks the ledger in d after a run in which completed of tasks
// committed: the books are kept, there is one transfer per committed task,
// and each committed task Ti moved 1.00 from account 2i-1 to 2i.
func books(t *testing.T, d *db.Database, tasks int, committed func(i int) bool) {
	t.Helper()
	ctx := context.Background()
	conn, err := d.Connect(ctx, db.AppName("test-check"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	b, err := ledger.CheckBooks(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if !b.OK() {
		t.Errorf("%s: books not kept: %s", d.Name(), b.Summary())
	}
	accounts, err := ledger.Accounts(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	var moved int64
	for i := range tasks {
		from, to := accounts[2*i], accounts[2*i+1]
		want := decimal.Zero
		if committed(i) {
			want = decimal.RequireFromString("1.00")
			moved++
		}
		if got := from.OpeningBalance.Sub(from.Balance); !got.Equal(want) {
			t.Errorf("%s: account %d gave %s, want %s", d.Name(), from.ID, got, want)
		}
		if got := to.Balance.Sub(to.OpeningBalance); !got.Equal(want) {
			t.Errorf("%s: account %d got %s, want %s", d.Name(), to.ID, got, want)
		}
	}
	var transfers int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM transfers").Scan(&transfers); err != nil {
		t.Fatal(err)
	}
	if transfers != moved {
		t.Errorf("%s: %d transfers, want %d", d.Name(), transfers, moved)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestNoneExhaustsTheSharedPool(t *testing.T) {
	t.Parallel()
	a, b, runID := twoDatabases(t, 4)
	ctx := testContext(t)
	var events []Event
	backends := map[string]int{} // per database, at the moment of exhaustion
	report := func(e Event) {
		events = append(events, e)
		if e.Kind != KindExhausted {
			return
		}
		// The run is stuck until Run cancels it, after this report: count
		// the pool's backends on each database.
		for _, d := range []*db.Database{a, b} {
			conn, err := d.Connect(ctx, db.AppName("test-check"))
			if err != nil {
				t.Error(err)
				return
			}
			var n int
			err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = $1 AND datname = $2 AND state = 'idle in transaction'`,
				AppName(runID), d.Name()).Scan(&n)
			conn.Close(ctx)
			if err != nil {
				t.Error(err)
			}
			backends[d.Name()] = n
		}
	}
	res, err := Run(ctx, Config{A: a, B: b, Size: 4, Fix: None, RunID: runID}, report)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exhausted || res.Completed != 0 || res.RolledBack != 4 {
		t.Fatalf("result %+v, want exhausted with 4 tasks rolled back", res)
	}

	var ex *Event
	for i := range events {
		if events[i].Kind == KindExhausted {
			if ex != nil {
				t.Fatal("exhaustion reported twice")
			}
			ex = &events[i]
		}
	}
	if ex == nil {
		t.Fatal("no exhausted event")
	}
	if len(ex.Pools) != 1 {
		t.Fatalf("exhausted event has %d pools, want the shared one", len(ex.Pools))
	}
	p := ex.Pools[0]
	if p.Label != "shared" || p.InUse != 4 || p.Idle != 0 || p.Max != 4 || p.Constructing != 0 || p.Waiting != 4 {
		t.Errorf("pool at exhaustion: %+v", p)
	}
	for _, s := range ex.Tasks {
		if s.Phase != PhaseWaitB || !s.HoldsA || s.HoldsB {
			t.Errorf("at exhaustion %s", s)
		}
	}
	want := "pool shared: 4/4 in use, 0 idle, 4 waiting acquirers — exhausted: every task holds a connection for A and waits for one for B; no connection will ever come free"
	if got := ex.String(); got != want {
		t.Errorf("exhausted event:\n got %s\nwant %s", got, want)
	}
	// One pool, four connections, all to A: B never got a connection.
	if backends[a.Name()] != 4 || backends[b.Name()] != 0 {
		t.Errorf("backends at exhaustion: %v, want 4 in %s in a transaction and none in %s", backends, a.Name(), b.Name())
	}

	// Once lockstep has cancelled the waiting acquires, none waits: the
	// rollbacks reported one by one must not count the tasks still to
	// report as waiting acquirers beside the idle connections they leave.
	after := false
	for _, e := range events {
		if e.Kind == KindExhausted {
			after = true
			continue
		}
		for _, p := range e.Pools {
			if after && p.Waiting != 0 {
				t.Errorf("after the acquires were cancelled: %s", e)
			}
		}
	}

	last := events[len(events)-1]
	if last.Kind != KindFinished {
		t.Errorf("last event is %s, want finished", last.Kind)
	}
	f := res.Final[0]
	if f.InUse != 0 || f.CanceledAcquireCount != 4 || f.AcquireCount != 4 {
		t.Errorf("final pool: %+v, want nothing in use, 4 acquires and 4 cancelled", f)
	}
	none := func(int) bool { return false }
	books(t, a, 4, none)
	books(t, b, 4, none)
}

func TestNoneWithMoreTasksThanConnections(t *testing.T) {
	t.Parallel()
	a, b, runID := twoDatabases(t, 5)
	var ex Event
	res, err := Run(testContext(t), Config{A: a, B: b, Size: 3, Tasks: 5, Fix: None, RunID: runID}, func(e Event) {
		if e.Kind == KindExhausted {
			ex = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exhausted || res.Completed != 0 || res.RolledBack != 5 {
		t.Fatalf("result %+v, want exhausted with 5 tasks rolled back", res)
	}
	if p := ex.Pools[0]; p.InUse != 3 || p.Idle != 0 || p.Waiting != 5 {
		t.Errorf("pool at exhaustion: %+v", p)
	}
	if !strings.Contains(ex.String(), "3 tasks hold a connection for A and wait for one for B, 2 more wait for their first") {
		t.Errorf("exhausted event: %s", ex)
	}
}

func TestFixesComplete(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fix         Fix
		size, tasks int
		pools       []string
	}{
		{UpFront, 4, 0, []string{"shared"}},
		{PerDatabase, 4, 0, []string{"A", "B"}},
		{Semaphore, 4, 0, []string{"shared"}},
		{UpFront, 3, 7, []string{"shared"}},
		{PerDatabase, 3, 7, []string{"A", "B"}},
		{Semaphore, 3, 7, []string{"shared"}},
		{UpFront, 2, 3, []string{"shared"}},
		{Semaphore, 2, 3, []string{"shared"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/size%d/tasks%d", c.fix, c.size, c.tasks), func(t *testing.T) {
			t.Parallel()
			cfg := Config{Size: c.size, Tasks: c.tasks, Fix: c.fix}
			n := cfg.TaskCount()
			a, b, runID := twoDatabases(t, n)
			cfg.A, cfg.B, cfg.RunID = a, b, runID
			var events []Event
			res, err := Run(testContext(t), cfg, func(e Event) { events = append(events, e) })
			if err != nil {
				t.Fatal(err)
			}
			if res.Exhausted || res.Completed != n || res.RolledBack != 0 {
				t.Fatalf("result %+v, want all %d tasks committed", res, n)
			}
			if len(res.Final) != len(c.pools) {
				t.Fatalf("final pools %+v, want %v", res.Final, c.pools)
			}
			for i, p := range res.Final {
				if p.Label != c.pools[i] || p.InUse != 0 || p.Max != int32(c.size) || p.Total > p.Max {
					t.Errorf("final pool %+v", p)
				}
			}
			for _, e := range events {
				if e.Kind == KindExhausted || e.Kind == KindTaskError {
					t.Errorf("unexpected event: %s", e)
				}
				for _, p := range e.Pools {
					if p.Total > p.Max {
						t.Errorf("pool over its size: %s", e)
					}
				}
				if c.fix == Semaphore {
					holding := 0
					for _, s := range e.Tasks {
						if s.HoldsA || s.HoldsB {
							holding++
						}
					}
					if holding > c.size-1 {
						t.Errorf("%d tasks hold connections with %d permits: %s", holding, c.size-1, e)
					}
				}
			}
			all := func(int) bool { return true }
			books(t, a, n, all)
			books(t, b, n, all)
		})
	}
}

// TestSharedPoolServesBothDatabases checks the mechanism the shared pool
// rests on: the acquirer's context chooses the database of a new
// connection, and an idle connection to the other database is replaced,
// never handed out.
func TestSharedPoolServesBothDatabases(t *testing.T) {
	t.Parallel()
	a, b, runID := twoDatabases(t, 1)
	ctx := testContext(t)
	p, err := newConnPool(ctx, "shared", 2, [2]*db.Database{a, b}, AppName(runID))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.pool.Close()
		if err := a.EndBackends(ctx, AppName(runID)); err != nil {
			t.Error(err)
		}
	}()
	database := func(tg target) string {
		t.Helper()
		c, err := p.acquire(ctx, tg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		var name, app string
		if err := c.QueryRow(ctx, "SELECT current_database(), current_setting('application_name')").Scan(&name, &app); err != nil {
			t.Fatal(err)
		}
		if app != AppName(runID) {
			t.Errorf("application_name %q, want %q", app, AppName(runID))
		}
		return name
	}
	cA, err := p.acquire(ctx, targetA)
	if err != nil {
		t.Fatal(err)
	}
	if got := database(targetB); got != b.Name() {
		t.Errorf("a connection for B is in %s, want %s", got, b.Name())
	}
	cA.Release()
	// Both idle now, B's on top of the idle stack: an acquire for A must
	// skip it or replace it, never use it.
	for range 3 {
		if got := database(targetA); got != a.Name() {
			t.Errorf("a connection for A is in %s, want %s", got, a.Name())
		}
		if got := database(targetB); got != b.Name() {
			t.Errorf("a connection for B is in %s, want %s", got, b.Name())
		}
	}
	if s := p.state(0); s.Total > 2 || s.NewConns < 3 {
		t.Errorf("pool %+v: want at most 2 connections, and the idle one to the other database replaced", s)
	}
}

func TestCallerCancelEndsTheRun(t *testing.T) {
	t.Parallel()
	a, b, runID := twoDatabases(t, 4)
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	res, err := Run(ctx, Config{A: a, B: b, Size: 4, Fix: UpFront, RunID: runID}, func(e Event) {
		// The first task at the barrier waits there for the second, so no
		// task can have committed yet.
		if e.Kind == KindPhase {
			if s, _ := e.State(e.Task); s.Phase == PhaseBarrier {
				cancel()
			}
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if res.Exhausted || res.Completed != 0 || res.RolledBack != 4 {
		t.Errorf("result %+v, want 4 tasks rolled back", res)
	}
	none := func(int) bool { return false }
	books(t, a, 4, none)
	books(t, b, 4, none)
}

func TestTaskFailureEndsTheRun(t *testing.T) {
	t.Parallel()
	a, b, runID := twoDatabases(t, 3)
	ctx := testContext(t)
	conn, err := b.Connect(ctx, db.AppName("test-break"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "ALTER TABLE entries RENAME TO entries_gone")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Config{A: a, B: b, Size: 3, Fix: PerDatabase, RunID: runID}, nil)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" || !strings.Contains(err.Error(), "writing in B: inserting the entries") {
		t.Fatalf("Run: %v, want undefined table 42P01 writing in B", err)
	}
	if res.Completed != 0 {
		t.Errorf("result %+v, want nothing committed", res)
	}
	failed := 0
	for _, s := range res.Tasks {
		switch s.Phase {
		case PhaseFailed:
			failed++
		case PhaseRolledBack:
		default:
			t.Errorf("task ended %s", s)
		}
	}
	if failed == 0 {
		t.Errorf("no task failed: %+v", res.Tasks)
	}
	books(t, a, 3, func(int) bool { return false })
}

func TestTooFewAccounts(t *testing.T) {
	t.Parallel()
	a, b, runID := twoDatabases(t, 2)
	_, err := Run(testContext(t), Config{A: a, B: b, Size: 4, Fix: None, RunID: runID}, nil)
	if err == nil || !strings.Contains(err.Error(), "reset with --accounts 8") {
		t.Fatalf("Run: %v, want a request for 8 accounts", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	a := dbtest.DB(t)
	b, err := a.WithSchema("lockstep_other")
	if err != nil {
		t.Fatal(err)
	}
	second := func() *db.Database {
		d, err := db.OpenSecond(testContext(t), a, "")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}()
	ok := Config{A: a, B: second, Size: 4}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no A", func(c *Config) { c.A = nil }, "database A is missing"},
		{"no B", func(c *Config) { c.B = nil }, "database B is missing"},
		{"same database", func(c *Config) { c.B = b }, "A and B are the same database"},
		{"size 1", func(c *Config) { c.Size = 1 }, "pool size 1: at least 2"},
		{"size 0", func(c *Config) { c.Size = 0 }, "pool size 0: at least 2"},
		{"size too large", func(c *Config) { c.Size = MaxSize + 1 }, "at most"},
		{"negative tasks", func(c *Config) { c.Tasks = -1 }, "cannot be negative"},
		{"too many tasks", func(c *Config) { c.Tasks = MaxSize + 1 }, "at most"},
		{"unknown fix", func(c *Config) { c.Fix = 9 }, "unknown pool fix"},
		{"run id", func(c *Config) { c.RunID = "a/b%" }, "run id"},
	}
	for _, c := range cases {
		cfg := ok
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", c.name, err, c.want)
		}
		if _, runErr := Run(testContext(t), cfg, nil); runErr == nil || runErr.Error() != err.Error() {
			t.Errorf("%s: Run: %v, want the Validate error", c.name, runErr)
		}
	}
}

func TestParseFix(t *testing.T) {
	t.Parallel()
	for _, f := range Fixes() {
		got, err := ParseFix(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFix(%q) = %v, %v", f.String(), got, err)
		}
		if f.Summary() == "" || strings.Contains(f.Summary(), "\n") {
			t.Errorf("%s: summary %q", f, f.Summary())
		}
	}
	_, err := ParseFix("retry")
	if err == nil || !strings.Contains(err.Error(), "none, up-front, pool-per-database, semaphore") {
		t.Errorf("ParseFix(retry): %v", err)
	}
}

func TestExhausted(t *testing.T) {
	t.Parallel()
	shared := [][2]bool{{true, true}}
	perDB := [][2]bool{{true, false}, {false, true}}
	full := PoolState{InUse: 4, Max: 4}
	holdAWaitB := TaskState{Phase: PhaseWaitB, HoldsA: true}
	four := func(last TaskState) []TaskState { return []TaskState{holdAWaitB, holdAWaitB, holdAWaitB, last} }
	cases := []struct {
		name   string
		serves [][2]bool
		pools  []PoolState
		tasks  []TaskState
		want   bool
	}{
		{"every task holds A and waits for B", shared, []PoolState{full}, four(holdAWaitB), true},
		{"one task still at the barrier", shared, []PoolState{full}, four(TaskState{Phase: PhaseBarrier, HoldsA: true}), false},
		{"a connection is idle", shared, []PoolState{{InUse: 3, Idle: 1, Max: 4}}, four(holdAWaitB), false},
		{"a connection is being made", shared, []PoolState{{InUse: 3, Constructing: 1, Max: 4}}, four(holdAWaitB), false},
		{"a connection in use that no task holds (being destroyed)", shared, []PoolState{full},
			four(TaskState{Phase: PhaseWaitB}), false},
		{"a finished task does not count", shared, []PoolState{full},
			append(four(holdAWaitB), TaskState{Phase: PhaseCommitted}), true},
		{"every task done", shared, []PoolState{{Max: 4}}, []TaskState{{Phase: PhaseCommitted}}, false},
		{"per database: B's pool has room", perDB, []PoolState{full, {Max: 4}}, four(holdAWaitB), false},
		{"waiting for a permit is not waiting for a connection", shared, []PoolState{full}, four(TaskState{Phase: PhaseWaitPermit}), false},
	}
	for _, c := range cases {
		if got := exhausted(c.serves, c.pools, c.tasks); got != c.want {
			t.Errorf("%s: exhausted = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestEventString(t *testing.T) {
	t.Parallel()
	pools := []PoolState{{Label: "shared", InUse: 3, Max: 4, Waiting: 1}}
	tasks := []TaskState{
		{Name: "T1", Phase: PhaseWriteB, HoldsA: true, HoldsB: true},
		{Name: "T3", Phase: PhaseWaitB, HoldsA: true},
	}
	cases := []struct {
		e    Event
		want string
	}{
		{Event{Kind: KindPhase, Task: "T3", Pools: pools, Tasks: tasks},
			"T3: holds A, waiting for a connection for B · pool shared: 3/4 in use, 0 idle, 1 waiting acquirer"},
		{Event{Kind: KindPhase, Task: "T1", Pools: pools, Tasks: tasks},
			"T1: holds A and B, writing in B · pool shared: 3/4 in use, 0 idle, 1 waiting acquirer"},
		{Event{Kind: KindTaskError, Task: "T2", Pools: pools, Tasks: []TaskState{{Name: "T2", Phase: PhaseFailed, Err: errors.New("boom")}}},
			"T2: failed: boom · pool shared: 3/4 in use, 0 idle, 1 waiting acquirer"},
		{Event{Kind: KindFinished, Pools: []PoolState{{Label: "A", Max: 4, AcquireCount: 4, EmptyAcquireCount: 1, NewConns: 4}},
			Tasks: []TaskState{{Phase: PhaseCommitted}, {Phase: PhaseRolledBack}}},
			"finished: 1 of 2 tasks committed · pool A: 4 acquires (1 had to wait), 0 cancelled, 4 connections opened"},
	}
	for _, c := range cases {
		if got := c.e.String(); got != c.want {
			t.Errorf("%s event:\n got %s\nwant %s", c.e.Kind, got, c.want)
		}
	}
}
