package sim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// because their session could not step (busy or finished).
func (s *Scheduler) Next(sessions []SessionInfo) (idx int, skipped []int, done bool) {
	done = true
	for _, si := range sessions {
		if !si.Done() {
			done = false
		}
	}
	if done {
		return -1, nil, true
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
	for {
		sessions := e.Sessions()
		idx, skipped, done := sched.Next(sessions)
		for _, s := range sessions {
			done = done && seen[s.Index] >= s.Settled
		}
		for _, k := range skipped {
			// Through the events, in order: a statement's events already
			// sent come before the skip, as their times say.
			e.emit(Event{Gen: e.generation(), Kind: Skipped, Session: sessions[k].Name, Index: k, Step: -1})
		}
		if done {
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

// awaitSettled passes events to onEvent until session idx's statement
// settles — or, when idx is -1 and nothing could step, until anything
// happens that is neither a poll nor a statement sent — counting in seen
// the statements that ended.
func (e *Engine) awaitSettled(ctx context.Context, idx int, seen map[int]int, onEvent func(Event)) error {
	for {
		var ev Event
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok = <-e.events:
		}
		if !ok {
			return errors.New("the engine closed")
		}
		onEvent(ev)
		if ev.Kind == Completed || ev.Kind == Error || ev.Kind == ConnectionLost {
			seen[ev.Index]++
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
