package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/sim"
	"lockstep/spec"
	"lockstep/tui"
)

// scenarioFlags choose a scenario for the interface.
type scenarioFlags struct {
	scenario, isolation string
	permutation         int
}

func (f *scenarioFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "", "an isolation-tester spec file or a built-in scenario (see lockstep scenarios) instead of transfers")
	fl.StringVar(&f.isolation, "isolation", "", "isolation level for a built-in scenario")
	fl.IntVar(&f.permutation, "permutation", 1, "the scenario's permutation autoplay plays")
}

// config builds the engine's config for the scenario the flags name, with
// the permutation's session order and the scenario's one-line summary.
func (f *scenarioFlags) config(a *app, rf *runFlags) (sim.Config, []int, string, error) {
	sc, err := loadSpec(f.scenario, f.isolation)
	if err != nil {
		return sim.Config{}, nil, "", badInput(err)
	}
	order, err := sc.SessionOrder(f.permutation)
	if err != nil {
		return sim.Config{}, nil, "", badInput(err)
	}
	summary := "an isolation-tester spec file"
	for _, b := range spec.Builtins() {
		if b.Name == f.scenario {
			summary = b.Summary
		}
	}
	setup, err := rf.setup()
	if err != nil {
		return sim.Config{}, nil, "", err
	}
	cfg := sim.Config{Scenario: sc, ScenarioName: f.scenario, Sessions: len(sc.Sessions), Poll: rf.poll,
		Ledger: a.ledger, Setup: setup}
	if cfg.TwoDatabases() {
		// Validated once the second database is open.
		return cfg, order, summary, nil
	}
	if err := cfg.Validate(); err != nil {
		return sim.Config{}, nil, "", badInput(err)
	}
	return cfg, order, summary, nil
}

// openSecond opens the second database of a two-database scenario.
func (a *app) openSecond(ctx context.Context, first *db.Database) (*db.Database, error) {
	d, err := db.OpenSecond(ctx, first, a.dsn2)
	if err != nil {
		return nil, badInput(err)
	}
	return d, nil
}

// runTUI opens the interface in the set-up the flags describe.
func (a *app) runTUI(cmd *cobra.Command, rf *runFlags, sf *scenarioFlags, pf *poolFlags) error {
	if sf.scenario == "pool" {
		return a.poolTUI(cmd, pf)
	}
	cfg, order, err := rf.config(a)
	if err != nil {
		return err
	}
	transfers := cfg
	summary := ""
	if sf.scenario != "" {
		if cfg, order, summary, err = sf.config(a, rf); err != nil {
			return err
		}
	}
	ctx := cmd.Context()
	if a.dsn == "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "lockstep: starting…")
	}
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if cfg.Scenario != nil && cfg.TwoDatabases() {
		if cfg.DB2, err = a.openSecond(ctx, d); err != nil {
			return err
		}
	}
	server := d.Describe()
	if srv := d.Server(); srv != nil {
		server = "throwaway PostgreSQL " + srv.Version()
	}
	return tui.Run(ctx, tui.Options{DB: d, Config: cfg, Order: order, Server: server, Transfers: transfers, ScenarioSummary: summary})
}
