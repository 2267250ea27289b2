package sim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseOrder reads a stored order: session names such as T1,T2,T2 for n sessions.
func ParseOrder(s string, n int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var order []int
	for _, name := range strings.Split(s, ",") {
		name = strings.ToUpper(strings.TrimSpace(name))
		k, err := strconv.Atoi(strings.TrimPrefix(name, "T"))
		if !strings.HasPrefix(name, "T") || err != nil || k < 1 || k > n {
			return nil, fmt.Errorf("%q is not a session: use names T1..T%d separated by commas", name, n)
		}
		order = append(order, k-1)
	}
	return order, nil
}

// Scheduler picks which session to step next: first each entry of a stored
// order, then round-robin (T1, T2, …) over the sessions that can step,
// skipping those that wait or have finished.
type Scheduler struct {
	order []int
	pos   int
	last  int
}

// NewScheduler plays order first, then round-robin.
func NewScheduler(order []int) *Scheduler { return &Scheduler{order: order, last: -1} }

// Next is the session to step now, or -1 if none can step yet; done is true
// when every session has finished. Skipped lists order entries passed over
// because their session could not step (busy or finished) — when every
// session is done, the order's entries left over, which will never run.
func (s *Scheduler) Next(sessions []SessionInfo) (idx int, skipped []int, done bool) {
	done = true
	for _, si := range sessions {
		if !si.Done() {
			done = false
		}
	}
	if done {
		for ; s.pos < len(s.order); s.pos++ {
			if k := s.order[s.pos]; k < len(sessions) {
				skipped = append(skipped, k)
			}
		}
		return -1, skipped, true
	}
	for s.pos < len(s.order) {
		k := s.order[s.pos]
		if k < len(sessions) && sessions[k].Steppable() {
			s.pos++
			s.last = k
			return k, skipped, false
		}
		if k < len(sessions) && sessions[k].State.Busy() {
			// Its statement is still going: wait for it rather than skip.
			return -1, skipped, false
		}
		skipped = append(skipped, k)
		s.pos++
	}
	for i := 1; i <= len(sessions); i++ {
		k := (s.last + i) % len(sessions)
		if sessions[k].Steppable() {
			s.last = k
			return k, skipped, false
		}
	}
	return -1, skipped, false
}

// Play drives the engine: it steps the session the scheduler picks, waits
// until that statement settles — finished, or reported waiting by the server
// — and goes on until every session has finished. Every event is passed to
// onEvent (which must not call back into the engine's stepping), and so is a
// Skipped event for each entry of the stored order the scheduler passed
// over. It returns when done, or with ctx's error.
func (e *Engine) Play(ctx context.Context, sched *Scheduler, onEvent func(Event)) error {
	// A session's state changes before its event is sent: Play is done only
	// once it has read the end of every statement that ended since it began.
	seen := map[int]int{}
	for _, s := range e.Sessions() {
		seen[s.Index] = s.Settled
	}
	observed := e.cfg.PollEachStep && !e.cfg.Lean
	// waited are the sessions reported waiting whose statement has not
	// ended; polled says a poll begun after the last thing that happened
	// has been read (PollEachStep).
	waited, polled := map[int]bool{}, false
	if observed {
		inner := onEvent
		onEvent = func(ev Event) {
			switch ev.Kind {
			case Polled, BooksRead, Skipped:
			case WaitingForLock:
				waited[ev.Index], polled = true, false
			case Completed, Error, ConnectionLost:
				delete(waited, ev.Index)
				polled = false
			default:
				polled = false
			}
			inner(ev)
		}
	}
	for {
		sessions := e.Sessions()
		if unread(sessions, seen) {
			// A statement ended whose end is still unread: read it before
			// choosing, or it would pass for the end of the one sent next.
			if err := e.awaitOne(ctx, seen, onEvent); err != nil {
				return err
			}
			continue
		}
		if observed && !polled {
			// Every moment is observed: a poll (and a read of the
			// balances) begun after the last statement settled. Set first:
			// an event read meanwhile clears it, and the next turn polls again.
			polled = true
			if err := e.awaitPoll(ctx, time.Now(), seen, onEvent); err != nil {
				return err
			}
			continue
		}
		if k := released(sessions, waited); observed && k >= 0 {
			// The poll saw the server let a waiter go, and its statement
			// still runs: its end (or its next wait) comes before the next
			// step, as the isolation tester waits for it — or the moment
			// its blocker let it go (a ROLLBACK TO SAVEPOINT) would show
			// it still waiting, and it would seem to go on at a later step.
			if _, err := e.next(ctx, seen, onEvent); err != nil {
				return err
			}
			continue
		}
		idx, skipped, done := sched.Next(sessions)
		for _, s := range sessions {
			done = done && seen[s.Index] >= s.Settled
		}
		for _, k := range skipped {
			// Through the events, in order: a statement's events already
			// sent come before the skip, as their times say.
			e.emit(Event{Gen: e.generation(), Kind: Skipped, Session: sessions[k].Name, Index: k, Step: -1,
				State: sessions[k].State, Why: sessions[k].NotSteppable()})
		}
		if done {
			// The order's entries left over were just sent: read them, and
			// whatever came before them, so that the run reports them.
			for n := len(skipped); n > 0; {
				ev, err := e.next(ctx, seen, onEvent)
				if err != nil {
					return err
				}
				if ev.Kind == Skipped {
					n--
				}
			}
			return nil
		}
		if idx >= 0 {
			if err := e.Step(idx); err != nil {
				return err
			}
		}
		if err := e.awaitSettled(ctx, idx, seen, onEvent); err != nil {
			return err
		}
	}
}

