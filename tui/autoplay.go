package tui

import (
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/scenario"
	"lockstep/sim"
)

// speeds are autoplay's beats, fastest first.
var speeds = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

// autoplayer steps the sessions by itself: the stored order (a scenario's
// permutation, or --order) first, then round-robin, one statement a beat,
// each once the last has settled — finished, or reported waiting by the
// server.
type autoplayer struct {
	on    bool
	seq   int // the beat in flight; beats of an earlier autoplay are dropped
	speed int // index into speeds
	perm  int // the scenario permutation it plays, counting from 1
	order []int
	sched *sim.Scheduler
	// pausedStanding is set when autoplay paused on a deadlock standing:
	// the server's break of it, later, does not pause it again.
	pausedStanding bool
}

func newAutoplayer(order []int) *autoplayer {
	a := &autoplayer{speed: 2, perm: 1}
	a.Restart(order)
	return a
}

// Restart forgets what it played: the next beat starts order from its
// beginning. Autoplay stops.
func (a *autoplayer) Restart(order []int) {
	a.order, a.sched = order, sim.NewScheduler(order)
	a.pausedStanding = false
	a.Stop()
}

// Stop stops autoplay; a beat in flight is dropped.
func (a *autoplayer) Stop() {
	a.on = false
	a.seq++
}

// Toggle starts or stops autoplay; started, its first beat is now.
func (a *autoplayer) Toggle() tea.Cmd {
	on := !a.on
	a.Stop()
	a.on = on
	if on {
		seq := a.seq
		return func() tea.Msg { return autoplayMsg{seq: seq} }
	}
	return nil
}

// Faster and Slower change the beat.
func (a *autoplayer) Faster() { a.speed = max(0, a.speed-1) }
func (a *autoplayer) Slower() { a.speed = min(len(speeds)-1, a.speed+1) }

// Every is the beat.
func (a *autoplayer) Every() time.Duration { return speeds[a.speed] }

// NextPermutation makes it play sc's next permutation, from where the
// sessions are; it returns the new order.
func (a *autoplayer) NextPermutation(sc *scenario.Spec) []int {
	a.perm = a.perm%len(sc.Permutations) + 1
	order, _ := sc.SessionOrder(a.perm)
	a.Restart(order)
	return order
}

// Beat is the session to step at this beat (-1 for none: the last step
// has not settled, or every unfinished session waits), the next beat, and
// whether every session has finished (autoplay then stops).
func (a *autoplayer) Beat(msg autoplayMsg, sessions []sim.SessionInfo) (idx int, next tea.Cmd, done bool) {
	if !a.on || msg.seq != a.seq {
		return -1, nil, false
	}
	seq := msg.seq
	next = tea.Tick(a.Every(), func(time.Time) tea.Msg { return autoplayMsg{seq: seq} })
	for _, s := range sessions {
		if s.State == sim.Running {
			return -1, next, false // not settled yet
		}
	}
	if checkDue(sessions, time.Now()) {
		// A step now could close a cycle while a waiter's deadlock check
		// is still to run: that check would break it as it forms, before
		// anyone sees it. Once every waiter's check has run (and found
		// nothing), only the closing session's own check can find the
		// cycle, its deadlock_timeout after its wait begins: the deadlock
		// stands that long on screen.
		return -1, next, false
	}
	idx, _, done = a.sched.Next(sessions)
	if done {
		a.Stop()
		return -1, nil, true
	}
	return idx, next, false
}

// checkMargin is how long after its deadlock_timeout a waiter's check is
// taken as run: the check itself takes a few milliseconds.
const checkMargin = 150 * time.Millisecond

// checkDue says whether a waiting session's deadlock check is about to run:
// by the server's clock, its wait (pg_locks.waitstart) began less than its
// own deadlock_timeout (as the session read it) ago, and the check is due
// before the check of a session stepped now (autoplayCheck after its wait
// begins) would be. The server runs the check once per wait, that long
// after the wait began; a check due later than that (a session that set a
// long deadlock_timeout) cannot break a cycle the step closes first.
func checkDue(sessions []sim.SessionInfo, now time.Time) bool {
	for _, s := range sessions {
		if s.State != sim.Waiting || s.DeadlockTimeout <= 0 {
			continue
		}
		for _, e := range s.Waits {
			if e.Lock == nil || e.Lock.WaitStart == nil {
				continue
			}
			due := e.Lock.WaitStart.Add(s.DeadlockTimeout)
			if due.Add(checkMargin).After(now) && due.Before(now.Add(autoplayCheck+checkMargin)) {
				return true
			}
		}
	}
	return false
}
