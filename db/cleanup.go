package db

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Clean-up after a context has ended — rolling back, closing connections,
// ending backends, tearing down — runs on a context of its own: it must not
// be cancelled with the command's (a cancelled command still cleans up), and
// it must not wait without bound either (a server that has stopped
// answering must not hold lockstep: every exit ends within 2 s).
const (
	// CleanupTimeout bounds one clean-up from the moment it begins, once
	// the context it cleans up after has ended.
	CleanupTimeout = 1500 * time.Millisecond
	// CleanupUnhurried bounds a clean-up at a command's normal end (its
	// context not ended; see Cleanup): a loaded machine or a slow server gets time to answer — the
	// run's own end failed at 1.5 s with two test suites on 2 cores — and a
	// signal that comes meanwhile still ends it CleanupBudget later.
	CleanupUnhurried = 10 * time.Second
	// CleanupBudget bounds every clean-up from the moment the context that
	// ended was cancelled (a signal), when it carries that moment
	// (WithEndTime), so that clean-ups one after another still end in time.
	CleanupBudget = time.Second
)

type endKey struct{}

// ending is what WithEndTime keeps in a context: the context itself, and
// when it was cancelled.
type ending struct {
	ctx context.Context
	at  atomic.Pointer[time.Time]
}

// WithEndTime returns ctx remembering when it is cancelled, for Cleanup.
func WithEndTime(ctx context.Context) context.Context {
	e := &ending{}
	ctx = context.WithValue(ctx, endKey{}, e)
	e.ctx = ctx
	context.AfterFunc(ctx, func() {
		t := time.Now()
		e.at.Store(&t)
	})
	return ctx
}

// Cleanup returns a context for clean-up work under ctx: not cancelled when
// ctx is, ending CleanupTimeout from now, or CleanupBudget after ctx was
// cancelled if that is sooner. Under a context of WithEndTime's (a command's,
// kept through WithoutCancel) that has not ended, the clean-up of a normal
// end is unhurried: CleanupUnhurried from now, and CleanupBudget after the
// command's context is cancelled, if it is. Its values are ctx's.
func Cleanup(ctx context.Context) (context.Context, context.CancelFunc) {
	now := time.Now()
	deadline := now.Add(CleanupTimeout)
	if e, ok := ctx.Value(endKey{}).(*ending); ok {
		end := e.at.Load()
		if end == nil && e.ctx.Err() != nil {
			end = &now // it has just ended: its AfterFunc has yet to run
		}
		if end == nil {
			cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), now.Add(CleanupUnhurried))
			stop := context.AfterFunc(e.ctx, func() { time.AfterFunc(CleanupBudget, cancel) })
			return cctx, func() { stop(); cancel() }
		}
		if end.Add(CleanupBudget).Before(deadline) {
			deadline = end.Add(CleanupBudget)
		}
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// CloseConn closes conn on a clean-up context (Cleanup): its goodbye does
// not wait for a server that has stopped answering.
func CloseConn(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := Cleanup(ctx)
	defer cancel()
	_ = conn.Close(cctx)
}
