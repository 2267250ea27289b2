// Package transcript is the headless view of a run: the engine's events as
// text in the style of PostgreSQL's isolation tester — each wait explained
// from the documented conflict tables — or as one JSON object per event, and
// the run's outcome last. Result sets print as the tester prints them
// (isolation.WriteResultSet).
package transcript

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/isolation"
	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/sim"
)

// Transcript prints a run as it happens.
type Transcript interface {
	// Begin prints what the run is: its strategy or scenario, the server and
	// the sessions.
	Begin(eng *sim.Engine, server, summary string)
	// Event prints one event, the engine's or one PlayToEnd decided.
	Event(ev sim.Event)
	// End prints how the run came out.
	End(o sim.Outcome)
}

// Text prints in the style of PostgreSQL's isolation tester.
type Text struct {
	w        io.Writer
	waiting  map[string]bool
	sessions []sim.SessionInfo
}

// NewText is a text transcript written to w.
func NewText(w io.Writer) *Text { return &Text{w: w, waiting: map[string]bool{}} }

// Begin prints the run's header.
func (t *Text) Begin(eng *sim.Engine, server, summary string) {
	cfg := eng.Config()
	h := Heading{RunID: string(eng.RunID()), Name: cfg.Name(), Summary: summary, Scenario: cfg.Scenario != nil,
		Server: server, DeadlockTimeout: eng.Observer().DeadlockTimeout(), Sessions: eng.Sessions()}
	if cfg.Scenario == nil {
		h.Summary = cfg.Strategy.Summary
	}
	if cfg.TwoDatabases() {
		h.Databases = []string{eng.Database("A").Label(), eng.Database("B").Label()}
	}
	if ok, note := eng.Observer().RowLocksAvailable(); !ok {
		h.Notes = append(h.Notes, note)
	}
	t.BeginWith(h)
}

// Heading is what a transcript's first lines say of the run.
type Heading struct {
	RunID, Name, Summary string
	Scenario             bool
	Server               string
	DeadlockTimeout      time.Duration
	Databases            []string // a two-database run's A and B
	Sessions             []sim.SessionInfo
	Notes                []string
}

// BeginWith prints the heading of a run known by its heading alone (a
// recording's).
func (t *Text) BeginWith(h Heading) {
	kind, name := "strategy", h.Name
	if h.Scenario {
		// A scenario's run is named "scenario X" already (sim.Config.Name).
		kind, name = "scenario", strings.TrimPrefix(name, "scenario ")
	}
	fmt.Fprintf(t.w, "run %s: %s %s — %s\n", h.RunID, kind, name, h.Summary)
	fmt.Fprintf(t.w, "server: %s; deadlock_timeout %s\n", h.Server, h.DeadlockTimeout)
	if len(h.Databases) == 2 {
		fmt.Fprintf(t.w, "database A: %s · database B: %s\n", h.Databases[0], h.Databases[1])
	}
	t.sessions = h.Sessions
	for _, s := range t.sessions {
		switch {
		case !h.Scenario:
			fmt.Fprintf(t.w, "%s: %s (pid %d)\n", s.Name, s.Transfer, s.Pid)
		case s.Database != "":
			fmt.Fprintf(t.w, "%s: logical session %s's connection to database %s (pid %d)\n", s.Name, locks.Logical(s.Name), s.Database, s.Pid)
		case s.Pid == 0:
			fmt.Fprintf(t.w, "%s: session %s (through the pooler: its server connection changes with each transaction)\n", s.Name, s.Label)
		default:
			fmt.Fprintf(t.w, "%s: session %s (pid %d)\n", s.Name, s.Label, s.Pid)
		}
	}
	for _, n := range h.Notes {
		fmt.Fprintln(t.w, n)
	}
	fmt.Fprintln(t.w)
}

