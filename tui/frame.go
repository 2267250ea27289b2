package tui

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/sim"
)

// frame is everything the screen shows of the run at one moment: the live
// state, which the engine's events keep up to date, or a moment of the past
// in history mode. Frames share what does not change once made (snapshots,
// cycles), so keeping hundreds costs little.
type frame struct {
	at   time.Time
	what string // the event that made the frame, as the log words it
	gen  int
	// kind and code are the event's kind and, for an error, its SQLSTATE:
	// a replay jumps by them.
	kind sim.EventKind
	code string

	sessions []sim.SessionInfo
	snap     *locks.Snapshot
	// queues are the snapshot's lock queues worth drawing, drawn once per
	// poll rather than on every frame.
	queues []string
	// waitSince is when each waiting session began to wait: the newest wait
	// is the one the screen explains unless the user chose another.
	waitSince map[string]time.Time
	// cycle is a deadlock that stands; broken is the last one the server
	// broke, shown until the next step.
	cycle  *locks.Cycle
	broken *brokenDeadlock
	// unseen is the standing cycle the last poll no longer saw: the server
	// may have broken it, its 40P01 still on its way to the victim's
	// session, which then finds its cycle here.
	unseen *locks.Cycle
	// failed is the last statement failure (not a deadlock's) or session
	// the server ended, explained until the next step.
	failed *sim.Failure
	books  booksState
	// results are the rows each script statement returned, by session and
	// step.
	results map[resultKey]result
	// typed are the statements the user typed into each session, kept
	// while they may hold locks: until the session's transaction ends (the
	// last one stays, with its result, until the next statement).
	typed map[string][]typedStmt
	// lost is set while the observer cannot reach the server: what the
	// screen shows is then the last it knew, not live.
	lost    bool
	lostWhy string
	// seenBy is when the poll that saw this moment's event (a wait, a
	// cycle) began; zero for an event of a statement's own.
	seenBy time.Time
	// changedAt is when the last event that may have changed what the
	// ledger holds happened (a statement's end, a reset, a prepared
	// transaction finished): a read of the balances shows this moment only
	// when it began after that.
	changedAt time.Time
	logLen    int // how many log lines had been written
}

// brokenDeadlock is a deadlock the server broke: the cycle as it stood,
// its victim and the server's DETAIL, each process named with its session.
type brokenDeadlock struct {
	cycle  *locks.Cycle
	victim string
	detail string
}

// booksState is the last read of the balances, and why the last read
// failed if it did.
type booksState struct {
	accounts   []ledger.Account
	books      *ledger.Books
	byDatabase map[string][]ledger.Account
	problem    string
	read       bool
	// missing says a replay has no read of the balances for this moment:
	// the recording holds none begun after the moment's last change.
	missing bool
	// count is the ledger's size when accounts are only some of it, and
	// partial how its books were checked then.
	count   int
	partial string
}

type resultKey struct {
	session string
	step    int
}

// typedStmt is a statement typed into a session: where it ran (after how
// many of the script's statements), how it went, what it returned.
type typedStmt struct {
	sql   string
	after int
	state typedState
	res   *result
	err   *sim.ServerMessage
}

type typedState int

const (
	typedRunning typedState = iota
	typedWaiting
	typedDone
	typedFailed
)

// result is what a statement returned: a few of its rows and their count.
type result struct {
	sql     string
	columns []string
	rows    [][]string
	total   int
}

// emptyValue stands for a value whose text is empty (not NULL), which
// would otherwise show as nothing after "=".
const emptyValue = "(empty)"

// maxResultRows is how many rows of a result the screen keeps.
const maxResultRows = 3

// copy is the frame as it is now, to keep while the live one moves on.
func (f *frame) copy() frame {
	c := *f
	c.waitSince = make(map[string]time.Time, len(f.waitSince))
	for k, v := range f.waitSince {
		c.waitSince[k] = v
	}
	c.results = make(map[resultKey]result, len(f.results))
	for k, v := range f.results {
		c.results[k] = v
	}
	c.typed = make(map[string][]typedStmt, len(f.typed))
	for k, v := range f.typed {
		c.typed[k] = append([]typedStmt(nil), v...)
	}
	return c
}

