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
	// CleanupTimeout bounds one clean-up from the moment it begins.
	CleanupTimeout = 1500 * time.Millisecond
	// CleanupBudget bounds every clean-up from the moment the context that
	// ended was cancelled (a signal), when it carries that moment
	// (WithEndTime), so that clean-ups one after another still end in time.
	CleanupBudget = time.Second
)

type endKey struct{}

// WithEndTime returns ctx remembering when it is cancelled, for Cleanup.
func WithEndTime(ctx context.Context) context.Context {
	at := new(atomic.Pointer[time.Time])
	context.AfterFunc(ctx, func() {
		t := time.Now()
		at.Store(&t)
	})
	return context.WithValue(ctx, endKey{}, at)
}

// Cleanup returns a context for clean-up work under ctx: not cancelled when
// ctx is, ending CleanupTimeout from now, or CleanupBudget after ctx was
// cancelled if that is sooner (see WithEndTime). Its values are ctx's.
func Cleanup(ctx context.Context) (context.Context, context.CancelFunc) {
	now := time.Now()
	deadline := now.Add(CleanupTimeout)
	if at, ok := ctx.Value(endKey{}).(*atomic.Pointer[time.Time]); ok {
		end := at.Load()
		if end == nil && ctx.Err() != nil {
			end = &now // it has just ended: its AfterFunc has yet to run
		}
		if end != nil && end.Add(CleanupBudget).Before(deadline) {
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
