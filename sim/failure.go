package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/lazyre"
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
	// Own are, for a serialization failure (40001), the statements the
	// failing session's transaction ran, the failed one last; Overlapping
	// the other sessions' transactions that were open at some time while
	// it was, with the statements each ran — what the server's read/write
	// dependencies are made of, as lockstep sent them.
	Own         []string `json:",omitempty"`
	Overlapping []TxSeen `json:",omitempty"`
	// TxAborted says the statement ran inside a transaction block, which
	// its error aborted: it cannot be retried alone in that transaction,
	// only with the whole transaction.
	TxAborted bool `json:",omitempty"`
}

// TxSeen is one transaction of another session, as lockstep ran it: its
// statements, and how it had ended when the failure came (Open: not yet;
// Committed: it committed while the failing transaction was open, which
// therefore could not see its writes).
type TxSeen struct {
	Session    string   `json:",omitempty"`
	Statements []string `json:",omitempty"`
	Committed  bool     `json:",omitempty"`
	Open       bool     `json:",omitempty"`
}

// txRec is a transaction of the run that ended.
type txRec struct {
	session      string
	began, ended time.Time
	stmts        []string
	committed    bool
}

// maxTxLog bounds the ended transactions the engine keeps.
const maxTxLog = 64

// overlapping are the other sessions' transactions open at some time
// while s's was (from began to now), the ended ones first; e.mu is held.
func (e *Engine) overlapping(s *session, began time.Time) []TxSeen {
	var out []TxSeen
	for _, t := range e.txLog {
		if t.session == s.name || !t.ended.After(began) || len(t.stmts) == 0 {
			continue
		}
		out = append(out, TxSeen{Session: t.session, Statements: t.stmts, Committed: t.committed})
	}
	for _, o := range e.sessions {
		if o == s || o.txBegan.IsZero() || len(o.txStmts) == 0 {
			continue
		}
		out = append(out, TxSeen{Session: o.name, Statements: slices.Clone(o.txStmts), Open: true})
	}
	return out
}

var relationRE = lazyre.New(`relation "([^"]+)"`)

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
	if se.SQLState == pgerrcode.SerializationFailure {
		began := s.txBegan
		if began.IsZero() {
			began = s.startedAt // a statement that is its own transaction
		}
		f.Own = slices.Clone(s.txStmts)
		f.Overlapping = e.overlapping(s, began)
	}
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
		// A lock_timeout shorter than a poll (ddl-queue-lock-timeout's 1 ms)
		// ends a wait no poll saw: the server's words tell it from NOWAIT's
		// "could not obtain lock on …", as 57014's tell statement_timeout
		// from a cancel.
		if waited || strings.Contains(strings.ToLower(se.Message), "lock timeout") {
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

var (
	writeRE = lazyre.New(`(?i)\b(FOR\s+|KEY\s+|DO\s+)?(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+(?:ONLY\s+)?("[^"]+"|[A-Za-z_][\w.]*)`)
	readRE  = lazyre.New(`(?i)\b(FROM|JOIN)\s+(?:ONLY\s+)?("[^"]+"|[A-Za-z_][\w.]*)`)
)

// Tables says which tables a statement reads and which it writes, from its
// text: UPDATE and DELETE read the rows they change, and so do the tables
// after FROM and JOIN; INSERT, UPDATE and DELETE write their target. It is
// what the statement asks for, table by table; which rows it touched is
// the server's to know (its predicate locks, under SERIALIZABLE).
func Tables(sql string) (reads, writes []string) {
	add := func(list []string, t string) []string {
		t = strings.Trim(t, `"`)
		if t == "" || slices.Contains(list, t) {
			return list
		}
		return append(list, t)
	}
	skip := map[string]bool{}
	for _, m := range writeRE.FindAllStringSubmatchIndex(sql, -1) {
		if m[2] >= 0 { // FOR UPDATE, FOR NO KEY UPDATE, DO UPDATE: no target here
			continue
		}
		verb := strings.ToUpper(strings.Fields(sql[m[4]:m[5]])[0])
		t := sql[m[6]:m[7]]
		if strings.EqualFold(t, "SET") {
			continue
		}
		writes = add(writes, t)
		if verb != "INSERT" {
			reads = add(reads, t)
		}
		if verb == "DELETE" {
			skip[fmt.Sprint(m[6])] = true // its FROM is the target, read already
		}
	}
	for _, m := range readRE.FindAllStringSubmatchIndex(sql, -1) {
		if skip[fmt.Sprint(m[4])] {
			continue
		}
		reads = add(reads, sql[m[4]:m[5]])
	}
	return reads, writes
}
