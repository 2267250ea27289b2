package sim_test

// The truth harness: every explanation of a wait is a claim about the
// server (locks.Claim: what the waiter waits on, who holds it in which
// mode, what will release it), and this test holds every claim the engine
// makes to what the server then does. It runs every built-in scenario (each
// fix is a scenario of its own) at every isolation level it states an
// outcome for, and every transfer strategy at 2 and 3 sessions in both
// directions, one step at a time, and at every settled moment checks:
//
//   - the holder really holds the claimed mode on the claimed object, and
//     the waiter really asks for it (pg_locks, read apart from the engine);
//   - a waiter goes on only in an interval in which every release its
//     claims name happened (not earlier), and a wait whose release happened
//     is gone by the next settled moment (not later);
//   - every deadlock announced is broken by the server (40P01 on one of its
//     sessions), every 40P01 was announced first, and no cycle through a
//     queue (a soft one, which the server reorders) is announced;
//   - every outcome the scenario states ("# outcome …") happens.
//
// A claim that does not hold fails with the run, the step and both facts.

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/scenario"
	"lockstep/sim"
)

// truthRun is one run under the harness: its engine, the events it sent,
// and a control connection to read pg_locks apart from the engine.
type truthRun struct {
	t    *testing.T
	name string
	eng  *sim.Engine
	ctrl *pgx.Conn

	mu     sync.Mutex
	events []sim.Event
	snap   *locks.Snapshot // the newest poll
	done   chan struct{}

	// announced are the deadlocks the engine announced, by cycle.
	announced map[string]*locks.Cycle
	broken    map[string]bool
	failures  int
	// judged counts the events already judged: each interval judges every
	// event since, so that none that arrives while one is being judged
	// (a 40P01 during a pg_locks read) falls between two intervals.
	judged int
}

func newTruthRun(t *testing.T, name string, eng *sim.Engine, d *db.Database) *truthRun {
	t.Helper()
	ctx := context.Background()
	ctrl, err := d.Connect(ctx, db.AppName("truth-check"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close(ctx) })
	r := &truthRun{t: t, name: name, eng: eng, ctrl: ctrl, done: make(chan struct{}),
		announced: map[string]*locks.Cycle{}, broken: map[string]bool{}}
	go r.collect()
	return r
}

// collect keeps every event the engine sends, until its channel closes.
func (r *truthRun) collect() {
	defer close(r.done)
	for ev := range r.eng.Events() {
		r.mu.Lock()
		if ev.Kind == sim.Polled {
			r.snap = ev.Snapshot
		} else {
			r.events = append(r.events, ev)
		}
		r.mu.Unlock()
	}
}

// unjudged are the events not yet judged; they are judged now.
func (r *truthRun) unjudged() []sim.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := slices.Clone(r.events[r.judged:])
	r.judged = len(r.events)
	return evs
}

// pending says whether an event has come that is not yet judged.
func (r *truthRun) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events) > r.judged
}

func (r *truthRun) since(mark int) []sim.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events[mark:])
}

// settle waits until nothing is in flight but what the server says waits:
// no session runs, and a poll taken after the last event agrees that every
// waiting session waits. It returns that poll.
func (r *truthRun) settle(label string) *locks.Snapshot {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var agreed time.Time
	for time.Now().Before(deadline) {
		time.Sleep(15 * time.Millisecond)
		infos := r.eng.Sessions()
		r.mu.Lock()
		snap := r.snap
		var last time.Time
		if n := len(r.events); n > 0 {
			last = r.events[n-1].Time
		}
		r.mu.Unlock()
		if slices.ContainsFunc(infos, func(s sim.SessionInfo) bool { return s.State == sim.Running }) {
			continue
		}
		if snap == nil || !snap.Taken.After(last) {
			r.eng.PollNow()
			continue
		}
		agree := true
		for _, s := range infos {
			b, ok := snap.Backend(s.Name)
			app := slices.ContainsFunc(s.Waits, func(e locks.Edge) bool { return e.Application })
			if s.State == sim.Waiting && !app && (!ok || !b.Waiting()) {
				agree = false
			}
		}
		switch {
		case !agree:
			agreed = time.Time{}
		case agreed.IsZero():
			// Events reach the harness through the engine's channel: one
			// more poll, begun now, comes after every event before it.
			agreed = time.Now()
		case snap.Taken.After(agreed):
			return snap
		}
		r.eng.PollNow()
	}
	r.t.Fatalf("%s, %s: the sessions did not settle in 30 s: %+v", r.name, label, r.eng.Sessions())
	return nil
}

