package sim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"lockstep/lazyre"
	"lockstep/ledger"
	"lockstep/locks"
)

// SessionInfo is a copy of where one session stands, for views.
type SessionInfo struct {
	Name string `json:",omitempty"`
	// Label is the scenario's name for the session ("s1"), "" for transfers.
	Label    string          `json:",omitempty"`
	Index    int             `json:",omitempty"`
	Pid      int32           `json:",omitempty"`
	State    State           `json:",omitempty"`
	Transfer ledger.Transfer `json:",omitempty"`
	// Statements is the script rendered with the values read so far.
	Statements []string `json:",omitempty"`
	// StepNames are a scenario session's names for its steps, nil for transfers.
	StepNames []string `json:",omitempty"`
	// Next is the index of the next script statement (len(Statements) when done).
	Next     int  `json:",omitempty"`
	Finished bool `json:",omitempty"`
	// Current is the SQL in flight, if any; CurrentStep its script index or -1.
	Current     string         `json:",omitempty"`
	CurrentStep int            `json:",omitempty"`
	StartedAt   time.Time      `json:",omitempty"`
	LastErr     *ServerMessage `json:",omitempty"`
	ErrAt       int            `json:",omitempty"` // script index that failed, -1 if none
	// Ended is the server's message that ended the session (a FATAL: 25P03
	// idle_in_transaction_session_timeout, 57P01 pg_terminate_backend),
	// nil while it lives or when its connection broke without one.
	Ended     *ServerMessage `json:",omitempty"`
	BlockedBy []string       `json:",omitempty"`
	Waits     []locks.Edge   `json:",omitempty"`
	// Database labels the session's database in a two-database run ("A", "B").
	Database string `json:",omitempty"`
	// Settled counts the session's statements that have ended; an event
	// (Completed, Error or ConnectionLost) for each is on its way.
	Settled int `json:",omitempty"`
	// AppBusy is true when another connection of the same logical session
	// (T1@B for T1@A) has a statement in flight: the application waits there.
	AppBusy bool `json:",omitempty"`
	// LockTimeout and DeadlockTimeout are the session's own, as last read
	// (0 when not read: a lean run's): the timers that can end a wait.
	LockTimeout     time.Duration `json:",omitempty"`
	DeadlockTimeout time.Duration `json:",omitempty"`
}

// GivingUp says what the engine's own ROLLBACK after session who's
// statement failed gives up, as the log words it. In a two-database run it
// rolls back only the connection whose statement failed: the logical
// session's other connection keeps its transaction, whose next step may
// still commit it, so "the transfer" is not given up there.
func GivingUp(sessions []SessionInfo, who string) string {
	var others []string
	if strings.Contains(who, "@") {
		for _, s := range sessions {
			if s.Name != who && locks.Logical(s.Name) == locks.Logical(who) {
				others = append(others, s.Name+"'s")
			}
		}
	}
	if len(others) == 0 {
		return "the application gives the transfer up"
	}
	return "the application rolls back " + who + " only: " + strings.Join(others, " and ") + " transaction stays as it is"
}

// Steppable says whether the session can take its next script statement now.
func (s SessionInfo) Steppable() bool {
	return !s.State.Busy() && !s.AppBusy && s.State != Failed && !s.Finished && s.Next < len(s.Statements)
}

// Done says whether the session has nothing more to do: its script ended or
// its connection is lost, and nothing is in flight.
func (s SessionInfo) Done() bool {
	return !s.State.Busy() && (s.Finished || s.State == Failed || s.Next >= len(s.Statements))
}

// NotSteppable says why the session cannot take its next script statement
// now, written from its state; "" when it can.
func (s SessionInfo) NotSteppable() string {
	switch {
	case s.Steppable():
		return ""
	case s.State.Busy():
		return "its statement is still " + s.State.String()
	case s.AppBusy:
		return "the application is still waiting on its other connection"
	case s.State == Failed && s.Ended != nil:
		return fmt.Sprintf("the server ended its session (%s %s: %s)", s.Ended.Severity, s.Ended.SQLState, s.Ended.Message)
	case s.State == Failed:
		return "its connection is lost"
	case s.Next >= len(s.Statements):
		return "it has run all its statements"
	case s.ErrAt >= 0 && s.LastErr != nil:
		what := "its statement failed"
		if s.LastErr.SQLState != "" {
			what += fmt.Sprintf(" with %s (%s)", s.LastErr.SQLState, s.LastErr.Message)
		}
		switch s.State {
		case RolledBack:
			what += " and its transaction was rolled back"
		case Aborted:
			what += " and its transaction is aborted, open until a ROLLBACK"
		}
		return what + ": its script stops there"
	default:
		return "its transaction was ended by hand: its script stops there"
	}
}

