package locks_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/locks"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// fixture is a ledger with n named sessions connected to it and an observer.
type fixture struct {
	d     *db.Database
	run   db.RunID
	conns []*pgx.Conn
	obs   *locks.Observer
	wg    sync.WaitGroup // statements left waiting in the background
}

func newFixture(tb testing.TB, sessions, accounts int, opts ...locks.Option) *fixture {
	tb.Helper()
	ctx := context.Background()
	d := dbtest.Fresh(tb, ledger.Setup{Accounts: accounts, Balance: decimal.RequireFromString("100.00")})
	f := &fixture{d: d, run: db.RunID(fmt.Sprintf("obs%d", time.Now().UnixNano()%1e9))}
	for i := range sessions {
		c, err := d.Connect(ctx, f.run.AppName(fmt.Sprintf("T%d", i+1)))
		if err != nil {
			tb.Fatal(err)
		}
		f.conns = append(f.conns, c)
	}
	oc, err := d.Connect(ctx, f.run.AppName("observer"))
	if err != nil {
		tb.Fatal(err)
	}
	if f.obs, err = locks.NewObserver(ctx, oc, f.run, d.Schema(), opts...); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// pg_terminate_backend ends the sessions, waiting ones included.
		for _, c := range f.conns {
			oc.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(c.PgConn().PID()))
		}
		f.wg.Wait()
		for _, c := range f.conns {
			c.Close(ctx)
		}
		oc.Close(ctx)
	})
	return f
}

func (f *fixture) exec(tb testing.TB, i int, sql string) {
	tb.Helper()
	if _, err := f.conns[i].Exec(context.Background(), sql); err != nil {
		tb.Fatalf("T%d: %s: %v", i+1, sql, err)
	}
}

// block sends sql on session i in the background; it will wait.
func (f *fixture) block(tb testing.TB, i int, sql string) {
	tb.Helper()
	f.wg.Go(func() {
		f.conns[i].Exec(context.Background(), sql) // ends when the cleanup terminates the backend
	})
}

// pollUntil polls until the server reports session waiting (a guard bounds it).
func (f *fixture) pollUntilWaiting(tb testing.TB, session string) *locks.Snapshot {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		snap, err := f.obs.Poll(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if b, ok := snap.Backend(session); ok && b.Waiting() {
			return snap
		}
	}
	tb.Fatalf("%s never waited", session)
	return nil
}

func TestObserverRelationWait(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, 2)
	f.exec(t, 0, "BEGIN")
	f.exec(t, 0, "UPDATE accounts SET balance = balance - 1 WHERE id = 1")
	f.exec(t, 1, "BEGIN")
	f.block(t, 1, "LOCK TABLE accounts IN SHARE MODE")
	snap := f.pollUntilWaiting(t, "T2")
	if len(snap.Graph.Edges) != 1 {
		t.Fatalf("edges: %+v", snap.Graph.Edges)
	}
	e := snap.Graph.Edges[0]
	if e.Waiter != "T2" || e.Holder != "T1" || e.Lock.Target() != "accounts" {
		t.Fatalf("edge %s → %s on %s", e.Waiter, e.Holder, e.Lock.Target())
	}
	want := "T2 wants SHARE on accounts: T1 holds ROW EXCLUSIVE on it"
	if !strings.HasPrefix(e.Why, want) {
		t.Errorf("why = %q, want it to start %q", e.Why, want)
	}
	if e.Conflict == nil || e.Conflict.Row || e.Conflict.Held != int(locks.RowExclusive) || e.Conflict.Wanted != int(locks.Share) {
		t.Errorf("deciding cell %+v", e.Conflict)
	}
	// T1 holds a transactionid lock on its own transaction and a row lock on account 1.
	var ownTx bool
	for _, l := range snap.LocksOf("T1") {
		if l.Type == "transactionid" && l.TxOwner == "T1" && l.Granted {
			ownTx = true
		}
	}
	if !ownTx {
		t.Errorf("T1's transactionid lock not attributed to T1: %+v", snap.LocksOf("T1"))
	}
	rows := snap.RowLocksOf("T1")
	if len(rows) != 1 || rows[0].Account != 1 || rows[0].Mode != locks.ForNoKeyUpdate {
		t.Errorf("T1's row locks: %+v (note %q)", rows, snap.RowLockNote)
	}
	if len(snap.Graph.Cycles) != 0 {
		t.Errorf("cycles: %v", snap.Graph.Cycles)
	}
}

