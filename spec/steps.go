package spec

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/locks"
)

// ErrStuck is returned when a permutation cannot finish.
var ErrStuck = errors.New("failed to complete permutation due to mutually-blocking steps")

// permRun runs one permutation's steps the way the isolation tester does:
// each step is sent, then reported done or waiting — waiting only when the
// server says so — and earlier waiting steps that have finished are reported
// after it, in the order they began to wait.
type permRun struct {
	r        *Runner
	ctx      context.Context
	control  *pgx.Conn
	obs      *locks.Observer
	bySpec   map[*Session]*session
	sessions []*session
	waiting  []*active
	// stuckSince is when the server first said, in this stretch, that every
	// running step waits and no deadlock is there to be broken.
	stuckSince time.Time
}

func (p *permRun) steps(perm Permutation) error {
	for _, ps := range perm.Steps {
		se := p.bySpec[ps.Step.Session]
		// A session still busy with a waiting step must finish it first.
		for se.active != nil {
			progress := p.tryComplete(se.active, false, true)
			before := len(p.waiting)
			p.completeWaiting(true)
			if !progress && len(p.waiting) == before && p.heldByAnnotation(se.active) && p.stuckFor() {
				return p.fail()
			}
		}
		p.removeDone()
		a := p.launch(ps)
		mustWait := !p.tryComplete(a, true, false)
		p.completeWaiting(true)
		if mustWait {
			p.waiting = append(p.waiting, a)
		}
	}
	for len(p.waiting) > 0 {
		before := len(p.waiting)
		p.completeWaiting(false)
		if len(p.waiting) == before && p.stuckFor() {
			return p.fail()
		}
	}
	return nil
}

func (p *permRun) fail() error {
	p.r.printf("%s\n", ErrStuck)
	return ErrStuck
}

// stuckFor says whether nothing has changed for StuckAfter; it is only asked
// when a pass made no progress.
func (p *permRun) stuckFor() bool {
	if p.stuckSince.IsZero() {
		p.stuckSince = time.Now()
		return false
	}
	time.Sleep(10 * time.Millisecond)
	return time.Since(p.stuckSince) > p.r.stuckAfter()
}

func (r *Runner) stuckAfter() time.Duration {
	if r.StuckAfter > 0 {
		return r.StuckAfter
	}
	return 2 * time.Second
}

func (p *permRun) removeDone() {
	var keep []*active
	for _, a := range p.waiting {
		if a.sess.active == a {
			keep = append(keep, a)
		}
	}
	p.waiting = keep
}

func (p *permRun) launch(ps PermutationStep) *active {
	se := p.bySpec[ps.Step.Session]
	a := &active{ps: ps, sess: se, done: make(chan []*pgconn.Result, 1), target: map[*Session]int64{}}
	for _, b := range ps.Blockers {
		if b.Step != nil && b.HasNotices {
			a.target[b.Step.Session] = p.bySpec[b.Step.Session].notices.Load() + int64(b.Notices)
		}
	}
	se.active = a
	conn, sql, ctx := se.conn, ps.Step.SQL, p.ctx
	go func() {
		res, err := conn.PgConn().Exec(ctx, sql).ReadAll()
		if err != nil && (len(res) == 0 || res[len(res)-1].Err == nil) {
			res = append(res, &pgconn.Result{Err: err})
		}
		a.done <- res
	}()
	p.stuckSince = time.Time{}
	return a
}

