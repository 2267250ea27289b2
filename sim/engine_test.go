package sim_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// newEngine starts an engine on a schema of the test's own and closes it at
// the end, checking that no backend of the run is left on the server.
func newEngine(t *testing.T, strategy string, dir sim.Direction) *sim.Engine {
	t.Helper()
	s, err := ledger.Lookup(strategy)
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.Schema(t)
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: d, Ledger: dbtest.Ledger(t), Strategy: s, Sessions: 2, Direction: dir,
		Setup: ledger.DefaultSetup(), Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := eng.Close(db.WithEndTime(ctx)); err != nil {
			t.Errorf("Close: %v", err)
		}
		conn, err := d.Connect(ctx, db.AppName("test-check"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
			eng.RunID().Like("")).Scan(&n)
		if err != nil || n != 0 {
			t.Errorf("%d backends of run %s left after Close (err %v)", n, eng.RunID(), err)
		}
	})
	return eng
}

// outcome is what a played run did.
type outcome struct {
	waits, deadlocks, serialization int
	events                          []sim.Event
	books                           ledger.Books
}

func play(t *testing.T, eng *sim.Engine, order []int) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var o outcome
	var last time.Time
	err := eng.Play(ctx, sim.NewScheduler(order), func(ev sim.Event) {
		o.events = append(o.events, ev)
		// Events come in the order they happened (a poll's is when it began).
		if ev.Kind != sim.Polled {
			if ev.Time.Before(last) {
				t.Errorf("%s event of %s at %s, after one at %s", ev.Kind, ev.Session, ev.Time.Format("15:04:05.000000"), last.Format("15:04:05.000000"))
			}
			last = ev.Time
		}
		switch ev.Kind {
		case sim.WaitingForLock:
			o.waits++
		case sim.Error:
			switch ev.Err.SQLState {
			case pgerrcode.DeadlockDetected:
				o.deadlocks++
			case pgerrcode.SerializationFailure:
				o.serialization++
			}
		}
	})
	if err != nil {
		t.Fatalf("Play: %v", err)
	}
	if _, o.books, err = eng.Books(ctx); err != nil && !errors.Is(err, sim.ErrNoLedger) {
		t.Fatal(err)
	}
	return o
}

func TestRoundRobinOutcomes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		strategy          string
		dir               sim.Direction
		minWaits          int
		deadlocks         int // exact
		minSerialization  int
		booksKept         bool
		serializationOnly bool
	}{
		{"for-update", sim.Same, 1, 1, 0, true, false},
		{"for-no-key-update", sim.Same, 1, 0, 0, true, false},
		{"naive", sim.Same, 0, 0, 0, false, false},
		{"atomic", sim.Opposite, 1, 1, 0, true, false},
		{"ordered", sim.Opposite, 1, 0, 0, true, false},
		{"table-lock", sim.Same, 1, 0, 0, true, false},
		{"advisory", sim.Opposite, 1, 0, 0, true, false},
		{"repeatable-read", sim.Same, 0, 0, 1, true, false},
		{"serializable", sim.Same, 0, 0, 1, true, false},
	}
	for _, c := range cases {
		t.Run(c.strategy+"/"+c.dir.String(), func(t *testing.T) {
			t.Parallel()
			o := play(t, newEngine(t, c.strategy, c.dir), nil)
			if o.waits < c.minWaits {
				t.Errorf("%d waits, want at least %d", o.waits, c.minWaits)
			}
			if o.deadlocks != c.deadlocks {
				t.Errorf("%d deadlocks, want %d", o.deadlocks, c.deadlocks)
			}
			if o.serialization < c.minSerialization {
				t.Errorf("%d serialization failures, want at least %d", o.serialization, c.minSerialization)
			}
			if o.books.OK() != c.booksKept {
				t.Errorf("books: %s; want kept=%v", o.books.Summary(), c.booksKept)
			}
			if !c.booksKept && len(o.books.Drift) == 0 {
				t.Errorf("a broken ledger should report the lost update: %s", o.books.Summary())
			}
		})
	}
}