func TestObserverAdvisoryKeysNameAccounts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, 3)
	key := fmt.Sprintf("SELECT pg_advisory_xact_lock(hashtext('%s'), 3)", f.d.Schema())
	f.exec(t, 0, "BEGIN")
	f.exec(t, 0, key)
	f.exec(t, 1, "BEGIN")
	f.block(t, 1, key)
	snap := f.pollUntilWaiting(t, "T2")
	e := snap.Graph.Edges[0]
	if e.Lock.Type != "advisory" || e.Lock.Account != 3 || e.Lock.Target() != "advisory key → account 3" {
		t.Fatalf("advisory lock %+v, target %q", e.Lock, e.Lock.Target())
	}
	if !strings.Contains(e.Why, "T1 holds it") {
		t.Errorf("why = %q", e.Why)
	}
}

func TestObserverFindsThreeWayCycleAndTuple(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 4, 3)
	for i := range 3 {
		f.exec(t, i, "BEGIN")
		f.exec(t, i, fmt.Sprintf("UPDATE accounts SET balance = balance + 1 WHERE id = %d", i+1))
	}
	f.exec(t, 3, "BEGIN")
	f.exec(t, 3, "SET deadlock_timeout = '1h'")
	for i := range 3 {
		f.exec(t, i, "SET deadlock_timeout = '1h'") // lockstep must see the cycle before the server breaks it
	}
	f.block(t, 0, "UPDATE accounts SET balance = balance + 1 WHERE id = 2")
	f.pollUntilWaiting(t, "T1")
	f.block(t, 3, "UPDATE accounts SET balance = balance + 1 WHERE id = 2") // queues behind T1 for the row
	f.pollUntilWaiting(t, "T4")
	f.block(t, 1, "UPDATE accounts SET balance = balance + 1 WHERE id = 3")
	f.pollUntilWaiting(t, "T2")
	f.block(t, 2, "UPDATE accounts SET balance = balance + 1 WHERE id = 1")
	snap := f.pollUntilWaiting(t, "T3")
	if len(snap.Graph.Cycles) != 1 || snap.Graph.Cycles[0].String() != "T1 → T2 → T3 → T1" {
		t.Fatalf("cycles: %v", snap.Graph.Cycles)
	}
	c := snap.Graph.Cycles[0]
	if c.BreakAt == nil || c.LikelyVictim == "" {
		t.Errorf("no break prediction on PostgreSQL 14+: %+v", c)
	}
	var tupleEdge bool
	for _, e := range snap.Graph.Edges {
		if e.Waiter == "T4" && e.Holder == "T1" && e.Lock.Type == "tuple" && e.Lock.Account == 2 {
			tupleEdge = true
			if !strings.Contains(e.Why, "queues for accounts id=2") {
				t.Errorf("tuple edge why = %q", e.Why)
			}
		}
	}
	if !tupleEdge {
		t.Errorf("no T4 → T1 tuple edge: %+v", snap.Graph.Edges)
	}
}

// BenchmarkPoll8 is one poll (snapshot plus graph) with 8 sessions each
// holding its transfer's locks.
func BenchmarkPoll8(b *testing.B) {
	f := newFixture(b, 8, 16)
	for i := range 8 {
		f.exec(b, i, "BEGIN")
		f.exec(b, i, fmt.Sprintf("INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (%d, %d, 1)", 2*i+1, 2*i+2))
		f.exec(b, i, fmt.Sprintf("UPDATE accounts SET balance = balance - 1 WHERE id = %d", 2*i+1))
		f.exec(b, i, fmt.Sprintf("UPDATE accounts SET balance = balance + 1 WHERE id = %d", 2*i+2))
	}
	benchPoll(b, f)
}

