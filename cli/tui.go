package cli

import (
	"fmt"

	"github.com/spf13/cobra"

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

// runTUI opens the interface in the set-up the flags describe.
func (a *app) runTUI(cmd *cobra.Command, rf *runFlags, sf *scenarioFlags) error {
	cfg, order, err := rf.config(a)
	if err != nil {
		return err
	}
	transfers := cfg
	summary := ""
	if sf.scenario != "" {
		sc, err := loadSpec(sf.scenario, sf.isolation)
		if err != nil {
			return badInput(err)
		}
		if order, err = sc.SessionOrder(sf.permutation); err != nil {
			return badInput(err)
		}
		summary = "an isolation-tester spec file"
		for _, b := range spec.Builtins() {
			if b.Name == sf.scenario {
				summary = b.Summary
			}
		}
		cfg = sim.Config{Scenario: sc, ScenarioName: sf.scenario, Sessions: len(sc.Sessions), Poll: rf.poll}
		if err := cfg.Validate(); err != nil {
			return badInput(err)
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
	server := d.Describe()
	if srv := d.Server(); srv != nil {
		server = "throwaway PostgreSQL " + srv.Version()
	}
	return tui.Run(ctx, tui.Options{DB: d, Config: cfg, Order: order, Server: server, Transfers: transfers, ScenarioSummary: summary})
}
