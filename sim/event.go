package sim

import (
	"fmt"
	"time"

	"lockstep/locks"
)

// State is where a session stands.
type State int

// The session states.
const (
	Idle          State = iota // connected, no transaction open
	InTransaction              // a transaction is open, no statement running
	Running                    // a statement is running and the server does not say it waits
	Waiting                    // the server says the statement waits (for a lock or a safe snapshot)
	Committed                  // the transaction committed
	RolledBack                 // the transaction rolled back
	Aborted                    // a statement failed inside the transaction: later ones fail until ROLLBACK
	Failed                     // the connection is lost
)

func (s State) String() string {
	switch s {
	case Idle:
		return "idle"
	case InTransaction:
		return "in transaction"
	case Running:
		return "running"
	case Waiting:
		return "waiting"
	case Committed:
		return "committed"
	case RolledBack:
		return "rolled back"
	case Aborted:
		return "aborted transaction"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Busy is true while a statement is in flight.
func (s State) Busy() bool { return s == Running || s == Waiting }

// EventKind says what happened.
type EventKind int

// The kinds of event the engine sends.
const (
	Started        EventKind = iota // a statement was sent
	WaitingForLock                  // the server says the statement waits; BlockedBy and Waits say for whom and why
	Completed                       // the statement finished; Tag, Columns, Rows, Duration
	Error                           // the statement failed; Err
	ConnectionLost                  // the session's connection is gone
	DeadlockFormed                  // a cycle appeared in the wait-for graph; Cycle
	Polled                          // a lock snapshot was read; Snapshot
	ResetDone                       // the run was reset; a new generation begins
)

func (k EventKind) String() string {
	return [...]string{"started", "waiting", "completed", "error", "connection lost", "deadlock", "polled", "reset"}[k]
}

// StatementError is an error the server sent, with all its fields.
type StatementError struct {
	SQLState string
	Severity string
	Message  string
	Detail   string
	Hint     string
}

func (e *StatementError) Error() string { return e.Message }

// Event is one thing that happened in the engine.
type Event struct {
	// Gen is the run's generation; it grows with every reset, so a view can
	// drop events from before one.
	Gen     int
	Time    time.Time
	Kind    EventKind
	Session string // "T1"; empty for Polled, DeadlockFormed and ResetDone
	Index   int    // the session's index, 0-based
	// Step is the script statement's index, or -1 for SQL the user typed.
	Step int
	// Auto marks a statement the engine sent itself, as an application would
	// (the ROLLBACK after a scripted statement failed).
	Auto     bool
	SQL      string
	Tag      string
	Columns  []string
	Rows     [][]string
	Duration time.Duration
	Err      *StatementError
	// Cause is the Go error behind ConnectionLost.
	Cause error
	// BlockedBy names the sessions (or pids) a waiting statement waits for.
	BlockedBy []string
	// Waits are the wait-for edges out of this session, with explanations.
	Waits []locks.Edge
	// State is the session's state after the event.
	State    State
	Snapshot *locks.Snapshot
	Cycle    *locks.Cycle
}
