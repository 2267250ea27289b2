package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/sim"
)

// runner plays a run to its end for lockstep run. Two endings need more
// than the scheduler: a distributed deadlock, which no server will ever
// break (lockstep ends the run), and a session waiting for a prepared
// transaction that nobody will finish (lockstep finishes it as --resolve says).
type runner struct {
	eng    *sim.Engine
	t      transcript
	commit bool
	tally  tally
	stuck  stuck
	cycle  *locks.Cycle
	// resolvedAt is when prepared transactions were last resolved: older
	// snapshots no longer tell what waits.
	resolvedAt time.Time
}

type stuck int

const (
	notStuck stuck = iota
	stuckDistributed
	stuckOnPrepared
)

func (r *runner) play(ctx context.Context, sched *sim.Scheduler) error {
	for {
		pctx, stop := context.WithCancel(ctx)
		r.stuck = notStuck
		err := r.eng.Play(pctx, sched, func(ev sim.Event) {
			r.tally.add(ev)
			r.t.event(ev)
			switch {
			case ev.Kind == sim.DeadlockFormed && ev.Cycle.Distributed && ev.Cycle.BreakAt == nil && r.stuck == notStuck:
				r.stuck, r.cycle = stuckDistributed, ev.Cycle
				stop()
			case ev.Kind == sim.Polled && r.stuck == notStuck && ev.Snapshot.Taken.After(r.resolvedAt) &&
				waitsOnPrepared(ev.Snapshot, r.eng.Sessions()):
				r.stuck = stuckOnPrepared
				stop()
			}
		}, r.t.skipped)
		stop()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil || !errors.Is(err, context.Canceled):
			return err
		case r.stuck == stuckDistributed:
			r.t.note(fmt.Sprintf("distributed deadlock detected by lockstep: %s", r.cycle))
			r.t.note("no server sees this cycle, so no 40P01 will come: lockstep cancels the waiting statements and rolls every session back")
			return nil
		case r.stuck == stuckOnPrepared:
			r.t.note("a session waits for a prepared transaction that has no session left to finish it")
			if err := r.resolve(ctx); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// waitsOnPrepared is true when nothing can step or is running, and a
// session the engine knows to wait waits, in the snapshot, only for
// prepared transactions.
func waitsOnPrepared(snap *locks.Snapshot, sessions []sim.SessionInfo) bool {
	var waiting []string
	for _, s := range sessions {
		if s.Steppable() || s.State == sim.Running {
			return false
		}
		if s.State == sim.Waiting {
			waiting = append(waiting, s.Name)
		}
	}
	for _, name := range waiting {
		onlyPrepared, n := true, 0
		for _, e := range snap.Graph.Edges {
			if e.Waiter != name || e.Application {
				continue
			}
			n++
			if holder, ok := snap.Backend(e.Holder); !ok || holder.Prepared == "" {
				onlyPrepared = false
			}
		}
		if n > 0 && onlyPrepared {
			return true
		}
	}
	return false
}

// resolve lists the run's prepared transactions and ends each as --resolve says.
func (r *runner) resolve(ctx context.Context) error {
	list, err := r.eng.Prepared(ctx)
	if err != nil {
		return err
	}
	for _, p := range list {
		verb := "ROLLBACK PREPARED"
		if r.commit {
			verb = "COMMIT PREPARED"
		}
		r.t.note(fmt.Sprintf("pg_prepared_xacts in database %s: %s (transaction %d, prepared %s); lockstep runs %s (--resolve)",
			p.Database, p.GID, p.Xid, p.At.Format("15:04:05.000"), verb))
		if err := r.eng.ResolvePrepared(ctx, p, r.commit); err != nil {
			return err
		}
		r.tally.resolved++
	}
	r.resolvedAt = time.Now()
	return nil
}

// finish resolves what is left prepared and prints the ending.
func (r *runner) finish(ctx context.Context) error {
	if r.stuck != stuckDistributed {
		if err := r.resolve(ctx); err != nil {
			return err
		}
	}
	var end runEnd
	end.tally = r.tally
	cfg := r.eng.Config()
	switch {
	case cfg.TwoDatabases():
		// Read on the control connections: the sessions' uncommitted
		// changes, about to be rolled back, are invisible there.
		b, err := r.eng.Balances(ctx)
		if err != nil {
			return fmt.Errorf("reading the balances: %w", err)
		}
		end.byDatabase = b
	case cfg.Scenario == nil:
		accounts, books, err := r.eng.Books(ctx)
		if err != nil {
			return fmt.Errorf("reading the balances: %w", err)
		}
		end.accounts, end.books = accounts, &books
	}
	r.t.end(end)
	return nil
}

// runEnd is what a transcript prints last.
type runEnd struct {
	tally      tally
	accounts   []ledger.Account
	books      *ledger.Books
	byDatabase map[string][]ledger.Account
}
