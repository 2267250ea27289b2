package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"lockstep/ledger"
	"lockstep/sim"
	"lockstep/spec"
)

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
	fl.StringVar(&f.direction, "direction", "same", "same: every session moves 1 → 2; opposite: even sessions move 2 → 1")
	fl.StringVar(&f.order, "order", "", "sessions to step first, e.g. T1,T2,T2 (then round-robin)")
	fl.StringVar(&f.amount, "amount", "10.00", "amount each session transfers")
	fl.DurationVar(&f.poll, "poll", sim.DefaultPoll, "how often the lock observer polls")
}

// config checks the flags and builds the engine's config (without DB).
func (f *runFlags) config(a *app) (sim.Config, []int, error) {
	var cfg sim.Config
	strategy, err := ledger.Lookup(f.strategy)
	if err != nil {
		return cfg, nil, badInput(err)
	}
	dir, err := sim.ParseDirection(f.direction)
	if err != nil {
		return cfg, nil, badInput(err)
	}
	setup, err := f.setup()
	if err != nil {
		return cfg, nil, err
	}
	amount, err := decimal.NewFromString(f.amount)
	if err != nil || !amount.IsPositive() || amount.Exponent() < -2 {
		return cfg, nil, badInput(fmt.Errorf("--amount %q: write a positive amount like 10.00", f.amount))
	}
	if f.poll <= 0 {
		return cfg, nil, badInput(fmt.Errorf("--poll %s: must be positive", f.poll))
	}
	cfg = sim.Config{Ledger: a.ledger, Strategy: strategy, Sessions: f.sessions, Direction: dir,
		Amount: amount, Setup: setup, Poll: f.poll}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, badInput(err)
	}
	order, err := sim.ParseOrder(f.order, f.sessions)
	if err != nil {
		return cfg, nil, badInput(err)
	}
	return cfg, order, nil
}

func (a *app) runCommand() *cobra.Command {
	var rf runFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Step the sessions headless and print a transcript",
		Long: "run steps the sessions through their transfers — first in --order, then round-robin, skipping\n" +
			"sessions that wait or have finished — and prints a transcript in the style of PostgreSQL's isolation\n" +
			"tester, each wait explained, then the balances and whether the books are kept.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, order, err := rf.config(a)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			d, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer d.Close()
			cfg.DB = d
			eng, err := sim.New(ctx, cfg)
			if err != nil {
				return badInput(err)
			}
			defer eng.Close(ctx)
			var t transcript
			if asJSON {
				t = &jsonTranscript{enc: json.NewEncoder(cmd.OutOrStdout()), start: time.Now()}
			} else {
				t = &textTranscript{w: cmd.OutOrStdout()}
			}
			t.begin(eng, d.Describe())
			var tally tally
			err = eng.Play(ctx, sim.NewScheduler(order), func(ev sim.Event) {
				tally.add(ev)
				t.event(ev)
			}, t.skipped)
			if err != nil {
				return fmt.Errorf("running the sessions: %w", err)
			}
			accounts, books, err := eng.Books(ctx)
			if err != nil {
				return fmt.Errorf("reading the balances: %w", err)
			}
			t.end(accounts, books, tally)
			return eng.Close(ctx)
		},
	}
	rf.register(cmd, "for-update")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per event, then a summary object")
	return cmd
}

// tally counts what a run did.
type tally struct {
	waits, deadlocks, serializationFailures int
	errors                                  int
}

func (t *tally) add(ev sim.Event) {
	switch ev.Kind {
	case sim.WaitingForLock:
		t.waits++
	case sim.Error:
		t.errors++
		switch ev.Err.SQLState {
		case ledger.DeadlockDetected:
			t.deadlocks++
		case ledger.SerializationFailure:
			t.serializationFailures++
		}
	}
}

// transcript is one way of printing a run.
type transcript interface {
	begin(eng *sim.Engine, server string)
	event(ev sim.Event)
	skipped(session string)
	end(accounts []ledger.Account, books ledger.Books, t tally)
}