// newestWait is the session that began to wait last, if any waits.
func (f *frame) newestWait() (string, bool) {
	name, at := "", time.Time{}
	for _, s := range f.sessions {
		if s.State != sim.Waiting {
			continue
		}
		if t, ok := f.waitSince[s.Name]; ok && (name == "" || t.After(at)) {
			name, at = s.Name, t
		}
	}
	return name, name != ""
}

// apply takes one engine event into the frame. It says whether the event
// is one the history keeps a frame for, and the log line it makes.
func (f *frame) apply(ev sim.Event) (keep bool, line logEntry) {
	f.at = ev.Time
	f.seenBy = time.Time{}
	if ev.Snapshot != nil && ev.Kind != sim.Polled {
		f.seenBy = ev.Snapshot.Taken // a wait or a cycle a poll saw
	}
	line = logEntry{at: ev.Time, who: ev.Session}
	switch ev.Kind {
	case sim.Completed, sim.Error, sim.ConnectionLost, sim.ResetDone, sim.Resolved:
		f.changedAt = ev.Time
	}
	switch ev.Kind {
	case sim.Polled:
		f.lost, f.lostWhy = false, ""
		f.show(ev.Snapshot)
		if f.cycle != nil && len(ev.Snapshot.Graph.Cycles) == 0 {
			// Broken by a timeout or a cancel — or by the server's check,
			// its 40P01 not yet come.
			f.cycle, f.unseen = nil, f.cycle
		}
		return false, logEntry{}
	case sim.BooksRead:
		f.books = readBooks(f.books, *ev.Books)
		return false, logEntry{}
	case sim.ObserverLost:
		f.lost, f.lostWhy = true, ev.Cause.Error()
		line.text, line.bad = "⚠ the observer lost the server: the screen shows the last it knew (r reconnects)", true
	case sim.ResetDone:
		*f = frame{at: ev.Time, gen: ev.Gen, sessions: f.sessions, books: f.books, changedAt: f.changedAt, waitSince: map[string]time.Time{}, results: map[resultKey]result{}}
		f.typed = nil
		line.text = "reset: sessions rolled back, ledger re-created"
	case sim.DeadlockFormed:
		line.text, line.bad = "⚠ deadlock: "+ev.Cycle.String(), true
		if ev.Cycle.Distributed {
			line.text = "⚠ distributed deadlock (no server sees it): " + ev.Cycle.String()
		}
		if f.standing(ev.Cycle) {
			f.cycle, f.broken, f.unseen = ev.Cycle, nil, nil
		} else if f.broken != nil && f.broken.cycle == nil {
			// The poll that saw the cycle ended after the server broke it:
			// the broken deadlock gets its drawing.
			f.broken.cycle = ev.Cycle
			line.text += " (seen as the server broke it)"
		}
	case sim.Notice:
		line.text = fmt.Sprintf("⚠ %s: %s", ev.Message.Severity, ev.Message.Message)
	default:
		if ev.Kind == sim.Started {
			f.unseen = nil // a new step: a 40P01 now is of a new cycle
		}
		f.sessions = patched(f.sessions, ev)
		switch ev.Kind {
		case sim.Completed, sim.Error, sim.ConnectionLost:
			if f.snap != nil {
				// Until the next poll, the last one's locks without the
				// wait this statement's end ended — and, when the server
				// aborted its transaction (an error, a session it ended),
				// without that transaction's locks — else the graph draws
				// a deadlock beside its victim's 40P01. A COMMIT's or a
				// PREPARE's locks wait for the poll (a prepared
				// transaction keeps them).
				f.show(f.snap.After(ev.Session, ev.Kind != sim.Completed && transactionOver(ev.State)))
			}
		}
		line = f.applyStatement(ev)
		if line.text == "" {
			return false, logEntry{}
		}
	}
	f.what, f.kind, f.code = line.text, ev.Kind, ""
	if ev.Err != nil {
		f.code = ev.Err.SQLState
	}
	return true, line
}

// show takes a snapshot of the locks, with the queues worth drawing.
func (f *frame) show(snap *locks.Snapshot) {
	f.snap = snap
	f.queues = f.queues[:0:0]
	for _, q := range snap.Queues() {
		if line, ok := queueLine(q); ok {
			f.queues = append(f.queues, line)
		}
	}
}

