package isolation

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"lockstep/locks"
	"lockstep/scenario"
	"lockstep/sim"
)

// player plays permutations on the engine the way the isolation tester
// does: each step is sent, then reported done or waiting — waiting only when
// the server says so — and earlier waiting steps that have finished are
// reported after it, in the order they began to wait.
type player struct {
	r     *Runner
	spec  *scenario.Spec
	out   *bufio.Writer // the Runner's Out, written at the points flush names
	eng   *sim.Engine
	index map[*scenario.Session]int

	active  []*active // by session: the step sent whose completion is not yet printed
	waiting []*active // steps reported waiting, in the order they began to wait
	notices []int64   // by session: notices printed
	// pending are notices that arrived while their session's step was out of
	// the tester's sight: it prints a connection's notices when it next
	// reads from it, while it checks that session's step.
	pending [][]notice
	snap    *locks.Snapshot
	// checking is the step whose session the player is reading from, as
	// the tester does in try_complete_step: its notices print as they come.
	checking *active
	// onDemand: the player asks the server whether a step waits itself
	// (Engine.Blocked), and for a poll only to look for deadlocks; a run
	// a tap records is observed throughout instead.
	onDemand bool
	// stuckSince is when the server first said, in this stretch, that every
	// running step waits and no deadlock is there to be broken.
	stuckSince time.Time
	// calls feeds the goroutine that runs the engine's blocking calls
	// (await), kept from one call to the next.
	calls chan func()
	// timer times the pauses (handleFor).
	timer *time.Timer
	// conclude: whether a wait may be reported without the tester's pause
	// (mayConclude): 0 not yet known, 1 yes, -1 no.
	conclude int
}

// active is a step sent to the server whose completion is not yet printed.
type active struct {
	ps      scenario.PermutationStep
	sess    int
	end     *sim.Event    // its Completed, Error or ConnectionLost, once it came
	target  map[int]int64 // notices blockers: counts to reach, by session
	waiting bool          // " <waiting ...>" has been printed
}

// handle takes one engine event into the player's state, printing what the
// tester prints as it happens: notices, and the results of setup and
// teardown blocks.
func (p *player) handle(ev sim.Event) {
	if p.r.Tap != nil {
		p.r.Tap(p.eng, ev)
	}
	switch ev.Kind {
	case sim.Polled:
		p.snap = ev.Snapshot
	case sim.Completed, sim.Error, sim.ConnectionLost:
		if a := p.activeIn(ev.Index); a != nil && a.end == nil {
			a.end = &ev
		}
	case sim.Notice:
		p.pending[ev.Index] = append(p.pending[ev.Index], notice{ev.Message, ev.SQL})
		if p.activeIn(ev.Index) == nil || p.checking == p.activeIn(ev.Index) {
			p.printNotices(ev.Index)
		}
	case sim.BlockRan:
		p.printBlock(ev)
	case sim.Stalled:
		if ev.Stall == sim.WaitsOnOpenTransaction {
			what := "setup"
			if ev.Block.Teardown {
				what = "teardown"
			}
			if ev.Block.Session != "" {
				what += " of session " + ev.Block.Session
			}
			fmt.Fprintf(p.out, "lockstep: the %s waits for session %s, which the permutation left inside a transaction "+
				"that nothing will end: rolling it back\n", what, p.spec.Sessions[ev.Index].Name)
		}
	}
}

// notice is a notice waiting to be printed, with the statement it came
// during (its position points into it).
type notice struct {
	msg *sim.ServerMessage
	sql string
}

// printNotices prints session i's pending notices.
func (p *player) printNotices(i int) {
	for _, n := range p.pending[i] {
		p.notices[i]++
		fmt.Fprintf(p.out, "%s: %s", p.spec.Sessions[i].Name, libpqText(n.msg, n.sql, false))
	}
	p.pending[i] = p.pending[i][:0]
}

