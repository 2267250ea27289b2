package tui

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/sim"
)

// closeWithin bounds how long closing an engine may take when the
// interface ends or switches runs: a server that stopped answering must not
// hold the screen.
const closeWithin = 2 * time.Second

// runSwitcher starts and stops the interface's engines, one at a time: a
// new run's engine starts only once the old one has rolled back and
// closed, a start that a newer one replaced before it finished is closed
// as soon as it is up, and nothing starts once the interface has closed.
// Starts run inside commands, off the event loop; each is tagged with the
// id the model gave it, so that the model drops replies from a run it has
// moved past.
type runSwitcher struct {
	ctx context.Context

	mu  sync.Mutex // held for a whole start or close: one engine at a time
	eng *sim.Engine

	latest atomic.Int64 // the newest start asked for
	closed atomic.Bool
	// abort cancels the start in flight, if any: a close or a newer start
	// need not wait for a server that is slow to answer.
	abortMu sync.Mutex
	abort   context.CancelFunc
}

func newRunSwitcher(ctx context.Context) *runSwitcher { return &runSwitcher{ctx: ctx} }

// start is a command that replaces the running engine with a new one for
// cfg; id is the model's number for this start.
func (r *runSwitcher) start(id int, cfg sim.Config) tea.Cmd {
	r.latest.Store(int64(id))
	r.abortStart() // a start still setting up is superseded
	return func() tea.Msg {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.stale(id) {
			return nil
		}
		r.closeEngine() // the old sessions roll back before the new ones reset the ledger
		ctx, cancel := context.WithCancel(r.ctx)
		r.abortMu.Lock()
		r.abort = cancel
		r.abortMu.Unlock()
		eng, err := sim.New(ctx, cfg)
		r.abortMu.Lock()
		r.abort = nil
		r.abortMu.Unlock()
		cancel()
		if r.stale(id) {
			// Replaced, or the interface closed, while it started.
			if eng != nil {
				r.closeOne(eng)
			}
			return nil
		}
		if err != nil {
			return engineFailedMsg{id: id, err: err}
		}
		r.eng = eng
		return engineReadyMsg{id: id, eng: eng}
	}
}

// stale says whether start id was superseded or the switcher closed.
func (r *runSwitcher) stale(id int) bool {
	return r.closed.Load() || r.latest.Load() != int64(id)
}

func (r *runSwitcher) abortStart() {
	r.abortMu.Lock()
	if r.abort != nil {
		r.abort()
	}
	r.abortMu.Unlock()
}

// Close stops any start in flight and closes the running engine, rolling
// its sessions back; no engine starts afterwards.
func (r *runSwitcher) Close() {
	r.closed.Store(true)
	r.abortStart()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeEngine()
}

// closeEngine closes the running engine; r.mu is held.
func (r *runSwitcher) closeEngine() {
	if r.eng != nil {
		r.closeOne(r.eng)
		r.eng = nil
	}
}

func (r *runSwitcher) closeOne(eng *sim.Engine) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), closeWithin)
	defer cancel()
	_ = eng.Close(ctx)
}