// BenchmarkPoll64 is one poll with 64 sessions and about 1,000 lock rows,
// eight of the sessions waiting.
func BenchmarkPoll64(b *testing.B) {
	f := newFixture(b, 64, 64)
	for i := range 56 {
		f.exec(b, i, "BEGIN")
		f.exec(b, i, fmt.Sprintf("UPDATE accounts SET balance = balance - 1 WHERE id = %d", i+1))
		for k := range 12 {
			f.exec(b, i, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", i*100+k))
		}
	}
	for i := 56; i < 64; i++ {
		f.exec(b, i, "BEGIN")
		for k := range 12 {
			f.exec(b, i, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", i*100+k))
		}
		f.block(b, i, fmt.Sprintf("UPDATE accounts SET balance = balance + 1 WHERE id = %d", i-55))
		f.pollUntilWaiting(b, fmt.Sprintf("T%d", i+1))
	}
	benchPoll(b, f)
}

func benchPoll(b *testing.B, f *fixture) {
	ctx := context.Background()
	snap, err := f.obs.Poll(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rowsSeen := len(snap.Locks)
	ac, err := f.d.Connect(ctx, f.run.AppName("anchor"))
	if err != nil {
		b.Fatal(err)
	}
	defer ac.Close(ctx)
	anchor := &lockCount{c: ac}
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := f.obs.Poll(ctx); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		anchor.time(b)
	}
	anchor.report(b, took)
	b.ReportMetric(float64(rowsSeen), "lock-rows")
}

// BenchmarkPollLedgerSize is one poll of two sessions holding row locks on
// two accounts, on ledgers of 16, 100,000 and 1,000,000 accounts: the poll
// must not cost more because the table is bigger.
func BenchmarkPollLedgerSize(b *testing.B) {
	for _, n := range []int{16, 100_000, 1_000_000} {
		f := newFixture(b, 2, n)
		f.exec(b, 0, "BEGIN")
		f.exec(b, 0, "SELECT * FROM accounts WHERE id = 1 FOR UPDATE")
		f.exec(b, 1, "BEGIN")
		f.exec(b, 1, "INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (2, 3, 1)")
		// What the engine infers from these statements, for a ledger too big
		// for pgrowlocks.
		f.obs.Infer([]locks.RowLock{{Session: "T1", Account: 1, Mode: locks.ForUpdate, Inferred: true},
			{Session: "T2", Account: 2, Mode: locks.ForKeyShare, Inferred: true}, {Session: "T2", Account: 3, Mode: locks.ForKeyShare, Inferred: true}})
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			var snap *locks.Snapshot
			var err error
			for b.Loop() {
				if snap, err = f.obs.Poll(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			if len(snap.RowLocks) < 3 {
				b.Fatalf("row locks: %+v (%s)", snap.RowLocks, snap.RowLockNote)
			}
			b.ReportMetric(float64(len(snap.RowLocks)), "rowlocks")
			if snap.RowLocks[0].Inferred {
				b.ReportMetric(1, "inferred")
			}
		})
		f.exec(b, 0, "ROLLBACK")
		f.exec(b, 1, "ROLLBACK")
	}
}

// On a scenario's own table, the row locks nobody waits for yet are read
// too (SKIP LOCKED's: the Locks pane and a NOWAIT's explanation name them),
// and a multixact member whose transaction has ended is named by the
// session that ran it, marked ended, and is no lock of that session's.
func TestObserverScenarioRowLocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3, 2, locks.WithHeldRowLocks())
	if ok, note := f.obs.RowLocksAvailable(); !ok {
		t.Skipf("no pgrowlocks: %s", note)
	}
	f.exec(t, 0, "CREATE TABLE ls_q (id int PRIMARY KEY, qty int NOT NULL); INSERT INTO ls_q VALUES (1, 0), (2, 0)")
	f.exec(t, 0, "BEGIN")
	f.exec(t, 0, "SELECT id FROM ls_q ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
	f.exec(t, 1, "BEGIN")
	f.exec(t, 1, "SELECT id FROM ls_q ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
	snap, err := f.obs.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"ls_q row (0,1)", "ls_q row (0,2)"} {
		rows := snap.RowLocksOf(fmt.Sprintf("T%d", i+1))
		if len(rows) != 1 || rows[0].Target() != want || rows[0].Mode != locks.ForUpdate {
			t.Errorf("T%d's row locks: %+v, want FOR UPDATE on %s (note %q)", i+1, rows, want, snap.RowLockNote)
		}
	}
	f.exec(t, 0, "ROLLBACK")
	f.exec(t, 1, "ROLLBACK")

	// The multixact: T1 FOR KEY SHARE, T2 FOR SHARE, T3's FOR UPDATE waits.
	f.exec(t, 0, "BEGIN")
	f.exec(t, 0, "SELECT qty FROM ls_q WHERE id = 1 FOR KEY SHARE")
	f.exec(t, 1, "BEGIN")
	f.exec(t, 1, "SELECT qty FROM ls_q WHERE id = 1 FOR SHARE")
	f.exec(t, 2, "BEGIN")
	f.block(t, 2, "SELECT qty FROM ls_q WHERE id = 1 FOR UPDATE")
	f.pollUntilWaiting(t, "T3")
	f.exec(t, 0, "COMMIT")
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err = f.obs.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Graph.Edges) == 1 && snap.Graph.Edges[0].Holder == "T2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("T3 never waited for T2 alone: %+v", snap.Graph.Edges)
		}
	}
	why := snap.Graph.Edges[0].Why
	if !strings.Contains(why, "T1's FOR KEY SHARE (T1's transaction has ended") || strings.Contains(why, "pid 0") {
		t.Errorf("why = %q: want T1's ended member named, no pid 0", why)
	}
	if rows := snap.RowLocksOf("T1"); len(rows) != 0 {
		t.Errorf("T1 committed, yet holds row locks %+v", rows)
	}
}