// Event prints one event.
func (t *Text) Event(ev sim.Event) {
	switch ev.Kind {
	case sim.Started:
		if ev.Auto {
			fmt.Fprintf(t.w, "step %s: %s  -- %s\n", ev.Session, ev.SQL, sim.GivingUp(t.sessions, ev.Session))
		}
	case sim.WaitingForLock:
		if !t.waiting[ev.Session] {
			fmt.Fprintf(t.w, "step %s: %s <waiting ...>\n", ev.Session, ev.SQL)
		}
		t.waiting[ev.Session] = true
		for _, e := range ev.Waits {
			fmt.Fprintf(t.w, "  -- %s\n", e.Why)
		}
		t.queue(ev)
	case sim.Completed, sim.Error:
		if !ev.Auto {
			t.statementEnd(ev)
		}
	case sim.ConnectionLost:
		if ev.SQL == "" && ev.Err != nil { // the server ended the session between statements
			fmt.Fprintf(t.w, "%s: the server ended the session:\n%s:  %s (SQLSTATE %s)\n  -- its backend is gone: its transaction rolled back, its locks released\n",
				ev.Session, ev.Err.Severity, ev.Err.Message, ev.Err.SQLState)
			break
		}
		if ev.SQL == "" { // found lost between statements
			fmt.Fprintf(t.w, "%s: connection lost: %v\n", ev.Session, ev.Cause)
			break
		}
		fmt.Fprintf(t.w, "step %s: %s\nconnection lost: %v\n", ev.Session, ev.SQL, ev.Cause)
	case sim.DeadlockFormed:
		t.deadlock(ev)
	case sim.Skipped:
		fmt.Fprintf(t.w, "  -- %s\n", skipLine(ev))
	case sim.Stalled, sim.Resolved:
		for _, line := range noteLines(ev) {
			fmt.Fprintf(t.w, "lockstep: %s\n", line)
		}
	}
}

// queue prints the lock queue of the object a waiter waits for, when more
// than one waits there or one waits only behind another's request: the
// order, and hard blocks told from soft ones, are the lesson then — or that
// the waiters are in no order (each waits for the holders alone).
func (t *Text) queue(ev sim.Event) {
	if ev.Snapshot == nil || len(ev.Waits) == 0 || ev.Waits[0].Lock == nil {
		return
	}
	target := ev.Waits[0].Lock.Target()
	for _, q := range ev.Snapshot.Queues() {
		if q.Target != target {
			continue
		}
		switch {
		case q.InOrder():
			fmt.Fprintf(t.w, "  -- lock queue on %s\n", q)
		case len(q.Waiters) > 1:
			fmt.Fprintf(t.w, "  -- waiting on %s\n", q)
		}
	}
}

// statementEnd prints a statement's completion, its results or its error.
func (t *Text) statementEnd(ev sim.Event) {
	if t.waiting[ev.Session] {
		fmt.Fprintf(t.w, "step %s: <... completed>\n", ev.Session)
		delete(t.waiting, ev.Session)
	} else {
		fmt.Fprintf(t.w, "step %s: %s\n", ev.Session, ev.SQL)
	}
	if ev.Kind == sim.Completed {
		for _, r := range ev.Results {
			if r.Columns != nil {
				isolation.WriteResultSet(t.w, r.Columns, nullsAsWords(r), nil)
			}
		}
		return
	}
	fmt.Fprintf(t.w, "ERROR:  %s (SQLSTATE %s)\n", ev.Err.Message, ev.Err.SQLState)
	if ev.Err.Detail != "" {
		fmt.Fprintf(t.w, "DETAIL:  %s\n", ev.Err.Detail)
		var who []string
		for _, p := range sim.Processes(ev.Err.Detail, t.sessions) {
			who = append(who, "process "+p.Pid+" is "+p.Session)
		}
		if len(who) > 0 {
			fmt.Fprintf(t.w, "  -- %s\n", strings.Join(who, ", "))
		}
	}
	if ev.Err.Hint != "" {
		fmt.Fprintf(t.w, "HINT:  %s\n", ev.Err.Hint)
	}
	if ev.Err.SQLState == pgerrcode.DeadlockDetected {
		fmt.Fprintf(t.w, "  -- the server broke the deadlock: %s was chosen as the victim\n", ev.Session)
	}
}