// happened is what a session did in an interval between settled moments.
type happened struct {
	statementEnd, transactionEnd, savepointRollback, advisoryUnlock, sessionEnd bool
	released                                                                    bool // its waiting statement completed
	ended                                                                       bool
	failed                                                                      string
	what                                                                        []string
}

func (h happened) String() string {
	if len(h.what) == 0 {
		return "nothing"
	}
	return strings.Join(h.what, "; ")
}

// happenings sums up the interval's events by session.
func happenings(evs []sim.Event) map[string]*happened {
	out := map[string]*happened{}
	get := func(s string) *happened {
		if out[s] == nil {
			out[s] = &happened{}
		}
		return out[s]
	}
	for _, ev := range evs {
		if ev.Session == "" {
			continue
		}
		h := get(ev.Session)
		first := !h.ended
		if ev.Kind == sim.Completed || ev.Kind == sim.Error || ev.Kind == sim.ConnectionLost {
			h.ended = true
		}
		switch ev.Kind {
		case sim.Completed:
			h.statementEnd, h.released = true, h.released || first
			sql := strings.ToUpper(strings.Join(strings.Fields(ev.SQL), " "))
			if strings.HasPrefix(sql, "ROLLBACK TO") || strings.HasPrefix(sql, "ROLLBACK TRANSACTION TO") || strings.HasPrefix(sql, "ROLLBACK WORK TO") {
				h.savepointRollback = true
			}
			if strings.Contains(sql, "ADVISORY_UNLOCK") {
				h.advisoryUnlock = true
			}
			if ev.State != sim.InTransaction {
				h.transactionEnd = true
			}
			h.what = append(h.what, fmt.Sprintf("%q completed (%s after)", oneLineSQL(ev.SQL), ev.State))
		case sim.Error:
			h.statementEnd = true
			if first {
				h.failed = ev.Err.SQLState
			}
			if ev.State != sim.InTransaction {
				h.transactionEnd = true // an error aborts the transaction and releases its locks
			}
			if ev.State == sim.Failed {
				h.sessionEnd = true
			}
			h.what = append(h.what, fmt.Sprintf("%q failed with %s (%s after)", oneLineSQL(ev.SQL), ev.Err.SQLState, ev.State))
		case sim.ConnectionLost:
			h.statementEnd, h.transactionEnd, h.sessionEnd = true, true, true
			h.what = append(h.what, "its connection was lost")
		}
	}
	return out
}

func oneLineSQL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "…"
	}
	return s
}

// satisfied says whether what the holder did in the interval is the
// release the claim names.
func satisfied(c locks.Claim, h *happened, holderWaitsNow bool) bool {
	if h == nil {
		h = &happened{}
	}
	switch c.Release {
	case locks.AtTransactionEnd, locks.AtSafeSnapshot:
		return h.transactionEnd
	case locks.AtSubtransactionEnd:
		return h.savepointRollback || h.transactionEnd
	case locks.AtStatementEnd:
		return h.statementEnd
	case locks.AtAdvisoryUnlock:
		return h.advisoryUnlock || h.sessionEnd
	case locks.AtSessionEnd:
		return h.sessionEnd
	case locks.AtQueueAhead:
		// The request ahead was granted (its wait ended) or withdrawn.
		return h.statementEnd || h.transactionEnd || !holderWaitsNow
	}
	return false
}

// judged says whether the harness can hold an edge to its claim: one
// between two of the run's sessions, which a server sees.
func judged(e locks.Edge, ours map[string]bool) bool {
	return !e.Application && ours[e.Waiter] && ours[e.Holder] && e.Claim.Release != locks.ReleaseUnknown
}

func sameWait(a, b locks.Edge) bool {
	return a.Waiter == b.Waiter && a.Holder == b.Holder && a.Claim.LockType == b.Claim.LockType &&
		a.Claim.Object == b.Claim.Object && a.Claim.Mode == b.Claim.Mode
}

