package cli

import (
	"context"
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
	"lockstep/learn"
	"lockstep/ledger"
	"lockstep/load"
	"lockstep/transcript"
)

func (a *app) chaosCommand() *cobra.Command {
	var (
		strategy  string
		workers   int
		accounts  int
		duration  time.Duration
		killEvery time.Duration
		asJSON    bool
		recordTo  string
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
			progressed := false
			printProgress := progressPrinter(cmd.ErrOrStderr())
			cfg.Progress = func(p load.Progress) { progressed = true; printProgress(p) }
			stopRecording := func() error { return nil }
			if recordTo != "" {
				if stopRecording, err = a.recordChaos(cmd, &cfg, d, recordTo); err != nil {
					return err
				}
			}
			res, err := load.Chaos(ctx, cfg)
			if rerr := stopRecording(); err == nil && rerr != nil {
				return rerr
			}
			if progressed { // the progress line ends
				fmt.Fprintln(cmd.ErrOrStderr())
			}
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
	fl.StringVar(&recordTo, "record", "", "record the workers' locks as lockstep watch sees them, with the progress, to this file (lockstep replay FILE)")
	return cmd
}

// recordChaos records a watch of the chaos run's workers, every 250 ms,
// with the run's progress as notes; the function it returns stops it.
func (a *app) recordChaos(cmd *cobra.Command, cfg *load.ChaosConfig, d *db.Database, path string) (func() error, error) {
	ctx := cmd.Context()
	cfg.RunID = db.NewRunID()
	conn, err := d.Connect(ctx, db.AppName("chaos-record"))
	if err != nil {
		return nil, err
	}
	w, err := transcript.OpenWatch(ctx, conn, transcript.WatchConfig{App: cfg.RunID.Like("W"), ServerLog: d.ServerLog()})
	if err != nil {
		db.CloseConn(ctx, conn)
		return nil, err
	}
	const every = 250 * time.Millisecond
	rec, err := a.recordWatch(path, "chaos", cmd, w, d, fmt.Sprintf("the %d workers of chaos run %s (strategy %s)", cfg.Workers, cfg.RunID, cfg.Strategy.Name), every)
	if err != nil {
		w.Close()
		db.CloseConn(ctx, conn)
		return nil, err
	}
	w.Record(rec) // every look it takes
	show, lastNote := cfg.Progress, ""
	cfg.Progress = func(p load.Progress) {
		show(p)
		note := fmt.Sprintf("%s of %s · committed %d · killed %d · deadlocks %d · serialization failures %d · retries %d",
			p.Elapsed.Round(time.Second), p.Duration, p.Committed, p.Kills, p.Deadlocks, p.SerializationFailures, p.Retries)
		if note != lastNote {
			lastNote = note
			_ = rec.Note(time.Now(), note)
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			_, _ = w.Poll(rctx)
			select {
			case <-rctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() error {
		cancel()
		<-done
		w.Close()
		db.CloseConn(ctx, conn)
		return a.endRecording(rec, path)
	}, nil
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
	var answer string
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "A chaos worker (started by lockstep chaos)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			wp.Schema = a.schema
			var transfer load.TransferFunc
			if answer != "" {
				// A chaos run of lockstep learn --check: the student's answer.
				src, err := os.ReadFile(answer)
				if err != nil {
					return badInput(err)
				}
				ans, err := learn.ParseAnswer(answer, src)
				if err != nil {
					return badInput(err)
				}
				transfer = ans.Transfer()
			}
			if err := load.RunWorkerProcessWith(cmd.Context(), wp, transfer, cmd.OutOrStdout()); err != nil {
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
	fl.StringVar(&answer, "answer", "", "run a student's answer to the transfer exercise instead of a strategy")
	return cmd
}
