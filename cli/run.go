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
	"lockstep/locks"
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
	var sf scenarioFlags
	var pf poolFlags
	var asJSON bool
	var resolve string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Step the sessions headless and print a transcript",
		Long: "run steps the sessions through their transfers — first in --order, then round-robin, skipping\n" +
			"sessions that wait or have finished — and prints a transcript in the style of PostgreSQL's isolation\n" +
			"tester, each wait explained, then the balances and whether the books are kept.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sf.scenario == "pool" {
				return a.runPool(cmd, &pf, asJSON)
			}
			commit, err := parseResolve(resolve)
			if err != nil {
				return err
			}
			cfg, order, err := rf.config(a)
			if err != nil {
				return err
			}
			summary := ""
			if sf.scenario != "" {
				if cfg, order, summary, err = sf.config(a, &rf); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			d, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer d.Close()
			cfg.DB = d
			if cfg.TwoDatabases() {
				if cfg.DB2, err = a.openSecond(ctx, d); err != nil {
					return err
				}
			}
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
			t.begin(eng, d.Describe(), summary)
			r := &runner{eng: eng, t: t, commit: commit}
			if err := r.play(ctx, sim.NewScheduler(order)); err != nil {
				return fmt.Errorf("running the sessions: %w", err)
			}
			if err := r.finish(ctx); err != nil {
				return err
			}
			return eng.Close(ctx)
		},
	}
	rf.register(cmd, "for-update")
	sf.register(cmd)
	pf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per event, then a summary object")
	cmd.Flags().StringVar(&resolve, "resolve", "commit", "what to do with a prepared transaction the run leaves behind: commit or rollback (COMMIT/ROLLBACK PREPARED)")
	return cmd
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

// tally counts what a run did.
type tally struct {
	waits, deadlocks, serializationFailures int
	errors                                  int
	lockTimeouts                            int
	distributed                             int // distributed deadlocks lockstep found
	resolved                                int // prepared transactions lockstep finished
}

func (t *tally) add(ev sim.Event) {
	switch ev.Kind {
	case sim.DeadlockFormed:
		if ev.Cycle.Distributed {
			t.distributed++
		}
	case sim.WaitingForLock:
		t.waits++
	case sim.Error:
		t.errors++
		switch ev.Err.SQLState {
		case ledger.DeadlockDetected:
			t.deadlocks++
		case ledger.SerializationFailure:
			t.serializationFailures++
		case "55P03":
			t.lockTimeouts++
		}
	}
}