// judge holds the claims of the previous settled moment to the interval's
// events and the new settled moment.
func (r *truthRun) judge(label string, before, after *locks.Snapshot, evs []sim.Event) {
	r.t.Helper()
	ours := map[string]bool{}
	for _, s := range r.eng.Sessions() {
		ours[s.Name] = true
	}
	hap := happenings(evs)
	waitsNow := map[string]bool{}
	if after != nil && before != nil {
		// A backend the server no longer lists has ended (a timeout
		// terminated it), whether or not its event has come yet.
		for _, b := range before.Backends {
			if _, ok := after.Backend(b.Session); !ok && ours[b.Session] {
				if hap[b.Session] == nil {
					hap[b.Session] = &happened{}
				}
				h := hap[b.Session]
				h.statementEnd, h.transactionEnd, h.sessionEnd = true, true, true
				h.what = append(h.what, "its backend is gone from pg_stat_activity")
			}
		}
	}
	if after != nil {
		for _, b := range after.Backends {
			if b.Waiting() {
				waitsNow[b.Session] = true
			}
		}
	}
	if before != nil {
		byWaiter := map[string][]locks.Edge{}
		for _, e := range before.Graph.Edges {
			if judged(e, ours) {
				byWaiter[e.Waiter] = append(byWaiter[e.Waiter], e)
			}
		}
		for w, edges := range byWaiter {
			hw := hap[w]
			if hw != nil && hw.released {
				// Not earlier: every hard claim's release happened.
				for _, e := range edges {
					if !e.Queued && !satisfied(e.Claim, hap[e.Holder], waitsNow[e.Holder]) {
						r.failf("%s, %s: %s went on, but the claim said it would wait until %s (%s).\n  claim: %s\n  fact: %s did: %s; %s did: %s",
							r.name, label, w, e.Claim.Release, e.Claim.Holder, e.Why, w, hw, e.Holder, hap[e.Holder])
					}
				}
				continue
			}
			if hw != nil && hw.failed != "" {
				continue // it ended by its own error (a timeout, a deadlock): not a release
			}
			// Not later: a wait whose release happened is gone.
			for _, e := range edges {
				if !satisfied(e.Claim, hap[e.Holder], waitsNow[e.Holder]) || e.Queued || after == nil {
					continue
				}
				for _, n := range after.Graph.Edges {
					if sameWait(e, n) {
						r.failf("%s, %s: %s still waits for %s, though the claimed release (%s) happened.\n  claim: %s\n  fact: %s did: %s",
							r.name, label, w, e.Holder, e.Claim.Release, e.Why, e.Holder, hap[e.Holder])
					}
				}
			}
		}
	}
	r.deadlocks(label, evs)
}

// deadlocks checks the interval's announced deadlocks and 40P01s.
func (r *truthRun) deadlocks(label string, evs []sim.Event) {
	r.t.Helper()
	// A deadlock is announced by a poll, which may reach the harness after
	// the break it preceded: each event is judged by its time.
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b sim.Event) int { return a.Time.Compare(b.Time) })
	for _, ev := range evs {
		switch {
		case ev.Kind == sim.DeadlockFormed:
			c := ev.Cycle
			if c.Soft || slices.ContainsFunc(c.Edges, func(e locks.Edge) bool { return e.Queued }) {
				r.failf("%s, %s: a cycle through a queue was announced as a deadlock: %s (the server reorders the queue; nobody is aborted)", r.name, label, c)
			}
			r.announced[c.String()] = c
		case ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.DeadlockDetected:
			found := false
			for key, c := range r.announced {
				if slices.Contains(c.All(), ev.Session) && !r.broken[key] {
					r.broken[key], found = true, true
					// The countdown: the server breaks the cycle when the
					// first waiter's own deadlock_timeout runs out after it
					// closed. A client hears of it a little later.
					if at := c.BreakAt; at != nil && !c.Distributed &&
						(ev.Time.Before(at.Add(-200*time.Millisecond)) || ev.Time.After(at.Add(time.Second))) {
						r.failf("%s, %s: the countdown said the server would break %s at %s; it broke it at %s (%s's 40P01)",
							r.name, label, c, at.Format("15:04:05.000"), ev.Time.Format("15:04:05.000"), ev.Session)
					}
					break
				}
			}
			if !found {
				r.failf("%s, %s: %s failed with 40P01 (deadlock detected), but no deadlock with it was announced.\n  fact: %s", r.name, label, ev.Session, ev.Err.Detail)
			}
		}
	}
}

