package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/ledger"
)

// quiesce cancels every statement in flight and waits until no session is
// busy. Statements that ignore the cancel are ended with pg_terminate_backend.
// It gives up when ctx ends (a server that has stopped answering), with
// ctx's error.
func (e *Engine) quiesce(ctx context.Context) error {
	e.mu.Lock()
	type busy struct {
		side *side
		pid  int32
		conn *pgx.Conn
	}
	var pids []busy
	for _, s := range e.sessions {
		if s.state.Busy() {
			pids = append(pids, busy{s.side, s.pid, s.conn})
		}
	}
	e.mu.Unlock()
	for _, b := range pids {
		if b.pid == 0 && b.conn != nil {
			_ = b.conn.PgConn().CancelRequest(ctx) // through the pooler
			continue
		}
		_ = e.signalBackend(ctx, b.side, "pg_cancel_backend", b.pid)
	}
	timer := time.AfterFunc(5*time.Second, func() {
		cctx, cancel := db.Cleanup(ctx)
		defer cancel()
		for _, b := range pids {
			_ = e.signalBackend(cctx, b.side, "pg_terminate_backend", b.pid)
		}
	})
	defer timer.Stop()
	wake := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	defer wake()
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.anyBusy() {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.cond.Wait()
	}
	return nil
}

func (e *Engine) anyBusy() bool {
	for _, s := range e.sessions {
		if s.state.Busy() {
			return true
		}
	}
	return false
}

// checkOpen fails with ErrClosed once Close has begun.
func (e *Engine) checkOpen() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	return nil
}

// Teardown ends what the sessions are doing: it cancels the statements in
// flight, runs each session's teardown and rolls back what is left open,
// then rolls back what the run left prepared and runs the scenario's global
// teardown. The sessions stay connected, for Setup.
func (e *Engine) Teardown(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if err := e.checkOpen(); err != nil {
		return err
	}
	return e.teardownAll(ctx)
}

// teardownAll is Teardown; e.lifeMu is held.
func (e *Engine) teardownAll(ctx context.Context) error {
	if err := e.quiesce(ctx); err != nil {
		return fmt.Errorf("ending the statements in flight: %w", err)
	}
	if err := e.eachSession(ctx, ctlTeardown, "tearing down"); err != nil {
		return err
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	err := e.onControls(ctx, e.teardown)
	e.mu.Lock()
	e.down = true
	e.mu.Unlock()
	return err
}

// Setup begins a new generation after Teardown: the ledger is re-created
// (or the scenario's setup blocks run again), each session reconnects if
// its connection was lost, its script starts over and its setup runs.
// Events from before carry an older Gen.
func (e *Engine) Setup(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if err := e.checkOpen(); err != nil {
		return err
	}
	e.mu.Lock()
	e.gen++
	e.seenCycle = map[string]bool{}
	e.mu.Unlock()
	return e.setup(ctx)
}

// setup prepares the data and the sessions; e.lifeMu is held.
func (e *Engine) setup(ctx context.Context) error {
	e.ctlMu.Lock()
	err := e.onControls(ctx, e.prepare)
	e.ctlMu.Unlock()
	if err != nil {
		e.setFailed(true)
		return fmt.Errorf("setting the run up: %w", err)
	}
	e.mu.Lock()
	e.down, e.booksStale = false, true
	e.mu.Unlock()
	err = e.eachSession(ctx, ctlSetup, "setting up")
	e.setFailed(err != nil)
	return err
}

// setFailed records whether the last setup failed: then no teardown block
// runs until a setup succeeds.
func (e *Engine) setFailed(failed bool) {
	e.mu.Lock()
	e.failedSetup = failed
	e.mu.Unlock()
}

func (e *Engine) setUpFailed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failedSetup
}

// eachSession runs a control job on every session's worker, in order.
func (e *Engine) eachSession(ctx context.Context, kind ctlKind, doing string) error {
	e.mu.Lock()
	sessions := append([]*session(nil), e.sessions...)
	e.mu.Unlock()
	for _, s := range sessions {
		if err := s.control(ctx, kind); err != nil {
			return fmt.Errorf("%s session %s: %w", doing, s.name, err)
		}
	}
	return nil
}

// onControls runs fn on the control connections, replacing lost ones
// first; when fn fails because a control connection was lost meanwhile (an
// administrator ended it, say, after its last ping), it replaces it and
// runs fn once more. e.ctlMu is held.
func (e *Engine) onControls(ctx context.Context, fn func(context.Context) error) error {
	if err := e.reconnectControls(ctx); err != nil {
		return err
	}
	err := fn(ctx)
	if err == nil || !slices.ContainsFunc(e.sides, func(sd *side) bool { return sd.ctl.IsClosed() }) {
		return err
	}
	if err := e.reconnectControls(ctx); err != nil {
		return err
	}
	return fn(ctx)
}

