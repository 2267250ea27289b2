package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/isolation"
	"lockstep/ledger"
	"lockstep/record"
	"lockstep/scenario"
	"lockstep/sim"
)

func (a *app) specCommand() *cobra.Command {
	var (
		permutation int
		stuckAfter  time.Duration
		recordTo    string
		level       string
	)
	cmd := &cobra.Command{
		Use:   "spec FILE|SCENARIO",
		Short: "Run a PostgreSQL isolation-tester spec file and print the tester's output",
		Long: "spec reads a spec file in the format of PostgreSQL's isolation tester (src/test/isolation/specs) and\n" +
			"runs its permutations — or every interleaving when it lists none — on real sessions, printing output in\n" +
			"the format of the tester's expected/*.out files, so the two can be diffed. A step waits only when the\n" +
			"server says so. A permutation that can make no progress is reported, not left to hang. The spec's\n" +
			"tables go where the tester's would (the server's search_path), or into --schema when it is given.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "pool" {
				return badInput(errors.New("pool is not a spec: run it with lockstep run --scenario pool, or lockstep --scenario pool"))
			}
			s, err := loadSpec(args[0], level)
			if err != nil {
				return badInput(err)
			}
			for _, ss := range s.Sessions {
				if strings.Contains(ss.Name, "@") {
					return badInput(fmt.Errorf("%s uses two databases (session %s): run it with lockstep run --scenario %s, or lockstep --scenario %s",
						args[0], ss.Name, args[0], args[0]))
				}
			}
			if _, err := isolation.Plan(s, permutation); err != nil {
				return badInput(err)
			}
			defer leanScheduler()()
			ctx := cmd.Context()
			// The connection that checks the server becomes the run's
			// first: one connection start less (specs run by the hundred).
			a.keepCheck = true
			// One short statement at a time: the sockets' reads and
			// writes, and a file's, leave the scheduler's monitor asleep.
			a.quietIO = true
			d, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer d.Close()
			r := &isolation.Runner{DB: d, Out: quietOut(cmd.OutOrStdout()), Err: cmd.ErrOrStderr(), StuckAfter: stuckAfter,
				// As the tester does, sessions are named PGAPPNAME/SESSION when it is set.
				AppName: os.Getenv("PGAPPNAME")}
			if cmd.Flags().Changed("schema") {
				r.Schema = a.schema
				// Refused before anything runs: the spec's setup and
				// teardown create and drop tables there.
				if err := checkSchema(ctx, d, r.Schema); err != nil {
					return err
				}
			}
			var rec *record.Writer
			var recErr error
			if recordTo != "" {
				if err := checkWritable(recordTo); err != nil {
					return err
				}
				var tap func(sim.Event)
				r.Tap = func(eng *sim.Engine, ev sim.Event) {
					if rec == nil && recErr == nil {
						if rec, recErr = a.recordRun(recordTo, "spec", cmd, eng, d, scenarioSummary(args[0]), ""); recErr != nil {
							return
						}
						tap = rec.Tap(eng.Sessions)
					}
					if tap != nil {
						tap(ev)
					}
				}
			}
			err = r.Run(ctx, s, permutation)
			if rerr := a.endRecording(rec, recordTo); err == nil {
				err = errors.Join(recErr, rerr)
			}
			switch {
			case err == isolation.ErrSetupFailed:
				// The tester's own line said it all, as the tester does.
				return &ExitError{Code: ExitFailure, Err: err, Said: true}
			case errors.Is(err, isolation.ErrSetupFailed) || errors.Is(err, isolation.ErrStuck):
				return &ExitError{Code: ExitFailure, Err: err}
			case errors.Is(err, sim.ErrNoPreparedTransactions), errors.Is(err, ledger.ErrUnmarkedSchema),
				errors.Is(err, ledger.ErrSchemaNotYours), errors.Is(err, ledger.ErrSchemaInUse):
				return badInput(err)
			}
			return err
		},
	}
	cmd.Flags().IntVar(&permutation, "permutation", 0, "run only permutation K (counting from 1)")
	cmd.Flags().StringVar(&recordTo, "record", "", "write the run to this file as it happens (lockstep replay FILE plays it back)")
	cmd.Flags().StringVar(&level, "isolation", "", "isolation level for a built-in scenario: read-committed, repeatable-read, serializable")
	cmd.Flags().DurationVar(&stuckAfter, "stuck-after", 2*time.Second, "how long every running step may wait, with no deadlock to break, before one is cancelled")
	return cmd
}

