package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"lockstep/db"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"
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
	// Prepared sends each statement in its parameterised form
	// (Statement.Param), prepared once per Runner under a name of its own
	// and bound with the statement's values on each use: the server parses
	// and plans each kind of statement once, as with pgbench -M prepared.
	// The bench's goroutine workers set it. SQL() is what errors quote
	// either way.
	Prepared bool
	names    map[string]string // Prepared: the name each text is prepared under
	args     []string
	values   [][]byte
}

// Transfer runs the strategy's whole script for t, retrying the transaction
// on 40P01 and 40001 with bounded, jittered backoff. The autocommit strategy
// is never retried: its earlier statements have already committed.
func (r *Runner) Transfer(ctx context.Context, s *Strategy, t Transfer) (Result, error) {
	f := NewFlight(s, t, r.Schema, r.Policy)
	for {
		i := f.Statement()
		if i >= 0 && r.BeforeStatement != nil {
			r.BeforeStatement(f.Script(), i)
		}
		var row []any
		var err error
		if i >= 0 {
			row, err = r.query(ctx, f)
		} else {
			// Ending a failed attempt. A broken connection fails here too, and
			// the statement's own error is the one Flight reports.
			cctx, cancel := db.Cleanup(ctx)
			_, err = r.Conn.Exec(cctx, f.SQL())
			cancel()
		}
		switch f.Answer(row, err, r.Conn.PgConn().TxStatus()) {
		case Over:
			return f.Result()
		case Backoff:
			select {
			case <-ctx.Done():
				res, _ := f.Result()
				return res, ctx.Err()
			case <-time.After(f.Wait()):
			}
		}
	}
}

// query runs the flight's next statement and returns its first row.
func (r *Runner) query(ctx context.Context, f *Flight) ([]any, error) {
	if !r.Prepared {
		return QueryFirstRow(ctx, r.Conn, f.SQL())
	}
	text, args, ok := f.Param(r.args[:0])
	r.args = args
	if !ok {
		return QueryFirstRow(ctx, r.Conn, f.SQL())
	}
	pc := r.Conn.PgConn()
	name, ok := r.names[text]
	if !ok {
		// Named apart from every other Runner's, which may have used the
		// same connection before. A statement the server refused to
		// prepare is not remembered: the next use tries again.
		name = fmt.Sprintf("lockstep_runner_%d", statementNames.Add(1))
		if _, err := pc.Prepare(ctx, name, text, nil); err != nil {
			return nil, err
		}
		if r.names == nil {
			r.names = map[string]string{}
		}
		r.names[text] = name
	}
	r.values = r.values[:0]
	for _, a := range args {
		r.values = append(r.values, []byte(a))
	}
	return firstRow(pc.ExecPrepared(ctx, name, r.values, nil, nil))
}

// firstRow reads rr to its end and closes it: its first row, as text.
func firstRow(rr *pgconn.ResultReader) ([]any, error) {
	var row []any
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
		return nil, err
	}
	return row, nil
}

// statementNames numbers the statements Runners prepare.
var statementNames atomic.Int64

// Step is what a Flight asks of its driver after an answer.
type Step int

const (
	Send    Step = iota // send SQL() now
	Backoff             // wait Wait(), then send SQL(): the transfer starts again
	Over                // the transfer has ended; Result says how
)

// Flight is one whole transfer in progress: which statement to send next,
// what the ones sent so far returned, and the retry policy. Runner.Transfer
// drives one on a pgx connection; the bench drives many at once from one
// goroutine, writing the statements to the sockets itself. Both go through
// Answer, so both retry, roll back and count alike.
type Flight struct {
	script   *Script
	policy   RetryPolicy
	next     int   // the script statement to send next
	rollback bool  // the next statement is the ROLLBACK ending a failed attempt
	failure  error // the failed statement's error, while that ROLLBACK runs
	wait     time.Duration
	retrying bool // Backoff was returned: the next answer is a new attempt's
	res      Result
	err      error
}

// NewFlight starts a transfer: its first statement is SQL().
func NewFlight(s *Strategy, t Transfer, schema string, p RetryPolicy) *Flight {
	return &Flight{script: s.Script(t, schema), policy: p.withDefaults(), res: Result{Attempts: 1}}
}

// Script is the transfer's script, with what its statements have read.
func (f *Flight) Script() *Script { return f.script }

// Statement is the index in the script of the statement to send next, or -1
// when it is the ROLLBACK that ends a failed attempt.
func (f *Flight) Statement() int {
	if f.rollback {
		return -1
	}
	return f.next
}

