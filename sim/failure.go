package sim

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/locks"
)

// FailureKind sorts a statement's failure by what it teaches.
type FailureKind string

// The kinds of failure an explanation tells apart.
const (
	FailDeadlock         FailureKind = "deadlock"          // 40P01
	FailFirstUpdaterWins FailureKind = "first-updater"     // 40001: concurrent update or delete
	FailSerializable     FailureKind = "rw-dependencies"   // 40001: read/write dependencies (SSI)
	FailSerialization    FailureKind = "serialization"     // 40001, another wording
	FailLockTimeout      FailureKind = "lock-timeout"      // 55P03 after a wait
	FailNowait           FailureKind = "nowait"            // 55P03 without a wait: NOWAIT
	FailStatementTimeout FailureKind = "statement-timeout" // 57014: statement_timeout
	FailCanceled         FailureKind = "canceled"          // 57014: a cancel request
	FailIdleTimeout      FailureKind = "idle-timeout"      // FATAL 25P03
	FailTerminated       FailureKind = "terminated"        // FATAL 57P01 and its kin
	FailConstraint       FailureKind = "constraint"        // class 23
	FailOther            FailureKind = "other"
)

// Failure is what the engine saw of a statement's failure: the server's
// message whole, and the facts around it that the server's words leave out
// — the wait it stood in, the session's timeouts, the transactions that
// committed while its own was open. Views write their explanation from
// these, and claim nothing else.
type Failure struct {
	Kind    FailureKind   `json:",omitempty"`
	Session string        `json:",omitempty"`
	SQL     string        `json:",omitempty"`
	Err     ServerMessage `json:",omitempty"`
	// Ran is how long the statement ran before it failed.
	Ran time.Duration `json:",omitempty"`
	// Waits are the waits the statement stood in when it failed, as the
	// last poll saw them (none when it failed without waiting).
	Waits []locks.Edge `json:",omitempty"`
	// LockTimeout and StatementTimeout are the session's, as last read.
	LockTimeout      time.Duration `json:",omitempty"`
	StatementTimeout time.Duration `json:",omitempty"`
	// Committed names the sessions whose COMMIT succeeded while this
	// session's transaction was open, before the failure, in order.
	Committed []string `json:",omitempty"`
	// Relation is the table the server's message names, if it names one;
	// Holders are the other sessions holding a lock on it in the last poll.
	Relation string       `json:",omitempty"`
	Holders  []locks.Lock `json:",omitempty"`
	// RowHolders are the other sessions' row locks on it in the last poll
	// (pgrowlocks): a NOWAIT on a row failed on one of them.
	RowHolders []locks.RowLock `json:",omitempty"`
	// Processes are the sessions behind the "process N" of the DETAIL.
	Processes []Process `json:",omitempty"`
}

var relationRE = regexp.MustCompile(`relation "([^"]+)"`)

// failure gathers the facts of session s's failed statement; e.mu is held.
func (e *Engine) failure(s *session, j job, se *ServerMessage, took time.Duration) *Failure {
	f := &Failure{Session: s.name, SQL: j.sql, Err: *se, Ran: took, Waits: slices.Clone(s.waits),
		LockTimeout: s.lockTimeout, StatementTimeout: s.statementTimeout}
	f.Kind = Classify(se, len(f.Waits) > 0)
	if !s.txBegan.IsZero() {
		for _, c := range e.commits {
			if c.session != s.name && c.at.After(s.txBegan) && !slices.Contains(f.Committed, c.session) {
				f.Committed = append(f.Committed, c.session)
			}
		}
	}
	if m := relationRE.FindStringSubmatch(se.Message); m != nil {
		f.Relation = m[1]
	}
	if f.Relation != "" && e.lastSnap != nil {
		for _, l := range e.lastSnap.Locks {
			if l.Granted && l.Session != s.name && l.Relation == f.Relation {
				f.Holders = append(f.Holders, l)
			}
		}
		for _, r := range e.lastSnap.RowLocks {
			if !r.Ended && r.Session != "" && r.Session != s.name && r.Relation == f.Relation {
				f.RowHolders = append(f.RowHolders, r)
			}
		}
	}
	var infos []SessionInfo
	for _, o := range e.sessions {
		infos = append(infos, SessionInfo{Name: o.name, Pid: o.pid})
	}
	f.Processes = Processes(se.Detail, infos)
	return f
}

// Classify sorts a server error: waited says whether the statement was seen
// waiting for a lock when it failed.
func Classify(se *ServerMessage, waited bool) FailureKind {
	switch code := se.SQLState; {
	case code == pgerrcode.DeadlockDetected:
		return FailDeadlock
	case code == pgerrcode.SerializationFailure:
		switch msg := strings.ToLower(se.Message); {
		case strings.Contains(msg, "concurrent update"), strings.Contains(msg, "concurrent delete"):
			return FailFirstUpdaterWins
		case strings.Contains(msg, "read/write dependencies"):
			return FailSerializable
		}
		return FailSerialization
	case code == pgerrcode.LockNotAvailable:
		if waited {
			return FailLockTimeout
		}
		return FailNowait
	case code == pgerrcode.QueryCanceled:
		if strings.Contains(strings.ToLower(se.Message), "statement timeout") {
			return FailStatementTimeout
		}
		return FailCanceled
	case code == pgerrcode.IdleInTransactionSessionTimeout:
		return FailIdleTimeout
	case code == pgerrcode.AdminShutdown, code == pgerrcode.CrashShutdown, code == pgerrcode.CannotConnectNow:
		return FailTerminated
	case strings.HasPrefix(code, "23"):
		return FailConstraint
	}
	return FailOther
}

// commitRec is one successful COMMIT of the run.
type commitRec struct {
	session string
	at      time.Time
}

// endedFailure is the failure of a session the server ended with msg (nil
// when its connection broke without a word: then there is nothing to
// explain but the loss).
func endedFailure(session, sql string, msg *ServerMessage) *Failure {
	if msg == nil {
		return nil
	}
	return &Failure{Kind: Classify(msg, false), Session: session, SQL: sql, Err: *msg}
}