// loadSpec reads a spec file, or else a built-in scenario of that name.
func loadSpec(arg, level string) (*scenario.Spec, error) {
	if st, serr := os.Stat(arg); serr == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory; pass a spec file (NAME.spec) or a built-in scenario's name (lockstep scenarios lists them)", arg)
	}
	s, err := scenario.ReadFile(arg)
	switch {
	case err == nil:
		if level != "" {
			return nil, errors.New("--isolation applies to built-in scenarios; a spec file sets its own levels")
		}
		return s, nil
	case errors.Is(err, os.ErrNotExist) && !strings.ContainsAny(arg, "/."):
		return scenario.LoadBuiltin(arg, level)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no spec file %s; pass a spec file (NAME.spec) or a built-in scenario's name (lockstep scenarios lists them)", arg)
	}
	return nil, err
}

func (a *app) scenariosCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "scenarios",
		Short: "List the built-in scenarios",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			const w = 24
			for _, b := range scenario.Builtins() {
				fmt.Fprintf(out, "%-*s %s\n", w, b.Name, b.Summary)
				for _, level := range scenario.IsolationLevels() {
					if o, ok := b.Outcomes[level]; ok {
						fmt.Fprintf(out, "%-*s   %-16s %s\n", w, "", level+":", o)
					}
				}
			}
			fmt.Fprintf(out, "%-*s %s\n", w, "pool", "one connection pool for two databases: P tasks each hold one connection and wait for another (--fix …)")
			fmt.Fprintln(out, "\nRun one with lockstep run --scenario NAME, or in the interface with lockstep --scenario NAME;")
			fmt.Fprintln(out, "the one-database scenarios also with lockstep spec NAME (PostgreSQL's isolation-tester output).")
			return nil
		},
	}
}

// checkSchema refuses, before anything runs, a schema lockstep may not use
// (ledger.CheckSchema).
func checkSchema(ctx context.Context, d *db.Database, schema string) error {
	conn, err := d.Connect(ctx, db.AppName("check"))
	if err != nil {
		return err
	}
	defer db.CloseConn(ctx, conn)
	return badInput(ledger.CheckSchema(ctx, conn, schema))
}

// leanScheduler runs the spec on one thread at a time, as the isolation
// tester runs on one: its goroutines (the player, a worker per session, the
// observer) take turns, each waking the next on the same thread, and the
// runtime stops waking a second thread to look for work on every statement
// — which cost more than the statements on two cores (README, "Measured").
// An explicit GOMAXPROCS in the environment is left as it is. The garbage
// collector runs a fifth as often (its heap may grow to five times what is
// live, a few MB): a spec's garbage is its statements' results, and a
// collection cost more than the memory. The function it returns puts the
// previous settings back (tests run specs in-process).
func leanScheduler() (restore func()) {
	prevGC := -1
	if os.Getenv("GOGC") == "" {
		prevGC = debug.SetGCPercent(400)
	}
	prev := 0
	if os.Getenv("GOMAXPROCS") == "" {
		prev = runtime.GOMAXPROCS(1)
	}
	return func() {
		if prev > 0 {
			runtime.GOMAXPROCS(prev)
		}
		if prevGC >= 0 {
			debug.SetGCPercent(prevGC)
		}
	}
}