// released is a session reported waiting whose wait the server has ended
// while its statement still runs, or -1.
func released(sessions []SessionInfo, waited map[int]bool) int {
	for _, s := range sessions {
		if waited[s.Index] && s.State == Running {
			return s.Index
		}
	}
	return -1
}

// unread says whether a session's statement ended without its end read yet.
func unread(sessions []SessionInfo, seen map[int]int) bool {
	for _, s := range sessions {
		if seen[s.Index] < s.Settled {
			return true
		}
	}
	return false
}

// awaitSettled passes events to onEvent until session idx's statement
// settles — or, when idx is -1 and nothing could step, until anything
// happens that is neither a poll nor a statement sent — counting in seen
// the statements that ended.
func (e *Engine) awaitSettled(ctx context.Context, idx int, seen map[int]int, onEvent func(Event)) error {
	for {
		ev, err := e.next(ctx, seen, onEvent)
		if err != nil {
			return err
		}
		switch {
		case idx < 0 && ev.Kind != Polled && (ev.Index < 0 || ev.Kind != Started):
			return nil
		case idx >= 0 && ev.Index == idx && !ev.Auto && ev.settles():
			return nil
		}
	}
}

// settles says whether the event decides the fate of a session's statement:
// it finished, failed, lost its connection, or the server says it waits.
func (ev Event) settles() bool {
	switch ev.Kind {
	case WaitingForLock, Completed, Error, ConnectionLost:
		return true
	}
	return false
}

// PlannedStep is a statement to send to session Index, as a recording
// sent it.
type PlannedStep struct {
	Index int
	SQL   string
}

// ErrParted is returned by PlaySteps when the run cannot follow the plan:
// the session the next statement is for waits, and no other statement is
// running that could end its wait.
var ErrParted = errors.New("the run parted from the plan")