// finish checks that every announced deadlock the server can see was broken.
func (r *truthRun) finish() {
	for key, c := range r.announced {
		if !c.Distributed && !r.broken[key] {
			r.failf("%s: the deadlock %s was announced, but the server never broke it (no 40P01)", r.name, key)
		}
	}
}

func (r *truthRun) failf(format string, args ...any) {
	r.t.Helper()
	r.failures++
	r.t.Errorf(format, args...)
}

// holds checks a settled moment's claims against pg_locks read on a
// connection of the harness's own: the waiter asks for the claimed lock,
// and the holder holds the claimed mode on the same object (or, for a
// queue, asks for it ahead).
func (r *truthRun) holds(label string, snap *locks.Snapshot) {
	r.t.Helper()
	ours := map[string]bool{}
	pids := map[string]int32{}
	for _, s := range r.eng.Sessions() {
		ours[s.Name] = true
	}
	for _, b := range snap.Backends {
		pids[b.Session] = b.Pid
	}
	for _, e := range snap.Graph.Edges {
		if !judged(e, ours) || e.Lock == nil || e.HolderPid == 0 {
			continue
		}
		r.t.Logf("%s: %s waits for %s: %s %s on %s, held %q, released at %s", label, e.Waiter, e.Holder,
			e.Claim.LockType, e.Claim.Mode, e.Claim.Object, e.Claim.HolderMode, e.Claim.Release)
		rows, err := r.serverLocks(e.WaiterPid, e.HolderPid)
		if err != nil {
			r.t.Fatalf("%s: reading pg_locks: %v", label, err)
		}
		if !slices.ContainsFunc(rows, func(l serverLock) bool { return l.pid == e.WaiterPid && !l.granted && l.same(*e.Lock) }) {
			continue // the wait ended since the poll (a timer): the next moment judges it
		}
		want := func(l serverLock) bool { return l.pid == e.HolderPid && l.same(*e.Lock) }
		switch {
		case e.Claim.HolderMode != "" && e.Held != nil:
			if !slices.ContainsFunc(rows, func(l serverLock) bool { return want(l) && l.granted && l.mode == e.Held.Mode }) {
				r.failf("%s, %s: the claim says %s holds %s on %s.\n  claim: %s\n  fact: pg_locks shows %s's locks on it: %v",
					r.name, label, e.Holder, e.Claim.HolderMode, e.Claim.Object, e.Why, e.Holder, filter(rows, want))
			}
		case e.Queued:
			if !slices.ContainsFunc(rows, func(l serverLock) bool { return l.pid == e.HolderPid && !l.granted }) {
				continue // the request ahead ended since the poll (a timer): the next moment judges it
			}
			if !slices.ContainsFunc(rows, func(l serverLock) bool { return want(l) && !l.granted }) {
				r.failf("%s, %s: the claim says %s is ahead in the queue for %s.\n  claim: %s\n  fact: pg_locks shows %s's requests: %v",
					r.name, label, e.Holder, e.Claim.Object, e.Why, e.Holder, filter(rows, func(l serverLock) bool { return l.pid == e.HolderPid && !l.granted }))
			}
		}
	}
}

// serverLock is a row of pg_locks as the harness reads it.
type serverLock struct {
	pid                  int32
	locktype, relname    string
	page, tuple          int32
	vxid, mode           string
	xid                  int64
	classid, objid       int64
	objsubid             int32
	granted              bool
	hasPage, hasTuple    bool
	relationKnown, isRel bool
}

func (l serverLock) same(o locks.Lock) bool {
	if l.locktype != o.Type {
		return false
	}
	switch o.Type {
	case "transactionid":
		return uint32(l.xid) == o.TransactionID
	case "virtualxid":
		return l.vxid == o.VirtualXID
	case "advisory":
		return uint32(l.classid) == o.ClassID && uint32(l.objid) == o.ObjID && int16(l.objsubid) == o.ObjSubID
	case "tuple":
		return o.Page != nil && o.Tuple != nil && l.page == *o.Page && l.tuple == int32(*o.Tuple) && strings.HasSuffix(o.Relation, l.relname)
	case "relation":
		return strings.HasSuffix(o.Relation, l.relname)
	}
	return true
}