func (t *Text) deadlock(ev sim.Event) {
	c := ev.Cycle
	if !c.Distributed {
		fmt.Fprintf(t.w, "  -- deadlock: %s; the server breaks it once deadlock_timeout (%s) has passed in a waiter\n",
			c, ev.Snapshot.DeadlockTimeout)
		return
	}
	fmt.Fprintf(t.w, "  -- distributed deadlock: %s; each server sees only a wait behind a session idle in transaction\n", c)
	for _, e := range c.Edges {
		fmt.Fprintf(t.w, "  --   %s\n", e.Why)
	}
	if c.BreakAt != nil {
		fmt.Fprintf(t.w, "  -- no server breaks it, but %s's lock_timeout (%s) will: it fails with 55P03\n", c.LikelyVictim, c.LockTimeout)
	}
}

// nullsAsWords is a result's rows with NULL spelled out, as lockstep run
// prints them (the isolation tester prints an empty cell).
func nullsAsWords(r sim.Result) [][]string {
	if r.Null == nil {
		return r.Rows
	}
	rows := make([][]string, len(r.Rows))
	for i, row := range r.Rows {
		rows[i] = row
		if i < len(r.Null) && r.Null[i] != nil {
			rows[i] = append([]string(nil), row...)
			for j, null := range r.Null[i] {
				if null {
					rows[i][j] = "NULL"
				}
			}
		}
	}
	return rows
}

// noteLines are the lines lockstep adds for what it decided: why the run
// cannot end by itself, what it does about it.
// skipLine says that a session of the stored order was passed over, and why.
func skipLine(ev sim.Event) string {
	why := ev.Why
	if why == "" { // a recording made before the reason was kept
		why = "it could not step then"
	}
	return fmt.Sprintf("%s skipped in --order: %s", ev.Session, why)
}

func noteLines(ev sim.Event) []string {
	switch {
	case ev.Kind == sim.Stalled && ev.Stall == sim.DistributedDeadlock:
		return []string{
			fmt.Sprintf("distributed deadlock detected by lockstep: %s", ev.Cycle),
			"no server sees this cycle, so no 40P01 will come: lockstep cancels the waiting statements and rolls every session back",
		}
	case ev.Kind == sim.Stalled && ev.Stall == sim.WaitsOnPrepared:
		return []string{"a session waits for a prepared transaction that has no session left to finish it"}
	case ev.Kind == sim.Resolved:
		p := ev.Prepared
		verb := "ROLLBACK PREPARED"
		if ev.Commit {
			verb = "COMMIT PREPARED"
		}
		return []string{fmt.Sprintf("pg_prepared_xacts in database %s: %s (transaction %d, prepared %s); lockstep runs %s (--resolve)",
			p.Database, p.GID, p.Xid, p.At.Format("15:04:05.000"), verb)}
	}
	return nil
}

func balanceLine(accounts []ledger.Account) string {
	var parts []string
	for _, a := range accounts {
		parts = append(parts, fmt.Sprintf("%d %s %s", a.ID, a.Owner, a.Balance.StringFixed(2)))
	}
	return strings.Join(parts, " · ")
}

// End prints the balances, whether the books are kept (or the databases
// agree), and the counts.
func (t *Text) End(o sim.Outcome) {
	fmt.Fprintln(t.w)
	switch {
	case o.ByDatabase != nil:
		for _, label := range []string{"A", "B"} {
			fmt.Fprintf(t.w, "balances in %s: %s\n", label, balanceLine(o.ByDatabase[label]))
		}
		if sim.InSync(o.ByDatabase) {
			fmt.Fprintln(t.w, "the two databases agree")
		} else {
			fmt.Fprintln(t.w, "the two databases DISAGREE: one committed a transfer the other did not")
		}
	case o.Books != nil:
		fmt.Fprintf(t.w, "balances: %s\n", balanceLine(o.Accounts))
		fmt.Fprintln(t.w, o.Books.Summary())
	}
	tl := o.Tally
	line := fmt.Sprintf("waits %d · deadlocks %d · serialization failures %d", tl.Waits, tl.Deadlocks, tl.SerializationFailures)
	if o.ByDatabase != nil {
		line += fmt.Sprintf(" · distributed deadlocks %d · lock timeouts %d · prepared transactions resolved %d",
			tl.Distributed, tl.LockTimeouts, tl.Resolved)
	}
	fmt.Fprintln(t.w, line)
}