// Sessions copies every session's state.
func (e *Engine) Sessions() []SessionInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]SessionInfo, len(e.sessions))
	for i, s := range e.sessions {
		stmts := make([]string, s.script.Len())
		for k := range stmts {
			stmts[k] = s.script.SQL(k)
		}
		cur := -1
		if s.current != "" {
			cur = s.curStep
		}
		var names []string
		if st, ok := s.script.(stepsScript); ok {
			names = make([]string, len(st.steps))
			for k, step := range st.steps {
				names[k] = step.Name
			}
		}
		out[i] = SessionInfo{
			StepNames: names,
			Name:      s.name, Label: e.label(i), Index: i, Pid: s.pid, State: s.state, Transfer: s.transfer,
			Statements: stmts, Next: s.next, Finished: s.finished, Current: s.current, CurrentStep: cur,
			StartedAt: s.startedAt, LastErr: s.lastErr, ErrAt: s.errAt, Ended: s.ended,
			BlockedBy: append([]string(nil), s.blockedBy...), Waits: append([]locks.Edge(nil), s.waits...),
			Database: s.side.label, AppBusy: e.busySibling(s) != nil, Settled: s.settled,
			LockTimeout: s.lockTimeout, DeadlockTimeout: s.deadlockTimeout,
		}
	}
	return out
}

// Pids are the sessions' backend pids, by index (0 where unknown): what
// Sessions says of them, without copying the rest.
func (e *Engine) Pids() []int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]int32, len(e.sessions))
	for i, s := range e.sessions {
		out[i] = s.pid
	}
	return out
}

// SessionName is session i's name (T1, T1@A), as events and snapshots give it.
func (e *Engine) SessionName(i int) string { return e.cfg.sessionName(i) }

// Blocked asks the server whether session i's statement waits for another
// session of the run — for a lock, or for a safe snapshot — with the
// isolation tester's own question (pg_isolation_test_session_is_blocked),
// on the control connection of the session's database: no observer, no
// snapshot, one round trip.
func (e *Engine) Blocked(ctx context.Context, i int) (bool, error) {
	e.mu.Lock()
	if i < 0 || i >= len(e.sessions) {
		e.mu.Unlock()
		return false, ErrNoSession
	}
	s := e.sessions[i]
	pid, sd := s.pid, s.side
	pids := e.pidsIn(sd)
	e.mu.Unlock()
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if sd.ctl == nil || sd.ctl.IsClosed() {
		return false, fmt.Errorf("asking whether %s waits: %w", s.name, ErrClosed)
	}
	rows, err := sd.ctlRows(ctx, fmt.Sprintf("SELECT pg_catalog.pg_isolation_test_session_is_blocked(%d, '%s')", pid, int4Array(pids)))
	if err != nil {
		return false, fmt.Errorf("asking whether %s waits: %w", s.name, err)
	}
	return len(rows) == 1 && string(rows[0][0]) == "t", nil
}

// Unread is how many bytes the server has sent session i that its worker
// has not read yet — a notice sent before the statement began to wait, say
// — or -1 when that cannot be told. The worker reads them as soon as it
// runs: a view that has just asked the server whether the statement waits
// (Blocked) lets it, until this is 0, before it says what the session sent.
func (e *Engine) Unread(i int) int {
	e.mu.Lock()
	if i < 0 || i >= len(e.sessions) {
		e.mu.Unlock()
		return -1
	}
	conn := e.sessions[i].conn
	e.mu.Unlock()
	if conn == nil {
		return 0
	}
	// Not conn.IsClosed(): the session's worker may be using the connection
	// (its statement runs), and pgx's state is the worker's alone. A closed
	// connection's socket cannot be counted (-1), which says as much.
	return socketUnread(conn.PgConn().Conn())
}

// PollNow asks the observer for a poll now, without waiting for it: a
// Polled event taken after this call follows.
func (e *Engine) PollNow() { e.kickObserver() }

// Generation is the run's current generation (see Event.Gen).
func (e *Engine) Generation() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen
}

// Process is a process id named in a server message and the session it is.
type Process struct {
	Pid     string
	Session string
}

var processRE = lazyre.New(`(?i)process (\d+)`)

// Processes lists the sessions behind the "process N" a server message
// names (a deadlock's DETAIL), in order, each once.
func Processes(msg string, sessions []SessionInfo) []Process {
	var out []Process
	seen := map[string]bool{}
	for _, m := range processRE.FindAllStringSubmatch(msg, -1) {
		pid := m[1]
		if seen[pid] {
			continue
		}
		for _, s := range sessions {
			if strconv.Itoa(int(s.Pid)) == pid {
				seen[pid] = true
				out = append(out, Process{Pid: pid, Session: s.Name})
			}
		}
	}
	return out
}
