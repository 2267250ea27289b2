package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/ledger"
	"lockstep/locks"
)

// Tally counts what a run did.
type Tally struct {
	Waits, Deadlocks, SerializationFailures int
	Errors                                  int
	LockTimeouts                            int
	// Distributed counts the distributed deadlocks lockstep found.
	Distributed int
	// Resolved counts the prepared transactions lockstep finished.
	Resolved int
	// QueueWaits counts the waits behind another waiter's queued request
	// (a soft block): the waiter conflicts with nothing held.
	QueueWaits int
	// BySQLState counts the errors by SQLSTATE.
	BySQLState map[string]int
}

// Add counts one event.
func (t *Tally) Add(ev Event) {
	switch ev.Kind {
	case DeadlockFormed:
		if ev.Cycle.Distributed {
			t.Distributed++
		}
	case WaitingForLock:
		t.Waits++
		if slices.ContainsFunc(ev.Waits, func(e locks.Edge) bool { return e.Queued }) {
			t.QueueWaits++
		}
	case Resolved:
		t.Resolved++
	case Error:
		t.Errors++
		if t.BySQLState == nil {
			t.BySQLState = map[string]int{}
		}
		t.BySQLState[ev.Err.SQLState]++
		switch ev.Err.SQLState {
		case pgerrcode.DeadlockDetected:
			t.Deadlocks++
		case pgerrcode.SerializationFailure:
			t.SerializationFailures++
		case pgerrcode.LockNotAvailable:
			t.LockTimeouts++
		}
	}
}

// Outcome is how a run played to its end came out: what it did, and what
// the ledger holds afterwards.
type Outcome struct {
	Tally Tally
	// Accounts and Books are a one-database run's ledger; nil in a scenario.
	Accounts []ledger.Account
	Books    *ledger.Books
	// ByDatabase is a two-database run's balances, by database label.
	ByDatabase map[string][]ledger.Account
}

// PlayToEnd plays the run to its end, as lockstep run does: the scheduler
// picks the sessions, and two endings need more than it can give. A
// distributed deadlock that no server will ever break (and no lock_timeout
// will) ends the run: lockstep says so and stops. A session waiting only for
// a prepared transaction that nobody is left to finish gets it finished:
// COMMIT PREPARED with commitPrepared, else ROLLBACK PREPARED. Every event
// reaches onEvent, and so do these decisions, as Stalled and Resolved
// events. Whatever is left prepared at the end is finished the same way,
// and the balances are read last.
func (e *Engine) PlayToEnd(ctx context.Context, sched *Scheduler, commitPrepared bool, onEvent func(Event)) (Outcome, error) {
	var out Outcome
	report := func(ev Event) {
		out.Tally.Add(ev)
		onEvent(ev)
	}
	// resolvedAt is when prepared transactions were last resolved: older
	// snapshots no longer tell what waits.
	var resolvedAt time.Time
	distributed := false
	for !distributed {
		pctx, stop := context.WithCancel(ctx)
		var stall *Event
		err := e.Play(pctx, sched, func(ev Event) {
			report(ev)
			if stall != nil {
				return
			}
			switch {
			case ev.Kind == DeadlockFormed && ev.Cycle.Distributed && ev.Cycle.BreakAt == nil:
				stall = &Event{Kind: Stalled, Stall: DistributedDeadlock, Cycle: ev.Cycle, Index: -1, Step: -1, Time: time.Now()}
				stop()
			case ev.Kind == Polled && ev.Snapshot.Taken.After(resolvedAt) && waitsOnPrepared(ev.Snapshot, e.Sessions()):
				stall = &Event{Kind: Stalled, Stall: WaitsOnPrepared, Index: -1, Step: -1, Time: time.Now()}
				stop()
			}
		})
		stop()
		switch {
		case err == nil:
			return e.finishRun(ctx, out, commitPrepared, false, report)
		case ctx.Err() != nil || !errors.Is(err, context.Canceled) || stall == nil:
			return out, err
		}
		report(*stall)
		if distributed = stall.Stall == DistributedDeadlock; !distributed {
			if err := e.resolveAll(ctx, commitPrepared, report); err != nil {
				return out, err
			}
			resolvedAt = time.Now()
		}
	}
	return e.finishRun(ctx, out, commitPrepared, true, report)
}

// waitsOnPrepared is true when nothing can step or is running, and a
// session the engine knows to wait waits, in the snapshot, only for
// prepared transactions.
func waitsOnPrepared(snap *locks.Snapshot, sessions []SessionInfo) bool {
	var waiting []string
	for _, s := range sessions {
		if s.Steppable() || s.State == Running {
			return false
		}
		if s.State == Waiting {
			waiting = append(waiting, s.Name)
		}
	}
	for _, name := range waiting {
		onlyPrepared, n := true, 0
		for _, ed := range snap.Graph.Edges {
			if ed.Waiter != name || ed.Application {
				continue
			}
			n++
			if holder, ok := snap.Backend(ed.Holder); !ok || holder.Prepared == "" {
				onlyPrepared = false
			}
		}
		if n > 0 && onlyPrepared {
			return true
		}
	}
	return false
}

// resolveAll finishes every prepared transaction of the run, reporting each.
func (e *Engine) resolveAll(ctx context.Context, commit bool, report func(Event)) error {
	list, err := e.Prepared(ctx)
	if err != nil {
		return err
	}
	for _, p := range list {
		report(Event{Kind: Resolved, Prepared: &p, Commit: commit, Index: -1, Step: -1, Time: time.Now()})
		if err := e.ResolvePrepared(ctx, p, commit); err != nil {
			return err
		}
	}
	return nil
}

// finishRun resolves what is left prepared (unless a distributed deadlock
// ended the run: rolling back is then the engine's Close's) and reads the
// balances.
func (e *Engine) finishRun(ctx context.Context, out Outcome, commit, distributed bool, report func(Event)) (Outcome, error) {
	if !distributed {
		if err := e.resolveAll(ctx, commit, report); err != nil {
			return out, err
		}
	}
	if e.cfg.PollEachStep && !e.cfg.Lean {
		// The run's last moment — its last statement's end, a prepared
		// transaction finished — is observed too: a recording shows it with
		// the locks (and balances) it had, not those of the moment before.
		if err := e.awaitPoll(ctx, time.Now(), map[int]int{}, report); err != nil {
			return out, err
		}
	}
	switch {
	case e.cfg.TwoDatabases():
		// Read on the control connections: the sessions' uncommitted
		// changes, about to be rolled back, are invisible there.
		b, err := e.Balances(ctx)
		if err != nil {
			return out, fmt.Errorf("reading the balances: %w", err)
		}
		out.ByDatabase = b
	case e.cfg.Scenario == nil:
		accounts, books, err := e.Books(ctx)
		if err != nil {
			return out, fmt.Errorf("reading the balances: %w", err)
		}
		out.Accounts, out.Books = accounts, &books
	}
	return out, nil
}