func (l serverLock) String() string {
	g := "waits"
	if l.granted {
		g = "holds"
	}
	return fmt.Sprintf("%s %s on %s %s", g, l.mode, l.locktype, l.relname+l.vxid+fmt.Sprint(l.xid))
}

func filter(rows []serverLock, keep func(serverLock) bool) []serverLock {
	var out []serverLock
	for _, l := range rows {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

func (r *truthRun) serverLocks(pids ...int32) ([]serverLock, error) {
	rows, err := r.ctrl.Query(context.Background(), `
		SELECT l.pid, l.locktype, coalesce(c.relname::text, ''), coalesce(l.page, -1), coalesce(l.tuple, -1),
		       coalesce(l.virtualxid, ''), l.mode, coalesce(l.transactionid::text, '0')::bigint,
		       coalesce(l.classid::bigint, 0), coalesce(l.objid::bigint, 0), coalesce(l.objsubid, 0), l.granted
		FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
		WHERE l.pid = ANY($1)`, pids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (serverLock, error) {
		var l serverLock
		err := row.Scan(&l.pid, &l.locktype, &l.relname, &l.page, &l.tuple, &l.vxid, &l.mode, &l.xid,
			&l.classid, &l.objid, &l.objsubid, &l.granted)
		return l, err
	})
}

// walk steps the run: the sessions in order (a permutation's), then round
// robin while any can step, judging every interval.
func (r *truthRun) walk(order []int) {
	r.t.Helper()
	prev := r.settle("the start")
	r.unjudged() // the set-up's: before the first settled moment
	step := func(i int) bool {
		infos := r.eng.Sessions()
		s := infos[i]
		if !s.Steppable() {
			return false
		}
		label := fmt.Sprintf("step %d of %s (%s)", s.Next+1, s.Name, oneLineSQL(s.Statements[s.Next]))
		if s.Next < len(s.StepNames) {
			label = fmt.Sprintf("step %s of %s (%s)", s.StepNames[s.Next], s.Name, oneLineSQL(s.Statements[s.Next]))
		}
		if err := r.eng.Step(i); err != nil {
			r.t.Fatalf("%s, %s: %v", r.name, label, err)
		}
		now := r.settle(label)
		r.judge(label, prev, now, r.unjudged())
		r.holds(label, now)
		prev = now
		return true
	}
	// wait lets the server's timers run (deadlock_timeout, lock_timeout,
	// statement_timeout, idle_in_transaction_session_timeout) while no
	// session can step but some are busy, judging each change; it stops
	// after quiet with nothing new (a stall: a distributed deadlock, a wait
	// on a prepared transaction).
	wait := func() bool {
		if !slices.ContainsFunc(r.eng.Sessions(), func(s sim.SessionInfo) bool { return s.State.Busy() }) {
			return false
		}
		quiet := time.Now().Add(3 * time.Second)
		for !r.pending() && time.Now().Before(quiet) {
			time.Sleep(20 * time.Millisecond)
		}
		if !r.pending() {
			return false
		}
		now := r.settle("the server's timers")
		r.judge("while the sessions waited (the server's timers)", prev, now, r.unjudged())
		r.holds("while the sessions waited", now)
		prev = now
		return true
	}
	for _, i := range order {
		step(i)
	}
	for guard := 0; guard < 500; guard++ {
		moved := false
		for i := range r.eng.Sessions() {
			if step(i) {
				moved = true
			}
		}
		if !moved && !wait() {
			break
		}
	}
	if r.pending() {
		// What came after the last interval was judged (a 40P01 as the
		// last step's moment was read) is judged before the run ends.
		now := r.settle("the end")
		r.judge("at the end", prev, now, r.unjudged())
	}
	// What still waits waits for good (a distributed deadlock, a prepared
	// transaction): the run ends with it.
	r.finish()
}

// facts are what a whole run did, for its stated outcome.
type facts struct {
	codes   map[string]bool
	waited  bool
	lost    bool
	anomaly *bool
}

func (r *truthRun) facts() facts {
	f := facts{codes: map[string]bool{}}
	infos := r.eng.Sessions()
	for _, ev := range r.since(0) {
		switch ev.Kind {
		case sim.WaitingForLock:
			f.waited = true
		case sim.Error:
			f.codes[ev.Err.SQLState] = true
		case sim.ConnectionLost:
			f.lost = true
			if ev.Err != nil { // the FATAL the server ended the session with
				f.codes[ev.Err.SQLState] = true
			}
		case sim.Completed:
			if ev.Index >= 0 && ev.Index < len(infos) && ev.Step >= 0 && ev.Step < len(infos[ev.Index].StepNames) &&
				infos[ev.Index].StepNames[ev.Step] == "anomaly" {
				if rows := ev.LastRows(); rows != nil && len(rows.Rows) == 1 {
					v := rows.Rows[0][0] == "t"
					f.anomaly = &v
				}
			}
		}
	}
	return f
}

var sqlstateRE = regexp.MustCompile(`\b[0-9][0-9A-Z]{4}\b`)

// checkOutcome holds the run to the outcome its scenario states. Each
// phrase the harness knows is a check; an outcome with none fails, so
// that a new scenario's outcome is not left unchecked.
func (r *truthRun) checkOutcome(level, outcome string) {
	r.t.Helper()
	f := r.facts()
	checks := 0
	fail := func(format string, args ...any) {
		r.failf("%s at %s: the stated outcome %q did not happen: %s", r.name, level, outcome, fmt.Sprintf(format, args...))
	}
	lower := strings.ToLower(outcome)
	if a, ok := strings.CutPrefix(lower, "anomaly:"); ok || strings.HasPrefix(lower, "prevented:") {
		_ = a
		if f.anomaly != nil {
			checks++
			if *f.anomaly != ok {
				fail("the anomaly step showed %v", *f.anomaly)
			}
		}
	}
	if strings.Contains(lower, "serialization failure") {
		checks++
		if !f.codes[pgerrcode.SerializationFailure] {
			fail("no 40001")
		}
	}
	for _, code := range sqlstateRE.FindAllString(outcome, -1) {
		checks++
		if !f.codes[code] {
			var lost []string
			for _, ev := range r.since(0) {
				if ev.Kind == sim.ConnectionLost || ev.Kind == sim.Error {
					lost = append(lost, fmt.Sprintf("%s %v cause=%v err=%+v", ev.Session, ev.Kind, ev.Cause, ev.Err))
				}
			}
			fail("no %s; the errors and losses seen: %v", code, lost)
		}
	}
	if strings.HasPrefix(lower, "no wait") {
		checks++
		if f.waited {
			fail("a session waited")
		}
	} else if strings.Contains(lower, "wait") && !strings.Contains(lower, "never wait") {
		checks++
		if !f.waited {
			fail("nothing waited")
		}
	}
	if strings.Contains(lower, "terminated") {
		checks++
		if !f.lost && !f.codes[pgerrcode.IdleInTransactionSessionTimeout] && !f.codes[pgerrcode.AdminShutdown] {
			fail("no session was terminated")
		}
	}
	if checks == 0 {
		r.failf("%s at %s: the harness knows no way to check the stated outcome %q", r.name, level, outcome)
	}
}

// needsTwoDatabases says whether a built-in scenario runs on two databases.
func needsTwoDatabases(sc *scenario.Spec) bool {
	for _, s := range sc.Sessions {
		if strings.Contains(s.Name, "@") {
			return true
		}
	}
	return false
}

// truthParallel is how many runs the harness plays at once: they spend
// their time waiting for the server, not computing.
const truthParallel = 8

// truthDeadlockTimeout is every session's deadlock_timeout under the
// harness: long enough that a cycle stands for a poll to see it before the
// first waiter's check breaks it, whatever the machine's load.
var truthDeadlockTimeout = []string{"SET deadlock_timeout = '2s'"}

func truthInit(n int) map[string][]string {
	init := map[string][]string{}
	for i := 1; i <= n; i++ {
		init[fmt.Sprintf("T%d", i)] = truthDeadlockTimeout
	}
	return init
}

// TestTruth is the truth harness: see the top of this file.
// It is not parallel with the package's other tests: their timing-checked
// deadlocks would suffer its load, and its own checks its.
func TestTruth(t *testing.T) {
	type run struct {
		name string
		fn   func(t *testing.T)
	}
	var runs []run
	for _, b := range scenario.Builtins() {
		levels := []string{""}
		if b.TakesIsolation() {
			levels = nil
			for _, l := range scenario.IsolationLevels() {
				if _, ok := b.Outcomes[l]; ok {
					levels = append(levels, l)
				}
			}
		}
		for _, level := range levels {
			name := "scenarios/" + b.Name
			if level != "" {
				name += "/" + strings.ReplaceAll(level, " ", "-")
			}
			runs = append(runs, run{name, func(t *testing.T) { truthScenario(t, b, level) }})
		}
	}
	for _, s := range ledger.Strategies() {
		for _, n := range []int{2, 3} {
			for _, dir := range []sim.Direction{sim.Same, sim.Opposite} {
				if testing.Short() && n == 3 {
					continue
				}
				runs = append(runs, run{fmt.Sprintf("strategies/%s/%d/%s", s.Name, n, dir), func(t *testing.T) {
					d := dbtest.Schema(t)
					ctx := context.Background()
					eng, err := sim.New(ctx, sim.Config{DB: d, Ledger: dbtest.Ledger(t), Strategy: s, Sessions: n, Direction: dir,
						Setup: ledger.DefaultSetup(), Poll: 50 * time.Millisecond, Init: truthInit(n)})
					if err != nil {
						t.Fatal(err)
					}
					r := newTruthRun(t, fmt.Sprintf("%s, %d sessions, %s", s.Name, n, dir), eng, d)
					t.Cleanup(func() { eng.Close(ctx); <-r.done })
					r.walk(nil)
				}})
			}
		}
	}
	// A soft deadlock (PostgreSQL's deadlock-soft): a cycle through queued
	// requests, which the server reorders: no deadlock may be announced.
	runs = append(runs, run{"specs/ls-soft-deadlock", func(t *testing.T) {
		src, err := os.ReadFile("../isolation/testdata/ls-soft-deadlock.spec")
		if err != nil {
			t.Fatal(err)
		}
		sc, err := scenario.Parse("ls-soft-deadlock.spec", src)
		if err != nil {
			t.Fatal(err)
		}
		r := truthSpec(t, "ls-soft-deadlock", sc)
		if f := r.facts(); f.codes[pgerrcode.DeadlockDetected] {
			t.Errorf("a soft deadlock ended in 40P01")
		}
	}})
	// Sessions that set their own deadlock_timeout: the countdown is
	// theirs, not the server's default.
	runs = append(runs, run{"specs/own-deadlock-timeout", func(t *testing.T) {
		sc, err := scenario.Parse("own-deadlock-timeout.spec", []byte(`
setup { CREATE TABLE ls_own (id int PRIMARY KEY, v int); INSERT INTO ls_own VALUES (1, 0), (2, 0); }
teardown { DROP TABLE ls_own; }
session a
setup { BEGIN; SET deadlock_timeout = '3s'; }
step a1 { UPDATE ls_own SET v = 1 WHERE id = 1; }
step a2 { UPDATE ls_own SET v = 1 WHERE id = 2; }
step a3 { COMMIT; }
session b
setup { BEGIN; SET deadlock_timeout = '2500ms'; }
step b1 { UPDATE ls_own SET v = 2 WHERE id = 2; }
step b2 { UPDATE ls_own SET v = 2 WHERE id = 1; }
step b3 { COMMIT; }
permutation a1 b1 a2 b2 a3 b3
`))
		if err != nil {
			t.Fatal(err)
		}
		r := truthSpec(t, "own-deadlock-timeout", sc)
		if len(r.announced) != 1 || len(r.broken) != 1 {
			t.Errorf("announced %d deadlocks, broken %d; want one of each", len(r.announced), len(r.broken))
		}
	}})
	// t.Run from several goroutines: each run is a subtest of its own,
	// truthParallel of them at a time (t.Parallel would allow only
	// GOMAXPROCS).
	sem := make(chan struct{}, truthParallel)
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(r.name, r.fn)
		}()
	}
	wg.Wait()
}

