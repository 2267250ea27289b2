package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"lockstep/ledger"
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

var stateNames = [...]string{"idle", "in transaction", "running", "waiting", "committed", "rolled back",
	"aborted transaction", "failed"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText writes a state by its name (a recording keeps names, not
// numbers, so that adding a state never changes what an old file says).
func (s State) MarshalText() ([]byte, error) { return marshalName("state", int(s), stateNames[:]) }

// UnmarshalJSON reads a state by its name, or by its number as recordings
// of format version 1 wrote it.
func (s *State) UnmarshalJSON(b []byte) error {
	n, err := unmarshalName("state", b, stateNames[:])
	*s = State(n)
	return err
}

// Busy is true while a statement is in flight.
func (s State) Busy() bool { return s == Running || s == Waiting }

// EventKind says what happened.
type EventKind int

// The kinds of event the engine sends.
const (
	Started        EventKind = iota // a statement was sent
	WaitingForLock                  // the server says the statement waits; BlockedBy and Waits say for whom and why
	Completed                       // the statement finished; Tag, Results, Duration
	Error                           // the statement failed; Err (and Results of the statements before it)
	ConnectionLost                  // the session's connection is gone; Cause
	DeadlockFormed                  // a cycle appeared in the wait-for graph; Cycle
	Polled                          // a lock snapshot was read; Snapshot
	ResetDone                       // the run was reset; a new generation begins
	Notice                          // the server sent the session a notice; Message
	BooksRead                       // the balances were read after a change (Config.Books); Books
	BlockRan                        // a scenario's setup or teardown block ran; Block, Results, Err
	Skipped                         // the scheduler passed over a session of the stored order that could not step
	Stalled                         // the run cannot end by itself; Stall says why (PlayToEnd)
	Resolved                        // lockstep ended a prepared transaction; Prepared, Commit (PlayToEnd)
	ObserverLost                    // a poll failed: what the views show is no longer live until the next Polled; Cause
)

var kindNames = [...]string{"started", "waiting", "completed", "error", "connection lost", "deadlock", "polled", "reset",
	"notice", "books", "block", "skipped", "stalled", "resolved", "observer lost"}

func (k EventKind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
	return kindNames[k]
}

// Valid says whether k is one of the kinds above.
func (k EventKind) Valid() bool { return k >= 0 && int(k) < len(kindNames) }

// MarshalText writes a kind by its name.
func (k EventKind) MarshalText() ([]byte, error) {
	return marshalName("event kind", int(k), kindNames[:])
}

// UnmarshalJSON reads a kind by its name, or by its number as recordings of
// format version 1 wrote it.
func (k *EventKind) UnmarshalJSON(b []byte) error {
	n, err := unmarshalName("event kind", b, kindNames[:])
	*k = EventKind(n)
	return err
}

// marshalName is the name of value n of an enumeration.
func marshalName(what string, n int, names []string) ([]byte, error) {
	if n < 0 || n >= len(names) {
		return nil, fmt.Errorf("no %s %d", what, n)
	}
	return []byte(names[n]), nil
}

// unmarshalName reads a value of an enumeration written as its name (a JSON
// string) or as its number, and refuses one it does not know.
func unmarshalName(what string, b []byte, names []string) (int, error) {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		if i := slices.Index(names, name); i >= 0 {
			return i, nil
		}
		return 0, fmt.Errorf("unknown %s %q", what, name)
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil || n < 0 || n >= len(names) {
		return 0, fmt.Errorf("unknown %s %s", what, b)
	}
	return n, nil
}

// ServerMessage is an error or a notice the server sent, with its fields.
type ServerMessage struct {
	SQLState string `json:",omitempty"`
	Severity string `json:",omitempty"`
	Message  string `json:",omitempty"`
	Detail   string `json:",omitempty"`
	Hint     string `json:",omitempty"`
	// Position is where in the statement the error is, in characters from
	// 1; zero when the server gave none.
	Position int32 `json:",omitempty"`
	// InternalQuery is the statement a function ran that failed (PL/pgSQL's
	// PERFORM, say), and InternalPosition where in it.
	InternalQuery    string `json:",omitempty"`
	InternalPosition int32  `json:",omitempty"`
	// Context is the call stack the server reports (its CONTEXT line).
	Context string `json:",omitempty"`
}

func (m *ServerMessage) Error() string { return m.Message }

// Result is one result a statement returned: its command tag and, for a
// query that returned rows, the columns and the rows as text.
type Result struct {
	Tag     string     `json:",omitempty"`
	Columns []string   `json:",omitempty"`
	Rows    [][]string `json:",omitempty"`
	// Null marks NULL values: Null[i][j] for row i's column j (whose text is
	// empty). Nil when no value is NULL.
	Null [][]bool `json:",omitempty"`
}

// Block names a scenario's setup or teardown block.
type Block struct {
	Teardown bool `json:",omitempty"`
	// Session is the session whose block it is; "" for a global block, which
	// runs on the control connection.
	Session string `json:",omitempty"`
}

// Stall is why a run cannot end by itself.
type Stall int

const (
	// DistributedDeadlock: a cycle through the application that no server
	// sees and no lock_timeout will break.
	DistributedDeadlock Stall = iota + 1
	// WaitsOnPrepared: a session waits only for prepared transactions that
	// have no session left to finish them.
	WaitsOnPrepared
	// WaitsOnOpenTransaction: a setup or teardown block (Block) waits for
	// a session (Session) that a permutation left inside a transaction
	// (Config.KeepTransactions); the engine rolls that session back.
	WaitsOnOpenTransaction
)

var stallNames = [...]string{"", "distributed deadlock", "waits on prepared", "waits on open transaction"}

// MarshalText writes a stall by its name.
func (s Stall) MarshalText() ([]byte, error) { return marshalName("stall", int(s), stallNames[:]) }

// UnmarshalJSON reads a stall by its name, or by its number as recordings
// of format version 1 wrote it.
func (s *Stall) UnmarshalJSON(b []byte) error {
	n, err := unmarshalName("stall", b, stallNames[:])
	*s = Stall(n)
	return err
}

// Event is one thing that happened in the engine.
type Event struct {
	// Gen is the run's generation; it grows with every reset, so a view can
	// drop events from before one.
	Gen  int       `json:",omitempty"`
	Time time.Time `json:",omitempty"`
	Kind EventKind `json:",omitempty"`
	// Session is the session's name ("T1"); empty for events that are not a
	// session's: Polled, DeadlockFormed, ResetDone, BooksRead, a global block.
	Session string `json:",omitempty"`
	Index   int    `json:",omitempty"` // the session's index, 0-based; -1 when the event is no session's
	// Step is the script statement's index, or -1 for SQL the user typed.
	Step int `json:",omitempty"`
	// Auto marks a statement the engine sent itself, as an application would
	// (the ROLLBACK after a scripted statement failed).
	Auto bool   `json:",omitempty"`
	SQL  string `json:",omitempty"`
	// Tag is the last command tag of a completed statement.
	Tag string `json:",omitempty"`
	// Results are every result the statement (or block) returned, in order.
	Results  []Result       `json:",omitempty"`
	Duration time.Duration  `json:",omitempty"`
	Err      *ServerMessage `json:",omitempty"`
	// Message is a Notice's content; SQL is then the statement the session
	// was running when it came, if any.
	Message *ServerMessage `json:",omitempty"`
	// Cause is the Go error behind ConnectionLost.
	Cause error `json:",omitempty"`
	// Failure is what the engine saw around an Error's (or a
	// ConnectionLost's) failure: the facts its explanation is written from.
	Failure *Failure `json:",omitempty"`
	// BlockedBy names the sessions (or pids) a waiting statement waits for.
	BlockedBy []string `json:",omitempty"`
	// Waits are the wait-for edges out of this session, with explanations.
	Waits []locks.Edge `json:",omitempty"`
	// State is the session's state after the event.
	State    State           `json:",omitempty"`
	Snapshot *locks.Snapshot `json:",omitempty"`
	Cycle    *locks.Cycle    `json:",omitempty"`
	Books    *Balances       `json:",omitempty"`
	Block    Block           `json:",omitempty"`
	Stall    Stall           `json:",omitempty"`
	Prepared *Prepared       `json:",omitempty"`
	Commit   bool            `json:",omitempty"`
	// Why is, for Skipped, why the session could not step then, written
	// from its state (SessionInfo.NotSteppable); "" in recordings made
	// before it was kept.
	Why string `json:",omitempty"`
	// Notifications are the LISTEN/NOTIFY messages that came on the
	// session's connection since its previous statement ended, delivered
	// with a statement's end (Completed, Error) as libpq's PQnotifies would
	// hand them over then.
	Notifications []Notification `json:",omitempty"`
}

// Check says what an event lacks of what its kind promises (an event read
// from a file, say): the payload every view may rely on.
func (ev Event) Check() error {
	if !ev.Kind.Valid() {
		return fmt.Errorf("no event kind %d", int(ev.Kind))
	}
	missing := ""
	switch ev.Kind {
	case Error:
		if ev.Err == nil {
			missing = "its error"
		}
	case ConnectionLost, ObserverLost:
		if ev.Cause == nil {
			missing = "its cause"
		}
	case DeadlockFormed:
		switch {
		case ev.Cycle == nil:
			missing = "its cycle"
		case ev.Snapshot == nil:
			missing = "its snapshot"
		}
	case Polled:
		if ev.Snapshot == nil {
			missing = "its snapshot"
		}
	case Notice:
		if ev.Message == nil {
			missing = "its message"
		}
	case BooksRead:
		if ev.Books == nil {
			missing = "its balances"
		}
	case Resolved:
		if ev.Prepared == nil {
			missing = "its prepared transaction"
		}
	case Stalled:
		switch {
		case ev.Stall <= 0 || int(ev.Stall) >= len(stallNames):
			missing = "why it stalled"
		case ev.Stall == DistributedDeadlock && ev.Cycle == nil:
			missing = "its cycle"
		}
	}
	if missing != "" {
		return fmt.Errorf("a %s event without %s", ev.Kind, missing)
	}
	return nil
}

// Notification is one NOTIFY delivered to a session that listens.
type Notification struct {
	Channel, Payload string `json:",omitempty"`
	Pid              uint32 `json:",omitempty"` // the notifying backend's
}

// LastRows is the last result set of the event's results: its columns and
// rows, or nil when none returned rows.
func (ev Event) LastRows() *Result {
	for i := len(ev.Results) - 1; i >= 0; i-- {
		if ev.Results[i].Columns != nil {
			return &ev.Results[i]
		}
	}
	return nil
}

// Balances is what the ledger holds, read on the control connections,
// outside every session's transaction.
type Balances struct {
	// Accounts and Books are a one-database run's.
	Accounts []ledger.Account `json:",omitempty"`
	Books    *ledger.Books    `json:",omitempty"`
	// ByDatabase holds a two-database run's balances, by database label.
	ByDatabase map[string][]ledger.Account `json:",omitempty"`
	// Err is why they could not be read this time: ErrLedgerLocked while a
	// session holds the accounts table exclusively.
	Err error `json:",omitempty"`
	// Taken is when the read began: it shows every statement that ended before.
	Taken time.Time `json:",omitempty"`
	// Count is how many accounts the ledger holds, when Accounts shows only
	// some of them (a big ledger); Partial then says how the books were checked.
	Count   int    `json:",omitempty"`
	Partial string `json:",omitempty"`
}