// PlaySteps sends each planned statement in order, each once its session
// is free and the one before has settled — finished, or reported waiting
// by the server — then lets every statement end. A statement that is the
// session's next scripted one steps the script (so the engine rolls back
// after a failed one, as the run did); any other is sent as typed. Every
// event goes to onEvent.
func (e *Engine) PlaySteps(ctx context.Context, steps []PlannedStep, onEvent func(Event)) error {
	seen := map[int]int{}
	for _, s := range e.Sessions() {
		seen[s.Index] = s.Settled
	}
	// A wait is known to stand only from a poll that began after the last
	// thing that happened: a session whose blocker just ended is granted
	// its lock before the next poll says so.
	var lastChange, lastPoll time.Time
	inner := onEvent
	onEvent = func(ev Event) {
		if ev.Kind == Polled {
			if ev.Snapshot != nil {
				lastPoll = ev.Snapshot.Taken
			}
		} else {
			lastChange = time.Now()
		}
		inner(ev)
	}
	stuck := func(sessions []SessionInfo, i int) bool {
		return lastPoll.After(lastChange) && stuck(sessions, i)
	}
	for n, st := range steps {
		for {
			sessions := e.Sessions()
			if st.Index >= len(sessions) {
				return fmt.Errorf("step %d is for session %d of %d", n+1, st.Index+1, len(sessions))
			}
			// Free, and its last statement's end read: else the end
			// still unread would pass for the end of the one sent now.
			if !sessions[st.Index].State.Busy() && seen[st.Index] >= sessions[st.Index].Settled {
				break
			}
			if stuck(sessions, st.Index) {
				return fmt.Errorf("%w at step %d: %s waits, and the plan sends it %q next", ErrParted, n+1, sessions[st.Index].Name, st.SQL)
			}
			if err := e.awaitOne(ctx, seen, onEvent); err != nil {
				return err
			}
		}
		if err := e.Exec(st.Index, st.SQL); err != nil {
			return fmt.Errorf("step %d: %w", n+1, err)
		}
		if err := e.awaitSettled(ctx, st.Index, seen, onEvent); err != nil {
			return err
		}
	}
	for {
		sessions := e.Sessions()
		done := true
		for _, s := range sessions {
			done = done && !s.State.Busy() && seen[s.Index] >= s.Settled
		}
		if done {
			return nil
		}
		for i, s := range sessions {
			if s.State == Waiting && stuck(sessions, i) {
				return fmt.Errorf("%w at the end: %s still waits and no statement is left to send", ErrParted, s.Name)
			}
		}
		if err := e.awaitOne(ctx, seen, onEvent); err != nil {
			return err
		}
	}
}

// awaitOne passes the next event, a poll included, to onEvent, counting in
// seen the statements that ended.
func (e *Engine) awaitOne(ctx context.Context, seen map[int]int, onEvent func(Event)) error {
	_, err := e.next(ctx, seen, onEvent)
	return err
}

// next reads the engine's next event, passes it to onEvent and counts in
// seen a statement that ended: awaitOne, awaitSettled and awaitPoll each
// read through it.
func (e *Engine) next(ctx context.Context, seen map[int]int, onEvent func(Event)) (Event, error) {
	select {
	case <-ctx.Done():
		return Event{}, ctx.Err()
	case ev, ok := <-e.events:
		if !ok {
			return Event{}, errors.New("the engine closed")
		}
		onEvent(ev)
		if ev.Kind == Completed || ev.Kind == Error || ev.Kind == ConnectionLost {
			seen[ev.Index]++
		}
		return ev, nil
	}
}

// stuck says whether session i waits with nothing left that could end its
// wait: no statement runs, and the waiters form no cycle (a deadlock the
// server will break).
func stuck(sessions []SessionInfo, i int) bool {
	if sessions[i].State != Waiting {
		return false
	}
	waitsFor := map[string][]string{}
	for _, s := range sessions {
		switch s.State {
		case Running:
			return false
		case Waiting:
			waitsFor[s.Name] = s.BlockedBy
		}
	}
	// A cycle among the waiters is a deadlock: it ends by itself.
	var visit func(n string, path map[string]bool) bool
	done := map[string]bool{}
	visit = func(n string, path map[string]bool) bool {
		if path[n] {
			return true
		}
		if done[n] {
			return false
		}
		path[n] = true
		for _, m := range waitsFor[n] {
			if visit(m, path) {
				return true
			}
		}
		delete(path, n)
		done[n] = true
		return false
	}
	for n := range waitsFor {
		if visit(n, map[string]bool{}) {
			return false
		}
	}
	return true
}

// awaitPoll asks for a poll and passes events to onEvent until one begun
// after since has been read — and, when the config reads the balances
// (Books), a read of them begun after since — counting in seen the
// statements that ended.
func (e *Engine) awaitPoll(ctx context.Context, since time.Time, seen map[int]int, onEvent func(Event)) error {
	books := e.cfg.Books && e.cfg.HasLedger()
	if books {
		// Asked for even when no statement changed anything since the last
		// read: the observer reads them after its next poll.
		e.mu.Lock()
		e.booksStale = true
		e.mu.Unlock()
	}
	e.kickObserver()
	polled, read := false, !books
	for !polled || !read {
		ev, err := e.next(ctx, seen, onEvent)
		if err != nil {
			return err
		}
		switch {
		case ev.Kind == Polled && ev.Snapshot != nil && ev.Snapshot.Taken.After(since):
			polled = true
		case ev.Kind == BooksRead && ev.Books != nil && ev.Books.Taken.After(since):
			read = true
		}
	}
	return nil
}