// textTranscript prints in the style of PostgreSQL's isolation tester.
type textTranscript struct {
	w       io.Writer
	waiting map[string]bool
	pids    map[string]string // "19229" → "T1"
}

// whoIs names the sessions behind the process ids a server message mentions.
func (t *textTranscript) whoIs(msg string) string {
	var parts []string
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(msg, func(r rune) bool { return r < '0' || r > '9' }) {
		if name, ok := t.pids[f]; ok && !seen[f] {
			seen[f] = true
			parts = append(parts, "process "+f+" is "+name)
		}
	}
	return strings.Join(parts, ", ")
}

func (t *textTranscript) begin(eng *sim.Engine, server string) {
	t.waiting = map[string]bool{}
	t.pids = map[string]string{}
	cfg := eng.Config()
	fmt.Fprintf(t.w, "run %s: strategy %s — %s\n", eng.RunID(), cfg.Strategy.Name, cfg.Strategy.Summary)
	fmt.Fprintf(t.w, "server: %s; deadlock_timeout %s\n", server, eng.Observer().DeadlockTimeout())
	for _, s := range eng.Sessions() {
		fmt.Fprintf(t.w, "%s: %s (pid %d)\n", s.Name, s.Transfer, s.Pid)
		t.pids[fmt.Sprint(s.Pid)] = s.Name
	}
	if ok, note := eng.Observer().RowLocksAvailable(); !ok {
		fmt.Fprintln(t.w, note)
	}
	fmt.Fprintln(t.w)
}

func (t *textTranscript) event(ev sim.Event) {
	switch ev.Kind {
	case sim.Started:
		if ev.Auto {
			fmt.Fprintf(t.w, "step %s: %s  -- the application gives the transfer up\n", ev.Session, ev.SQL)
		}
	case sim.WaitingForLock:
		if !t.waiting[ev.Session] {
			fmt.Fprintf(t.w, "step %s: %s <waiting ...>\n", ev.Session, ev.SQL)
		}
		t.waiting[ev.Session] = true
		for _, e := range ev.Waits {
			fmt.Fprintf(t.w, "  -- %s\n", e.Why)
		}
	case sim.Completed, sim.Error:
		if ev.Auto {
			break
		}
		if t.waiting[ev.Session] {
			fmt.Fprintf(t.w, "step %s: <... completed>\n", ev.Session)
			delete(t.waiting, ev.Session)
		} else {
			fmt.Fprintf(t.w, "step %s: %s\n", ev.Session, ev.SQL)
		}
		if ev.Kind == sim.Error {
			fmt.Fprintf(t.w, "ERROR:  %s (SQLSTATE %s)\n", ev.Err.Message, ev.Err.SQLState)
			if ev.Err.Detail != "" {
				fmt.Fprintf(t.w, "DETAIL:  %s\n", ev.Err.Detail)
				if who := t.whoIs(ev.Err.Detail); who != "" {
					fmt.Fprintf(t.w, "  -- %s\n", who)
				}
			}
			if ev.Err.Hint != "" {
				fmt.Fprintf(t.w, "HINT:  %s\n", ev.Err.Hint)
			}
			if ev.Err.SQLState == ledger.DeadlockDetected {
				fmt.Fprintf(t.w, "  -- the server broke the deadlock: %s was chosen as the victim\n", ev.Session)
			}
		} else if len(ev.Columns) > 0 {
			spec.WriteResultSet(t.w, ev.Columns, ev.Rows, nil)
		}
	case sim.ConnectionLost:
		fmt.Fprintf(t.w, "step %s: %s\nconnection lost: %v\n", ev.Session, ev.SQL, ev.Cause)
	case sim.DeadlockFormed:
		fmt.Fprintf(t.w, "  -- deadlock: %s; the server breaks it once deadlock_timeout (%s) has passed in a waiter\n",
			ev.Cycle, ev.Snapshot.DeadlockTimeout)
	}
}