// transactionOver says whether a session in state st has no transaction
// open, or one the server aborted: either way it holds no locks (an
// aborted transaction's are released as it aborts, not at its ROLLBACK).
func transactionOver(st sim.State) bool {
	switch st {
	case sim.InTransaction, sim.Running, sim.Waiting:
		return false
	}
	return true
}

// standing says whether every waiter of the cycle still waits (a session
// the application makes wait, on its other connection, is not itself
// waiting on the server).
func (f *frame) standing(c *locks.Cycle) bool {
	for _, e := range c.Edges {
		if e.Application {
			continue
		}
		for _, s := range f.sessions {
			if s.Name == e.Waiter && s.State != sim.Waiting {
				return false
			}
		}
	}
	return true
}

// patched is the sessions as a statement's event leaves them: the engine
// reports its sessions once a burst of events is read, and a frame of
// history in the middle of the burst shows each as it stood then.
func patched(sessions []sim.SessionInfo, ev sim.Event) []sim.SessionInfo {
	if ev.Index < 0 || ev.Index >= len(sessions) {
		return sessions
	}
	out := append([]sim.SessionInfo(nil), sessions...)
	s := &out[ev.Index]
	s.State = ev.State
	switch ev.Kind {
	case sim.Started:
		s.Current, s.CurrentStep = ev.SQL, ev.Step
	case sim.WaitingForLock:
		s.Current, s.CurrentStep, s.BlockedBy = ev.SQL, ev.Step, ev.BlockedBy
	case sim.Completed, sim.Error, sim.ConnectionLost:
		s.Current, s.CurrentStep, s.BlockedBy = "", -1, nil
		if ev.Kind == sim.Completed && ev.Step >= 0 {
			s.Next = ev.Step + 1
		}
		if ev.Kind == sim.Error {
			s.LastErr, s.ErrAt = ev.Err, ev.Step
		}
		if ev.Kind == sim.ConnectionLost {
			s.Ended = ev.Err
		}
	}
	return out
}

// applyStatement takes a statement's event: started, waiting, ended.
func (f *frame) applyStatement(ev sim.Event) logEntry {
	line := logEntry{at: ev.Time, who: ev.Session}
	switch ev.Kind {
	case sim.Started:
		if !ev.Auto {
			f.broken, f.failed = nil, nil // a failure stays explained until the next step
		}
		if ev.Step < 0 && !ev.Auto {
			f.startTyped(ev)
		}
		if ev.Auto {
			line.text = "↺ " + ev.SQL + "  (" + sim.GivingUp(f.sessions, ev.Session) + ")"
		}
	case sim.WaitingForLock:
		if _, ok := f.waitSince[ev.Session]; !ok {
			f.waitSince[ev.Session] = ev.Time
		}
		line.text = "⏳ waits for " + strings.Join(ev.BlockedBy, ", ") + ": " + oneLine(ev.SQL)
		if t := f.lastTyped(ev); t != nil {
			t.state = typedWaiting
		}
	case sim.Completed:
		delete(f.waitSince, ev.Session)
		f.keepResult(ev)
		f.endTyped(ev)
		line.text = "✓ " + oneLine(ev.SQL)
		if ev.Tag != "" {
			line.text += "  → " + ev.Tag
		}
	case sim.Error:
		delete(f.waitSince, ev.Session)
		line.text, line.bad = fmt.Sprintf("✗ %s (SQLSTATE %s)", ev.Err.Message, ev.Err.SQLState), true
		f.endTyped(ev)
		if ev.Err.SQLState == pgerrcode.DeadlockDetected {
			cycle := f.cycle
			if cycle == nil && f.unseen != nil && slices.Contains(f.unseen.Sessions, ev.Session) {
				cycle = f.unseen // a poll saw the server's break before its 40P01 came
			}
			f.broken = &brokenDeadlock{cycle: cycle, victim: ev.Session, detail: namedProcesses(ev.Err.Detail, f.sessions)}
			f.cycle, f.unseen = nil, nil
		} else if ev.Failure != nil {
			f.failed = ev.Failure
		}
	case sim.ConnectionLost:
		delete(f.waitSince, ev.Session)
		line.text, line.bad = "✗ connection lost: "+ev.Cause.Error(), true
		if ev.Err != nil {
			line.text = fmt.Sprintf("✗ the server ended the session: %s %s (SQLSTATE %s); its locks are released", ev.Err.Severity, ev.Err.Message, ev.Err.SQLState)
		}
		if ev.Failure != nil {
			f.failed = ev.Failure
		}
		f.endTyped(ev)
	}
	return line
}

