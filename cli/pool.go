package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/pool"
	"lockstep/tui"
)

// poolFlags set up lockstep run --scenario pool.
type poolFlags struct {
	size, tasks int
	fix         string
}

func (f *poolFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.size, "pool-size", 4, "with --scenario pool: the pool's size P (its MaxConns)")
	fl.IntVar(&f.tasks, "tasks", 0, "with --scenario pool: tasks running at once (default: the pool's size)")
	fl.StringVar(&f.fix, "fix", "none", "the scenario's fix: for pool none, up-front, pool-per-database or semaphore; for ddl-queue lock-timeout; for job-queue nowait or skip-locked; for coupled ordered, lock-timeout, 2pc")
}

// poolSetup checks the flags, opens both databases and builds the pool
// scenario's config. close releases the databases (and stops a throwaway
// server); it is set whenever err is nil.
func (a *app) poolSetup(ctx context.Context, f *poolFlags) (cfg pool.Config, close func(), err error) {
	fix, err := pool.ParseFix(f.fix)
	if err != nil {
		return cfg, nil, badInput(fmt.Errorf("--fix: %w", err))
	}
	cfg = pool.Config{Size: f.size, Tasks: f.tasks, Fix: fix}
	if err := pool.CheckSize(f.size); err != nil {
		return cfg, nil, badInput(fmt.Errorf("--pool-size %d: %w", f.size, err))
	}
	if err := pool.CheckTasks(f.tasks); err != nil {
		return cfg, nil, badInput(fmt.Errorf("--tasks %d: %w", f.tasks, err))
	}
	first, err := a.open(ctx)
	if err != nil {
		return cfg, nil, err
	}
	if cfg.B, err = a.openSecond(ctx, first); err != nil {
		first.Close()
		return cfg, nil, err
	}
	cfg.A = first
	if err := cfg.Validate(); err != nil {
		first.Close()
		return cfg, nil, badInput(err)
	}
	return cfg, func() { first.Close() }, nil
}

// poolTUI shows the pool scenario live in the interface.
func (a *app) poolTUI(cmd *cobra.Command, f *poolFlags) error {
	ctx := cmd.Context()
	cfg, closeDB, err := a.poolSetup(ctx, f)
	if err != nil {
		return err
	}
	defer closeDB()
	return tui.RunPool(ctx, tui.PoolOptions{Config: cfg, Prepare: a.resetPoolLedgers, Server: cfg.A.Describe(), Theme: a.theme})
}

// runPool plays the pool-exhaustion scenario: tasks writing to databases A
// and B through one pool, unfixed or fixed, printing every phase with the
// pools' own statistics.
func (a *app) runPool(cmd *cobra.Command, f *poolFlags, asJSON bool) error {
	ctx := cmd.Context()
	cfg, closeDB, err := a.poolSetup(ctx, f)
	if err != nil {
		return err
	}
	defer closeDB()
	fix, first, second := cfg.Fix, cfg.A, cfg.B
	if err := a.resetPoolLedgers(ctx, cfg); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	var report func(pool.Event)
	if asJSON {
		enc := json.NewEncoder(out)
		report = func(ev pool.Event) {
			_ = enc.Encode(map[string]any{"event": ev.Kind.String(), "task": ev.Task, "line": ev.String(), "pools": ev.Pools, "time": ev.Time})
		}
	} else {
		fmt.Fprintf(out, "scenario pool: %d tasks write to database A (%s), then to B (%s) · fix %s — %s\n\n",
			cfg.TaskCount(), first.Label(), second.Label(), fix, fix.Summary())
		report = func(ev pool.Event) {
			if ev.Kind != pool.KindPool {
				fmt.Fprintln(out, ev.String())
			}
		}
	}
	res, err := pool.Run(ctx, cfg, report)
	if err != nil {
		return fmt.Errorf("the pool scenario: %w", err)
	}
	if asJSON {
		return json.NewEncoder(out).Encode(map[string]any{
			"summary": true, "fix": fix.String(), "pool_size": cfg.Size, "tasks": cfg.TaskCount(),
			"exhausted": res.Exhausted, "completed": res.Completed, "rolled_back": res.RolledBack, "pools": res.Final,
		})
	}
	writePoolEnd(out, res)
	return nil
}

func writePoolEnd(w io.Writer, res pool.Result) {
	fmt.Fprintln(w)
	if res.Exhausted {
		fmt.Fprintf(w, "the pool was exhausted: lockstep cancelled the waiting acquires and rolled back %d tasks\n", res.RolledBack)
		fmt.Fprintln(w, "fixes: --fix up-front, --fix pool-per-database, --fix semaphore")
		return
	}
	fmt.Fprintf(w, "%d tasks committed in both databases; no exhaustion\n", res.Completed)
}

// resetPoolLedgers gives both databases a fresh ledger with the accounts
// the run's tasks need.
func (a *app) resetPoolLedgers(ctx context.Context, cfg pool.Config) error {
	for _, d := range []*db.Database{cfg.A, cfg.B} {
		if err := a.resetPoolLedger(ctx, d, cfg.Accounts()); err != nil {
			return err
		}
	}
	return nil
}

// resetPoolLedger gives database d a fresh ledger with n accounts.
func (a *app) resetPoolLedger(ctx context.Context, d *db.Database, n int) error {
	setup := ledger.DefaultSetup()
	setup.Accounts = max(setup.Accounts, n)
	if err := a.ledger.ResetDatabase(ctx, d, setup); err != nil {
		return fmt.Errorf("resetting the ledger in %s: %w", d.Name(), err)
	}
	return nil
}