// SQL is the statement to send next.
func (f *Flight) SQL() string {
	if f.rollback {
		return "ROLLBACK"
	}
	return f.script.SQL(f.next)
}

// Param is the statement to send next in the extended protocol's form
// (Statement.Param; ROLLBACK has no parameters), its values appended to
// args. ok is false when only SQL() can be sent.
func (f *Flight) Param(args []string) (text string, _ []string, ok bool) {
	if f.rollback {
		return "ROLLBACK", args, true
	}
	return f.script.Statements[f.next].Param(&f.script.Vars, args)
}

// Ahead is the statement k places after the next one (k ≥ 1) in Param's
// form, when a driver may send it before the statements ahead of it have
// answered (pipelining them, with one Sync after the last): only inside a
// transaction, where an error makes the server skip whatever follows it up
// to the Sync — the statements a driver sending one at a time would not
// have sent — and ends the attempt as it would have; never COMMIT; and
// only when no statement ahead of it reads a value it needs (the
// transfer's id for an entry, the balance for the update that writes it).
// ok is false otherwise; a driver stops at the first statement that cannot
// go ahead, and takes the answers in order until one ends the attempt.
func (f *Flight) Ahead(k int, args []string) (text string, _ []string, ok bool) {
	i := f.next + k
	if f.rollback || k < 1 || !f.script.Transactional() || i >= f.script.Len() {
		return "", args, false
	}
	st := f.script.Statements[i]
	if st.Kind == Commit {
		// A ROLLBACK undoes what went ahead of a statement whose answer
		// the flight finds wrong (no row, say): not a COMMIT.
		return "", args, false
	}
	for _, before := range f.script.Statements[f.next:i] {
		if before.Kind == InsertTransfer && st.Kind == InsertEntry ||
			before.Kind == ReadBalance && st.Kind == SetBalance && before.Account == st.Account {
			return "", args, false
		}
	}
	return st.Param(&f.script.Vars, args)
}

// Wait is the backoff before a retry, after Answer returned Backoff.
func (f *Flight) Wait() time.Duration { return f.wait }

// Answer takes the outcome of the statement last sent: its first row (nil
// if none), its error, and the connection's transaction status after it
// ('I' idle, 'T' in a transaction, 'E' in a failed one).
func (f *Flight) Answer(row []any, err error, txStatus byte) Step {
	if f.rollback {
		f.rollback = false
		return f.failed()
	}
	if f.retrying {
		// Counted when it is under way, not when it is scheduled: a retry
		// abandoned in its backoff never ran.
		f.retrying = false
		f.res.Attempts++
	}
	if err == nil {
		err = f.script.Record(f.next, row)
	}
	if err != nil {
		f.failure = fmt.Errorf("statement %d (%s): %w", f.next+1, f.script.SQL(f.next), err)
		if f.script.Transactional() && txStatus != 'I' {
			// The server has aborted the transaction; end it so that the
			// connection can retry or go on with another transfer.
			f.rollback = true
			return Send
		}
		return f.failed()
	}
	f.next++
	if f.next < f.script.Len() {
		return Send
	}
	v := f.script.Vars
	f.res.TransferID, f.res.FromBalance, f.res.ToBalance = v.TransferID, v.After[f.script.Transfer.From], v.After[f.script.Transfer.To]
	return Over
}

// failed decides, once a failed attempt's transaction is over, whether the
// transfer starts again.
func (f *Flight) failed() Step {
	if !f.script.Transactional() {
		f.err = f.failure
		return Over
	}
	switch db.SQLState(f.failure) {
	case pgerrcode.DeadlockDetected:
		f.res.Deadlocks++
	case pgerrcode.SerializationFailure:
		f.res.SerializationFailures++
	default:
		f.err = f.failure
		return Over
	}
	if f.res.Attempts >= f.policy.MaxAttempts {
		f.err = fmt.Errorf("giving up after %d attempts: %w", f.res.Attempts, f.failure)
		return Over
	}
	f.wait = f.policy.backoff(f.res.Attempts)
	f.retrying = true
	f.script.Reset()
	f.next, f.failure = 0, nil
	return Backoff
}

// Result is how the transfer ended, once Answer has returned Over: what it
// did, and its error if it did not commit.
func (f *Flight) Result() (Result, error) { return f.res, f.err }

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
		r, err := firstRow(mrr.ResultReader())
		if err != nil {
			_ = mrr.Close()
			return nil, err
		}
		if row == nil {
			row = r
		}
	}
	if err := mrr.Close(); err != nil {
		return nil, err
	}
	return row, nil
}
