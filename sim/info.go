package sim

import (
	"time"

	"lockstep/ledger"
	"lockstep/locks"
)

// SessionInfo is a copy of where one session stands, for views.
type SessionInfo struct {
	Name string
	// Label is the scenario's name for the session ("s1"), "" for transfers.
	Label    string
	Index    int
	Pid      uint32
	State    State
	Transfer ledger.Transfer
	// Statements is the script rendered with the values read so far.
	Statements []string
	// Next is the index of the next script statement (len(Statements) when done).
	Next     int
	Finished bool
	// Current is the SQL in flight, if any; CurrentStep its script index or -1.
	Current     string
	CurrentStep int
	StartedAt   time.Time
	LastErr     *StatementError
	ErrAt       int // script index that failed, -1 if none
	BlockedBy   []string
	Waits       []locks.Edge
	// Database labels the session's database in a two-database run ("A", "B").
	Database string
	// Settled counts the session's statements that have ended; an event
	// (Completed, Error or ConnectionLost) for each is on its way.
	Settled int
	// AppBusy is true when another connection of the same logical session
	// (T1@B for T1@A) has a statement in flight: the application waits there.
	AppBusy bool
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
		out[i] = SessionInfo{
			Name: s.name, Label: e.label(i), Index: i, Pid: s.pid, State: s.state, Transfer: s.transfer,
			Statements: stmts, Next: s.next, Finished: s.finished, Current: s.current, CurrentStep: cur,
			StartedAt: s.startedAt, LastErr: s.lastErr, ErrAt: s.errAt,
			BlockedBy: append([]string(nil), s.blockedBy...), Waits: append([]locks.Edge(nil), s.waits...),
			Database: s.side.label, AppBusy: e.busySibling(s) != nil, Settled: s.settled,
		}
	}
	return out
}

// Generation is the run's current generation (see Event.Gen).
func (e *Engine) Generation() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen
}
