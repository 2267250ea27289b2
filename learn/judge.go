package learn

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/lazyre"
	"lockstep/locks"
	"lockstep/sim"
)

// Ending is how a statement that ended during an action ended.
type Ending struct {
	SQL string
	Err *sim.ServerMessage // nil when it completed
	// Value is the first column of its last result's first row, when
	// Row; Columns names that result's columns.
	Value   string
	Row     bool
	Tag     string
	Columns []string
	Rows    [][]string
}

// Observation is what the server did during one action: the statements
// that ended and how, who began to wait, who waits at the end and for
// whom, the deadlock that formed and its victim — and the locks and the
// books once everything had settled. Every field comes from the engine's
// events: the server's word, never a guess.
type Observation struct {
	// Session is the session acted on, "" for look and bench.
	Session string
	// Ended holds, by session, the last statement that ended during the
	// action (not the ROLLBACK the engine sends after a failed one).
	Ended map[string]Ending
	// BeganWaiting are the sessions the server began to report waiting.
	BeganWaiting map[string]bool
	// Waits are the sessions waiting once the action settled, with whom
	// each waits for and the edges that explain it.
	Waits     map[string][]string
	WaitEdges map[string][]locks.Edge
	// Cycle is the deadlock that formed, if one did; Victim the session the
	// server failed to break it, with its error.
	Cycle     *locks.Cycle
	Victim    string
	VictimErr *sim.ServerMessage
	// Snapshot is a poll taken after the action settled; Books a read of
	// the balances after it (nil where the run has no ledger).
	Snapshot *locks.Snapshot
	Books    *sim.Balances
	// Bench is what a bench action measured, by strategy.
	Bench map[string]float64
	// Sessions are the sessions once the action settled.
	Sessions []sim.SessionInfo
	// Timeout says the action did not settle within its bound.
	Timeout bool
	// Problem is what went wrong running the action, if anything did.
	Problem string
	// WasWaiting are the sessions that waited when the action began.
	WasWaiting map[string]bool
	// Aliases name the victim and the survivor of the failure before the action.
	Aliases Aliases
}

// judge phases.
const (
	phaseStatement = iota // the action's statement has not settled
	phaseWaitPoll         // it waits: does the same poll see a cycle?
	phaseDeadlock         // a cycle stands: which session will the server fail?
	phaseTimer            // it waits, and its own lock_timeout will end the wait
	phaseOthers           // the others: a poll after the last change, every end seen
	phaseFresh            // the locks and the books as they are now
	phaseDone
)

// Judge follows the engine's events after an action and decides when it
// has settled — its statement ended, or the server says it waits; a
// deadlock it closed broken; the sessions it released settled — and what
// happened. The interface and the headless check drive one each: they send
// the action, feed the judge every event, ask the engine for a poll when
// the judge wants one, and read the observation when it is done.
type Judge struct {
	idx      int // the session acted on, -1 for none
	obs      Observation
	phase    int
	baseline []int // each session's Settled when the action began
	seen     []int // the ends seen since, by session
	// changed is when something last happened that a poll must follow.
	changed   time.Time
	freshPoll bool
	freshBook bool
	needBooks bool
	hasLedger bool
	wantPoll  bool
	waitSnap  *locks.Snapshot
	deadline  time.Time
	names     map[string]string // a session's label → its name
}

// settleWithin bounds how long an action may take to settle: the longest
// timer a lesson meets is a deadlock_timeout or a lock_timeout of a few
// seconds.
const settleWithin = 30 * time.Second