// startTyped keeps a statement the user typed, as it starts.
func (f *frame) startTyped(ev sim.Event) {
	after := 0
	if ev.Index >= 0 && ev.Index < len(f.sessions) {
		after = f.sessions[ev.Index].Next
	}
	if f.typed == nil {
		f.typed = map[string][]typedStmt{}
	}
	f.typed[ev.Session] = append(f.typed[ev.Session], typedStmt{sql: ev.SQL, after: after})
}

// lastTyped is the typed statement ev is about, if it is one.
func (f *frame) lastTyped(ev sim.Event) *typedStmt {
	ts := f.typed[ev.Session]
	if ev.Step >= 0 || ev.Auto || len(ts) == 0 {
		return nil
	}
	return &ts[len(ts)-1]
}

// endTyped takes a statement's end: a typed one's outcome; and when the
// session's transaction is over, the typed statements that ran in it go
// (their locks with them) — but the last, whose result the user reads.
func (f *frame) endTyped(ev sim.Event) {
	t := f.lastTyped(ev)
	if t != nil {
		switch ev.Kind {
		case sim.Completed:
			t.state = typedDone
		default:
			t.state = typedFailed
			t.err = ev.Err
		}
	}
	switch ev.State {
	case sim.InTransaction, sim.Aborted, sim.Running, sim.Waiting:
		return // the transaction goes on: what was typed in it may hold locks
	}
	if t != nil {
		f.typed[ev.Session] = []typedStmt{*t}
	} else {
		delete(f.typed, ev.Session)
	}
}

// keepResult keeps the rows a statement returned, a few of them.
func (f *frame) keepResult(ev sim.Event) {
	r := ev.LastRows()
	if r == nil || ev.Auto {
		return
	}
	kept := result{sql: ev.SQL, columns: r.Columns, total: len(r.Rows)}
	for i, row := range r.Rows {
		if i == maxResultRows {
			break
		}
		cells := make([]string, len(row))
		for j, v := range row {
			cells[j] = v
			switch {
			case i < len(r.Null) && j < len(r.Null[i]) && r.Null[i][j]:
				cells[j] = "NULL"
			case v == "":
				// A void function's value (pg_advisory_xact_lock) is empty
				// text: "→ pg_advisory_xact_lock =" read as cut.
				cells[j] = emptyValue
			}
		}
		kept.rows = append(kept.rows, cells)
	}
	if t := f.lastTyped(ev); t != nil {
		t.res = &kept
		return
	}
	f.results[resultKey{ev.Session, ev.Step}] = kept
}

// readBooks takes a read of the balances; one that failed keeps the last
// read and says why.
func readBooks(old booksState, b sim.Balances) booksState {
	switch {
	case errors.Is(b.Err, sim.ErrLedgerLocked):
		old.problem = "balances not read: a session holds the accounts table exclusively (shown as last read)"
	case errors.Is(b.Err, sim.ErrLedgerGone):
		old.problem = "balances not read: " + strings.TrimPrefix(b.Err.Error(), sim.ErrLedgerGone.Error()+": ") + " (r)"
	case b.Err != nil:
		old.problem = "balances not read: " + b.Err.Error()
	case b.ByDatabase != nil:
		return booksState{byDatabase: b.ByDatabase, read: true}
	default:
		return booksState{accounts: b.Accounts, books: b.Books, count: b.Count, partial: b.Partial, read: true}
	}
	return old
}

