package sim

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"lockstep/ledger"
	"lockstep/locks"
)

// changed asks the observer for a poll now and, after it, a read of the
// balances: what a statement or a reset changed is reported after the event
// that says so, so a BooksRead taken after it follows every such event.
func (e *Engine) changed() {
	e.mu.Lock()
	e.booksStale = true
	e.mu.Unlock()
	if !e.cfg.Lean {
		e.kickObserver()
	}
}

// idleBeat is how often the observer polls while no statement of the run is
// in flight: to notice a lost server, not a change of locks.
const idleBeat = 5 * time.Second

// interval is how long the observer waits before the next poll, given what
// the last one cost the server: the configured interval, unless a poll takes more
// than a tenth of it — a server holding many locks — when it backs off to
// ten times the poll, so that polling never takes more than a tenth of the
// server's time. A wait is still reported within one interval, the one in force.
func (e *Engine) interval(took time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	// A running average, so one slow poll (the first, a busy moment) does
	// not change the pace.
	// The first polls are slower (plans, catalog caches): they do not count.
	e.pollsTimed++
	switch {
	case e.pollsTimed <= 2:
	case e.pollAvg == 0:
		e.pollAvg = took
	default:
		e.pollAvg = (7*e.pollAvg + 3*took) / 10
	}
	next := e.cfg.Poll
	e.pollEvery, e.pollTook = next, 0
	if avg := e.pollAvg; e.pollsTimed > 4 && avg*10 > next && avg >= slowPoll {
		next = (avg * 10).Round(10 * time.Millisecond)
		// A deadlock stands for deadlock_timeout before the server breaks
		// it: the interval stays short enough to see it twice.
		if dt := e.deadlockTimeout(); dt > 0 {
			next = min(next, dt/2)
		}
		next = max(next, e.cfg.Poll)
		if next > e.cfg.Poll {
			e.pollEvery, e.pollTook = next, avg
		}
	}
	return next
}

// slowPoll is the poll time from which the interval may grow: below it a
// poll costs the server too little to matter, whatever the interval (50,000
// locks held on the server make a poll take about 60 ms).
const slowPoll = 40 * time.Millisecond

// PollInterval is the interval in force and, when it is longer than the
// configured one, how long the last poll took.
func (e *Engine) PollInterval() (every, took time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pollEvery == 0 {
		return e.cfg.Poll, 0
	}
	return e.pollEvery, e.pollTook
}

// busy says whether a statement of the run is in flight.
func (e *Engine) busy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sessions {
		if s.state.Busy() {
			return true
		}
	}
	return false
}

