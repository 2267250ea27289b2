package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/term"
	"github.com/guptarohit/asciigraph"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/load"
)

// parseInts reads a comma-separated list of positive integers.
func parseInts(flag, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("--%s %q: give numbers from %d to %d separated by commas", flag, s, lo, hi)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseStrategies reads --strategy: names separated by commas, where all
// stands for every strategy; the error names the name that is wrong.
func parseStrategies(s string) ([]*ledger.Strategy, error) {
	var out []*ledger.Strategy
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "all" {
			out = append(out, ledger.Strategies()...)
			continue
		}
		st, err := ledger.Lookup(name)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// pgbenchRow is one comparison with pgbench.
type pgbenchRow struct {
	Workers     int     `json:"workers"`
	Accounts    int     `json:"accounts"`
	PgbenchTPS  float64 `json:"pgbench_transfers_per_s"`
	LockstepTPS float64 `json:"lockstep_transfers_per_s"`
	// Ratio is the median of the rounds' own ratios: each round runs the
	// two side by side, so a machine that slows down for a while slows both.
	Ratio float64 `json:"ratio"`
	// Rounds are each round's own ratio: how far apart they are is how
	// noisy the machine was.
	Rounds []float64 `json:"round_ratios"`
	// Threads is how many threads drive lockstep's workers, and pgbench's
	// clients (-j).
	Threads int `json:"client_threads"`
	// Pipelined says lockstep ran with --pipeline (pgbench one statement
	// at a time).
	Pipelined bool `json:"pipelined"`
	// The same against pgbench -M prepared, its fastest mode, run in the
	// same rounds.
	PreparedTPS    float64   `json:"pgbench_prepared_transfers_per_s"`
	RatioPrepared  float64   `json:"ratio_prepared"`
	RoundsPrepared []float64 `json:"round_ratios_prepared"`
}

// benchFlags are bench's flags, and what they parse to.
type benchFlags struct {
	strategies, workers, accounts string
	workload                      string
	duration                      time.Duration
	asCSV, asJSON, vsPgbench      bool
	pipeline                      bool
	rounds                        int
	roundsSet                     bool // --rounds was given

	ss      []*ledger.Strategy
	ws, as  []int
	pgbench string // the pgbench binary, with --vs-pgbench
}

// parse checks the flags; every problem is the user's to fix.
func (f *benchFlags) parse() error {
	var err error
	if f.ss, err = parseStrategies(f.strategies); err != nil {
		return badInput(err)
	}
	if f.ws, err = parseInts("workers", f.workers, 1, 64); err != nil {
		return badInput(err)
	}
	if f.as, err = parseInts("accounts", f.accounts, 2, 1_000_000); err != nil {
		return badInput(err)
	}
	switch {
	case f.workload != "transfers" && f.workload != "job-queue":
		return badInput(fmt.Errorf("--workload %q: use transfers or job-queue", f.workload))
	case f.workload == "job-queue" && (f.vsPgbench || f.asCSV):
		return badInput(fmt.Errorf("--workload job-queue: --vs-pgbench and --csv are for transfers; use --json"))
	case f.workload == "job-queue" && f.pipeline:
		return badInput(fmt.Errorf("--workload job-queue: --pipeline is for transfers"))
	case f.duration <= 0:
		return badInput(fmt.Errorf("--duration %s: must be positive", f.duration))
	case f.asCSV && f.asJSON:
		return badInput(fmt.Errorf("--csv and --json: choose one"))
	case f.roundsSet && !f.vsPgbench:
		return badInput(fmt.Errorf("--rounds %d: rounds are of the comparison with pgbench; add --vs-pgbench", f.rounds))
	case f.rounds < 1 || f.rounds > 20:
		return badInput(fmt.Errorf("--rounds %d: use 1 to 20 rounds of pgbench and lockstep side by side", f.rounds))
	}
	if f.vsPgbench {
		if f.pgbench, err = load.FindPgbench(); err != nil {
			return badInput(err)
		}
	}
	return nil
}

func (a *app) benchCommand() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure what each strategy costs: throughput, latency, deadlocks, retries",
		Long: "bench runs each combination of strategy, workers and accounts on a freshly reset ledger for --duration\n" +
			"and reports transfers per second, latency p50/p99, deadlocks, serialization failures, retries and whether\n" +
			"the books were kept. --vs-pgbench also runs pgbench with the ordered strategy's statements.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.roundsSet = cmd.Flags().Changed("rounds")
			if err := f.parse(); err != nil {
				return err
			}
			ctx := cmd.Context()
			d, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer d.Close()
			out := cmd.OutOrStdout()
			b := &benchRun{a: a, f: &f, d: d, out: out, progress: cmd.ErrOrStderr()}
			if f.workload == "job-queue" {
				return b.benchJobs(ctx)
			}
			results, err := b.matrix(ctx)
			if err != nil {
				return err
			}
			var cmp []pgbenchRow
			if f.vsPgbench {
				if cmp, err = b.compare(ctx); err != nil {
					return err
				}
			}
			switch {
			case f.asJSON && f.vsPgbench:
				worst, worstPrepared := cmp[0].Ratio, cmp[0].RatioPrepared
				for _, c := range cmp {
					worst, worstPrepared = min(worst, c.Ratio), min(worstPrepared, c.RatioPrepared)
				}
				_ = json.NewEncoder(out).Encode(map[string]any{"summary": true, "pgbench": cmp, "ratio_vs_pgbench": worst,
					"ratio_vs_pgbench_prepared": worstPrepared})
			case f.asJSON, f.asCSV:
			default:
				printBenchTable(out, results)
				printBenchChart(out, results, f.ws, f.as, isColourTerminal(out))
				printPgbenchRows(out, cmp)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.strategies, "strategy", "all", "all, or strategies separated by commas")
	fl.StringVar(&f.workers, "workers", "1,2,4,8,16", "worker counts, separated by commas")
	fl.StringVar(&f.accounts, "accounts", "100", "account counts, separated by commas (e.g. 2,100,10000)")
	fl.DurationVar(&f.duration, "duration", 2*time.Second, "how long each combination runs")
	fl.StringVar(&f.workload, "workload", "transfers", "transfers (the strategies), or job-queue: workers taking jobs FOR UPDATE, NOWAIT and SKIP LOCKED")
	fl.BoolVar(&f.asCSV, "csv", false, "print CSV")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON object per combination")
	fl.BoolVar(&f.vsPgbench, "vs-pgbench", false, "also run pgbench with the ordered strategy's statements and compare")
	fl.BoolVar(&f.pipeline, "pipeline", false, "send each statement together with those after it that need no value read before them (the ordered strategy's transfer in 3 round trips, not 7); pgbench sends one at a time")
	fl.IntVar(&f.rounds, "rounds", 3, "with --vs-pgbench: rounds of pgbench and lockstep side by side per worker count; the median ratio is reported")
	return cmd
}

// benchRun is one bench command's database and outputs.
type benchRun struct {
	a        *app
	f        *benchFlags
	d        *db.Database
	out      io.Writer
	progress io.Writer
}

// matrix runs every combination of accounts, strategy and workers, printing
// each as it ends with --json or --csv.
func (b *benchRun) matrix(ctx context.Context) ([]load.BenchResult, error) {
	var results []load.BenchResult
	var csvw *csv.Writer
	if b.f.asCSV {
		csvw = csv.NewWriter(b.out)
		_ = csvw.Write([]string{"strategy", "workers", "accounts", "transfers_per_s", "p50_ms", "p99_ms", "deadlocks", "serialization_failures", "retries", "failed", "books_kept"})
	}
	for _, acc := range b.f.as {
		for _, s := range b.f.ss {
			for _, w := range b.f.ws {
				fmt.Fprintf(b.progress, "bench %s, %d workers, %d accounts…\n", s.Name, w, acc)
				r, err := b.bench(ctx, s, w, acc)
				if err != nil {
					return nil, fmt.Errorf("bench %s, %d workers, %d accounts: %w", s.Name, w, acc, err)
				}
				results = append(results, r)
				switch {
				case b.f.asJSON:
					_ = json.NewEncoder(b.out).Encode(r)
				case b.f.asCSV:
					_ = csvw.Write([]string{r.Strategy, strconv.Itoa(r.Workers), strconv.Itoa(r.Accounts),
						fmt.Sprintf("%.1f", r.Throughput), fmt.Sprintf("%.2f", r.P50ms), fmt.Sprintf("%.2f", r.P99ms),
						strconv.Itoa(r.Deadlocks), strconv.Itoa(r.SerializationFailures), strconv.Itoa(r.Retries),
						strconv.Itoa(r.Failed), strconv.FormatBool(r.BooksKept)})
					csvw.Flush()
				}
			}
		}
	}
	return results, nil
}

func (b *benchRun) bench(ctx context.Context, s *ledger.Strategy, workers, accounts int) (load.BenchResult, error) {
	return load.Bench(ctx, load.BenchConfig{DB: b.d, Ledger: b.a.ledger, Strategy: s, Workers: workers, Accounts: accounts, Duration: b.f.duration,
		Pipeline: b.f.pipeline})
}

// compare runs pgbench, with the simple query protocol and with -M
// prepared, against lockstep's ordered strategy for each count of accounts
// and workers: interleaved rounds, the order of the three rotating from
// one round to the next, so that none always runs on a server warmed, or
// tired, by another.
func (b *benchRun) compare(ctx context.Context) ([]pgbenchRow, error) {
	rounds := float64(b.f.rounds)
	var cmp []pgbenchRow
	for _, acc := range b.f.as {
		for _, w := range b.f.ws {
			row := pgbenchRow{Workers: w, Accounts: acc, Threads: load.DriverThreads(w), Pipelined: b.f.pipeline}
			for round := range b.f.rounds {
				var simple, prepared float64
				var r load.BenchResult
				pgbench := func(tps *float64, prep bool, mode string) func() error {
					return func() (err error) {
						fmt.Fprintf(b.progress, "pgbench%s, %d clients, %d accounts…\n", mode, w, acc)
						*tps, err = load.Pgbench(ctx, b.f.pgbench, b.d, b.a.ledger, w, acc, b.f.duration, prep)
						if errors.Is(err, load.ErrPgbenchIdle) {
							// One round of a loaded machine does not end the
							// comparison: the round is left out, and said so.
							fmt.Fprintf(b.progress, "pgbench%s completed no transaction in %s: round %d is left out of its ratio\n", mode, b.f.duration, round+1)
							return nil
						}
						return err
					}
				}
				runs := []func() error{pgbench(&simple, false, ""), pgbench(&prepared, true, " -M prepared"), func() (err error) {
					fmt.Fprintf(b.progress, "lockstep ordered, %d workers, %d accounts…\n", w, acc)
					r, err = b.bench(ctx, mustLookup("ordered"), w, acc)
					return err
				}}
				for i := range runs {
					if err := runs[(round+i)%len(runs)](); err != nil {
						return nil, err
					}
				}
				row.LockstepTPS += r.Throughput / rounds
				if simple > 0 {
					row.PgbenchTPS += simple
					row.Rounds = append(row.Rounds, r.Throughput/simple)
				}
				if prepared > 0 {
					row.PreparedTPS += prepared
					row.RoundsPrepared = append(row.RoundsPrepared, r.Throughput/prepared)
				}
			}
			// pgbench's means are over the rounds it completed a transaction in.
			if n := len(row.Rounds); n > 0 {
				row.PgbenchTPS /= float64(n)
			}
			if n := len(row.RoundsPrepared); n > 0 {
				row.PreparedTPS /= float64(n)
			}
			row.Ratio, row.RatioPrepared = median(row.Rounds), median(row.RoundsPrepared)
			cmp = append(cmp, row)
		}
	}
	return cmp, nil
}

// printPgbenchRows prints each comparison with pgbench on a line.
func printPgbenchRows(w io.Writer, cmp []pgbenchRow) {
	for _, c := range cmp {
		each := func(xs []float64) string {
			s := make([]string, len(xs))
			for i, x := range xs {
				s[i] = fmt.Sprintf("%.2f", x)
			}
			return strings.Join(s, ", ")
		}
		name := "ordered"
		if c.Pipelined {
			name = "ordered, pipelined,"
		}
		// A mode whose every round was left out (pgbench completed no
		// transaction) has no figure, not a zero one.
		ratio := func(r float64, xs []float64) string {
			if len(xs) == 0 {
				return "no ratio (pgbench completed no transaction in any round)"
			}
			return fmt.Sprintf("%.2f× (median of %d rounds: %s)", r, len(xs), each(xs))
		}
		fmt.Fprintf(w, "%s vs pgbench -c %d -j %d, %d workers on %d threads, %d accounts: %.0f vs %.0f transfers/s (means), %s; "+
			"vs pgbench -M prepared: %.0f transfers/s, %s\n",
			name, c.Workers, c.Threads, c.Workers, c.Threads, c.Accounts, c.LockstepTPS, c.PgbenchTPS, ratio(c.Ratio, c.Rounds),
			c.PreparedTPS, ratio(c.RatioPrepared, c.RoundsPrepared))
	}
}

// median of xs (the mean of the middle two when they are even); 0 if none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

func mustLookup(name string) *ledger.Strategy {
	s, err := ledger.Lookup(name)
	if err != nil {
		panic(err) // a built-in name
	}
	return s
}

func findResult(rs []load.BenchResult, strategy string, workers, accounts int) (load.BenchResult, bool) {
	for _, r := range rs {
		if r.Strategy == strategy && r.Workers == workers && r.Accounts == accounts {
			return r, true
		}
	}
	return load.BenchResult{}, false
}

func printBenchTable(w io.Writer, rs []load.BenchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tworkers\taccounts\ttransfers/s\tp50 ms\tp99 ms\tdeadlocks\tserialization\tretries\tgiven up\tbooks\t")
	for _, r := range rs {
		books := "kept"
		if !r.BooksKept {
			books = "BROKEN"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%s\t\n", r.Strategy, r.Workers, r.Accounts,
			r.Throughput, r.P50ms, r.P99ms, r.Deadlocks, r.SerializationFailures, r.Retries, r.Failed, books)
	}
	tw.Flush()
}

// printBenchChart draws throughput against workers, one line per strategy,
// for each account count (asciigraph).
func printBenchChart(w io.Writer, rs []load.BenchResult, workers, accounts []int, colour bool) {
	if len(workers) < 2 {
		return
	}
	var opts []asciigraph.Option
	colors := []asciigraph.AnsiColor{asciigraph.Red, asciigraph.Green, asciigraph.Yellow, asciigraph.Blue, asciigraph.Magenta,
		asciigraph.Cyan, asciigraph.White, asciigraph.Orange, asciigraph.Purple, asciigraph.Brown}
	for _, acc := range accounts {
		var series [][]float64
		var names []string
		seen := map[string]bool{}
		for _, r := range rs {
			if r.Accounts != acc || seen[r.Strategy] {
				continue
			}
			seen[r.Strategy] = true
			var line []float64
			for _, wk := range workers {
				x, _ := findResult(rs, r.Strategy, wk, acc)
				line = append(line, x.Throughput)
			}
			series = append(series, line)
			names = append(names, r.Strategy)
		}
		var ws []string
		for _, wk := range workers {
			ws = append(ws, strconv.Itoa(wk))
		}
		fmt.Fprintln(w)
		opts = []asciigraph.Option{asciigraph.Height(12), asciigraph.Width(60),
			asciigraph.Caption(fmt.Sprintf("transfers/s against workers (%s), %d accounts", strings.Join(ws, ", "), acc)),
			asciigraph.SeriesLegends(names...)}
		if colour {
			opts = append(opts, asciigraph.SeriesColors(colors[:min(len(series), len(colors))]...))
		}
		chart := asciigraph.PlotMany(series, opts...)
		if !colour {
			chart = ansi.Strip(chart)
		}
		fmt.Fprintln(w, chart)
	}
}

// isColourTerminal says whether w is a terminal that wants colour (NO_COLOR unset).
func isColourTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd()) && os.Getenv("NO_COLOR") == ""
}
