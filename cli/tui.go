package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/record"
	"lockstep/scenario"
	"lockstep/sim"
	"lockstep/tui"
)

// openSecond opens the second database of a two-database scenario.
func (a *app) openSecond(ctx context.Context, first *db.Database) (*db.Database, error) {
	d, err := db.OpenSecond(ctx, first, a.dsn2)
	if err != nil {
		return nil, badInput(err)
	}
	if d.Created() {
		fmt.Fprintln(a.stderr, createdSecondNote(d.Name(), first.Name(), first.Server() != nil))
	}
	return d, nil
}

// createdSecondNote tells that lockstep created the second database, and
// what removes it: on a server the user named, lockstep clean; on the
// throwaway server, lockstep's exit, which deletes the whole server (there
// is nothing left for clean to drop).
func createdSecondNote(name, beside string, throwaway bool) string {
	gone := "lockstep clean --all-mine drops it"
	if throwaway {
		gone = "on the throwaway server, deleted with it when lockstep exits"
	}
	return fmt.Sprintf("lockstep: created database %s beside %s for the second side (%s)", name, beside, gone)
}

// startPooler puts a transaction-pooling PgBouncer between the sessions and
// the server when the scenario asks for one, and says so; stop ends it.
func (a *app) startPooler(ctx context.Context, cfg *sim.Config, d *db.Database) (stop func(), err error) {
	if cfg.Scenario == nil || !scenario.NeedsPooler(cfg.ScenarioName) {
		return func() {}, nil
	}
	p, err := db.StartPooler(ctx, d)
	if err != nil {
		if errors.Is(err, db.ErrNoPgbouncer) {
			return nil, badInput(fmt.Errorf("scenario %s runs its sessions through PgBouncer: %w", cfg.ScenarioName, err))
		}
		return nil, fmt.Errorf("starting PgBouncer for scenario %s: %w", cfg.ScenarioName, err)
	}
	cfg.SessionDB = d.Through(p)
	fmt.Fprintf(a.stderr, "lockstep: the sessions reach the server through PgBouncer (transaction pooling, %d server connections), started in %s\n",
		db.PoolerServers, p.Dir())
	return func() { _ = p.Stop() }, nil
}

// runTUI opens the interface in the set-up the flags describe.
func (a *app) runTUI(cmd *cobra.Command, rf *runFlags, sf *scenarioFlags, pf *poolFlags) error {
	theme, err := tui.ParseTheme(a.theme)
	if err != nil {
		return badInput(fmt.Errorf("--theme: %w", err))
	}
	a.theme = theme
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
		if cfg, order, summary, err = sf.config(a, rf, pf.fix); err != nil {
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
	stop, err := a.startPooler(ctx, &cfg, d)
	if err != nil {
		return err
	}
	defer stop()
	server := d.Describe()
	if srv := d.Server(); srv != nil {
		server = "throwaway PostgreSQL " + srv.Version()
	}
	expected := scenario.Expected(sf.scenario, sf.isolation)
	opts := tui.Options{DB: d, Config: cfg, Order: order, Server: server, Transfers: transfers,
		ScenarioSummary: summary, ScenarioExpected: expected, Theme: a.theme}
	var rec *record.Writer
	if a.recordTo != "" {
		if err := checkWritable(a.recordTo); err != nil {
			return err
		}
		opts.Record = func(eng *sim.Engine) (*record.Writer, error) {
			w, err := a.recordRun(a.recordTo, "tui", cmd, eng, d, summary, expected)
			rec = w
			return w, err
		}
	}
	err = tui.Run(ctx, opts)
	if rerr := a.endRecording(rec, a.recordTo); err == nil {
		err = rerr
	}
	if errors.Is(err, ledger.ErrSchemaInUse) || errors.Is(err, ledger.ErrSchemaNotYours) ||
		errors.Is(err, ledger.ErrUnmarkedSchema) || errors.Is(err, ledger.ErrNotLocksteps) {
		return badInput(err)
	}
	return err
}