func (p *player) activeIn(i int) *active {
	if i < 0 || i >= len(p.active) {
		return nil
	}
	return p.active[i]
}

// printBlock prints a setup or teardown block's last result, as PQexec
// leaves it, or a failed teardown on the tester's standard error (a failed
// setup is the caller's to print).
func (p *player) printBlock(ev sim.Event) {
	if ev.Err != nil {
		switch {
		case !ev.Block.Teardown:
		case ev.Block.Session != "":
			fmt.Fprintf(p.errOut(), "teardown of session %s failed: %s", ev.Block.Session, libpqText(ev.Err, ev.SQL, true))
		default:
			fmt.Fprintf(p.errOut(), "teardown failed: %s", libpqText(ev.Err, ev.SQL, true))
		}
		return
	}
	if n := len(ev.Results); n > 0 && ev.Results[n-1].Columns != nil {
		r := ev.Results[n-1]
		WriteResultSet(p.out, r.Columns, r.Rows, r.Null)
	}
}

// next waits for the engine's next event and handles it.
func (p *player) next(ctx context.Context) error {
	select {
	case ev, ok := <-p.eng.Events():
		if !ok {
			return errors.New("the engine closed")
		}
		p.handle(ev)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// play runs one permutation's steps.
func (p *player) play(ctx context.Context, perm scenario.Permutation) error {
	p.active = make([]*active, len(p.spec.Sessions))
	p.notices = make([]int64, len(p.spec.Sessions))
	p.pending = make([][]notice, len(p.spec.Sessions))
	defer func() {
		for i := range p.pending {
			p.printNotices(i)
		}
	}()
	p.waiting, p.stuckSince = nil, time.Time{}
	for _, ps := range perm.Steps {
		se := p.index[ps.Step.Session]
		// A session still busy with a waiting step must finish it first.
		for p.active[se] != nil {
			progress, err := p.tryComplete(ctx, p.active[se], false, true)
			if err != nil {
				return err
			}
			before := len(p.waiting)
			if err := p.completeWaiting(ctx, true); err != nil {
				return err
			}
			if !progress && len(p.waiting) == before && p.heldByAnnotation(p.active[se]) && p.stuckFor() {
				return p.fail()
			}
		}
		p.removeDone()
		a, err := p.launch(ps)
		if err != nil {
			return err
		}
		done, err := p.tryComplete(ctx, a, true, false)
		if err != nil {
			return err
		}
		if err := p.completeWaiting(ctx, true); err != nil {
			return err
		}
		if !done {
			p.waiting = append(p.waiting, a)
		}
	}
	for len(p.waiting) > 0 {
		before := len(p.waiting)
		if err := p.completeWaiting(ctx, false); err != nil {
			return err
		}
		if len(p.waiting) == before && p.stuckFor() {
			return p.fail()
		}
	}
	return nil
}

func (p *player) fail() error {
	fmt.Fprintf(p.out, "%s\n", ErrStuck)
	return ErrStuck
}

// stuckFor says whether nothing has changed for StuckAfter; it is only asked
// when a pass made no progress.
func (p *player) stuckFor() bool {
	if p.stuckSince.IsZero() {
		p.stuckSince = time.Now()
		return false
	}
	p.flush()
	time.Sleep(10 * time.Millisecond)
	return time.Since(p.stuckSince) > p.r.stuckAfter()
}

func (r *Runner) stuckAfter() time.Duration {
	if r.StuckAfter > 0 {
		return r.StuckAfter
	}
	return 2 * time.Second
}

func (p *player) removeDone() {
	var keep []*active
	for _, a := range p.waiting {
		if p.active[a.sess] == a {
			keep = append(keep, a)
		}
	}
	p.waiting = keep
}

// launch sends a step to its session.
func (p *player) launch(ps scenario.PermutationStep) (*active, error) {
	se := p.index[ps.Step.Session]
	a := &active{ps: ps, sess: se, target: map[int]int64{}}
	for _, b := range ps.Blockers {
		if b.Step != nil && b.HasNotices {
			other := p.index[b.Step.Session]
			a.target[other] = p.notices[other] + int64(b.Notices)
		}
	}
	if err := p.eng.Exec(se, ps.Step.SQL); err != nil {
		return nil, fmt.Errorf("sending step %s: %w", ps.Step.Name, err)
	}
	p.active[se] = a
	p.stuckSince = time.Time{}
	return a, nil
}

// heldByAnnotation says whether a finished step is held back by a blocker
// annotation: step(other) while other runs, step(other notices N) until
// other's session has sent N more notices.
func (p *player) heldByAnnotation(a *active) bool {
	for _, b := range a.ps.Blockers {
		if b.Star || b.Step == nil {
			continue
		}
		other := p.index[b.Step.Session]
		if b.HasNotices {
			if p.notices[other] < a.target[other] {
				return true
			}
			continue
		}
		if o := p.active[other]; o != nil && o.ps.Step == b.Step {
			return true
		}
	}
	return false
}

func hasStar(a *active) bool {
	for _, b := range a.ps.Blockers {
		if b.Star {
			return true
		}
	}
	return false
}

func (p *player) printWaiting(a *active) {
	if !a.waiting {
		p.line("step ", a.ps.Step.Name, ": ", a.ps.Step.SQL, " <waiting ...>")
		a.waiting = true
		p.flush()
	}
}

// line prints parts and a newline: the lines printed for every step, with
// no formatting to do.
func (p *player) line(parts ...string) {
	for _, s := range parts {
		_, _ = p.out.WriteString(s) // an error stays in the writer: Run returns it
	}
	_ = p.out.WriteByte('\n')
}

// flush writes out what the player has printed. The output is written a
// permutation at a time — a line at a time cost a system call a line, as
// many as the statements — and also whenever a step takes longer than the
// tester's 10 ms pause or is seen waiting (a reader sees what came before a
// slow step while it runs), before anything goes to the standard error,
// and at the end.
func (p *player) flush() {
	_ = p.out.Flush() // an error stays in the writer: Run returns it
}

// errOut is where the tester's standard error goes, what the standard
// output holds written out first (the two may be one file).
func (p *player) errOut() io.Writer {
	if p.r.Err == nil {
		return p.out
	}
	p.flush()
	return p.r.Err
}

// serverSaysWaiting asks the engine's observer for a poll taken now and
// waits for it (or for the step's end): whether the step's backend waits,
// for a lock or a safe snapshot, as the server says.
// Unless a tap records the run, it asks the tester's own question on the
// engine's control connection (Engine.Blocked): one round trip, with no
// observer between.
func (p *player) serverSaysWaiting(ctx context.Context, a *active) (bool, error) {
	if p.onDemand {
		blocked, err := p.eng.Blocked(ctx, a.sess)
		if err != nil {
			return false, err
		}
		// As the tester reads what arrived while it asked (PQconsumeInput
		// after its lock-wait query): what the server sent the session
		// before the answer — notices from before the wait began, or the
		// step's end — is on its socket; the session's worker reads it
		// before the player goes on.
		if err := p.readSent(ctx, a); err != nil {
			return false, err
		}
		return blocked && a.end == nil, nil
	}
	if err := p.freshSnapshot(ctx, a); err != nil || a.end != nil {
		return false, err
	}
	b, ok := p.snap.Backend(p.eng.SessionName(a.sess))
	if !ok || !p.blockedBySessions(b) {
		return false, nil
	}
	if err := p.drain(ctx); err != nil {
		return false, err
	}
	return a.end == nil, nil
}

// readSent lets a's session worker read what waits on its socket, taking
// the events it sends, until nothing is left unread (or a's step ended);
// where unread bytes cannot be counted, it takes what comes within a
// moment.
func (p *player) readSent(ctx context.Context, a *active) error {
	for tries := 0; a.end == nil && tries < 200; tries++ {
		n := p.eng.Unread(a.sess)
		if n == 0 {
			break
		}
		if err := p.handleFor(ctx, a, time.Millisecond); err != nil {
			return err
		}
		if n < 0 {
			break // could not count: a moment was all it gets
		}
	}
	return p.drain(ctx)
}

// freshSnapshot asks the observer for a poll and waits for it, or for a's
// end (a may be nil).
func (p *player) freshSnapshot(ctx context.Context, a *active) error {
	since := time.Now()
	p.eng.PollNow()
	for a == nil || a.end == nil {
		if err := p.next(ctx); err != nil {
			return err
		}
		if p.snap != nil && !p.snap.Taken.Before(since) {
			return nil
		}
	}
	return nil
}

// blockedBySessions says whether the server says b waits for one of the
// spec's own sessions — for a lock, through a parallel worker, or for a
// safe snapshot — which is what the tester asks
// (pg_isolation_test_session_is_blocked): a wait on anything else, such as
// a prepared transaction or autovacuum, is not a step waiting.
func (p *player) blockedBySessions(b locks.Backend) bool {
	if !b.Waiting() {
		return false
	}
	ours := map[int32]bool{}
	for _, pid := range p.eng.Pids() {
		ours[pid] = true
	}
	for _, pid := range slices.Concat(b.BlockedBy, b.SafeSnapshotBlockedBy) {
		if ours[pid] {
			return true
		}
	}
	return false
}

// allStuck says whether, in the latest poll, every running step waits and
// no deadlock is there for the server to break. A view on demand asks the
// server whether each running step waits first, and for a poll (its
// cycles) only when all do.
func (p *player) allStuck(ctx context.Context) (bool, error) {
	if p.onDemand {
		for _, o := range p.active {
			if o == nil || o.end != nil {
				continue
			}
			if blocked, err := p.eng.Blocked(ctx, o.sess); err != nil || !blocked {
				return false, err
			}
		}
		if err := p.freshSnapshot(ctx, nil); err != nil {
			return false, err
		}
	}
	if p.snap == nil || len(p.snap.Graph.Cycles) > 0 {
		return false, nil
	}
	for _, o := range p.active {
		if o != nil && o.end == nil {
			if b, ok := p.snap.Backend(p.eng.SessionName(o.sess)); !ok || !p.blockedBySessions(b) {
				return false, nil
			}
		}
	}
	return true, nil
}

// tryComplete collects a step's end if it is there — waiting for it unless
// nonblock, and in nonblock mode giving up once the server says the step
// waits — and prints its completion unless an annotation holds it back.
// retry marks a step reported waiting before: its completion prints as
// "<... completed>".
func (p *player) tryComplete(ctx context.Context, a *active, nonblock, retry bool) (bool, error) {
	if !retry && hasStar(a) {
		p.printWaiting(a)
		return false, nil
	}
	p.checking = a
	defer func() { p.checking = nil }()
	p.printNotices(a.sess)
	if nonblock && a.end == nil {
		waits, err := p.waitsSettled(ctx, a, retry)
		if err != nil {
			return false, err
		}
		if waits {
			if !retry {
				p.printWaiting(a)
			}
			return false, nil
		}
	}
	for a.end == nil {
		// As the tester does, give the step a moment to finish before asking
		// the server whether it waits.
		if err := p.pause(ctx, a); err != nil {
			return false, err
		}
		if a.end != nil {
			break
		}
		// A step that takes longer than the pause: what is printed so far
		// goes out now, not when the permutation ends.
		p.flush()
		waits, err := p.serverSaysWaiting(ctx, a)
		if err != nil {
			return false, err
		}
		if a.end != nil {
			break
		}
		if nonblock && waits {
			if !retry {
				p.printWaiting(a)
			}
			return false, nil
		}
		stuck := false
		if !nonblock && waits {
			if stuck, err = p.allStuck(ctx); err != nil {
				return false, err
			}
		}
		if stuck {
			// Every running step waits and no deadlock will end a wait:
			// nothing can move. Cancel this one, as the isolation tester
			// does when a step exceeds its time.
			if p.stuckSince.IsZero() {
				p.stuckSince = time.Now()
			} else if time.Since(p.stuckSince) > p.r.stuckAfter() {
				fmt.Fprintf(p.out, "lockstep: canceling step %s: it waits and nothing will release its lock\n", a.ps.Step.Name)
				_ = p.eng.Cancel(ctx, a.sess)
				p.stuckSince = time.Time{}
			}
		}
	}
	if p.heldByAnnotation(a) {
		if !retry {
			p.printWaiting(a)
		}
		return false, nil
	}
	if retry {
		p.line("step ", a.ps.Step.Name, ": <... completed>")
	} else {
		p.line("step ", a.ps.Step.Name, ": ", a.ps.Step.SQL)
	}
	p.printEnd(*a.end)
	p.active[a.sess] = nil
	return true, nil
}

// waitsSettled says whether the server says a's step waits where nothing
// can move without a new step: every step the permutation has running
// waits for the spec's own sessions (the tester's question), none in a
// cycle the deadlock check would break, and no timer can end a wait. Then
// the tester's pause before it asks — 10 ms, in which a step may end —
// changes nothing, and the step is reported waiting at once: a step sent
// is first given a moment to end or to begin waiting, a step reported
// waiting before is asked about straight away. Anything else (a step
// running, a wait for something outside the spec, a cycle, a timeout that
// may fire) is left to the tester's own pause, as before.
func (p *player) waitsSettled(ctx context.Context, a *active, retry bool) (bool, error) {
	if ok, err := p.mayConclude(ctx); !ok || err != nil {
		return false, err
	}
	if !retry {
		if err := p.handleFor(ctx, a, time.Millisecond); err != nil || a.end != nil {
			return false, err
		}
	}
	if p.eng.Unread(a.sess) > 0 {
		// The server has sent the session something since: the step moved
		// (a waiter released, its results on the way), and no question is
		// needed to leave it to the pause.
		return false, nil
	}
	var running []int
	for _, o := range p.active {
		if o != nil && o.end == nil {
			running = append(running, o.sess)
		}
	}
	settled, err := p.eng.Settled(ctx, running)
	if err != nil || !settled {
		return false, err
	}
	// What the session was sent before its wait began is read first, as
	// after the tester's own question.
	if err := p.readSent(ctx, a); err != nil || a.end != nil {
		return false, err
	}
	if p.r.concluded != nil {
		p.r.concluded(a.ps.Step.Name, retry)
	}
	return true, nil
}

// mayConclude says whether a run may report a wait without the tester's
// pause: only a run that asks the server itself (on demand), where no
// timer can end a wait — the spec sets none (it never names a timeout),
// and the server starts none (Engine.Timeouts, asked once).
func (p *player) mayConclude(ctx context.Context) (bool, error) {
	if !p.onDemand {
		return false, nil
	}
	if p.conclude == 0 {
		p.conclude = -1
		if !mentionsTimeout(p.spec) {
			timers, err := p.eng.Timeouts(ctx)
			if err != nil {
				return false, err
			}
			if !timers {
				p.conclude = 1
			}
		}
	}
	return p.conclude > 0, nil
}

// mentionsTimeout says whether any SQL of the spec names a timeout (SET
// lock_timeout, a function that sets statement_timeout, …): a timer that
// may end a wait while the tester pauses.
func mentionsTimeout(s *scenario.Spec) bool {
	has := func(sql string) bool { return strings.Contains(strings.ToLower(sql), "timeout") }
	if slices.ContainsFunc(s.Setup, has) || has(s.Teardown) {
		return true
	}
	for _, ss := range s.Sessions {
		if has(ss.Setup) || has(ss.Teardown) || slices.ContainsFunc(ss.Steps, func(st *scenario.Step) bool { return has(st.SQL) }) {
			return true
		}
	}
	return false
}

// pause handles events for the tester's 10 ms, or until the step ends.
func (p *player) pause(ctx context.Context, a *active) error {
	return p.handleFor(ctx, a, 10*time.Millisecond)
}

// handleFor handles events for d, or until a's step ends.
func (p *player) handleFor(ctx context.Context, a *active, d time.Duration) error {
	// One timer for the run: a step's pauses are many (Go's timers, since
	// 1.23, neither fire nor deliver after Reset or Stop).
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	defer p.timer.Stop()
	for a.end == nil {
		select {
		case ev, ok := <-p.eng.Events():
			if !ok {
				return errors.New("the engine closed")
			}
			p.handle(ev)
		case <-p.timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// printEnd prints a step's results and its error, as the tester does: every
// result set, and of an error its severity and primary message only (a
// DETAIL may hold transaction ids).
func (p *player) printEnd(ev sim.Event) {
	for _, r := range ev.Results {
		if r.Columns != nil {
			WriteResultSet(p.out, r.Columns, r.Rows, r.Null)
		}
	}
	switch {
	case ev.Kind == sim.ConnectionLost:
		// The server's FATAL message, if it sent one, then what libpq says
		// when it finds the socket closed: a second result, with no fields.
		if m := sim.ServerError(ev.Cause); m != nil {
			fmt.Fprintf(p.out, "%s:  %s\n", m.Severity, m.Message)
		}
		fmt.Fprintf(p.out, "%s\n", connectionClosed)
	case ev.Err != nil && ev.Err.Severity != "":
		p.line(ev.Err.Severity, ":  ", ev.Err.Message)
	case ev.Err != nil:
		fmt.Fprintf(p.out, "%s\n", ev.Err.Message)
	}
	p.printNotifications(ev)
}

// connectionClosed is libpq's message for a connection the server closed.
const connectionClosed = "server closed the connection unexpectedly\n" +
	"\tThis probably means the server terminated abnormally\n" +
	"\tbefore or while processing the request.\n"

// printNotifications prints the NOTIFY messages that came with a step's
// end, naming the session that sent each, as the tester does after a
// step's results.
func (p *player) printNotifications(ev sim.Event) {
	if len(ev.Notifications) == 0 {
		return
	}
	senders := map[uint32]string{}
	for i, pid := range p.eng.Pids() {
		senders[uint32(pid)] = p.spec.Sessions[i].Name
	}
	for _, n := range ev.Notifications {
		from, ok := senders[n.Pid]
		if !ok {
			from = fmt.Sprintf("PID %d", n.Pid)
		}
		fmt.Fprintf(p.out, "%s: NOTIFY \"%s\" with payload \"%s\" from %s\n", p.spec.Sessions[ev.Index].Name, n.Channel, n.Payload, from)
	}
}

// completeWaiting reports the waiting steps that have finished, in the order
// they began to wait, and goes round again while an annotation may have
// been released by a completion or a notice.
func (p *player) completeWaiting(ctx context.Context, nonblock bool) error {
	for {
		old := len(p.waiting)
		notices := p.totalNotices()
		haveBlocker := false
		var keep []*active
		for _, a := range p.waiting {
			if p.active[a.sess] != a {
				continue // finished through its session's own wait
			}
			done, err := p.tryComplete(ctx, a, nonblock, true)
			if err != nil {
				return err
			}
			if done {
				continue
			}
			keep = append(keep, a)
			if len(a.ps.Blockers) > 0 {
				haveBlocker = true
			}
		}
		p.waiting = keep
		if !haveBlocker || (len(keep) == old && p.totalNotices() == notices) {
			return nil
		}
	}
}

func (p *player) totalNotices() int64 {
	var n int64
	for _, k := range p.notices {
		n += k
	}
	return n
}
