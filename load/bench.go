package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/ledger"
)

// BenchConfig is one combination to measure.
type BenchConfig struct {
	DB       *db.Database
	Ledger   *ledger.Ledger
	Strategy *ledger.Strategy
	Workers  int
	Accounts int
	Duration time.Duration
	// Pipeline sends, with each statement, those after it that may go
	// ahead of its answer (ledger.Flight.Ahead), in one write with one
	// Sync: a transfer of the ordered strategy takes 3 round trips, not 7.
	// Only connections driven from one goroutine pipeline (not TLS ones).
	Pipeline bool

	// goroutines runs a goroutine per worker, with Worker.Run, even where
	// the connections could be driven from one (see drive); TLS connections
	// always run so. Tests set it to cover that path.
	goroutines bool
}

// BenchResult is what one combination measured.
type BenchResult struct {
	Strategy              string        `json:"strategy"`
	Workers               int           `json:"workers"`
	Accounts              int           `json:"accounts"`
	Seconds               float64       `json:"seconds"`
	Committed             int           `json:"committed"`
	Throughput            float64       `json:"transfers_per_s"`
	P50                   time.Duration `json:"-"`
	P99                   time.Duration `json:"-"`
	P50ms                 float64       `json:"p50_ms"`
	P99ms                 float64       `json:"p99_ms"`
	Deadlocks             int           `json:"deadlocks"`
	SerializationFailures int           `json:"serialization_failures"`
	Retries               int           `json:"retries"`
	Failed                int           `json:"failed"`
	BooksKept             bool          `json:"books_kept"`
	Books                 string        `json:"books"`
}

// Bench resets the ledger, runs Workers workers doing random transfers for
// Duration, and measures throughput, latency and what went wrong.
func Bench(ctx context.Context, cfg BenchConfig) (BenchResult, error) {
	res := BenchResult{Strategy: cfg.Strategy.Name, Workers: cfg.Workers, Accounts: cfg.Accounts}
	ctl, err := freshLedger(ctx, cfg.DB, cfg.Ledger, benchRun.AppName("control"), cfg.Accounts)
	if err != nil {
		return res, err
	}
	defer db.CloseConn(ctx, ctl)
	conns := make([]*pgx.Conn, cfg.Workers)
	defer func() {
		for _, c := range conns {
			if c != nil {
				db.CloseConn(ctx, c)
			}
		}
	}()
	for i := range conns {
		if conns[i], err = cfg.DB.Connect(ctx, benchRun.AppName(fmt.Sprintf("W%d", i+1))); err != nil {
			return res, fmt.Errorf("connecting worker %d: %w", i+1, err)
		}
	}
	var run func(time.Time) (Tally, []time.Duration, error)
	if !cfg.goroutines {
		var release func()
		if run, release, err = driver(ctx, cfg, conns); err != nil {
			return res, err
		}
		defer release()
	}
	if run == nil {
		run = func(start time.Time) (Tally, []time.Duration, error) { return runWorkers(ctx, cfg, conns, start) }
	}
	start := time.Now()
	total, latencies, err := run(start)
	elapsed := time.Since(start)
	if err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	books, err := ledger.CheckBooks(ctx, ctl)
	if err != nil {
		return res, err
	}
	slices.Sort(latencies)
	res.Seconds = elapsed.Seconds()
	res.Committed = total.Committed
	res.Throughput = float64(total.Committed) / elapsed.Seconds()
	res.P50, res.P99 = percentile(latencies, 50), percentile(latencies, 99)
	res.P50ms, res.P99ms = float64(res.P50.Microseconds())/1000, float64(res.P99.Microseconds())/1000
	res.Deadlocks, res.SerializationFailures, res.Retries, res.Failed = total.Deadlocks, total.SerializationFailures, total.Retries, total.Failed
	res.BooksKept, res.Books = books.OK(), books.Summary()
	return res, nil
}

// runWorkers runs a Worker per connection, each in its own goroutine, for
// cfg.Duration from start.
func runWorkers(ctx context.Context, cfg BenchConfig, conns []*pgx.Conn, start time.Time) (Tally, []time.Duration, error) {
	runCtx, cancel := context.WithDeadline(ctx, start.Add(cfg.Duration))
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		total     Tally
		firstErr  error
		wg        sync.WaitGroup
	)
	for i, c := range conns {
		wg.Go(func() {
			var mine []time.Duration
			w := Worker{Conn: c, Schema: cfg.DB.Schema(), Strategy: cfg.Strategy, Accounts: cfg.Accounts, Prepared: true,
				Rand: rand.New(rand.NewPCG(uint64(i+1), uint64(start.UnixNano()))),
				AfterTransfer: func(d time.Duration, t Tally) {
					if t.Committed > len(mine) {
						mine = append(mine, d)
					}
				}}
			t, err := w.Run(runCtx)
			mu.Lock()
			defer mu.Unlock()
			latencies = append(latencies, mine...)
			total.add(t)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	return total, latencies, firstErr
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := (p*len(sorted) + 99) / 100
	return sorted[min(max(k-1, 0), len(sorted)-1)]
}

// freshLedger opens a control connection named appName, claims the
// schema on it for the run (ledger.Claim: clean and another reset leave a
// claimed schema alone), and resets the ledger there with accounts
// accounts of the default balance. The claim lasts as long as the
// connection.
func freshLedger(ctx context.Context, d *db.Database, l *ledger.Ledger, appName string, accounts int) (*pgx.Conn, error) {
	setup := ledger.DefaultSetup()
	setup.Accounts = accounts
	ctl, err := d.Connect(ctx, appName)
	if err != nil {
		return nil, err
	}
	if err := ledger.Claim(ctx, ctl, d.Schema()); err != nil {
		db.CloseConn(ctx, ctl)
		return nil, err
	}
	if _, err := l.Reset(ctx, ctl, d.Schema(), setup); err != nil {
		db.CloseConn(ctx, ctl)
		return nil, fmt.Errorf("resetting the ledger: %w", err)
	}
	return ctl, nil
}

// benchRun names the benchmark's connections: lockstep/bench/W1 ….
const benchRun = db.RunID("bench")

// DriverThreads is how many threads drive a benchmark of n workers: one per
// thread the Go runtime runs (GOMAXPROCS), at most one per worker. pgbench
// is compared with as many client threads (-j).
func DriverThreads(n int) int { return max(1, min(runtime.GOMAXPROCS(0), n)) }