// releasedBy is the sessions as the poll that shows their moment found
// them: a session standing as waiting whose backend the poll found waiting
// no more — its blocker let it go (a ROLLBACK TO SAVEPOINT, a COMMIT) and
// its statement still runs, its end not yet read — stands as running, as
// the engine takes it; else the Sessions pane would say it waits for a
// session beside a Locks pane, drawn from the same poll, where it waits for
// nobody.
func releasedBy(sessions []sim.SessionInfo, snap *locks.Snapshot) []sim.SessionInfo {
	var out []sim.SessionInfo
	for i, s := range sessions {
		if s.State != sim.Waiting {
			continue
		}
		b, ok := snap.Backend(s.Name)
		if !ok || b.Waiting() || slices.ContainsFunc(snap.Graph.Edges, func(e locks.Edge) bool { return e.Waiter == s.Name }) ||
			slices.ContainsFunc(snap.Locks, func(l locks.Lock) bool { return l.Session == s.Name && !l.Granted }) {
			// Gone (its own event says so), or still waiting as the backend,
			// the graph or pg_locks has it: a poll reads them one after the
			// other, and a wait the deadlock check is ending may show in one
			// and not yet in another.
			continue
		}
		if out == nil {
			out = append([]sim.SessionInfo(nil), sessions...)
		}
		out[i].State, out[i].BlockedBy, out[i].Waits = sim.Running, nil, nil
	}
	if out == nil {
		return sessions
	}
	return out
}

// unrecorded marks the frames no read of the balances settled — a
// replay's, once every event is in: nothing will read them now. Those
// after the run's last change get the balances the run read at its end
// (end, from a headless run's outcome) when there are any; the others say
// that the recording has none for them, rather than show an older read as
// theirs or "reading".
func (h *history) unrecorded(end *sim.Outcome) {
	if h.unread >= len(h.frames) {
		return
	}
	last := h.frames[len(h.frames)-1].changedAt
	for i := h.unread; i < len(h.frames); i++ {
		fr := &h.frames[i]
		switch {
		case end != nil && fr.changedAt.Equal(last) && (end.Accounts != nil || end.ByDatabase != nil):
			fr.books = booksState{accounts: end.Accounts, books: end.Books, byDatabase: end.ByDatabase, read: true}
		default:
			fr.books = booksState{missing: true}
		}
	}
	h.unread = len(h.frames)
}

// maxHistory is how many frames history mode can go back through.
const maxHistory = 2000

// history is the frames the run went through, oldest first.
type history struct {
	frames []frame
	// limit is how many frames it keeps; 0 means maxHistory. A replay
	// keeps them all.
	limit int
	// unpolled and unread are the first frames no poll, and no read of the
	// balances, has followed yet.
	unpolled, unread int
}

// push keeps a frame; the oldest go past maxHistory. It returns how many
// went.
func (h *history) push(f frame) int {
	h.frames = append(h.frames, f)
	n := len(h.frames) - cmp.Or(h.limit, maxHistory)
	if n <= 0 {
		return 0
	}
	h.frames = h.frames[n:]
	h.unpolled, h.unread = max(0, h.unpolled-n), max(0, h.unread-n)
	return n
}

// settle gives the frames since the last poll (or read of the balances)
// what it found: each event's screen as it was once the event had been seen.
// A poll shows a moment only when it began after the moment's event (or
// was the poll that saw it: a wait, a cycle); a slow poll begun before it
// may show what came later — a wait not yet begun at that moment — so that
// moment waits for a later poll. A read of the balances shows a moment only
// when it began after the moment's last change (a statement's end): one
// begun before a COMMIT ended does not show that COMMIT's moment.
func (h *history) settle(live *frame, ev sim.Event) {
	switch ev.Kind {
	case sim.Polled:
		if live.snap == nil {
			return
		}
		taken := live.snap.Taken
		i := h.unpolled
		for ; i < len(h.frames); i++ {
			fr := &h.frames[i]
			if fr.at.After(taken) && (fr.seenBy.IsZero() || fr.seenBy.After(taken)) {
				break
			}
			fr.snap, fr.lost, fr.queues = live.snap, live.lost, live.queues
			fr.sessions = releasedBy(fr.sessions, live.snap)
		}
		h.unpolled = i
	case sim.BooksRead:
		// A read with no time (a test's, an old recording's) shows every
		// moment before it.
		var taken time.Time
		if ev.Books != nil {
			taken = ev.Books.Taken
		}
		i := h.unread
		for ; i < len(h.frames); i++ {
			if fr := &h.frames[i]; !taken.IsZero() && fr.changedAt.After(taken) {
				break
			}
			h.frames[i].books = live.books
		}
		h.unread = i
	}
}
