package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
	"lockstep/transcript"
)

func (a *app) runCommand() *cobra.Command {
	var rf runFlags
	var sf scenarioFlags
	var pf poolFlags
	var asJSON, keep bool
	var resolve, recordTo string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Step the sessions headless and print a transcript",
		Long: "run steps the sessions through their transfers — first in --order, then round-robin, skipping\n" +
			"sessions that wait or have finished — and prints a transcript in the style of PostgreSQL's isolation\n" +
			"tester, each wait explained, then the balances and whether the books are kept. Exit code 1 when\n" +
			"the books end broken (as chaos).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sf.scenario == "pool" {
				return a.runPool(cmd, &pf, asJSON)
			}
			commit, err := parseResolve(resolve)
			if err != nil {
				return err
			}
			cfg, order, summary, err := a.runConfig(&rf, &sf, pf.fix)
			if err != nil {
				return err
			}
			// Each step waits for a poll begun after the last one settled:
			// a waiter the step released (a ROLLBACK TO SAVEPOINT lets one go
			// while its transaction stays open) is printed as completed
			// before the next step, not after a later one, where it would
			// seem to go on at that step. A recording shows every moment
			// with the locks it had, and with Books the balances, as one
			// made in the interface.
			cfg.PollEachStep, cfg.Books = true, recordTo != ""
			ctx := cmd.Context()
			eng, cfg, end, err := a.startRun(ctx, cfg)
			if err != nil {
				return err
			}
			defer end()
			d := cfg.DB
			var t transcript.Transcript = transcript.NewText(cmd.OutOrStdout())
			if asJSON {
				t = transcript.NewJSON(cmd.OutOrStdout())
			}
			rec, err := a.recordRun(recordTo, "run", cmd, eng, d, summary, scenario.Expected(sf.scenario, sf.isolation))
			if err != nil {
				return err
			}
			t.Begin(eng, d.Describe(), summary)
			each := t.Event
			if rec != nil {
				tap := rec.Tap(eng.Sessions)
				each = func(ev sim.Event) {
					tap(ev)
					t.Event(ev)
				}
			}
			outcome, err := eng.PlayToEnd(ctx, sim.NewScheduler(order), commit, each)
			if err != nil {
				return fmt.Errorf("running the sessions: %w", err)
			}
			t.End(outcome)
			if rec != nil {
				_ = rec.Outcome(time.Now(), outcome)
			}
			if err := a.endRecording(rec, recordTo); err != nil {
				return err
			}
			if err := eng.Close(ctx); err != nil {
				return err
			}
			if !keep {
				a.dropRunSchema(ctx, eng)
			}
			if outcome.Books != nil && !outcome.Books.OK() {
				// As chaos does: the strategy broke the ledger's invariant.
				return &ExitError{Code: ExitFailure, Err: fmt.Errorf("the books are broken under strategy %s: %s", cfg.Name(), outcome.Books.Summary())}
			}
			return nil
		},
	}
	rf.register(cmd, "for-update")
	sf.register(cmd)
	pf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per event, then a summary object")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the schema the run created (the ledger, a scenario's tables) on a server you named; by default run drops it at its end (a schema it found, it always leaves)")
	cmd.Flags().StringVar(&recordTo, "record", "", "write the run to this file as it happens (lockstep replay FILE plays it back)")
	cmd.Flags().StringVar(&resolve, "resolve", "commit", "what to do with a prepared transaction the run leaves behind: commit or rollback (COMMIT/ROLLBACK PREPARED)")
	return cmd
}

// startRun opens what the run's config needs — the database, the second
// one of a two-database run, the pooler a scenario asks for — and starts
// its engine. end closes all of it, the engine first.
func (a *app) startRun(ctx context.Context, cfg sim.Config) (*sim.Engine, sim.Config, func(), error) {
	d, err := a.open(ctx)
	if err != nil {
		return nil, cfg, nil, err
	}
	cfg.DB = d
	if cfg.TwoDatabases() {
		if cfg.DB2, err = a.openSecond(ctx, d); err != nil {
			d.Close()
			return nil, cfg, nil, err
		}
	}
	stop, err := a.startPooler(ctx, &cfg, d)
	if err != nil {
		d.Close()
		return nil, cfg, nil, err
	}
	eng, err := sim.New(ctx, cfg)
	if err != nil {
		stop()
		d.Close()
		return nil, cfg, nil, badInput(err)
	}
	return eng, cfg, func() {
		_ = eng.Close(ctx)
		stop()
		d.Close()
	}, nil
}

// dropRunSchema drops, at the end of a run on a server someone else runs,
// each schema the run created (the throwaway server goes whole); a schema
// the run found stays as it was. A schema that something lockstep did not
// make has come to depend on, or that a live run uses, stays too, and the
// line says why: the run itself went well.
func (a *app) dropRunSchema(ctx context.Context, eng *sim.Engine) {
	for _, d := range eng.MadeSchemas() {
		if d.Server() != nil {
			continue
		}
		conn, err := d.Connect(ctx, db.AppName("drop"))
		if err == nil {
			err = ledger.DropSchema(ctx, conn, d.Schema(), ledger.DropOptions{Made: true})
			db.CloseConn(ctx, conn)
		}
		if err != nil {
			fmt.Fprintf(a.stderr, "lockstep: kept schema %s in %s, made for this run: %v (lockstep clean removes it)\n", d.Schema(), d.Name(), err)
			continue
		}
		fmt.Fprintf(a.stderr, "lockstep: dropped schema %s in %s, made for this run (--keep keeps it)\n", d.Schema(), d.Name())
	}
}

func parseResolve(s string) (commit bool, err error) {
	switch s {
	case "commit":
		return true, nil
	case "rollback":
		return false, nil
	}
	return false, badInput(fmt.Errorf("--resolve %q: use commit or rollback", s))
}
