package sim

import (
	"context"
	"slices"
	"time"

	"lockstep/db"
)

// Sessions left inside a transaction (Config.KeepTransactions), as the
// isolation tester leaves them: a setup or teardown block may then wait for
// one of them, and nothing in the scenario will end that transaction. The
// tester would wait for ever; the engine waits StuckAfter, asks the server
// whom the block waits for, reports a Stalled event (WaitsOnOpenTransaction)
// for each such session and rolls it back.

// stuckAfter is how long a block may wait for a session's open transaction.
func (e *Engine) stuckAfter() time.Duration {
	if e.cfg.StuckAfter > 0 {
		return e.cfg.StuckAfter
	}
	return 2 * time.Second
}

// openSessions are the idle sessions, other than self, inside a transaction.
func (e *Engine) openSessions(self *session) []*session {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil // the sessions' workers are ending: Close rolls back
	}
	var out []*session
	for _, s := range e.sessions {
		if s != self && s.pid != 0 && (s.state == InTransaction || s.state == Aborted) {
			out = append(out, s)
		}
	}
	return out
}

// watchBlock watches block b, running on backend pid of side sd (self's
// connection, or the control connection when self is nil), while sessions
// are kept inside a transaction. The function it returns stops the watch
// and waits for it.
func (e *Engine) watchBlock(ctx context.Context, sd *side, pid int32, b Block, self *session) (stop func()) {
	if !e.cfg.KeepTransactions || pid == 0 || len(e.openSessions(self)) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer := time.NewTimer(e.stuckAfter())
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		conn, err := sd.db.Connect(ctx, sd.run.AppName("watchdog"+sd.label))
		if err != nil {
			return
		}
		e.opened.Add(1)
		defer func() {
			cctx, cancel := db.Cleanup(ctx)
			defer cancel()
			e.closeInOrder(cctx, conn)
		}()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var blockers []int32
			if err := conn.QueryRow(ctx, "SELECT pg_blocking_pids($1)", pid).Scan(&blockers); err != nil {
				return
			}
			for _, s := range e.openSessions(self) {
				if !slices.Contains(blockers, s.pid) {
					continue
				}
				e.emit(Event{Gen: e.generation(), Kind: Stalled, Stall: WaitsOnOpenTransaction, Session: s.name, Index: s.idx,
					Step: -1, Block: b})
				_ = s.control(ctx, ctlRollback)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