// A row locked by a subtransaction (after a SAVEPOINT): pgrowlocks gives
// its id no pid, yet it runs; the row lock is the session's, and the wait
// on it is explained by it — not taken for an ended transaction's.
func TestObserverSubtransactionRowLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, 2, locks.WithHeldRowLocks())
	if ok, note := f.obs.RowLocksAvailable(); !ok {
		t.Skipf("no pgrowlocks: %s", note)
	}
	f.exec(t, 0, "CREATE TABLE ls_sp (id int PRIMARY KEY, qty int NOT NULL); INSERT INTO ls_sp VALUES (1, 0), (2, 0)")
	f.exec(t, 0, "BEGIN")
	f.exec(t, 0, "UPDATE ls_sp SET qty = 1 WHERE id = 1")
	f.exec(t, 0, "SAVEPOINT s")
	f.exec(t, 0, "UPDATE ls_sp SET qty = 1 WHERE id = 2")
	f.block(t, 1, "UPDATE ls_sp SET qty = 0 WHERE id = 2")
	snap := f.pollUntilWaiting(t, "T2")
	var sub *locks.RowLock
	for _, r := range snap.RowLocksOf("T1") {
		if r.Target() == "ls_sp row (0,2)" {
			sub = &r
		}
	}
	if sub == nil || sub.Ended || sub.Mode != locks.ForNoKeyUpdate {
		t.Errorf("T1's row locks %+v: want FOR NO KEY UPDATE on ls_sp row (0,2), running", snap.RowLocksOf("T1"))
	}
	if len(snap.Graph.Edges) != 1 || !strings.Contains(snap.Graph.Edges[0].Why, "T1 holds FOR NO KEY UPDATE on ls_sp row (0,2)") {
		t.Errorf("edges %+v", snap.Graph.Edges)
	}
}

