package pool

import (
	"context"
	"fmt"

	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"lockstep/db"
)

// target is the database a connection is for.
type target int

const (
	targetA target = iota
	targetB
)

func (t target) String() string { return [...]string{"A", "B"}[t] }

// targetKey is the context key an acquirer sets to say which database it
// wants a connection for.
type targetKey struct{}

func withTarget(ctx context.Context, t target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}

func targetOf(ctx context.Context) (target, bool) {
	t, ok := ctx.Value(targetKey{}).(target)
	return t, ok
}

// customKey marks, in the connection's pgconn custom data, which database
// the connection was opened to.
const customKey = "lockstep/pool.database"

// connPool is one pgxpool.Pool and the databases it serves.
type connPool struct {
	label string
	pool  *pgxpool.Pool
	dbs   [2]*db.Database // by target; nil for a database the pool does not serve
}

// serves is true when the pool hands out connections for t.
func (p *connPool) serves(t target) bool { return p.dbs[t] != nil }

// newConnPool makes a pool of size connections serving the databases in dbs
// (by target). One pool can serve both databases because of two facts of
// pgxpool v5 and puddle v2:
//
//   - puddle's Acquire constructs a missing connection with a context whose
//     values are the acquirer's (newValueCancelCtx(ctx, baseAcquireCtx) in
//     initResourceValue), and pgxpool passes that context to BeforeConnect
//     with a copy of the ConnConfig: so BeforeConnect reads which database
//     the acquirer asked for and points the new connection there.
//   - pgxpool calls PrepareConn with the acquirer's context on every
//     connection it is about to hand out, idle ones included; returning
//     false, nil destroys the connection and retries the acquire (up to
//     MaxConns+1 times), so an idle connection to the other database is
//     closed and its slot used for a new one.
//
// Either way the pool never holds more than size connections in all.
func newConnPool(ctx context.Context, label string, size int, dbs [2]*db.Database, appName string) (*connPool, error) {
	cfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", label, err)
	}
	first := dbs[targetA]
	if first == nil {
		first = dbs[targetB]
	}
	cfg.ConnConfig = first.ConnConfig(appName)
	cfg.MaxConns = int32(size)
	cfg.MinConns, cfg.MinIdleConns = 0, 0
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		t, ok := targetOf(ctx)
		if !ok || dbs[t] == nil {
			return fmt.Errorf("pool %s: a connection was asked for without naming one of its databases", label)
		}
		*cc = *dbs[t].ConnConfig(appName)
		return nil
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		t, _ := targetOf(ctx) // BeforeConnect made sure it is there
		conn.PgConn().CustomData()[customKey] = t
		pgxdecimal.Register(conn.TypeMap())
		return nil
	}
	cfg.PrepareConn = func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		want, ok := targetOf(ctx)
		if !ok {
			return true, fmt.Errorf("pool %s: a connection was asked for without naming one of its databases", label)
		}
		// false, nil: pgxpool destroys this idle connection to the other
		// database and acquires again, making a new one if need be.
		return conn.PgConn().CustomData()[customKey] == want, nil
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", label, err)
	}
	return &connPool{label: label, pool: p, dbs: dbs}, nil
}

// acquire takes a connection for database t from the pool.
func (p *connPool) acquire(ctx context.Context, t target) (*pgxpool.Conn, error) {
	return p.pool.Acquire(withTarget(ctx, t))
}

// state is the pool's own statistics; waiting is the number of tasks
// waiting to acquire from it, which pgxpool does not count.
func (p *connPool) state(waiting int) PoolState {
	s := p.pool.Stat()
	return PoolState{
		Label:                p.label,
		InUse:                s.AcquiredConns(),
		Idle:                 s.IdleConns(),
		Total:                s.TotalConns(),
		Max:                  s.MaxConns(),
		Constructing:         s.ConstructingConns(),
		AcquireCount:         s.AcquireCount(),
		EmptyAcquireCount:    s.EmptyAcquireCount(),
		CanceledAcquireCount: s.CanceledAcquireCount(),
		NewConns:             s.NewConnsCount(),
		Waiting:              waiting,
	}
}