func TestDeadlockVictimAndDetailReported(t *testing.T) {
	t.Parallel()
	o := play(t, newEngine(t, "for-update", sim.Same), nil)
	var formed, victim bool
	for _, ev := range o.events {
		if ev.Kind == sim.DeadlockFormed {
			formed = true
			if got := ev.Cycle.String(); got != "T1 → T2 → T1" {
				t.Errorf("cycle %q", got)
			}
			for _, e := range ev.Cycle.Edges {
				if !strings.Contains(e.Why, "FOR KEY SHARE on accounts id=1") || !strings.Contains(e.Why, "conflicts with FOR UPDATE") {
					t.Errorf("edge %s → %s explained as %q", e.Waiter, e.Holder, e.Why)
				}
			}
		}
		if ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.DeadlockDetected {
			victim = true
			if !formed {
				t.Error("the deadlock error came before lockstep saw the cycle")
			}
			if !strings.Contains(ev.Err.Detail, "waits for ShareLock on transaction") || !strings.Contains(ev.Err.Detail, "blocked by process") {
				t.Errorf("DETAIL = %q", ev.Err.Detail)
			}
		}
	}
	if !formed || !victim {
		t.Fatalf("formed=%v victim=%v", formed, victim)
	}
}

// backlog keeps, per engine, the events next has read but not matched, so a
// later next can find them.
var backlog sync.Map // *sim.Engine → *[]sim.Event

// next returns the first event (in order, including ones read earlier but
// not matched) that satisfies match, failing after a generous guard (against
// a hang, not a timing assertion).
func next(t *testing.T, eng *sim.Engine, match func(sim.Event) bool) sim.Event {
	t.Helper()
	v, _ := backlog.LoadOrStore(eng, &[]sim.Event{})
	kept := v.(*[]sim.Event)
	for i, ev := range *kept {
		if match(ev) {
			*kept = append((*kept)[:i:i], (*kept)[i+1:]...)
			return ev
		}
	}
	guard := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-eng.Events():
			if !ok {
				t.Fatal("events closed")
			}
			if match(ev) {
				return ev
			}
			if ev.Kind != sim.Polled {
				*kept = append(*kept, ev)
			}
		case <-guard:
			t.Fatal("no such event")
		}
	}
}

func settled(name string) func(sim.Event) bool {
	return func(ev sim.Event) bool {
		return ev.Session == name && (ev.Kind == sim.Completed || ev.Kind == sim.Error || ev.Kind == sim.WaitingForLock)
	}
}

func step(t *testing.T, eng *sim.Engine, i int) sim.Event {
	t.Helper()
	if err := eng.Step(i); err != nil {
		t.Fatal(err)
	}
	return next(t, eng, settled(eng.Sessions()[i].Name))
}

func exec(t *testing.T, eng *sim.Engine, i int, sql string) sim.Event {
	t.Helper()
	if err := eng.Exec(i, sql); err != nil {
		t.Fatal(err)
	}
	return next(t, eng, settled(eng.Sessions()[i].Name))
}

// stepTo steps both sessions alternately up to their SELECT … FOR NO KEY UPDATE
// of account 1, which T2 then waits on.
func stepToWait(t *testing.T, eng *sim.Engine) sim.Event {
	t.Helper()
	for range 4 { // BEGIN and the three inserts
		step(t, eng, 0)
		step(t, eng, 1)
	}
	if ev := step(t, eng, 0); ev.Kind != sim.Completed {
		t.Fatalf("T1's SELECT … FOR NO KEY UPDATE: %v", ev.Kind)
	}
	return step(t, eng, 1)
}

func TestWaitReportedBeforeBlockerCommits(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "for-no-key-update", sim.Same)
	ev := stepToWait(t, eng)
	if ev.Kind != sim.WaitingForLock || strings.Join(ev.BlockedBy, ",") != "T1" {
		t.Fatalf("T2's event: %v blocked by %v", ev.Kind, ev.BlockedBy)
	}
	if s := eng.Sessions(); s[0].State != sim.InTransaction || s[1].State != sim.Waiting {
		t.Fatalf("states %v, %v", s[0].State, s[1].State)
	}
	if len(ev.Waits) != 1 || ev.Waits[0].Lock == nil || ev.Waits[0].Lock.Target() != "T1's transaction" {
		t.Fatalf("waits: %+v", ev.Waits)
	}
	if c := ev.Waits[0].Conflict; c == nil || !c.Row {
		t.Fatalf("the deciding cell should be in the row-level table: %+v", c)
	}
	// Now T1 finishes its transfer; T2's wait ends.
	for eng.Sessions()[0].Steppable() {
		step(t, eng, 0)
	}
	done := next(t, eng, settled("T2"))
	if rows := done.LastRows(); done.Kind != sim.Completed || rows == nil || len(rows.Rows) != 1 || rows.Rows[0][0] != "90.00" {
		t.Fatalf("T2 after T1 committed: %v %v", done.Kind, done.Results)
	}
}

