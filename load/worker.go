// Package load runs many whole transfers at once, with the ledger's runner
// and its retry policy: the chaos monkey (worker processes killed mid-
// transfer, then the books checked) and the strategy benchmark.
package load

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/ledger"
)

// Tally is what a worker has done so far.
type Tally struct {
	Committed             int
	Deadlocks             int
	SerializationFailures int
	Retries               int
	Failed                int // transfers given up (retries exhausted, other errors)
}

func (t *Tally) add(o Tally) {
	t.Committed += o.Committed
	t.Deadlocks += o.Deadlocks
	t.SerializationFailures += o.SerializationFailures
	t.Retries += o.Retries
	t.Failed += o.Failed
}

// count adds what a whole transfer met: its deadlocks, serialization
// failures and retries.
func (t *Tally) count(res ledger.Result) {
	t.Deadlocks += res.Deadlocks
	t.SerializationFailures += res.SerializationFailures
	t.Retries += max(0, res.Retries())
}

// RandomTransfer picks two different accounts among 1..accounts and an
// amount between 0.01 and 10.00.
func RandomTransfer(r *rand.Rand, accounts int) ledger.Transfer {
	from := 1 + r.IntN(accounts)
	to := 1 + r.IntN(accounts-1)
	if to >= from {
		to++
	}
	return ledger.Transfer{From: int64(from), To: int64(to), Amount: decimal.New(int64(1+r.IntN(1000)), -2)}
}

// TransferFunc runs one whole transfer on conn, calling before(i) (when
// set) before its statement i, with retries as the application would: a
// student's answer in place of a strategy's statements.
type TransferFunc func(ctx context.Context, conn *pgx.Conn, t ledger.Transfer, before func(i int)) (ledger.Result, error)

// Worker runs random transfers on one connection until its context ends.
type Worker struct {
	Conn     *pgx.Conn
	Schema   string
	Strategy *ledger.Strategy
	Accounts int
	Rand     *rand.Rand
	// BeforeStatement, if set, is called before each statement.
	BeforeStatement func(i int)
	// AfterTransfer, if set, is called after each transfer with its latency
	// (retries included) and the worker's tally so far.
	AfterTransfer func(latency time.Duration, t Tally)
	// Transfer, when set, runs each transfer in place of Strategy's script.
	Transfer TransferFunc
	// Prepared sends the strategy's statements prepared once per
	// connection (ledger.Runner.Prepared), as the bench does.
	Prepared bool
}

// Run transfers until ctx ends; it returns the tally.
func (w *Worker) Run(ctx context.Context) (Tally, error) {
	r := ledger.Runner{Conn: w.Conn, Schema: w.Schema, Prepared: w.Prepared}
	if w.BeforeStatement != nil {
		r.BeforeStatement = func(_ *ledger.Script, i int) { w.BeforeStatement(i) }
	}
	// Statements run under a context that never ends: a cancellable one makes
	// pgconn watch it from a goroutine per statement, which costs the server
	// CPU it needs on a small machine. When ctx ends, a cancel request
	// interrupts whatever statement is in flight instead.
	// A strategy without a transaction is never cancelled: a cancel between
	// its autocommit statements would leave a transfer half made, and its
	// short statements end by themselves; the loop stops after the transfer.
	stmtCtx := context.WithoutCancel(ctx)
	if w.Strategy == nil || w.Strategy.Transactional {
		stop := context.AfterFunc(ctx, func() { _ = w.Conn.PgConn().CancelRequest(context.Background()) })
		defer stop()
	}
	var t Tally
	for ctx.Err() == nil {
		start := time.Now()
		var res ledger.Result
		var err error
		if w.Transfer != nil {
			res, err = w.Transfer(stmtCtx, w.Conn, RandomTransfer(w.Rand, w.Accounts), w.BeforeStatement)
		} else {
			res, err = r.Transfer(stmtCtx, w.Strategy, RandomTransfer(w.Rand, w.Accounts))
		}
		t.count(res)
		switch {
		case err == nil:
			t.Committed++
		case ctx.Err() != nil:
			return t, nil
		case w.Conn.IsClosed():
			return t, fmt.Errorf("the connection is lost: %w", err)
		default:
			t.Failed++
		}
		if w.AfterTransfer != nil {
			w.AfterTransfer(time.Since(start), t)
		}
	}
	return t, nil
}

// Report lines a worker process writes for its supervisor.
const (
	reportStatement = "S" // S <i>: about to send statement i
	reportTransfer  = "T" // T <committed> <deadlocks> <serialization failures> <retries> <failed>
)

// ReportTo makes the worker write its progress as report lines to out.
func (w *Worker) ReportTo(out io.Writer) {
	w.BeforeStatement = func(i int) { fmt.Fprintf(out, "%s %d\n", reportStatement, i) }
	w.AfterTransfer = func(_ time.Duration, t Tally) {
		fmt.Fprintf(out, "%s %d %d %d %d %d\n", reportTransfer, t.Committed, t.Deadlocks, t.SerializationFailures, t.Retries, t.Failed)
	}
}

// WorkerProcess is what a chaos worker process is told by its supervisor.
type WorkerProcess struct {
	Schema   string
	Strategy string
	Accounts int
	RunID    string
	Name     string
	Seed     uint64
}

// RunWorkerProcess is a chaos worker's body: it connects through
// DATABASE_URL as lockstep/<run>/<name>, runs random transfers and reports
// each statement and transfer on out, until ctx ends (SIGTERM) or it is killed.
func RunWorkerProcess(ctx context.Context, wp WorkerProcess, out io.Writer) error {
	return RunWorkerProcessWith(ctx, wp, nil, out)
}

// RunWorkerProcessWith is RunWorkerProcess running each transfer with
// transfer (a student's answer) when it is set, in place of the strategy's.
func RunWorkerProcessWith(ctx context.Context, wp WorkerProcess, transfer TransferFunc, out io.Writer) error {
	var s *ledger.Strategy
	if transfer == nil {
		var err error
		if s, err = ledger.Lookup(wp.Strategy); err != nil {
			return err
		}
	}
	if wp.Accounts < 2 {
		return fmt.Errorf("--accounts %d: at least 2", wp.Accounts)
	}
	d, err := db.Open(ctx, db.Options{Schema: wp.Schema, NoThrowaway: true})
	if err != nil {
		return err
	}
	defer d.Close()
	conn, err := d.Connect(ctx, db.RunID(wp.RunID).AppName(wp.Name))
	if err != nil {
		return err
	}
	defer db.CloseConn(ctx, conn)
	// A backend waiting on a lock notices within a second that this process
	// was killed, rather than holding its place in the queue (PostgreSQL 14+).
	_, _ = conn.Exec(ctx, "SET client_connection_check_interval = '1s'")
	w := Worker{Conn: conn, Schema: wp.Schema, Strategy: s, Accounts: wp.Accounts, Transfer: transfer,
		Rand: rand.New(rand.NewPCG(wp.Seed, uint64(time.Now().UnixNano())))}
	w.ReportTo(out)
	_, err = w.Run(ctx)
	return err
}