func (t *textTranscript) skipped(session string) {
	fmt.Fprintf(t.w, "  -- %s skipped in --order: it is waiting or has finished\n", session)
}

func (t *textTranscript) end(accounts []ledger.Account, books ledger.Books, tl tally) {
	fmt.Fprintln(t.w)
	var parts []string
	for _, a := range accounts {
		parts = append(parts, fmt.Sprintf("%d %s %s", a.ID, a.Owner, a.Balance.StringFixed(2)))
	}
	fmt.Fprintf(t.w, "balances: %s\n", strings.Join(parts, " · "))
	fmt.Fprintln(t.w, books.Summary())
	fmt.Fprintf(t.w, "waits %d · deadlocks %d · serialization failures %d\n", tl.waits, tl.deadlocks, tl.serializationFailures)
}

// jsonTranscript prints one JSON object per event and a summary last.
type jsonTranscript struct {
	enc   *json.Encoder
	start time.Time
}

type jsonEvent struct {
	Session    string     `json:"session"`
	SQL        string     `json:"sql"`
	Event      string     `json:"event"`
	Step       int        `json:"step"`
	Auto       bool       `json:"auto,omitempty"`
	SQLState   string     `json:"sqlstate"`
	Message    string     `json:"message,omitempty"`
	Detail     string     `json:"detail,omitempty"`
	Hint       string     `json:"hint,omitempty"`
	BlockedBy  []string   `json:"blocked_by"`
	Why        []string   `json:"why,omitempty"`
	Tag        string     `json:"tag,omitempty"`
	Columns    []string   `json:"columns,omitempty"`
	Rows       [][]string `json:"rows,omitempty"`
	ElapsedMS  float64    `json:"elapsed_ms"`
	DurationMS float64    `json:"duration_ms,omitempty"`
	Cycle      string     `json:"cycle,omitempty"`
}

func (j *jsonTranscript) begin(*sim.Engine, string) {}

func (j *jsonTranscript) event(ev sim.Event) {
	if ev.Kind == sim.Polled {
		return
	}
	out := jsonEvent{Session: ev.Session, SQL: ev.SQL, Event: ev.Kind.String(), Step: ev.Step, Auto: ev.Auto,
		BlockedBy: ev.BlockedBy, Tag: ev.Tag, Columns: ev.Columns, Rows: ev.Rows,
		ElapsedMS: ms(ev.Time.Sub(j.start)), DurationMS: ms(ev.Duration)}
	if out.BlockedBy == nil {
		out.BlockedBy = []string{}
	}
	if ev.Err != nil {
		out.SQLState, out.Message, out.Detail, out.Hint = ev.Err.SQLState, ev.Err.Message, ev.Err.Detail, ev.Err.Hint
	}
	if ev.Kind == sim.ConnectionLost {
		out.Message = ev.Cause.Error()
	}
	for _, e := range ev.Waits {
		out.Why = append(out.Why, e.Why)
	}
	if ev.Cycle != nil {
		out.Cycle = ev.Cycle.String()
	}
	_ = j.enc.Encode(out)
}

func (j *jsonTranscript) skipped(string) {}

func (j *jsonTranscript) end(accounts []ledger.Account, books ledger.Books, t tally) {
	balances := map[string]string{}
	for _, a := range accounts {
		balances[fmt.Sprint(a.ID)] = a.Balance.StringFixed(2)
	}
	_ = j.enc.Encode(map[string]any{
		"summary":                true,
		"balances":               balances,
		"invariant_ok":           books.OK(),
		"books":                  books.Summary(),
		"lost_update":            books.LostUpdate(),
		"waits":                  t.waits,
		"deadlocks":              t.deadlocks,
		"serialization_failures": t.serializationFailures,
		"errors":                 t.errors,
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