// kickObserver asks for a poll now (after a step), without blocking.
func (e *Engine) kickObserver() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// observe polls on a timer and right after every step. While a statement
// runs whose fate is unknown — neither finished nor reported waiting — it
// polls again soon, backing off towards the interval, so a wait is reported
// well within one interval of starting. After a poll that follows a
// statement's end it reads the balances, when the config asks for them.
func (e *Engine) observe() {
	defer close(e.obsDone)
	const firstRetry = 2 * time.Millisecond
	retry := firstRetry
	timer := time.NewTimer(e.cfg.Poll)
	defer timer.Stop()
	if e.onDemand() {
		timer.Stop() // the first poll is the first asked for
	}
	lost := false
	for {
		select {
		case <-e.closing:
			return
		case <-e.kick:
			retry = firstRetry
		case <-timer.C:
		}
		e.mu.Lock()
		gen := e.gen
		seqs := make([]int, len(e.sessions))
		for i, s := range e.sessions {
			seqs[i] = s.seq
		}
		readBooks := e.cfg.Books && e.booksStale && e.cfg.HasLedger()
		e.booksStale = false
		e.mu.Unlock()
		if e.onDemand() {
			e.reconnectObservers() // the first poll asked for connects the observer
		}
		polledAt := time.Now()
		snap, err := e.poll()
		next := e.interval(e.serverTime())
		switch {
		case err == nil:
			lost = false
			switch {
			case e.apply(gen, seqs, snap, polledAt) && !e.cfg.Lean:
				next = min(retry, next)
				retry *= 2
			case e.cfg.OnDemand || !e.busy():
				// No statement of the run is in flight: nothing of its locks
				// can change until the next step, which asks for a poll. A
				// view that asks for every poll it needs gets no others.
				next = idleBeat
			}
		case e.ctx.Err() != nil:
			return
		default:
			// A server went away: say so once, and try again on every beat,
			// so that the views recover by themselves once it is back.
			if !lost {
				lost = true
				e.emit(Event{Gen: gen, Kind: ObserverLost, Index: -1, Step: -1, Cause: err})
			}
			e.reconnectObservers()
		}
		if readBooks {
			e.emitBooks(gen)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// emitBooks reads the balances and sends them as a BooksRead event.
func (e *Engine) emitBooks(gen int) {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	b := e.ReadBalances(ctx)
	e.emit(Event{Gen: gen, Kind: BooksRead, Index: -1, Step: -1, Books: &b})
}

// apply takes a snapshot into the sessions' states and reports new waits and
// new cycles. A session is waiting only when the server says so. It returns
// true while some running statement is neither done nor known to wait.
func (e *Engine) apply(gen int, seqs []int, snap *locks.Snapshot, polledAt time.Time) (unsettled bool) {
	var out []Event
	e.mu.Lock()
	e.polls++
	e.lastSnap = snap
	e.cond.Broadcast()
	if e.cfg.SessionDB != nil && e.cfg.SessionDB.Pooled() {
		// Through a pooler a session is named by the server connection it
		// uses now, which may hold what another client took: a lock that
		// outlives the transaction (a session-level advisory lock). A
		// transaction's own locks stay with the client that holds the
		// connection for that transaction, and need no such word.
		for i := range snap.Graph.Edges {
			if ed := &snap.Graph.Edges[i]; !ed.Application &&
				(ed.Claim.Release == locks.AtAdvisoryUnlock || ed.Claim.Release == locks.AtSessionEnd) {
				ed.Why += fmt.Sprintf(" — through the pooler, %s is only whoever uses that server connection now: "+
					"a session-level lock stays with the connection, whichever client took it, and an unlock from any client on that connection counts", ed.Holder)
			}
		}
	}
	if gen != e.gen {
		e.mu.Unlock()
		return true // a reset happened mid-poll; look again
	}
	for i, s := range e.sessions {
		if e.gone(s, seqs[i], snap, polledAt) {
			continue // its worker reports the loss
		}
		if !s.state.Busy() || s.seq != seqs[i] || s.current == "" {
			continue
		}
		b, ok := snap.Backend(s.name)
		if !ok || (!b.Waiting() && !waitsThroughApplication(snap, s.name)) {
			if s.state == Waiting {
				s.state = Running // the wait is over but the statement is still going
			}
			if !s.waited {
				unsettled = true
			}
			continue
		}
		var edges []locks.Edge
		var blockers []string
		for _, ed := range snap.Graph.Edges {
			if ed.Waiter == s.name {
				edges = append(edges, ed)
				blockers = append(blockers, ed.Holder)
			}
		}
		sort.Strings(blockers)
		key := strings.Join(blockers, ",")
		for _, ed := range edges {
			key += "|" + ed.Label()
		}
		s.state = Waiting
		if key == s.waitKey {
			continue
		}
		s.waitKey, s.blockedBy, s.waits, s.waited = key, blockers, edges, true
		out = append(out, Event{Gen: gen, Kind: WaitingForLock, Session: s.name, Index: s.idx, Step: s.curStep,
			SQL: s.current, BlockedBy: blockers, Waits: edges, State: Waiting, Duration: time.Since(s.startedAt), Snapshot: snap})
	}
	for ci := range snap.Graph.Cycles {
		if snap.Graph.Cycles[ci].Distributed {
			e.lockTimeoutBreak(&snap.Graph.Cycles[ci])
		} else {
			e.deadlockBreak(&snap.Graph.Cycles[ci])
		}
		c := snap.Graph.Cycles[ci]
		if !e.allWait(c) {
			// A poll begun before a waiter's step was sent sees its wait
			// but cannot yet say it waits: the next poll reports the cycle,
			// after that waiter's wait, so that no view shows a deadlock
			// whose waiter it still shows running.
			continue
		}
		if key := c.String(); !e.seenCycle[key] {
			e.seenCycle[key] = true
			out = append(out, Event{Gen: gen, Kind: DeadlockFormed, Index: -1, Step: -1, Cycle: &c, Snapshot: snap})
		}
	}
	e.mu.Unlock()
	for _, ev := range out {
		ev.Time = snap.Taken
		e.emit(ev)
	}
	e.emit(Event{Gen: gen, Kind: Polled, Index: -1, Step: -1, Time: snap.Taken, Snapshot: snap})
	return unsettled
}

// errBackendGone is why a session with no statement in flight lost its
// connection: its backend is no longer on the server.
var errBackendGone = errors.New("the server ended the session while no statement ran: its backend is gone, and with it its transaction and its locks")

// gone says whether session s, with no statement in flight, has lost its
// backend — its idle_in_transaction_session_timeout ran out, or an
// administrator ended it — which the server shows by no longer listing it;
// it then stands as failed (no connection) in every view, not "in
// transaction", and its worker reports the loss with the server's FATAL. Only a poll that began after the session connected
// judges; a lean run (the isolation tester's) finds out, as the tester
// does, when it next sends a step. e.mu is held.
func (e *Engine) gone(s *session, seq int, snap *locks.Snapshot, polledAt time.Time) bool {
	if e.cfg.Lean || s.state.Busy() || s.state == Failed || s.pid == 0 || s.seq != seq || !s.connectedAt.Before(polledAt) {
		return false
	}
	if _, ok := snap.Backend(s.name); ok {
		return false
	}
	s.state, s.current, s.blockedBy, s.waits, s.waitKey = Failed, "", nil, nil, ""
	s.settled++ // its event follows, as a statement's end's would
	s.reaping = true
	e.cond.Broadcast()
	// The session's worker reads the server's last word and reports the
	// loss; a goroutine hands it the job, for the worker may be busy with
	// a control job that waits on this poll.
	j := ctlJob{kind: ctlReap, ctx: e.ctx, done: make(chan error, 1), gen: e.gen}
	go func() {
		select {
		case s.ctl <- j:
		case <-e.closing:
		}
	}()
	return true
}

// lockTimeoutBreak works out whether and when a lock_timeout ends a
// distributed deadlock: the first waiter whose timeout runs out fails with
// 55P03; e.mu is held.
func (e *Engine) lockTimeoutBreak(c *locks.Cycle) {
	for _, ed := range c.Edges {
		if ed.Application || ed.Lock == nil || ed.Lock.WaitStart == nil {
			continue
		}
		for _, s := range e.sessions {
			if s.name != ed.Waiter || s.lockTimeout <= 0 {
				continue
			}
			at := ed.Lock.WaitStart.Add(s.lockTimeout)
			if c.BreakAt == nil || at.Before(*c.BreakAt) {
				c.BreakAt, c.LikelyVictim, c.LockTimeout = &at, s.name, s.lockTimeout
			}
		}
	}
}

// deadlockBreak works out when the server's deadlock check will find the
// cycle, with each waiter's own deadlock_timeout: a waiter runs the check
// once, its own timeout after its wait began, and a check before the cycle
// closed finds nothing. The observer's guess uses the server's default;
// the sessions may have set their own (SET deadlock_timeout). e.mu is held.
func (e *Engine) deadlockBreak(c *locks.Cycle) {
	closed := c.Closed()
	if closed.IsZero() {
		return
	}
	var best time.Time
	victim := ""
	var checks []locks.DeadlockCheck
	for _, ed := range c.Edges {
		s := e.byName(ed.Waiter)
		if s == nil || s.deadlockTimeout <= 0 {
			return // not a session of ours: keep the observer's guess
		}
		at := ed.Lock.WaitStart.Add(s.deadlockTimeout)
		checks = append(checks, locks.DeadlockCheck{Waiter: ed.Waiter, At: at, Timeout: s.deadlockTimeout})
		if !at.Before(closed) && (victim == "" || at.Before(best)) {
			best, victim = at, ed.Waiter
		}
	}
	if victim != "" {
		c.BreakAt, c.LikelyVictim, c.Checks = &best, victim, checks
	}
}

// allWait says whether every waiter of c that is a session of ours is
// known to wait (a session the application makes wait, on its other
// connection, is not itself waiting on the server); e.mu is held.
func (e *Engine) allWait(c locks.Cycle) bool {
	for _, ed := range c.Edges {
		if ed.Application {
			continue
		}
		if s := e.byName(ed.Waiter); s != nil && s.state != Waiting {
			return false
		}
	}
	return true
}

// byName is the session named name, or nil; e.mu is held.
func (e *Engine) byName(name string) *session {
	for _, s := range e.sessions {
		if s.name == name {
			return s
		}
	}
	return nil
}

// poll reads every database's locks and merges them: in a two-database run
// the merged graph carries the application's edges between them.
func (e *Engine) poll() (*locks.Snapshot, error) {
	e.mu.Lock()
	obs := make([]*locks.Observer, len(e.sides))
	for i, sd := range e.sides {
		if sd.obs == nil {
			e.mu.Unlock()
			return nil, fmt.Errorf("observing %s: %w", sd.what(), errNoObserver)
		}
		obs[i] = sd.obs
		if ok, _ := sd.obs.RowLocksAvailable(); !ok && e.cfg.Scenario == nil {
			var rows []locks.RowLock
			for _, s := range e.sessions {
				if s.side == sd {
					rows = append(rows, s.inferredRowLocks()...)
				}
			}
			sd.obs.Infer(rows)
		}
		if e.cfg.AppName != nil {
			byPid := map[int32]string{}
			for _, s := range e.sessions {
				if s.side == sd && s.pid != 0 {
					byPid[s.pid] = s.name
				}
			}
			sd.obs.Named(byPid)
		}
	}
	own := make(map[string]bool, len(e.sessions))
	for _, s := range e.sessions {
		own[s.name] = true
	}
	e.mu.Unlock()
	snaps := make([]*locks.Snapshot, len(obs))
	for i, o := range obs {
		snap, err := o.Poll(e.ctx)
		if err != nil {
			return nil, err
		}
		markRemoteParts(snap, own)
		snaps[i] = snap
	}
	return locks.Merge(snaps...), nil
}

// inferredRowLocks are the row locks the session's open transaction holds by
// the transfer statements it has run, strongest per account: an entry's
// foreign-key check (and a transfer's two) takes FOR KEY SHARE on its account, SELECT … FOR UPDATE
// (or FOR NO KEY UPDATE) that mode, an UPDATE of the balance FOR NO KEY
// UPDATE. An aborted transaction has released them; typed SQL is not
// counted. e.mu is held.
func (s *session) inferredRowLocks() []locks.RowLock {
	ls, ok := s.script.(*ledger.Script)
	if !ok || s.pid == 0 {
		return nil
	}
	switch s.state {
	case InTransaction, Running, Waiting:
	default:
		return nil
	}
	strongest := map[int64]locks.RowMode{}
	var order []int64
	take := func(account int64, mode locks.RowMode) {
		cur, seen := strongest[account]
		if !seen {
			order = append(order, account)
		}
		if !seen || mode > cur {
			strongest[account] = mode
		}
	}
	for _, st := range ls.Statements[:min(s.next, len(ls.Statements))] {
		switch {
		case st.Kind == ledger.InsertTransfer: // its two foreign keys to accounts
			take(st.Transfer.From, locks.ForKeyShare)
			take(st.Transfer.To, locks.ForKeyShare)
		case st.Kind == ledger.InsertEntry:
			take(st.Account, locks.ForKeyShare)
		case st.Kind == ledger.ReadBalance && st.Lock == "FOR UPDATE":
			take(st.Account, locks.ForUpdate)
		case st.Kind == ledger.ReadBalance && st.Lock == "FOR NO KEY UPDATE":
			take(st.Account, locks.ForNoKeyUpdate)
		case st.Kind == ledger.SetBalance, st.Kind == ledger.AddBalance:
			take(st.Account, locks.ForNoKeyUpdate)
		}
	}
	out := make([]locks.RowLock, 0, len(order))
	for _, acc := range order {
		out = append(out, locks.RowLock{Account: acc, Pid: s.pid, Session: s.name, Mode: strongest[acc], Inferred: true})
	}
	return out
}

// errNoObserver says the observer's connection is not there (yet).
var errNoObserver = errors.New("the observer has no connection")

// onDemand says whether the observer connects at the first poll asked for
// (Config.OnDemand, with Lean).
func (e *Engine) onDemand() bool { return e.cfg.Lean && e.cfg.OnDemand }

// reconnectObservers replaces lost observer connections, and makes those
// not made yet, where the server answers.
func (e *Engine) reconnectObservers() {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	for _, sd := range e.sides {
		if sd.obsConn != nil && !sd.obsConn.IsClosed() {
			continue
		}
		conn, obs, err := sd.newObserver(ctx, e.cfg.usesTwoPhaseCommit(), e.cfg.Lean, e.cfg.Scenario != nil)
		if err != nil {
			continue
		}
		e.opened.Add(1)
		e.mu.Lock()
		old := sd.obsConn
		sd.obsConn, sd.obs = conn, obs
		e.mu.Unlock()
		if old != nil {
			old.Close(ctx)
		}
	}
}

// markRemoteParts marks the run's backends that none of its sessions
// opened but that share a session's logical name (T2@B beside T2@A): the
// postgres_fdw connections its statements made, named by
// postgres_fdw.application_name.
func markRemoteParts(snap *locks.Snapshot, own map[string]bool) {
	logical := map[string]bool{}
	for name := range own {
		logical[locks.Logical(name)] = true
	}
	for i := range snap.Backends {
		b := &snap.Backends[i]
		if b.Prepared == "" && strings.Contains(b.Session, "@") && !own[b.Session] && logical[locks.Logical(b.Session)] {
			b.RemotePart = true
		}
	}
}

// waitsThroughApplication says whether a session's running statement waits
// for another connection of its logical session, which no server sees: a
// postgres_fdw statement waiting for its remote part (T1@A for T1@B).
func waitsThroughApplication(snap *locks.Snapshot, session string) bool {
	b, ok := snap.Backend(session)
	if !ok || b.State != "active" {
		return false
	}
	for _, e := range snap.Graph.Edges {
		if e.Application && e.Waiter == session {
			return true
		}
	}
	return false
}

// serverTime is what the last poll cost the servers, as each measured its
// own query; the observe loop calls it, after e.poll.
func (e *Engine) serverTime() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var t time.Duration
	for _, sd := range e.sides {
		if sd.obs != nil {
			t += sd.obs.ServerTime()
		}
	}
	return t
}

// deadlockTimeout is the server's deadlock_timeout, as the first database's
// observer read it; e.mu is held.
func (e *Engine) deadlockTimeout() time.Duration {
	if len(e.sides) == 0 || e.sides[0].obs == nil {
		return 0
	}
	return e.sides[0].obs.DeadlockTimeout()
}