// truthSpec runs a spec's first permutation under the harness.
func truthSpec(t *testing.T, name string, sc *scenario.Spec) *truthRun {
	order, err := sc.SessionOrder(1)
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.Schema(t)
	ctx := context.Background()
	eng, err := sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: name, Sessions: len(sc.Sessions),
		Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := newTruthRun(t, name, eng, d)
	t.Cleanup(func() { eng.Close(ctx); <-r.done })
	r.walk(order)
	return r
}

// truthScenario runs one built-in scenario at one level under the harness.
func truthScenario(t *testing.T, b scenario.Builtin, level string) {
	sc, err := scenario.LoadBuiltin(b.Name, level)
	if err != nil {
		t.Fatal(err)
	}
	order, err := sc.SessionOrder(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var eng *sim.Engine
	var d *db.Database
	switch {
	case scenario.NeedsPooler(b.Name):
		eng = poolerEngine(t, b.Name)
		d = eng.Database("")
	case needsTwoDatabases(sc):
		first := dbtest.DB(t)
		if strings.Contains(b.Name, "2pc") {
			first = dbtest.TwoPhase(t)
		}
		eng, _ = newCoupled(t, first, b.Name)
		d = eng.Database("")
	default:
		d = dbtest.Schema(t)
		eng, err = sim.New(ctx, sim.Config{DB: d, Scenario: sc, ScenarioName: b.Name, Sessions: len(sc.Sessions),
			Poll: 50 * time.Millisecond, Init: truthInit(len(sc.Sessions))})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := newTruthRun(t, b.Name, eng, d)
	t.Cleanup(func() { eng.Close(ctx); <-r.done })
	r.walk(order)
	if pin := truthPins[b.Name]; pin != nil {
		pin(t, r)
	}
	lv := level
	if lv == "" {
		lv = "read committed"
	}
	if want, ok := b.Outcomes[lv]; ok {
		r.checkOutcome(lv, want)
	}
}

// whys are every explanation of a wait the run's events carried.
func (r *truthRun) whys() []string {
	var out []string
	for _, ev := range r.since(0) {
		for _, e := range ev.Waits {
			out = append(out, e.Why)
		}
	}
	return out
}

// truthPins pin the "Seen" items of issue 26, each a sentence that was
// false on screen, by what the explanation must now say.
var truthPins = map[string]func(t *testing.T, r *truthRun){
	// T2 waits for T1's subtransaction, released at ROLLBACK TO SAVEPOINT.
	"savepoint": func(t *testing.T, r *truthRun) {
		for _, ev := range r.since(0) {
			for _, e := range ev.Waits {
				if e.Waiter == "T2" && (e.Claim.Release != locks.AtSubtransactionEnd || !strings.Contains(e.Why, "subtransaction") ||
					!strings.Contains(e.Why, "ROLLBACK TO SAVEPOINT")) {
					t.Errorf("savepoint: T2's wait: %s (claim %+v)", e.Why, e.Claim)
				}
				if e.Waiter == "T3" && e.Claim.Release != locks.AtTransactionEnd {
					t.Errorf("savepoint: T3's wait: %s (claim %+v)", e.Why, e.Claim)
				}
			}
		}
	},
	// The multixact and the two share modes it combines are named.
	"multixact": func(t *testing.T, r *truthRun) {
		ok, _ := r.eng.Observer().RowLocksAvailable()
		// pgrowlocks comes with PostgreSQL's contrib: required under CI.
		dbtest.Optional(t, ok, "pgrowlocks (the multixact's members)", "postgresql-contrib")
		for _, why := range r.whys() {
			if strings.Contains(why, "multixact") && strings.Contains(why, "T1's FOR KEY SHARE") && strings.Contains(why, "T2's FOR SHARE") {
				return
			}
		}
		t.Errorf("multixact: no explanation names the multixact and its two modes: %q", r.whys())
	},
	// The virtualxid wait is explained, and the lock is in the snapshot
	// the Locks pane lists.
	"cic-waits": func(t *testing.T, r *truthRun) {
		// It waits for T1's, and for any older transaction on the server
		// (another test's) in turn; T1 may end before its turn comes.
		seen := 0
		for _, ev := range r.since(0) {
			for _, e := range ev.Waits {
				if e.Waiter == "T2" && e.Lock != nil && e.Lock.Type == "virtualxid" {
					seen++
					if !slices.ContainsFunc(ev.Snapshot.Locks, func(l locks.Lock) bool {
						return l.Session == "T2" && l.Type == "virtualxid" && !l.Granted && l.VirtualXID == e.Lock.VirtualXID
					}) {
						t.Errorf("cic-waits: the virtualxid wait is not among the snapshot's locks")
					}
				}
			}
		}
		if seen == 0 {
			t.Errorf("cic-waits: no virtualxid wait of T2 seen")
		}
	},
}
