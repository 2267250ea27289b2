package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

// setupFlags are --accounts and --balance, shared by the commands that reset.
type setupFlags struct {
	accounts int
	balance  string
	// warn is where a slow set-up is announced: the command's stderr.
	warn func() io.Writer
}

func (f *setupFlags) register(cmd *cobra.Command) {
	f.warn = cmd.ErrOrStderr
	cmd.Flags().IntVar(&f.accounts, "accounts", 2, "number of accounts (ids 1..N, at most 1,000,000)")
	cmd.Flags().StringVar(&f.balance, "balance", "100.00", "opening balance of every account")
}

func (f *setupFlags) setup() (ledger.Setup, error) {
	bal, err := decimal.NewFromString(f.balance)
	if err != nil {
		return ledger.Setup{}, badInput(fmt.Errorf("--balance %q is not an amount; write it like 100.00", f.balance))
	}
	if err := ledger.CheckAccounts(f.accounts); err != nil {
		return ledger.Setup{}, badInput(fmt.Errorf("--accounts %d: %w", f.accounts, err))
	}
	if err := ledger.CheckBalance(bal); err != nil {
		return ledger.Setup{}, badInput(fmt.Errorf("--balance %s: %w", bal.StringFixed(2), err))
	}
	if f.accounts >= bigReset && f.warn != nil {
		fmt.Fprintf(f.warn(), "lockstep: creating %d accounts takes a while (a million take about 7 s on a 2-core machine)\n", f.accounts)
	}
	return ledger.Setup{Accounts: f.accounts, Balance: bal}, nil
}

// bigReset is the ledger size from which a reset is said to take a while.
const bigReset = 100_000

// runFlags are the set-up flags shared by run and the TUI.
type runFlags struct {
	setupFlags
	strategy  string
	sessions  int
	direction string
	order     string
	amount    string
	poll      time.Duration
}

func (f *runFlags) register(cmd *cobra.Command, defaultStrategy string) {
	f.setupFlags.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.strategy, "strategy", defaultStrategy, "transfer strategy (see lockstep strategies)")
	fl.IntVar(&f.sessions, "sessions", 2, "number of sessions, 2 to 9")
	fl.StringVar(&f.direction, "direction", "same", "same: every session moves 1 → 2; opposite: even sessions move 2 → 1; ring: T1 1 → 2, T2 2 → 3, …, the last back to 1")
	fl.StringVar(&f.order, "order", "", "sessions to step first, e.g. T1,T2,T2 (then round-robin)")
	fl.StringVar(&f.amount, "amount", "10.00", "amount each session transfers")
	fl.DurationVar(&f.poll, "poll", sim.DefaultPoll, "how often the lock observer polls")
}

// config checks the flags and builds the engine's config (without DB) and
// the stored order.
func (f *runFlags) config(a *app) (sim.Config, []int, error) {
	var cfg sim.Config
	strategy, err := ledger.Lookup(f.strategy)
	if err != nil {
		return cfg, nil, badInput(err)
	}
	dir, err := sim.ParseDirection(f.direction)
	if err != nil {
		var names []string
		for _, d := range sim.Directions() {
			names = append(names, d.String())
		}
		return cfg, nil, badInput(fmt.Errorf("unknown --direction %q: use %s", f.direction, strings.Join(names, ", ")))
	}
	if err := sim.CheckSessions(f.sessions); err != nil {
		return cfg, nil, badInput(fmt.Errorf("--sessions %d: %w", f.sessions, err))
	}
	setup, err := f.setup()
	if err != nil {
		return cfg, nil, err
	}
	amount, err := decimal.NewFromString(f.amount)
	if err != nil || !amount.IsPositive() || amount.Exponent() < -2 {
		return cfg, nil, badInput(fmt.Errorf("--amount %q: write a positive amount like 10.00", f.amount))
	}
	if err := ledger.CheckBalance(amount); err != nil {
		return cfg, nil, badInput(fmt.Errorf("--amount %s: %w", amount.StringFixed(2), err))
	}
	if err := checkInterval("--poll", f.poll, sim.DefaultPoll); err != nil {
		return cfg, nil, err
	}
	cfg = sim.Config{Ledger: a.ledger, Strategy: strategy, Sessions: f.sessions, Direction: dir,
		Amount: amount, Setup: setup, Poll: f.poll}
	if err := cfg.Validate(); err != nil {
		if few := (*sim.TooFewAccountsError)(nil); errors.As(err, &few) {
			return cfg, nil, badInput(fmt.Errorf("%w: add --accounts %d", err, few.Sessions))
		}
		return cfg, nil, badInput(err)
	}
	order, err := sim.ParseOrder(f.order, f.sessions)
	if err != nil {
		return cfg, nil, badInput(fmt.Errorf("--order: %w", err))
	}
	return cfg, order, nil
}

// runConfig is the run the flags choose: the transfers rf describes, or
// the scenario sf names (with fix), and its one-line summary.
func (a *app) runConfig(rf *runFlags, sf *scenarioFlags, fix string) (sim.Config, []int, string, error) {
	cfg, order, err := rf.config(a)
	if err != nil || sf.scenario == "" {
		return cfg, order, "", err
	}
	return sf.config(a, rf, fix)
}

// scenarioFlags choose a scenario instead of transfers.
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
func (f *scenarioFlags) config(a *app, rf *runFlags, fix string) (sim.Config, []int, string, error) {
	if fix != "" && fix != "none" {
		name, err := scenario.WithFix(f.scenario, fix)
		if err != nil {
			return sim.Config{}, nil, "", badInput(err)
		}
		f.scenario = name
	}
	sc, err := loadSpec(f.scenario, f.isolation)
	if err != nil {
		return sim.Config{}, nil, "", badInput(err)
	}
	order, err := sc.SessionOrder(f.permutation)
	if err != nil {
		return sim.Config{}, nil, "", badInput(fmt.Errorf("--permutation %d: %w", f.permutation, err))
	}
	setup, err := rf.setup()
	if err != nil {
		return sim.Config{}, nil, "", err
	}
	cfg := sim.Config{Scenario: sc, ScenarioName: f.scenario, Sessions: len(sc.Sessions), Poll: rf.poll,
		Ledger: a.ledger, Setup: setup}
	if cfg.TwoDatabases() {
		// Validated once the second database is open.
		return cfg, order, scenarioSummary(f.scenario), nil
	}
	if err := cfg.Validate(); err != nil {
		return sim.Config{}, nil, "", badInput(err)
	}
	return cfg, order, scenarioSummary(f.scenario), nil
}

// scenarioSummary is a scenario's one line: a built-in's summary, or what a
// spec file is.
func scenarioSummary(name string) string {
	for _, b := range scenario.Builtins() {
		if b.Name == name {
			return b.Summary
		}
	}
	return "an isolation-tester spec file"
}

// Bounds of how often lockstep looks at the server (--poll, --every): each
// look is a query the server answers, and one every nanosecond kept a core
// busy in lockstep and half of one in the server, for nothing a screen can
// show; one less often than every minute shows nothing live.
const (
	minInterval = 10 * time.Millisecond
	maxInterval = time.Minute
)

// checkInterval refuses an interval outside the bounds, naming the flag and
// its default.
func checkInterval(flag string, d, def time.Duration) error {
	switch {
	case d < minInterval:
		return badInput(fmt.Errorf("%s %s: at least %s (each look is a query on the server; the default is %s)", flag, d, minInterval, def))
	case d > maxInterval:
		return badInput(fmt.Errorf("%s %s: at most %s (the default is %s)", flag, d, maxInterval, def))
	}
	return nil
}
