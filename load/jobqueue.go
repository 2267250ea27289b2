package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/ledger"
)

// JobModes are the ways a worker of the job-queue workload takes the next
// job: waiting for a locked one, failing at once, or passing over it.
var JobModes = []string{"for-update", "nowait", "skip-locked"}

// jobClause is each mode's locking clause.
var jobClause = map[string]string{"for-update": "FOR UPDATE", "nowait": "FOR UPDATE NOWAIT", "skip-locked": "FOR UPDATE SKIP LOCKED"}

// JobClause is a mode's locking clause, as the workers write it.
func JobClause(mode string) string { return jobClause[mode] }

// JobConfig is one run of the job-queue workload.
type JobConfig struct {
	DB       *db.Database
	Mode     string // one of JobModes
	Workers  int
	Duration time.Duration
	// Jobs is how many jobs are queued at the start; 0 means 100,000.
	Jobs int
}

// JobResult is what one run measured.
type JobResult struct {
	Mode       string        `json:"mode"`
	Workers    int           `json:"workers"`
	Seconds    float64       `json:"seconds"`
	Done       int           `json:"jobs_done"`
	Throughput float64       `json:"jobs_per_s"`
	P50        time.Duration `json:"-"`
	P99        time.Duration `json:"-"`
	P50ms      float64       `json:"p50_ms"`
	P99ms      float64       `json:"p99_ms"`
	// LockErrors counts the takes that failed with 55P03 (NOWAIT).
	LockErrors int `json:"lock_not_available"`
	// Empty counts the takes that found no job: every queued one locked
	// (SKIP LOCKED), or the queue ran dry.
	Empty int `json:"empty_takes"`
}

var jobsRun = db.RunID("jobs")

// JobQueue queues Jobs jobs in table ls_jobs of the database's schema, runs
// Workers workers taking and finishing jobs for Duration in the given mode,
// and measures jobs done per second, the latency of a whole job
// (take, finish, commit) and the takes that failed or found nothing. The
// table is dropped at the end.
func JobQueue(ctx context.Context, cfg JobConfig) (JobResult, error) {
	res := JobResult{Mode: cfg.Mode, Workers: cfg.Workers}
	clause, ok := jobClause[cfg.Mode]
	if !ok {
		return res, fmt.Errorf("unknown job-queue mode %q: use for-update, nowait or skip-locked", cfg.Mode)
	}
	jobs := cfg.Jobs
	if jobs == 0 {
		jobs = 100_000
	}
	ctl, err := cfg.DB.Connect(ctx, jobsRun.AppName("control"))
	if err != nil {
		return res, err
	}
	defer db.CloseConn(ctx, ctl)
	// The run's claim: clean and a reset leave the schema alone meanwhile.
	if err := ledger.Claim(ctx, ctl, cfg.DB.Schema()); err != nil {
		return res, err
	}
	if _, err := ledger.EnsureSchema(ctx, ctl, cfg.DB.Schema()); err != nil {
		return res, err
	}
	for _, sql := range []string{
		"DROP TABLE IF EXISTS ls_jobs",
		"CREATE TABLE ls_jobs (id bigint PRIMARY KEY, state text NOT NULL DEFAULT 'queued')",
		// The workers look only at queued jobs.
		"CREATE INDEX ls_jobs_queued ON ls_jobs (id) WHERE state = 'queued'",
		fmt.Sprintf("INSERT INTO ls_jobs (id) SELECT g FROM generate_series(1, %d) g", jobs),
		"ANALYZE ls_jobs",
	} {
		if _, err := ctl.Exec(ctx, sql); err != nil {
			return res, fmt.Errorf("queueing the jobs: %w", err)
		}
	}
	defer func() {
		cctx, cancel := db.Cleanup(ctx)
		defer cancel()
		_, _ = ctl.Exec(cctx, "DROP TABLE IF EXISTS ls_jobs")
	}()

	take := "SELECT id FROM ls_jobs WHERE state = 'queued' ORDER BY id LIMIT 1 " + clause
	conns := make([]*pgx.Conn, cfg.Workers)
	for i := range conns {
		if conns[i], err = cfg.DB.Connect(ctx, jobsRun.AppName(fmt.Sprintf("W%d", i+1))); err != nil {
			return res, err
		}
		defer db.CloseConn(ctx, conns[i])
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  error
	)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Go(func() {
			var mine []time.Duration
			lockErrors, empty := 0, 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				got, err := takeJob(ctx, conn, take)
				switch {
				case db.SQLState(err) == pgerrcode.LockNotAvailable:
					lockErrors++
				case err != nil:
					mu.Lock()
					firstErr = firstOf(firstErr, err)
					mu.Unlock()
					return
				case !got:
					empty++
				default:
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			res.LockErrors += lockErrors
			res.Empty += empty
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil && ctx.Err() == nil {
		return res, firstErr
	}
	res.Seconds = time.Since(start).Seconds()
	res.Done = len(latencies)
	res.Throughput = float64(res.Done) / res.Seconds
	if len(latencies) > 0 {
		slices.Sort(latencies)
		res.P50, res.P99 = latencies[len(latencies)/2], latencies[len(latencies)*99/100]
		res.P50ms, res.P99ms = float64(res.P50.Microseconds())/1000, float64(res.P99.Microseconds())/1000
	}
	return res, nil
}

func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// takeJob takes the next job and finishes it in one transaction; it
// reports whether there was one to take.
func takeJob(ctx context.Context, conn *pgx.Conn, take string) (bool, error) {
	got := false
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, take).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		got = true
		_, err = tx.Exec(ctx, "UPDATE ls_jobs SET state = 'done' WHERE id = $1", id)
		return err
	})
	return got, err
}