// Three transfers' foreign-key checks share FOR KEY SHARE on account 1: the
// row header names a multixact, and T1 (a member) waits for the others, one
// after the other. The explanation says so: "released when T2's transaction
// ends" alone is false, since T1 then waits for T3.
func TestObserverAccountsMultixactNamed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3, 2)
	for i := range 3 {
		f.exec(t, i, "BEGIN")
		f.exec(t, i, "SELECT 1 FROM accounts WHERE id = 1 FOR KEY SHARE")
	}
	if ok, note := f.obs.RowLocksAvailable(); !ok {
		// pgrowlocks comes with PostgreSQL's contrib: required under CI.
		dbtest.Optional(t, ok, "pgrowlocks ("+note+")", "postgresql-contrib")
	}
	f.block(t, 0, "SELECT 1 FROM accounts WHERE id = 1 FOR UPDATE")
	snap := f.pollUntilWaiting(t, "T1")
	var multi int
	for _, r := range snap.RowLocks {
		if r.Account == 1 && r.Multi {
			multi++
		}
	}
	if multi != 3 {
		t.Errorf("account 1's row locks: %+v, want 3 members of a multixact", snap.RowLocks)
	}
	if len(snap.Graph.Edges) != 1 {
		t.Fatalf("edges: %+v", snap.Graph.Edges)
	}
	e := snap.Graph.Edges[0]
	for _, want := range []string{"multixact", "T1's FOR KEY SHARE", "T2's FOR KEY SHARE", "T3's FOR KEY SHARE",
		"T1 waits for each member whose lock conflicts with FOR UPDATE, one after the other (T2, then T3); now for T2"} {
		if !strings.Contains(e.Why, want) {
			t.Errorf("why = %q, want it to say %q", e.Why, want)
		}
	}
}

// The for-no-key-update strategy at three sessions: the foreign-key checks'
// FOR KEY SHARE and T1's FOR NO KEY UPDATE share one multixact, and T2's
// FOR NO KEY UPDATE conflicts with T1's lock alone: it waits for T1 only,
// not "for each in turn", and is released when T1's transaction ends.
func TestObserverAccountsMultixactOnlyConflictingMember(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3, 2)
	for i := range 3 {
		f.exec(t, i, "BEGIN")
		f.exec(t, i, "SELECT 1 FROM accounts WHERE id = 1 FOR KEY SHARE")
	}
	f.exec(t, 0, "SELECT 1 FROM accounts WHERE id = 1 FOR NO KEY UPDATE")
	if ok, note := f.obs.RowLocksAvailable(); !ok {
		dbtest.Optional(t, ok, "pgrowlocks ("+note+")", "postgresql-contrib")
	}
	f.block(t, 1, "SELECT 1 FROM accounts WHERE id = 1 FOR NO KEY UPDATE")
	snap := f.pollUntilWaiting(t, "T2")
	if len(snap.Graph.Edges) != 1 || snap.Graph.Edges[0].Holder != "T1" {
		t.Fatalf("edges: %+v", snap.Graph.Edges)
	}
	e := snap.Graph.Edges[0]
	if strings.Contains(e.Why, "in turn") || strings.Contains(e.Why, "one after the other") {
		t.Errorf("why = %q: T2 waits for T1 alone", e.Why)
	}
	if want := "Released when T1's transaction ends"; !strings.Contains(e.Why, want) {
		t.Errorf("why = %q, want it to say %q", e.Why, want)
	}
}