// NewJudge starts judging an action on session idx (-1 for none), given
// the sessions as they stood when it was sent, whether the run has a
// ledger, and the last balances read (which a look that changes nothing
// shows again).
func NewJudge(session string, idx int, sessions []sim.SessionInfo, hasLedger bool, books *sim.Balances, now time.Time) *Judge {
	j := &Judge{idx: idx, hasLedger: hasLedger, deadline: now.Add(settleWithin), changed: now,
		names: map[string]string{}}
	j.obs = Observation{Session: session, Ended: map[string]Ending{}, BeganWaiting: map[string]bool{},
		Waits: map[string][]string{}, WaitEdges: map[string][]locks.Edge{}, Books: books, Sessions: sessions}
	j.obs.WasWaiting = map[string]bool{}
	for _, s := range sessions {
		j.baseline = append(j.baseline, s.Settled)
		if s.State == sim.Waiting {
			// Still waiting unless an event or a poll says otherwise.
			j.obs.WasWaiting[s.Name] = true
			j.obs.Waits[s.Name], j.obs.WaitEdges[s.Name] = s.BlockedBy, s.Waits
		}
		if s.Label != "" {
			j.names[s.Label] = s.Name
		}
	}
	j.seen = make([]int, len(sessions))
	if idx < 0 {
		j.phase = phaseOthers
		j.wantPoll = true
	}
	return j
}

// Aliases tells the judge whom "victim" and "survivor" name in claims.
func (j *Judge) Aliases(al Aliases) { j.obs.Aliases = maps.Clone(al) }

// Done says whether the action has settled.
func (j *Judge) Done() bool { return j.phase == phaseDone }

// WantsPoll says whether the judge needs a poll taken from now on; the
// driver asks the engine for one (PollNow). Asking clears it.
func (j *Judge) WantsPoll() bool {
	w := j.wantPoll
	j.wantPoll = false
	return w
}

// Expired ends the judging when the action has not settled in time: the
// observation says so.
func (j *Judge) Expired(now time.Time) bool {
	if j.phase == phaseDone || now.Before(j.deadline) {
		return false
	}
	j.obs.Timeout = true
	j.finish()
	return true
}

// Fail ends the judging because the action could not be sent.
func (j *Judge) Fail(problem string) {
	j.obs.Problem = problem
	j.finish()
}

// Observation is what happened; complete once Done.
func (j *Judge) Observation() *Observation { return &j.obs }

// Feed takes the engine's next event, with the sessions as the engine
// reports them now; it says whether the action has settled.
func (j *Judge) Feed(ev sim.Event, sessions []sim.SessionInfo) bool {
	if j.phase == phaseDone {
		return true
	}
	if len(sessions) > 0 {
		j.obs.Sessions = sessions
	}
	mine := ev.Index >= 0 && ev.Index == j.idx
	switch ev.Kind {
	case sim.Completed, sim.Error, sim.ConnectionLost:
		if ev.Index >= 0 && ev.Index < len(j.seen) {
			j.seen[ev.Index]++
		}
		j.changed, j.freshPoll, j.freshBook = ev.Time, false, false
		if !ev.Auto {
			e := Ending{SQL: ev.SQL, Err: ev.Err, Tag: ev.Tag}
			if ev.Kind == sim.ConnectionLost {
				e.Err = &sim.ServerMessage{Message: "the connection was lost: " + errText(ev.Cause)}
			}
			if r := ev.LastRows(); r != nil {
				e.Columns, e.Rows = r.Columns, r.Rows
				if len(r.Rows) > 0 && len(r.Rows[0]) > 0 {
					e.Value, e.Row = r.Rows[0][0], true
				}
			}
			j.obs.Ended[ev.Session] = e
			delete(j.obs.Waits, ev.Session)
			delete(j.obs.WaitEdges, ev.Session)
		}
		if ev.Kind == sim.Error && ev.Err != nil {
			switch ev.Err.SQLState {
			case pgerrcode.DeadlockDetected:
				j.obs.Victim, j.obs.VictimErr = ev.Session, ev.Err
			}
		}
		switch j.phase {
		case phaseStatement, phaseWaitPoll, phaseTimer:
			if mine && !ev.Auto {
				j.phase = phaseOthers
			}
		case phaseDeadlock:
			if ev.Kind == sim.Error && ev.Err != nil && (ev.Err.SQLState == pgerrcode.DeadlockDetected ||
				ev.Err.SQLState == pgerrcode.LockNotAvailable) {
				j.phase = phaseOthers
			}
		}
	case sim.WaitingForLock:
		// A wait already seen, reported again (its words changed, a poll
		// under load saw it anew), did not begin in this action; a wait for
		// a session it did not wait for before did.
		prev, waiting := j.obs.Waits[ev.Session]
		if !waiting || slices.ContainsFunc(ev.BlockedBy, func(b string) bool { return !slices.Contains(prev, b) }) {
			j.obs.BeganWaiting[ev.Session] = true
		}
		j.obs.Waits[ev.Session] = ev.BlockedBy
		j.obs.WaitEdges[ev.Session] = ev.Waits
		j.changed, j.freshPoll, j.freshBook = ev.Time, false, false
		if mine && j.phase == phaseStatement {
			j.phase, j.waitSnap = phaseWaitPoll, ev.Snapshot
		}
	case sim.DeadlockFormed:
		j.obs.Cycle = ev.Cycle
		if j.phase != phaseDone && j.phase != phaseFresh {
			j.phase = phaseDeadlock
			if ev.Cycle.Distributed && ev.Cycle.BreakAt == nil {
				j.phase = phaseOthers // no server will break it: it stands
			}
		}
	case sim.Polled:
		j.polled(ev)
	case sim.BooksRead:
		if ev.Books != nil && !ev.Books.Taken.Before(j.changed) {
			j.obs.Books, j.freshBook = ev.Books, true
		}
	case sim.ResetDone:
		j.obs.Problem = "the run was reset"
		j.finish()
	}
	j.advance()
	return j.phase == phaseDone
}

