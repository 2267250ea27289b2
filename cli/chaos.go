package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"charm.land/bubbles/v2/progress"
	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/load"
)

func (a *app) chaosCommand() *cobra.Command {
	var (
		strategy  string
		workers   int
		accounts  int
		duration  time.Duration
		killEvery time.Duration
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Kill transfer workers mid-flight and check that the books still balance",
		Long: "chaos starts worker processes (lockstep itself) doing random transfers, kills one with SIGKILL every\n" +
			"--kill-every — inside an open transaction whenever one is — and starts another, then checks the books:\n" +
			"total unchanged, every balance = opening balance + entries, every transfer two entries summing to zero.\n" +
			"A run makes --duration / --kill-every kills; when a slow machine delays them, it runs over until the last.\n" +
			"Exit code 1 when the books are broken.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := ledger.Lookup(strategy)
			if err != nil {
				return badInput(err)
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding lockstep's own binary to run workers: %w", err)
			}
			cfg := load.ChaosConfig{Ledger: a.ledger, Strategy: s, Workers: workers, Accounts: accounts,
				Duration: duration, KillEvery: killEvery}
			if err := cfg.Validate(); err != nil {
				return badInput(err)
			}
			ctx := cmd.Context()
			d, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer d.Close()
			cfg.DB = d
			cfg.Command = func(runID db.RunID, name string, seed uint64) *exec.Cmd {
				return exec.Command(exe, "worker", "--schema", d.Schema(), "--strategy", s.Name,
					"--accounts", strconv.Itoa(accounts), "--run", string(runID), "--name", name, "--seed", strconv.FormatUint(seed, 10))
			}
			cfg.Progress = progressPrinter(cmd.ErrOrStderr())
			res, err := load.Chaos(ctx, cfg)
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("chaos: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				_ = json.NewEncoder(out).Encode(map[string]any{
					"summary": true, "strategy": s.Name, "workers": workers, "accounts": accounts,
					"kills": res.Kills, "kills_in_transaction": res.KillsInTransaction, "kills_mid_transfer": res.KillsMidTransfer,
					"committed": res.Committed, "deadlocks": res.Deadlocks, "serialization_failures": res.SerializationFailures,
					"retries": res.Retries, "failed": res.Failed, "invariant_ok": res.Books.OK(), "books": res.Books.Summary(),
				})
			} else {
				fmt.Fprintf(out, "strategy %s, %d workers, %d accounts, %s, a kill every %s\n", s.Name, workers, accounts, duration, killEvery)
				fmt.Fprintf(out, "committed %d · killed %d (%d inside an open transaction, %d part-way through a transfer)\n",
					res.Committed, res.Kills, res.KillsInTransaction, res.KillsMidTransfer)
				fmt.Fprintf(out, "deadlocks %d · serialization failures %d · retries %d · given up %d\n",
					res.Deadlocks, res.SerializationFailures, res.Retries, res.Failed)
				fmt.Fprintln(out, res.Books.Summary())
			}
			if !res.Books.OK() {
				return &ExitError{Code: ExitFailure, Err: fmt.Errorf("the books are broken under strategy %s", s.Name)}
			}
			if !asJSON {
				fmt.Fprintln(out, "verdict: the books are kept")
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&strategy, "strategy", "ordered", "transfer strategy (see lockstep strategies)")
	fl.IntVar(&workers, "workers", 4, "worker processes (1 is the lab's sequential variant)")
	fl.IntVar(&accounts, "accounts", 10, "accounts to transfer between")
	fl.DurationVar(&duration, "duration", 10*time.Second, "how long to run")
	fl.DurationVar(&killEvery, "kill-every", time.Second, "kill a worker this often")
	fl.BoolVar(&asJSON, "json", false, "end with a JSON summary object")
	return cmd
}

// progressPrinter shows a chaos run's progress: a bar redrawn in place on a
// terminal, a plain line a second otherwise.
func progressPrinter(w io.Writer) func(load.Progress) {
	f, isFile := w.(*os.File)
	tty := isFile && term.IsTerminal(f.Fd())
	bar := progress.New(progress.WithWidth(30))
	last := time.Time{}
	return func(p load.Progress) {
		pct := min(1, p.Elapsed.Seconds()/p.Duration.Seconds())
		counts := fmt.Sprintf("committed %d · killed %d (%d in a transaction) · deadlocks %d · serialization failures %d · retries %d",
			p.Committed, p.Kills, p.KillsInTransaction, p.Deadlocks, p.SerializationFailures, p.Retries)
		if tty {
			fmt.Fprintf(w, "\r\x1b[2K%s %s", bar.ViewAs(pct), counts)
			return
		}
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(w, "%3.0f%% %s\n", pct*100, counts)
		}
	}
}

func (a *app) workerCommand() *cobra.Command {
	var wp load.WorkerProcess
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "A chaos worker (started by lockstep chaos)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			wp.Schema = a.schema
			if err := load.RunWorkerProcess(cmd.Context(), wp, cmd.OutOrStdout()); err != nil {
				return badInput(err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&wp.Strategy, "strategy", "ordered", "transfer strategy")
	fl.IntVar(&wp.Accounts, "accounts", 10, "accounts")
	fl.StringVar(&wp.RunID, "run", "chaos", "run id")
	fl.StringVar(&wp.Name, "name", "W1", "worker name")
	fl.Uint64Var(&wp.Seed, "seed", 1, "random seed")
	return cmd
}