// heldByAnnotation says whether a finished step is held back by a blocker
// annotation: step(other) while other runs, step(other notices N) until
// other's session has sent N more notices.
func (p *permRun) heldByAnnotation(a *active) bool {
	for _, b := range a.ps.Blockers {
		if b.Star || b.Step == nil {
			continue
		}
		other := p.bySpec[b.Step.Session]
		if b.HasNotices {
			if other.notices.Load() < a.target[b.Step.Session] {
				return true
			}
			continue
		}
		if other.active != nil && other.active.ps.Step == b.Step {
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

func (p *permRun) printWaiting(a *active) {
	if !a.waiting {
		p.r.printf("step %s: %s <waiting ...>\n", a.ps.Step.Name, a.ps.Step.SQL)
		a.waiting = true
	}
}

// serverSaysWaiting asks the lock observer — the engine's detector —
// whether the session's backend waits (for a lock or a safe snapshot).
// With all set, it also says whether every running step waits with no
// deadlock in the graph for the server to break.
func (p *permRun) serverSaysWaiting(se *session) (waits, allStuck bool) {
	snap, err := p.obs.Poll(p.ctx)
	if err != nil {
		return false, false
	}
	b, ok := snap.Backend(se.name)
	waits = ok && b.Waiting()
	allStuck = len(snap.Graph.Cycles) == 0
	for _, other := range p.sessions {
		if other.active != nil && other.active.res == nil {
			ob, ok := snap.Backend(other.name)
			if !ok || !ob.Waiting() {
				allStuck = false
			}
		}
	}
	return waits, allStuck
}

// tryComplete collects a step's result if it is there — waiting for it
// unless nonblock, and in nonblock mode giving up once the server says the
// step waits — and prints its completion unless an annotation holds it
// back. retry marks a step reported waiting before: its completion prints
// as "<... completed>".
func (p *permRun) tryComplete(a *active, nonblock, retry bool) bool {
	if !retry && hasStar(a) {
		p.printWaiting(a)
		return false
	}
	for a.res == nil {
		select {
		case a.res = <-a.done:
			continue
		case <-time.After(10 * time.Millisecond):
		}
		waits, allStuck := p.serverSaysWaiting(a.sess)
		if nonblock && waits {
			select {
			case a.res = <-a.done:
				continue
			default:
			}
			if !retry {
				p.printWaiting(a)
			}
			return false
		}
		if !nonblock && waits && allStuck {
			// Every running step waits and no deadlock will end a wait:
			// nothing can move. Cancel this one, as the isolation tester
			// does when a step exceeds its time.
			if p.stuckSince.IsZero() {
				p.stuckSince = time.Now()
			} else if time.Since(p.stuckSince) > p.r.stuckAfter() {
				p.r.printf("lockstep: canceling step %s: it waits and nothing will release its lock\n", a.ps.Step.Name)
				_, _ = p.control.Exec(p.ctx, "SELECT pg_cancel_backend($1)", int32(a.sess.conn.PgConn().PID()))
				p.stuckSince = time.Time{}
			}
		}
	}
	if p.heldByAnnotation(a) {
		if !retry {
			p.printWaiting(a)
		}
		return false
	}
	if retry {
		p.r.printf("step %s: <... completed>\n", a.ps.Step.Name)
	} else {
		p.r.printf("step %s: %s\n", a.ps.Step.Name, a.ps.Step.SQL)
	}
	for _, res := range a.res {
		p.r.printResult(res)
	}
	a.sess.active = nil
	return true
}

// completeWaiting reports the waiting steps that have finished, in the order
// they began to wait, and goes round again while an annotation may have
// been released by a completion or a notice.
func (p *permRun) completeWaiting(nonblock bool) {
	for {
		old := len(p.waiting)
		notices := p.totalNotices()
		haveBlocker := false
		var keep []*active
		for _, a := range p.waiting {
			if a.sess.active != a {
				continue // finished through its session's own wait
			}
			if p.tryComplete(a, nonblock, true) {
				continue
			}
			keep = append(keep, a)
			if len(a.ps.Blockers) > 0 {
				haveBlocker = true
			}
		}
		p.waiting = keep
		if !haveBlocker || (len(keep) == old && p.totalNotices() == notices) {
			return
		}
	}
}

func (p *permRun) totalNotices() int64 {
	var n int64
	for _, se := range p.sessions {
		n += se.notices.Load()
	}
	return n
}