// polled takes a poll: whom it shows waiting, and whether it was taken
// after the last change.
func (j *Judge) polled(ev sim.Event) {
	snap := ev.Snapshot
	if snap == nil {
		return
	}
	if j.phase == phaseWaitPoll && (j.waitSnap == nil || !snap.Taken.Before(j.waitSnap.Taken)) {
		// The poll that saw the wait saw no cycle (it would have said so
		// first): the wait stands, unless the session's own lock_timeout
		// ends it.
		j.phase = phaseOthers
		if j.idx >= 0 && j.idx < len(j.obs.Sessions) && j.obs.Sessions[j.idx].LockTimeout > 0 {
			j.phase = phaseTimer
		}
	}
	if !snap.Taken.Before(j.changed) {
		j.freshPoll = true
		j.obs.Snapshot = snap
		// Who waits now, as this poll says.
		for name := range j.obs.Waits {
			if b, ok := snap.Backend(name); !ok || !b.Waiting() {
				delete(j.obs.Waits, name)
				delete(j.obs.WaitEdges, name)
			}
		}
	}
}

// advance moves on as far as what has been seen allows.
func (j *Judge) advance() {
	if j.phase == phaseOthers {
		if !j.freshPoll {
			j.wantPoll = true
			return
		}
		for i, s := range j.obs.Sessions {
			if s.State == sim.Running {
				return // its end, or its wait, is still to come
			}
			if i < len(j.baseline) && s.Settled-j.baseline[i] > j.seen[i] {
				return // an end the events have not brought yet
			}
		}
		j.phase = phaseFresh
	}
	if j.phase == phaseFresh {
		if !j.freshPoll {
			j.wantPoll = true
			return
		}
		if j.hasLedger && j.changedSinceStart() && !j.freshBook {
			return // the engine reads the balances after the poll that follows a change
		}
		j.finish()
	}
}

// changedSinceStart says whether a statement ended during the action (the
// balances are read again only then).
func (j *Judge) changedSinceStart() bool {
	for _, n := range j.seen {
		if n > 0 {
			return true
		}
	}
	return false
}

