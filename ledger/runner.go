package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"
)

// SQLSTATEs the runner retries.
const (
	DeadlockDetected     = "40P01"
	SerializationFailure = "40001"
)

// RetryPolicy bounds the retries of a whole transfer after a deadlock or a
// serialization failure.
type RetryPolicy struct {
	MaxAttempts int           // including the first; 0 means 10
	BaseDelay   time.Duration // first backoff; 0 means 2ms
	MaxDelay    time.Duration // backoff cap; 0 means 100ms
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 10
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 2 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 100 * time.Millisecond
	}
	return p
}

// backoff is "full jitter": a random wait up to an exponentially growing cap,
// so that two transactions that just deadlocked do not collide again in step.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	ceiling := p.BaseDelay << min(attempt, 16)
	if ceiling > p.MaxDelay || ceiling <= 0 {
		ceiling = p.MaxDelay
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// Result is what a whole transfer did.
type Result struct {
	TransferID            int64
	FromBalance           decimal.Decimal // the from account's balance after the transfer
	ToBalance             decimal.Decimal // the to account's balance after the transfer
	Attempts              int
	Deadlocks             int
	SerializationFailures int
}

// Retries is how many attempts were repeated.
func (r Result) Retries() int { return r.Attempts - 1 }

// Runner runs whole transfers on one connection.
type Runner struct {
	Conn   *pgx.Conn
	Schema string // names the advisory-lock namespace
	Policy RetryPolicy
	// BeforeStatement, if set, is called before each statement with its index;
	// the chaos monkey's workers use it to report where they are.
	BeforeStatement func(script *Script, i int)
}

// Transfer runs the strategy's whole script for t, retrying the transaction
// on 40P01 and 40001 with bounded, jittered backoff. The autocommit strategy
// is never retried: its earlier statements have already committed.
func (r *Runner) Transfer(ctx context.Context, s *Strategy, t Transfer) (Result, error) {
	policy := r.Policy.withDefaults()
	script := s.Script(t, r.Schema)
	var res Result
	for {
		res.Attempts++
		err := r.runOnce(ctx, script)
		if err == nil {
			res.TransferID = script.Vars.TransferID
			res.FromBalance = script.Vars.After[t.From]
			res.ToBalance = script.Vars.After[t.To]
			return res, nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || !s.Transactional {
			return res, err
		}
		switch pgErr.Code {
		case DeadlockDetected:
			res.Deadlocks++
		case SerializationFailure:
			res.SerializationFailures++
		default:
			return res, err
		}
		if res.Attempts >= policy.MaxAttempts {
			return res, fmt.Errorf("giving up after %d attempts: %w", res.Attempts, err)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(policy.backoff(res.Attempts)):
		}
		script.Reset()
	}
}

func (r *Runner) runOnce(ctx context.Context, script *Script) error {
	for i := range script.Statements {
		if r.BeforeStatement != nil {
			r.BeforeStatement(script, i)
		}
		row, err := QueryFirstRow(ctx, r.Conn, script.SQL(i))
		if err == nil {
			err = script.Record(i, row)
		}
		if err != nil {
			if script.Transactional() && r.Conn.PgConn().TxStatus() != 'I' {
				// The server has aborted the transaction; end it so the
				// connection can retry. A broken connection fails here too,
				// and the statement's own error is the one worth reporting.
				_, _ = r.Conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			}
			return fmt.Errorf("statement %d (%s): %w", i+1, script.SQL(i), err)
		}
	}
	return nil
}

// QueryFirstRow runs one literal SQL statement with the simple protocol (one
// round trip, as psql would send it) and returns its first row as text, if
// any. It goes straight to pgconn: the values are literals, so there is
// nothing for pgx to sanitize, prepare or decode.
func QueryFirstRow(ctx context.Context, conn *pgx.Conn, sql string) ([]any, error) {
	// Read the results as they come rather than with ReadAll, which copies
	// every row of every result: statements here return at most one row.
	mrr := conn.PgConn().Exec(ctx, sql)
	var row []any
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			if row == nil {
				values := rr.Values()
				row = make([]any, len(values))
				for i, v := range values {
					row[i] = string(v)
				}
			}
		}
		if _, err := rr.Close(); err != nil {
			_ = mrr.Close()
			return nil, err
		}
	}
	if err := mrr.Close(); err != nil {
		return nil, err
	}
	return row, nil
}