// The lecture in opposite directions: both transfers' foreign-key checks
// share FOR KEY SHARE on accounts 1 and 2, so neither waiter takes a tuple
// lock (it shares the row's multixact) and pg_locks does not say which row
// it waits for. T2's SELECT … WHERE id = 2 FOR UPDATE waits on row 2, and
// the explanation must name row 2, not the first of T1's rows (it named
// accounts id=1). On a scenario's table, where the statement cannot be
// read for the row, both rows are named and neither singled out.
func TestObserverRowWaitWithoutTupleLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, 2, locks.WithHeldRowLocks())
	if ok, note := f.obs.RowLocksAvailable(); !ok {
		dbtest.Optional(t, ok, "pgrowlocks ("+note+")", "postgresql-contrib")
	}
	for i := range 2 {
		f.exec(t, i, "BEGIN")
		f.exec(t, i, "SELECT 1 FROM accounts WHERE id IN (1, 2) FOR KEY SHARE")
	}
	f.block(t, 1, "SELECT balance FROM accounts WHERE id = 2 FOR UPDATE")
	snap := f.pollUntilWaiting(t, "T2")
	if len(snap.Graph.Edges) != 1 {
		t.Fatalf("edges: %+v", snap.Graph.Edges)
	}
	e := snap.Graph.Edges[0]
	if !strings.Contains(e.Why, "T1 holds FOR KEY SHARE on accounts id=2") || strings.Contains(e.Why, "id=1") {
		t.Errorf("why = %q: want T1's FOR KEY SHARE on accounts id=2 named, and no other row", e.Why)
	}
	if e.HeldRow == nil || e.HeldRow.Account != 2 {
		t.Errorf("held row %+v, want accounts id=2", e.HeldRow)
	}
}

func TestObserverScenarioRowWaitWithoutTupleLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, 2, locks.WithHeldRowLocks())
	if ok, note := f.obs.RowLocksAvailable(); !ok {
		dbtest.Optional(t, ok, "pgrowlocks ("+note+")", "postgresql-contrib")
	}
	f.exec(t, 0, "CREATE TABLE ls_fk (id int PRIMARY KEY, v int NOT NULL); INSERT INTO ls_fk VALUES (1, 0), (2, 0)")
	for i := range 2 {
		f.exec(t, i, "BEGIN")
		f.exec(t, i, "SELECT 1 FROM ls_fk FOR KEY SHARE")
	}
	f.block(t, 0, "SELECT v FROM ls_fk WHERE id = 1 FOR UPDATE")
	snap := f.pollUntilWaiting(t, "T1")
	if len(snap.Graph.Edges) != 1 {
		t.Fatalf("edges: %+v", snap.Graph.Edges)
	}
	e := snap.Graph.Edges[0]
	if !strings.Contains(e.Why, "T2 holds FOR KEY SHARE on ls_fk rows (0,1) and (0,2)") || !strings.Contains(e.Why, "T1 needs one of these rows") {
		t.Errorf("why = %q: want both of T2's rows named, neither singled out", e.Why)
	}
	if e.HeldRow != nil {
		t.Errorf("held row %+v: the row is not known", e.HeldRow)
	}
}

// A row its holder locked twice (its FOR NO KEY UPDATE, then its UPDATE:
// two lockers of one row in pgrowlocks) is one row, named once.
func TestObserverRowWaitOnARowLockedTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, 2, locks.WithHeldRowLocks())
	if ok, note := f.obs.RowLocksAvailable(); !ok {
		dbtest.Optional(t, ok, "pgrowlocks ("+note+")", "postgresql-contrib")
	}
	for i := range 2 {
		f.exec(t, i, "BEGIN")
		f.exec(t, i, "SELECT 1 FROM accounts WHERE id IN (1, 2) FOR KEY SHARE")
	}
	f.exec(t, 1, "SELECT balance FROM accounts WHERE id = 2 FOR NO KEY UPDATE")
	f.exec(t, 1, "UPDATE accounts SET balance = balance + 10 WHERE id = 2")
	f.block(t, 0, "SELECT balance FROM accounts WHERE id = 2 FOR NO KEY UPDATE")
	snap := f.pollUntilWaiting(t, "T1")
	if len(snap.Graph.Edges) != 1 {
		t.Fatalf("edges: %+v", snap.Graph.Edges)
	}
	why := snap.Graph.Edges[0].Why
	if !strings.Contains(why, "T2 holds FOR NO KEY UPDATE on accounts id=2 (") || strings.Contains(why, "one of these rows") {
		t.Errorf("why = %q: want T2's FOR NO KEY UPDATE on accounts id=2 named once", why)
	}
}