func (j *Judge) finish() {
	j.phase = phaseDone
	for name := range j.obs.Waits {
		for _, s := range j.obs.Sessions {
			if s.Name == name && s.State != sim.Waiting {
				delete(j.obs.Waits, name)
			}
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}

// Name resolves a name a lesson uses (T1, or a scenario's w1) to the
// session's engine name.
func (o *Observation) name(s string) string {
	if isAlias(s) && o.Aliases[s] != "" {
		return o.Aliases[s]
	}
	for _, si := range o.Sessions {
		if si.Name == s {
			return s
		}
	}
	for _, si := range o.Sessions {
		if si.Label == s || strings.EqualFold(si.Name, s) || strings.EqualFold(si.Label, s) {
			return si.Name
		}
	}
	return s
}

// Holds says whether the claim is true of what happened.
func (o *Observation) Holds(c Claim) bool {
	s := o.name(c.Session)
	switch c.Kind {
	case GoesOn:
		e, ok := o.Ended[s]
		return ok && e.Err == nil && !o.BeganWaiting[s] && o.Victim != s
	case Waits:
		who, ok := o.Waits[s]
		if !ok {
			return false
		}
		if len(c.Others) == 0 {
			return true
		}
		var want []string
		for _, x := range c.Others {
			want = append(want, o.name(x))
		}
		return sameSet(who, want)
	case Deadlock:
		if (o.Cycle == nil || o.Cycle.Distributed) && o.Victim == "" {
			return false
		}
		return c.Victim == "" || o.Victim == o.name(c.Victim)
	case Distributed:
		return o.Cycle != nil && o.Cycle.Distributed
	case Fails:
		e, ok := o.Ended[s]
		return ok && e.Err != nil && e.Err.SQLState == c.Code
	case Reads:
		e, ok := o.Ended[s]
		if !ok || e.Err != nil {
			return false
		}
		if c.Nothing {
			return !e.Row
		}
		return e.Row && sameValue(e.Value, c.Value)
	case Balance:
		if o.Books == nil {
			return false
		}
		for _, a := range o.Books.Accounts {
			if a.ID == c.Account {
				return sameValue(a.Balance.StringFixed(2), c.Value)
			}
		}
		return false
	case BooksKept, BooksBroken:
		if o.Books == nil || o.Books.Books == nil {
			return false
		}
		return o.Books.Books.OK() == (c.Kind == BooksKept)
	case Holds, HoldsNone:
		if o.Snapshot == nil {
			return false
		}
		held := o.held(s, c)
		if c.Kind == HoldsNone {
			return len(held) == 0
		}
		if c.Row {
			best, ok := strongest(held)
			return ok && best == c.RowMode.String()
		}
		return slices.Contains(held, c.TableMode.String())
	case AsksFor:
		return o.asksFor(s, c)
	case Faster:
		a, b := o.Bench[c.Strategy], o.Bench[c.Others[0]]
		return o.Bench != nil && a > b*1.2
	case Same:
		if len(o.Bench) != 2 {
			return false
		}
		var v []float64
		for _, x := range o.Bench {
			v = append(v, x)
		}
		return v[0] <= v[1]*1.2 && v[1] <= v[0]*1.2
	}
	return false
}

// held lists the modes session s holds on the claim's target: row modes
// on an account's row, table modes granted on a table.
func (o *Observation) held(s string, c Claim) []string {
	var out []string
	if c.Account > 0 {
		for _, r := range o.Snapshot.RowLocksOf(s) {
			if r.Account == c.Account {
				out = append(out, r.Mode.String())
			}
		}
		return out
	}
	for _, l := range o.Snapshot.LocksOf(s) {
		if l.Type == "relation" && l.Granted && relationIs(l.Relation, c.Table) {
			out = append(out, l.ModeWords())
		}
	}
	return out
}

// strongest is the strongest of the row modes, by their order.
func strongest(modes []string) (string, bool) {
	best := -1
	for _, m := range modes {
		if rm, ok := locks.ParseRowMode(m); ok && int(rm) > best {
			best = int(rm)
		}
	}
	if best < 0 {
		return "", false
	}
	return locks.RowMode(best).String(), true
}

// relationIs compares a relation as the snapshot names it (maybe
// schema-qualified) with a table a lesson names.
func relationIs(rel, table string) bool {
	if strings.EqualFold(rel, table) {
		return true
	}
	if _, name, ok := strings.Cut(rel, "."); ok && !strings.Contains(table, ".") {
		return strings.EqualFold(name, table)
	}
	return false
}

// asksFor says whether session s waits for the claim's lock.
func (o *Observation) asksFor(s string, c Claim) bool {
	if _, waits := o.Waits[s]; !waits {
		return false
	}
	if c.Row {
		for _, e := range o.WaitEdges[s] {
			if e.Conflict == nil || !e.Conflict.Row || locks.RowMode(e.Conflict.Wanted) != c.RowMode {
				continue
			}
			if (e.HeldRow != nil && e.HeldRow.Account == c.Account) || (e.Lock != nil && e.Lock.Account == c.Account) {
				return true
			}
		}
		return false
	}
	if o.Snapshot == nil {
		return false
	}
	for _, l := range o.Snapshot.LocksOf(s) {
		if l.Type == "relation" && !l.Granted && relationIs(l.Relation, c.Table) {
			if m, ok := l.TableMode(); ok && m == c.TableMode {
				return true
			}
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// Verdict is a question judged: which options the server made true, and
// whether the student's answer is one of them.
type Verdict struct {
	// True are the options the server made true, from 0.
	True []int
	// Answer is the student's option, from 0; -1 when none was given.
	Answer int
	Right  bool
	// Happened says what the server did, from the engine's data: the
	// explanation a question's answer is shown with.
	Happened []string
}

// Decided says whether exactly one option is true: a question the server
// answers.
func (v Verdict) Decided() bool { return len(v.True) == 1 }

// Judge decides a question against what happened, and the student's
// answer (from 0; -1 for none).
func (o *Observation) Judge(q *Question, answer int) Verdict {
	v := Verdict{Answer: answer}
	for i, opt := range q.Options {
		if o.Holds(opt.Claim) {
			v.True = append(v.True, i)
		}
	}
	v.Right = answer >= 0 && slices.Contains(v.True, answer)
	v.Happened = o.Explain(q)
	return v
}

var processRE = lazyre.New(`(?i)process (\d+)`)

// Explain says what happened, in the engine's words: the waits with the
// locks behind them, the deadlock and its victim with the server's
// DETAIL, each statement's end — and, for a question about locks or the
// books, what the poll and the read of the balances found.
func (o *Observation) Explain(q *Question) []string {
	var out []string
	for _, l := range o.explain(q) {
		out = append(out, l.text)
	}
	return out
}

// Notable is what Explain says, less the statements that simply went on:
// what an action that asked nothing is shown with.
func (o *Observation) Notable() []string {
	var out []string
	for _, l := range o.explain(nil) {
		if !l.plain {
			out = append(out, l.text)
		}
	}
	return out
}

// line is one line of an explanation; plain marks a statement that went
// on without waiting, which needs saying only when asked about.
type line struct {
	text  string
	plain bool
}

func (o *Observation) explain(q *Question) []line {
	var out []line
	add := func(s string) { out = append(out, line{text: s}) }
	switch {
	case o.Problem != "":
		add("could not run: " + o.Problem)
	case o.Timeout:
		add(fmt.Sprintf("nothing settled within %s: the server still had statements running", settleWithin))
	}
	if o.Cycle != nil {
		if o.Cycle.Distributed {
			add("A distributed deadlock: " + o.Cycle.String() + " — each server sees one wait behind a session idle in transaction; no server will break it.")
		} else {
			add("A deadlock: " + o.Cycle.String() + ".")
		}
		for _, e := range o.Cycle.Edges {
			if e.Why != "" {
				add("• " + e.Why)
			}
		}
	}
	if o.Victim != "" {
		add(fmt.Sprintf("The server broke it: %s was the victim (40P01, deadlock detected) and its transaction was rolled back; the others went on.", o.Victim))
	}
	for _, name := range o.order() {
		e, ended := o.Ended[name]
		switch {
		case ended && e.Err != nil && !(name == o.Victim):
			add(fmt.Sprintf("%s's %s failed: %s (SQLSTATE %s).", name, verb(e.SQL), e.Err.Message, e.Err.SQLState))
		case ended && e.Err == nil && o.BeganWaiting[name] && name != o.Victim:
			add(fmt.Sprintf("%s's %s waited, then went on%s.", name, verb(e.SQL), returned(e)))
		case ended && e.Err == nil && o.WasWaiting[name]:
			add(fmt.Sprintf("%s's %s, which was waiting, got its lock and went on%s.", name, verb(e.SQL), returned(e)))
		case ended && e.Err == nil && name != o.Victim:
			out = append(out, line{text: fmt.Sprintf("%s's %s went on without waiting%s.", name, verb(e.SQL), returned(e)), plain: true})
		}
		if who, waits := o.Waits[name]; waits && o.Cycle == nil {
			if edges := o.WaitEdges[name]; len(edges) > 0 {
				for _, e := range edges {
					add(e.Why)
				}
			} else {
				add(name + " waits for " + strings.Join(who, ", ") + ".")
			}
		}
	}
	if q != nil {
		for _, f := range o.facts(q) {
			add(f)
		}
	}
	return out
}

// facts are what the poll and the balances say about the claims a
// question makes about locks and books.
func (o *Observation) facts(q *Question) []string {
	var out []string
	done := map[string]bool{}
	for _, opt := range q.Options {
		c := opt.Claim
		key := ""
		var line string
		switch c.Kind {
		case Holds, HoldsNone:
			s := o.name(c.Session)
			if o.Snapshot == nil {
				continue
			}
			target := c.Table
			if c.Account > 0 {
				target = fmt.Sprintf("account %d", c.Account)
			}
			key = s + "|" + target
			held := o.held(s, Claim{Account: c.Account, Table: c.Table})
			switch {
			case len(held) == 0:
				line = fmt.Sprintf("The poll after it: %s holds no lock on %s.", s, target)
			case c.Account > 0:
				best, _ := strongest(held)
				rm, _ := locks.ParseRowMode(best)
				line = fmt.Sprintf("The poll after it: %s holds %s on %s (taken by %s).", s, best, target, rm.TakenBy())
			default:
				line = fmt.Sprintf("The poll after it: %s holds %s on %s.", s, strings.Join(held, " and "), target)
			}
		case Balance, BooksKept, BooksBroken:
			key = "books"
			if o.Books == nil || o.Books.Books == nil {
				line = "The balances could not be read."
				break
			}
			var bal []string
			for _, a := range o.Books.Accounts {
				bal = append(bal, fmt.Sprintf("account %d holds %s", a.ID, a.Balance.StringFixed(2)))
			}
			line = "Committed now: " + strings.Join(bal, ", ") + "; books: " + o.Books.Books.Summary() + "."
		case Faster, Same:
			key = "bench"
			var parts []string
			for _, name := range sortedStrategies(o.Bench) {
				parts = append(parts, fmt.Sprintf("%s %.0f transfers/s", name, o.Bench[name]))
			}
			line = "Measured: " + strings.Join(parts, ", ") + "."
		}
		if key != "" && !done[key] {
			done[key] = true
			out = append(out, line)
		}
	}
	return out
}

func sortedStrategies(m map[string]float64) []string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// order is the sessions in their run's order.
func (o *Observation) order() []string {
	var out []string
	for _, s := range o.Sessions {
		out = append(out, s.Name)
	}
	return out
}

// named puts each session's name after the "process N" a server message
// names.
func (o *Observation) named(msg string) string {
	names := map[string]string{}
	for _, p := range sim.Processes(msg, o.Sessions) {
		names[p.Pid] = p.Session
	}
	return processRE.ReplaceAllStringFunc(msg, func(s string) string {
		if name, ok := names[processRE.FindStringSubmatch(s)[1]]; ok {
			return s + " (" + name + ")"
		}
		return s
	})
}

// verb names a statement by its first words: "SELECT … FOR UPDATE", "UPDATE".
func verb(sql string) string {
	f := strings.Fields(sql)
	if len(f) == 0 {
		return "statement"
	}
	v := strings.ToUpper(f[0])
	u := strings.ToUpper(sql)
	for _, lock := range []string{"FOR NO KEY UPDATE", "FOR KEY SHARE", "FOR UPDATE", "FOR SHARE"} {
		if strings.Contains(u, lock) {
			suffix := ""
			if strings.Contains(u, "SKIP LOCKED") {
				suffix = " SKIP LOCKED"
			} else if strings.Contains(u, "NOWAIT") {
				suffix = " NOWAIT"
			}
			return v + " … " + lock + suffix
		}
	}
	return v
}

// returned is ", returning X" for a statement that returned a row.
func returned(e Ending) string {
	if !e.Row {
		return ""
	}
	col := ""
	if len(e.Columns) > 0 {
		col = e.Columns[0] + " = "
	}
	return ", returning " + col + e.Value
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