// transcript is one way of printing a run.
type transcript interface {
	begin(eng *sim.Engine, server, summary string)
	event(ev sim.Event)
	skipped(session string)
	// note is a line lockstep itself adds: what it found, what it does.
	note(line string)
	end(e runEnd)
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

func (t *textTranscript) begin(eng *sim.Engine, server, summary string) {
	t.waiting = map[string]bool{}
	t.pids = map[string]string{}
	cfg := eng.Config()
	if cfg.Scenario != nil {
		fmt.Fprintf(t.w, "run %s: scenario %s — %s\n", eng.RunID(), cfg.ScenarioName, summary)
	} else {
		fmt.Fprintf(t.w, "run %s: strategy %s — %s\n", eng.RunID(), cfg.Strategy.Name, cfg.Strategy.Summary)
	}
	fmt.Fprintf(t.w, "server: %s; deadlock_timeout %s\n", server, eng.Observer().DeadlockTimeout())
	if cfg.TwoDatabases() {
		fmt.Fprintf(t.w, "database A: %s · database B: %s\n", eng.Database("A").Label(), eng.Database("B").Label())
	}
	for _, s := range eng.Sessions() {
		switch {
		case cfg.Scenario == nil:
			fmt.Fprintf(t.w, "%s: %s (pid %d)\n", s.Name, s.Transfer, s.Pid)
		case s.Database != "":
			fmt.Fprintf(t.w, "%s: logical session %s's connection to database %s (pid %d)\n", s.Name, locks.Logical(s.Name), s.Database, s.Pid)
		default:
			fmt.Fprintf(t.w, "%s: session %s (pid %d)\n", s.Name, s.Label, s.Pid)
		}
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
		if c := ev.Cycle; c.Distributed {
			fmt.Fprintf(t.w, "  -- distributed deadlock: %s; each server sees only a wait behind a session idle in transaction\n", c)
			for _, e := range c.Edges {
				fmt.Fprintf(t.w, "  --   %s\n", e.Why)
			}
			if c.BreakAt != nil {
				fmt.Fprintf(t.w, "  -- no server breaks it, but %s's lock_timeout (%s) will: it fails with 55P03\n", c.LikelyVictim, c.LockTimeout)
			}
			break
		}
		fmt.Fprintf(t.w, "  -- deadlock: %s; the server breaks it once deadlock_timeout (%s) has passed in a waiter\n",
			ev.Cycle, ev.Snapshot.DeadlockTimeout)
	}
}

func (t *textTranscript) skipped(session string) {
	fmt.Fprintf(t.w, "  -- %s skipped in --order: it is waiting or has finished\n", session)
}

func (t *textTranscript) note(line string) { fmt.Fprintf(t.w, "lockstep: %s\n", line) }

func balanceLine(accounts []ledger.Account) string {
	var parts []string
	for _, a := range accounts {
		parts = append(parts, fmt.Sprintf("%d %s %s", a.ID, a.Owner, a.Balance.StringFixed(2)))
	}
	return strings.Join(parts, " · ")
}

func (t *textTranscript) end(e runEnd) {
	fmt.Fprintln(t.w)
	tl := e.tally
	switch {
	case e.byDatabase != nil:
		for _, label := range []string{"A", "B"} {
			fmt.Fprintf(t.w, "balances in %s: %s\n", label, balanceLine(e.byDatabase[label]))
		}
		if sim.InSync(e.byDatabase) {
			fmt.Fprintln(t.w, "the two databases agree")
		} else {
			fmt.Fprintln(t.w, "the two databases DISAGREE: one committed a transfer the other did not")
		}
	case e.books != nil:
		fmt.Fprintf(t.w, "balances: %s\n", balanceLine(e.accounts))
		fmt.Fprintln(t.w, e.books.Summary())
	}
	line := fmt.Sprintf("waits %d · deadlocks %d · serialization failures %d", tl.waits, tl.deadlocks, tl.serializationFailures)
	if e.byDatabase != nil {
		line += fmt.Sprintf(" · distributed deadlocks %d · lock timeouts %d · prepared transactions resolved %d",
			tl.distributed, tl.lockTimeouts, tl.resolved)
	}
	fmt.Fprintln(t.w, line)
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

func (j *jsonTranscript) begin(*sim.Engine, string, string) {}

func (j *jsonTranscript) note(line string) {
	_ = j.enc.Encode(map[string]any{"event": "lockstep", "message": line, "elapsed_ms": ms(time.Since(j.start))})
}

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

func balanceMap(accounts []ledger.Account) map[string]string {
	out := map[string]string{}
	for _, a := range accounts {
		out[fmt.Sprint(a.ID)] = a.Balance.StringFixed(2)
	}
	return out
}

func (j *jsonTranscript) end(e runEnd) {
	t := e.tally
	out := map[string]any{
		"summary":                true,
		"waits":                  t.waits,
		"deadlocks":              t.deadlocks,
		"serialization_failures": t.serializationFailures,
		"errors":                 t.errors,
	}
	switch {
	case e.byDatabase != nil:
		out["balances"] = map[string]any{"A": balanceMap(e.byDatabase["A"]), "B": balanceMap(e.byDatabase["B"])}
		out["in_sync"] = sim.InSync(e.byDatabase)
		out["distributed_deadlocks"] = t.distributed
		out["lock_timeouts"] = t.lockTimeouts
		out["prepared_resolved"] = t.resolved
	case e.books != nil:
		out["balances"] = balanceMap(e.accounts)
		out["invariant_ok"] = e.books.OK()
		out["books"] = e.books.Summary()
		out["lost_update"] = e.books.LostUpdate()
	}
	_ = j.enc.Encode(out)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