func TestCancelWaitingStatement(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "for-no-key-update", sim.Same)
	stepToWait(t, eng)
	if err := eng.Cancel(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ev := next(t, eng, settled("T2"))
	if ev.Kind != sim.Error || ev.Err.SQLState != "57014" {
		t.Fatalf("cancelled statement: %v %+v", ev.Kind, ev.Err)
	}
	next(t, eng, func(ev sim.Event) bool { return ev.Session == "T2" && ev.Auto && ev.Kind == sim.Completed })
	if s := eng.Sessions()[1]; s.State != sim.RolledBack || !s.Finished {
		t.Fatalf("T2 after cancel: %v finished=%v", s.State, s.Finished)
	}
}

func TestTerminatedSessionFailsOthersGoOn(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "ordered", sim.Same)
	step(t, eng, 0)
	step(t, eng, 1)
	if err := eng.Terminate(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// A poll may find T2's backend gone before the step is sent (a loaded
	// machine): the loss is then reported by the poll, and the step refused.
	if err := eng.Step(1); err != nil && !errors.Is(err, sim.ErrFailed) {
		t.Fatal(err)
	}
	ev := next(t, eng, func(ev sim.Event) bool { return ev.Session == "T2" && ev.Kind != sim.Started })
	if ev.Kind != sim.ConnectionLost && ev.Kind != sim.Error {
		t.Fatalf("T2 after pg_terminate_backend: %v", ev.Kind)
	}
	o := play(t, eng, nil)
	if s := eng.Sessions(); s[0].State != sim.Committed || s[1].State != sim.Failed {
		t.Fatalf("states after the run: %v, %v", s[0].State, s[1].State)
	}
	if !o.books.OK() {
		t.Fatalf("books: %s", o.books.Summary())
	}
	// Reset reconnects the failed session.
	if err := eng.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := eng.Sessions()[1]; s.State != sim.Idle || !s.Steppable() {
		t.Fatalf("T2 after reset: %v", s.State)
	}
	if o := play(t, eng, nil); !o.books.OK() {
		t.Fatalf("second run: %s", o.books.Summary())
	}
	// As if the server restarted: every connection of the run is cut.
	// A reset brings the sessions, the control and the observer back.
	ctx := context.Background()
	conn, err := dbtest.DB(t).Connect(ctx, db.AppName("test-killer"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1",
		eng.RunID().Like("")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := eng.Exec(i, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		next(t, eng, func(ev sim.Event) bool { return ev.Index == i && ev.Kind == sim.ConnectionLost })
	}
	if err := eng.Reset(ctx); err != nil {
		t.Fatalf("reset after the connections were cut: %v", err)
	}
	if o := play(t, eng, nil); !o.books.OK() || o.waits < 1 {
		for _, ev := range o.events {
			if ev.Kind != sim.Polled {
				t.Logf("%s %s %q %v", ev.Session, ev.Kind, ev.SQL, ev.Err)
			}
		}
		t.Fatalf("run after recovery: %s, %d waits", o.books.Summary(), o.waits)
	}
}

func TestTypedSQLAndAbortedTransaction(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "for-update", sim.Same)
	exec(t, eng, 0, "BEGIN")
	ev := exec(t, eng, 0, "SELECT balance FROM accounts WHERE id = 1 FOR SHARE")
	if rows := ev.LastRows(); ev.Kind != sim.Completed || rows == nil || rows.Rows[0][0] != "100.00" {
		t.Fatalf("typed SELECT: %v %v", ev.Kind, ev.Results)
	}
	// The observer sees T1's FOR SHARE row lock.
	found := next(t, eng, func(ev sim.Event) bool {
		if ev.Kind != sim.Polled {
			return false
		}
		for _, r := range ev.Snapshot.RowLocksOf("T1") {
			if r.Account == 1 && r.Mode.String() == "FOR SHARE" {
				return true
			}
		}
		return false
	})
	if found.Snapshot.RowLockNote != "" {
		t.Errorf("row lock note: %s", found.Snapshot.RowLockNote)
	}
	if ev := exec(t, eng, 0, "SELECT 1/0"); ev.Kind != sim.Error || ev.Err.SQLState != "22012" {
		t.Fatalf("1/0: %v %+v", ev.Kind, ev.Err)
	}
	if s := eng.Sessions()[0]; s.State != sim.Aborted {
		t.Fatalf("after a typed error: %v", s.State)
	}
	if ev := exec(t, eng, 0, "SELECT 1"); ev.Kind != sim.Error || ev.Err.SQLState != "25P02" {
		t.Fatalf("in an aborted transaction: %v %+v", ev.Kind, ev.Err)
	}
	exec(t, eng, 0, "ROLLBACK")
	if s := eng.Sessions()[0]; s.State != sim.RolledBack {
		t.Fatalf("after ROLLBACK: %v", s.State)
	}
	if err := eng.Step(0); err == nil {
		t.Fatal("stepping a session whose transaction the user ended should fail")
	}
}

func TestSchedulerOrderThenRoundRobin(t *testing.T) {
	t.Parallel()
	order, err := sim.ParseOrder("T2,t2,T1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.ParseOrder("T3", 2); err == nil {
		t.Fatal("T3 accepted for 2 sessions")
	}
	ready := func(n int) []sim.SessionInfo {
		out := make([]sim.SessionInfo, n)
		for i := range out {
			out[i] = sim.SessionInfo{Statements: []string{"a", "b", "c"}}
		}
		return out
	}
	s := sim.NewScheduler(order)
	var got []int
	for range 5 {
		i, _, _ := s.Next(ready(2))
		got = append(got, i)
	}
	if want := []int{1, 1, 0, 1, 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	sessions := ready(2)
	sessions[0].State = sim.Waiting
	if i, _, done := s.Next(sessions); i != 1 || done {
		t.Fatalf("with T1 waiting: %d done=%v", i, done)
	}
	sessions[1].Finished = true
	if i, _, done := s.Next(sessions); i != -1 || done {
		t.Fatalf("with T1 waiting and T2 finished: %d done=%v", i, done)
	}
	sessions[0].State, sessions[0].Finished = sim.Committed, true
	if _, _, done := s.Next(sessions); !done {
		t.Fatal("all finished but not done")
	}
}

// TestScenarioSessions steps a built-in scenario's sessions through its
// permutation: the lecture's foreign-key deadlock, whose session setups
// make t2 the certain victim; closing the engine runs the teardown.
func TestScenarioSessions(t *testing.T) {
	t.Parallel()
	sc, err := scenario.LoadBuiltin("fk-deadlock", "")
	if err != nil {
		t.Fatal(err)
	}
	// The scenario's tables have fixed names: the engine puts them in the
	// run's schema, one of the test's own.
	d := dbtest.Schema(t)
	ctx := context.Background()
	conn, err := d.Connect(ctx, db.AppName("test-setup"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "fk-deadlock", Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s := eng.Sessions(); s[0].Label != "t1" || s[0].State != sim.InTransaction || len(s[0].Statements) != 3 {
		t.Fatalf("after the session setups: %+v", s[0])
	}
	var order []int
	for _, ps := range sc.Permutations[0].Steps {
		for i, ss := range sc.Sessions {
			if ps.Step.Session == ss {
				order = append(order, i)
			}
		}
	}
	o := play(t, eng, order)
	if o.deadlocks != 1 {
		t.Errorf("%d deadlocks", o.deadlocks)
	}
	var victim string
	for _, ev := range o.events {
		if ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.DeadlockDetected {
			victim = ev.Session
		}
	}
	if victim != "T2" {
		t.Errorf("victim %q, want T2 (the shorter deadlock_timeout)", victim)
	}
	// A scenario's failed transaction stays open, aborted: stepping it
	// says so, and not that it was rolled back.
	if st := eng.Sessions()[1].State; st != sim.Aborted {
		t.Errorf("T2 after its deadlock: %v, want aborted", st)
	}
	if err := eng.Step(1); !errors.Is(err, sim.ErrFinished) || !strings.Contains(err.Error(), "failed with 40P01 and its transaction is aborted") {
		t.Errorf("stepping the victim: %v", err)
	}
	if _, _, err := eng.Books(ctx); !errors.Is(err, sim.ErrNoLedger) {
		t.Errorf("Books in a scenario: %v", err)
	}
	if err := eng.Close(db.WithEndTime(ctx)); err != nil {
		t.Fatal(err)
	}
	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", d.Schema()).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("%d tables left after the teardown (%v)", tables, err)
	}
}

func TestTypedNextStatementIsTheStep(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "for-update", sim.Same)
	ev := exec(t, eng, 0, "  begin ; ")
	if ev.Kind != sim.Completed || ev.Step != 0 {
		t.Fatalf("typed BEGIN: %v step %d", ev.Kind, ev.Step)
	}
	if s := eng.Sessions()[0]; s.Next != 1 || s.State != sim.InTransaction {
		t.Fatalf("after typing the script's BEGIN: next %d, %v", s.Next, s.State)
	}
	if ev := exec(t, eng, 0, "SELECT 1"); ev.Step != -1 {
		t.Fatalf("other typed SQL ran as step %d", ev.Step)
	}
	if s := eng.Sessions()[0]; s.Next != 1 {
		t.Fatalf("other typed SQL moved the script to %d", s.Next)
	}
}

// TestSnapshotTakenByTheFirstStep: lockstep's own reads of a session's
// settings must not take the snapshot of a REPEATABLE READ transaction its
// setup began: the first step takes it, after w's commit, and sees it.
func TestSnapshotTakenByTheFirstStep(t *testing.T) {
	t.Parallel()
	sc, err := scenario.Parse("snapshot.spec", []byte(`
setup { CREATE TABLE snap (id int PRIMARY KEY, v int); INSERT INTO snap VALUES (1, 0); }
teardown { DROP TABLE snap; }
session w
step w1 { UPDATE snap SET v = 1 WHERE id = 1; }
session r
setup { BEGIN ISOLATION LEVEL REPEATABLE READ; SET lock_timeout = '5s'; }
step r1 { SELECT v FROM snap WHERE id = 1; }
step r2 { COMMIT; }
permutation w1 r1 r2
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: dbtest.Schema(t), Scenario: sc, ScenarioName: "snapshot", Sessions: 2, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	o := play(t, eng, []int{0, 1, 1})
	for _, ev := range o.events {
		if ev.Kind == sim.Completed && ev.Session == "T2" && ev.Step == 0 {
			if r := ev.LastRows(); r == nil || len(r.Rows) != 1 || r.Rows[0][0] != "1" {
				t.Fatalf("r1 read %+v; want v = 1, committed before its snapshot", r)
			}
			return
		}
	}
	t.Fatalf("r1 never completed: %+v", o.events)
}

// A result set without rows keeps its columns, for every view to print
// (pgconn gives a result's columns only along with its first row); and a
// LISTEN/NOTIFY notification comes with the end of the statement during
// which it arrived.
func TestEmptyResultsAndNotifications(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "for-update", sim.Same)
	ev := exec(t, eng, 0, "SELECT id, balance FROM accounts WHERE false; SELECT 1 AS one WHERE false")
	if ev.Kind != sim.Completed || len(ev.Results) != 2 {
		t.Fatalf("two empty SELECTs: %v %+v", ev.Kind, ev.Results)
	}
	for i, want := range [][]string{{"id", "balance"}, {"one"}} {
		if r := ev.Results[i]; !slices.Equal(r.Columns, want) || r.Rows == nil || len(r.Rows) != 0 {
			t.Errorf("result %d: columns %q, rows %#v; want %q and no rows", i, r.Columns, r.Rows, want)
		}
	}
	exec(t, eng, 1, "LISTEN lockstep_test")
	sent := exec(t, eng, 0, "NOTIFY lockstep_test, 'hello'")
	if len(sent.Notifications) != 0 {
		t.Errorf("the sender, not listening, got %+v", sent.Notifications)
	}
	got := exec(t, eng, 1, "SELECT 1")
	sender := uint32(eng.Sessions()[0].Pid)
	if len(got.Notifications) != 1 || got.Notifications[0] != (sim.Notification{Channel: "lockstep_test", Payload: "hello", Pid: sender}) {
		t.Fatalf("the listener's next statement brought %+v; want hello from pid %d", got.Notifications, sender)
	}
	if again := exec(t, eng, 1, "SELECT 1"); len(again.Notifications) != 0 {
		t.Errorf("a notification came twice: %+v", again.Notifications)
	}
}

// A step after a scripted statement failed says what is true of the
// session: its script stopped there and its aborted transaction is open
// (not "finished its transfer", in a scenario with no transfer); once
// rolled back, its script is simply finished.
func TestStepAfterFailedStatement(t *testing.T) {
	t.Parallel()
	sc, err := scenario.Parse("fails.spec", []byte(`
session a
setup { BEGIN; }
step a1 { SELECT 1/0; }
step a2 { COMMIT; }
session b
step b1 { SELECT 1; }
permutation a1 a2 b1
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: dbtest.Schema(t), Scenario: sc, ScenarioName: "fails", Sessions: 2, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	if ev := step(t, eng, 0); ev.Kind != sim.Error || ev.Err.SQLState != pgerrcode.DivisionByZero {
		t.Fatalf("a1: %v %+v", ev.Kind, ev.Err)
	}
	err = eng.Step(0)
	if !errors.Is(err, sim.ErrScriptStopped) || strings.Contains(err.Error(), "transfer") {
		t.Fatalf("stepping the aborted session: %v", err)
	}
	if s := eng.Sessions()[0]; s.State != sim.Aborted {
		t.Fatalf("after a1 failed: %v, want aborted", s.State)
	}
	if ev := exec(t, eng, 0, "ROLLBACK"); ev.Kind != sim.Completed {
		t.Fatalf("ROLLBACK: %v", ev.Kind)
	}
	if err := eng.Step(0); !errors.Is(err, sim.ErrFinished) || strings.Contains(err.Error(), "transfer") {
		t.Fatalf("stepping the rolled-back session: %v", err)
	}
}

// Stepping a session whose script is over says why: the deadlock's victim
// did not "finish its transfer", its statement failed and it rolled back.
func TestStepAfterScriptOverSaysWhy(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "for-update", sim.Same)
	o := play(t, eng, nil)
	if o.deadlocks != 1 {
		t.Fatalf("%d deadlocks, want 1", o.deadlocks)
	}
	var victim int
	for _, ev := range o.events {
		if ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.DeadlockDetected {
			victim = slices.IndexFunc(eng.Sessions(), func(s sim.SessionInfo) bool { return s.Name == ev.Session })
		}
	}
	for i := range 2 {
		err := eng.Step(i)
		if !errors.Is(err, sim.ErrFinished) {
			t.Fatalf("T%d: Step after the script = %v, want ErrFinished", i+1, err)
		}
		want := "has run all its statements"
		if i == victim {
			want = "statement failed with 40P01 and its transaction was rolled back"
		}
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "finished its transfer") {
			t.Errorf("T%d: Step after the script = %q, want it to say %q", i+1, err, want)
		}
	}
}

// A scenario's statement that fails outside a transaction block does not
// end its session's script: ddl-queue-lock-timeout's migration gets 55P03,
// and its retry, the step after, runs and succeeds — as the scenario's
// outcome says and the isolation tester does. It used to be skipped.
func TestScenarioStepAfterAutocommitFailureRuns(t *testing.T) {
	t.Parallel()
	sc, err := scenario.LoadBuiltin("ddl-queue-lock-timeout", "")
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.Schema(t)
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: "ddl-queue-lock-timeout", Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	var order []int
	for _, ps := range sc.Permutations[0].Steps {
		for i, ss := range sc.Sessions {
			if ps.Step.Session == ss {
				order = append(order, i)
			}
		}
	}
	o := play(t, eng, order)
	var failed, retried bool
	for _, ev := range o.events {
		if ev.Session != "T2" {
			continue
		}
		switch {
		case ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.LockNotAvailable:
			failed = true
		case ev.Kind == sim.Completed && failed && strings.HasPrefix(ev.SQL, "ALTER TABLE"):
			retried = true
		}
	}
	if !failed || !retried {
		t.Fatalf("the migration failed with 55P03: %v; its retry then ran and succeeded: %v", failed, retried)
	}
	if err := eng.Step(1); !errors.Is(err, sim.ErrFinished) || !strings.Contains(err.Error(), "has run all its statements") {
		t.Errorf("stepping the migration after its retry: %v", err)
	}
}

// A COMMIT typed in a session with no transaction open commits nothing (the
// server warns "there is no transaction in progress"): the session is idle,
// not "committed" — after x had rolled T2's transaction back, c said
// "✓ committed".
func TestCommitWithNoTransactionIsIdle(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "for-no-key-update", sim.Same)
	step(t, eng, 1) // BEGIN
	if ev := exec(t, eng, 1, "ROLLBACK"); ev.Kind != sim.Completed || eng.Sessions()[1].State != sim.RolledBack {
		t.Fatalf("ROLLBACK: %v, T2 %v", ev.Kind, eng.Sessions()[1].State)
	}
	for _, sql := range []string{"COMMIT", "ROLLBACK"} {
		if ev := exec(t, eng, 1, sql); ev.Kind != sim.Completed || eng.Sessions()[1].State != sim.Idle {
			t.Errorf("%s with no transaction open: %v, T2 %v, want idle", sql, ev.Kind, eng.Sessions()[1].State)
		}
	}
	exec(t, eng, 1, "BEGIN")
	if ev := exec(t, eng, 1, "COMMIT"); ev.Kind != sim.Completed || eng.Sessions()[1].State != sim.Committed {
		t.Errorf("COMMIT of an open transaction: %v, T2 %v", ev.Kind, eng.Sessions()[1].State)
	}
}

// A session the server ended while it sat idle (pg_terminate_backend) has
// the server's FATAL waiting in its socket: the next step reads it and
// reports the loss with it, instead of writing to the closed socket and
// reporting a broken pipe that hides the reason (TestEngineEvents in tui
// failed so under load).
func TestStepAfterServerEndedSessionReportsTheFatal(t *testing.T) {
	t.Parallel()
	s, err := ledger.Lookup("ordered")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// No poll comes between the steps to find the backend gone first.
	eng, err := sim.New(ctx, sim.Config{DB: dbtest.Schema(t), Ledger: dbtest.Ledger(t), Strategy: s, Sessions: 2,
		Setup: ledger.DefaultSetup(), Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close(ctx) })
	step(t, eng, 0) // BEGIN
	if err := eng.Terminate(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for eng.Unread(0) <= 0 {
		if eng.Unread(0) < 0 {
			t.Skip("this platform cannot tell unread bytes")
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's FATAL never reached T1's socket")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A poll kicked by the BEGIN may still come first (a loaded machine
	// delays it past the terminate) and find the backend gone: then the
	// loss is reported by the poll's reap, the step refused — with the
	// FATAL either way.
	if err := eng.Step(0); err != nil && !errors.Is(err, sim.ErrFailed) {
		t.Fatal(err)
	}
	ev := next(t, eng, func(ev sim.Event) bool { return ev.Session == "T1" && ev.Kind == sim.ConnectionLost })
	if ev.Err == nil || ev.Err.SQLState != "57P01" {
		t.Fatalf("T1's loss reported with %+v (cause %v), want the server's FATAL 57P01", ev.Err, ev.Cause)
	}
}

// TestAutocommitTransferUnderWayIsNoLostUpdate: under the autocommit
// strategy a transfer whose entries are in and whose balance updates are
// not yet leaves balances that disagree with complete entries: a transfer
// partly committed, not a lost update (what the books said, on screen, as
// `none` was stepped by hand). Once both have run every statement the books
// are kept.
func TestAutocommitTransferUnderWayIsNoLostUpdate(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, "none", sim.Same)
	ctx := context.Background()
	for range 3 { // the transfer and its two entries
		step(t, eng, 0)
	}
	b := eng.ReadBalances(ctx)
	if b.Err != nil {
		t.Fatal(b.Err)
	}
	if b.Books.OK() || b.Books.LostUpdate() || !b.Books.UnderWay || strings.Contains(b.Books.Summary(), "lost update") ||
		b.Books.Brief() != "a transfer partly committed …" {
		t.Errorf("T1's entries in, its updates not yet: under way %v, lost update %v: %s (brief %q)",
			b.Books.UnderWay, b.Books.LostUpdate(), b.Books.Summary(), b.Books.Brief())
	}
	for range 2 {
		step(t, eng, 0)
	}
	if b := eng.ReadBalances(ctx); b.Err != nil || !b.Books.OK() || b.Books.UnderWay {
		t.Errorf("T1 done, T2 not begun: %v %s", b.Err, b.Books.Summary())
	}
}