// reconnectControls replaces lost control connections; e.ctlMu is held.
func (e *Engine) reconnectControls(ctx context.Context) error {
	for _, sd := range e.sides {
		if err := sd.reconnectControl(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Reset rolls every session back, reconnects failed ones, re-creates the
// ledger and rewinds the scripts: Teardown, then Setup, then a ResetDone
// event.
func (e *Engine) Reset(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if err := e.checkOpen(); err != nil {
		return err
	}
	if err := e.teardownAll(ctx); err != nil {
		return fmt.Errorf("resetting: %w", err)
	}
	e.mu.Lock()
	e.gen++
	gen := e.gen
	e.seenCycle = map[string]bool{}
	e.mu.Unlock()
	if err := e.setup(ctx); err != nil {
		return err
	}
	e.emit(Event{Gen: gen, Kind: ResetDone, Index: -1, Step: -1})
	e.changed()
	return nil
}

// Close rolls back every session, closes all connections, makes sure no
// backend of the run is left on the server, and closes the event channel.
// It is safe to call more than once. It is bounded (db.Cleanup): when its
// time is up — a server that has stopped answering — whatever is still in
// flight is cut off with the engine's context, and the connections close
// without their goodbyes; the server rolls back what they left open once
// it finds them gone.
func (e *Engine) Close(ctx context.Context) error {
	ctx, cancel := db.Cleanup(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, e.cancel)
	defer stop()
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	sessions, down := e.sessions, e.down
	e.mu.Unlock()
	// From here on events are dropped rather than block: nobody reads
	// what the run does while it ends.
	close(e.closing)
	var errs []error
	started := len(e.sides) > 0 && e.sides[len(e.sides)-1].ctl != nil
	quiet := false
	if started {
		// Once ctx ends, the engine's context cuts what is left.
		quiet = e.quiesce(ctx) == nil
	}
	// Nothing runs on the engine's context any more but the observer's
	// poll: ending it before waiting for the observer keeps a poll of a
	// server that has stopped answering from holding the close.
	e.cancel()
	for _, s := range sessions {
		if err := s.control(ctx, ctlClose); err != nil {
			errs = append(errs, fmt.Errorf("closing session %s: %w", s.name, err))
		}
		close(s.jobs)
	}
	if e.observing {
		<-e.obsDone
	}
	e.workers.Wait()
	for _, sd := range e.sides {
		if sd.obsConn != nil {
			if schema := sd.db.Schema(); schema != "" && !sd.obsConn.IsClosed() {
				_ = ledger.Release(ctx, sd.obsConn, schema)
			}
			_ = e.closeInOrder(ctx, sd.obsConn)
		}
	}
	if started {
		e.ctlMu.Lock()
		if !down {
			if err := e.teardown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		// Every connection ended in order: each backend has its goodbye
		// and exits by itself, nothing of the run left running in it.
		tidy := e.cfg.QuickClose && quiet && e.opened.Load() == e.closedInOrder.Load() &&
			!slices.ContainsFunc(e.sides, func(sd *side) bool { return sd.replaced || sd.ctl.IsClosed() })
		// Belt and braces: no backend of this run may outlive it.
		var conns []*pgx.Conn
		var fresh []*side
		for _, sd := range e.sides {
			if schema := sd.db.Schema(); schema != "" && !sd.ctl.IsClosed() {
				// A control connection the server has ended took its
				// claim with its backend: only a live one can fail to let go.
				if err := ledger.Release(ctx, sd.ctl, schema); err != nil && !sd.ctl.IsClosed() {
					errs = append(errs, err)
				}
			}
			switch {
			case tidy:
			case !sd.ctl.IsClosed():
				conns = append(conns, sd.ctl)
			default:
				fresh = append(fresh, sd)
			}
		}
		if len(conns) > 0 {
			if err := db.EndBackendsOn(ctx, e.runID.Like(""), conns...); err != nil {
				errs = append(errs, err)
			}
		}
		// A side whose control connection the server ended is swept through
		// a new connection — after the live control connections have taken
		// names outside the run (EndBackendsOn): two databases on one
		// server, the sweep ended the other side's control connection
		// before its own turn, which then failed with a broken pipe.
		for _, sd := range fresh {
			if err := sd.db.EndBackends(ctx, e.runID.Like("")); err != nil {
				errs = append(errs, err)
			}
		}
		for _, sd := range e.sides {
			sd.ctl.Close(ctx)
		}
		e.ctlMu.Unlock()
	} else {
		for _, sd := range e.sides {
			if err := sd.db.EndBackends(ctx, e.runID.Like("")); err != nil {
				errs = append(errs, err)
			}
		}
	}
	e.emitMu.Lock()
	e.eventsEnded = true
	close(e.events)
	e.emitMu.Unlock()
	return errors.Join(errs...)
}
