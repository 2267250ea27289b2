// Package locks reads a run's lock state from the server — pg_locks joined
// with pg_stat_activity, pg_blocking_pids, and pgrowlocks where it can, in
// one query (poll.sql) — and turns it into a wait-for graph with cycles and
// explanations drawn from PostgreSQL's documented conflict tables, which it
// keeps as data. It knows nothing of screens: drawing a table is a view's.
package locks

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Backend is one of the run's server processes, as pg_stat_activity shows it.
type Backend struct {
	Pid           int32      `json:",omitempty"`
	Session       string     `json:",omitempty"` // "T1", from application_name lockstep/<run>/T1
	User          string     `json:",omitempty"` // the role, where the view reads it (watch)
	State         string     `json:",omitempty"` // pg_stat_activity.state: active, idle in transaction, …
	WaitEventType string     `json:",omitempty"`
	WaitEvent     string     `json:",omitempty"`
	XactStart     *time.Time `json:",omitempty"`
	// Started is the backend's backend_start, where the view reads it (a
	// watch's), and the server shows it to the role.
	Started *time.Time `json:",omitempty"`
	Xid     uint32     `json:",omitempty"` // backend_xid; 0 before the transaction writes
	Query   string     `json:",omitempty"`
	// BlockedBy is pg_blocking_pids, read only while the backend waits for a
	// lock or for its parallel workers.
	BlockedBy []int32 `json:",omitempty"`
	// Database labels the backend's database in a two-database run.
	Database string `json:",omitempty"`
	// Prepared is the global id of a prepared transaction (PREPARE
	// TRANSACTION), which holds its locks with no backend: Pid is 0 and
	// Session is "prepared T1@B".
	Prepared string `json:",omitempty"`
	// RemotePart marks a backend of the run that none of its sessions
	// opened: the postgres_fdw connection a session's statement made to the
	// other database (named T2@B by postgres_fdw.application_name). Its
	// transaction ends only with the transaction of the session that opened
	// it; no application holds it.
	RemotePart bool `json:",omitempty"`
	// SafeSnapshotBlockedBy is pg_safe_snapshot_blocking_pids, read only while
	// a SERIALIZABLE READ ONLY DEFERRABLE transaction waits for a safe snapshot.
	SafeSnapshotBlockedBy []int32 `json:",omitempty"`
}

// WaitingForLock is true when the server says the backend waits for a
// heavyweight lock: itself, or one of its parallel query's workers, while
// it waits for them.
func (b Backend) WaitingForLock() bool {
	return (b.WaitEventType == "Lock" || b.WaitEventType == "IPC") && len(b.BlockedBy) > 0
}

// WaitsThroughWorker is true when the backend's lock wait is a parallel
// worker's: the backend itself waits for its workers.
func (b Backend) WaitsThroughWorker() bool { return b.WaitEventType == "IPC" && len(b.BlockedBy) > 0 }

// WaitingForSnapshot is true when a deferrable transaction waits for a safe snapshot.
func (b Backend) WaitingForSnapshot() bool { return len(b.SafeSnapshotBlockedBy) > 0 }

// Waiting is true when the server says the backend waits, for a lock or a safe snapshot.
func (b Backend) Waiting() bool { return b.WaitingForLock() || b.WaitingForSnapshot() }

// Lock is one row of pg_locks held or awaited by one of the run's backends.
type Lock struct {
	Pid     int32  `json:",omitempty"`
	Session string `json:",omitempty"`
	// Database labels the lock's database in a two-database run.
	Database string `json:",omitempty"`
	Type     string `json:",omitempty"` // pg_locks.locktype: relation, tuple, transactionid, virtualxid, advisory, …
	// Relation is the table or index name, resolved in the current database
	// only; schema-qualified when outside the ledger's schema. A watch names
	// a relation of another database by its oid and that database.
	Relation string `json:",omitempty"`
	// RelationID and DatabaseID are pg_locks' oids, where the poll reads
	// them (a watch's): a relation is the same only with both the same.
	RelationID uint32 `json:",omitempty"`
	DatabaseID uint32 `json:",omitempty"`
	RelKind    string `json:",omitempty"` // pg_class.relkind: r table, i index, S sequence
	Page       *int32 `json:",omitempty"`
	Tuple      *int16 `json:",omitempty"`
	// Account is the ledger account a tuple or advisory lock concerns, 0 if none.
	Account       int64  `json:",omitempty"`
	TransactionID uint32 `json:",omitempty"` // transactionid locks
	// TxOwner is the session whose transaction a transactionid or virtualxid
	// lock is, if one of this run's.
	TxOwner string `json:",omitempty"`
	// Subtransaction marks a transactionid lock on one of TxOwner's
	// subtransactions (taken after a SAVEPOINT), not its transaction.
	Subtransaction bool       `json:",omitempty"`
	VirtualXID     string     `json:",omitempty"`
	ClassID        uint32     `json:",omitempty"` // advisory: first key half
	ObjID          uint32     `json:",omitempty"` // advisory: second key half
	ObjSubID       int16      `json:",omitempty"` // advisory: 1 for a bigint key, 2 for an (int, int) key
	Mode           string     `json:",omitempty"` // pg_locks spelling: RowExclusiveLock
	Granted        bool       `json:",omitempty"`
	FastPath       bool       `json:",omitempty"`
	WaitStart      *time.Time `json:",omitempty"` // PostgreSQL 14+
}

// Ctid is the tuple's ctid, "(page,tuple)", for tuple locks.
func (l Lock) Ctid() string {
	if l.Page == nil || l.Tuple == nil {
		return ""
	}
	return fmt.Sprintf("(%d,%d)", *l.Page, *l.Tuple)
}

// TableMode is the lock's mode as a table-level mode, if it is one.
func (l Lock) TableMode() (TableMode, bool) { return ParseTableMode(l.Mode) }

// SIReadMode is pg_locks' mode of a predicate lock: a SERIALIZABLE
// transaction's record of what it read (a tuple, a page, a relation), which
// blocks nothing and waits for nothing.
const SIReadMode = "SIReadLock"

// Target says in human words what the lock is on.
func (l Lock) Target() string {
	switch l.Type {
	case "relation":
		if l.RelKind == "i" {
			return "index " + l.Relation
		}
		if l.RelKind == "S" {
			return "sequence " + l.Relation
		}
		return l.Relation
	case "tuple":
		// A SERIALIZABLE transaction's SIReadLock on a tuple is a record
		// of its read, no place in the row's queue.
		queue := " (row queue)"
		if l.Mode == SIReadMode {
			queue = ""
		}
		if l.Account != 0 {
			return fmt.Sprintf("%s id=%d%s", l.Relation, l.Account, queue)
		}
		return fmt.Sprintf("%s row %s%s", l.Relation, l.Ctid(), queue)
	case "transactionid":
		if l.TxOwner != "" && l.Subtransaction {
			return l.TxOwner + "'s subtransaction"
		}
		if l.TxOwner != "" {
			return l.TxOwner + "'s transaction"
		}
		return fmt.Sprintf("transaction %d", l.TransactionID)
	case "virtualxid":
		if l.TxOwner != "" {
			return l.TxOwner + "'s transaction (virtual " + l.VirtualXID + ")"
		}
		return "virtual transaction " + l.VirtualXID
	case "advisory":
		if l.Account != 0 {
			return fmt.Sprintf("advisory key → account %d", l.Account)
		}
		if l.ObjSubID == 1 {
			return fmt.Sprintf("advisory key %d", int64(l.ClassID)<<32|int64(l.ObjID))
		}
		return fmt.Sprintf("advisory key (%d, %d)", int32(l.ClassID), int32(l.ObjID))
	case "page":
		return fmt.Sprintf("%s page %d", l.Relation, deref(l.Page))
	case "extend":
		return "extending " + l.Relation
	case "object":
		return fmt.Sprintf("object %d/%d", l.ClassID, l.ObjID)
	}
	return l.Type
}

// ModeWords is the mode in the documentation's words: "ROW EXCLUSIVE" for
// table modes, "ShareLock" spelled out for the others.
func (l Lock) ModeWords() string {
	if l.Type == "relation" {
		if m, ok := l.TableMode(); ok {
			return m.String()
		}
	}
	return l.Mode
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// RowLock is a row lock as pgrowlocks reads it from the row header: row-level
// locks are mostly not in pg_locks.
type RowLock struct {
	Database string `json:",omitempty"`
	Account  int64  `json:",omitempty"` // accounts.id of the locked row, 0 if unknown
	Ctid     string `json:",omitempty"`
	// Relation is the row's table when it is not accounts ("" for accounts).
	Relation string `json:",omitempty"`
	// Multi marks a row whose lockers the row header names by a multixact:
	// several transactions' sharing locks combined.
	Multi   bool    `json:",omitempty"`
	Pid     int32   `json:",omitempty"`
	Session string  `json:",omitempty"`
	Xid     uint32  `json:",omitempty"`
	Mode    RowMode `json:",omitempty"`
	// Raw is pgrowlocks' own word for the mode: "For Key Share", "No Key Update", …
	Raw string `json:",omitempty"`
	// Inferred marks a row lock known from the statements lockstep sent the
	// session (where pgrowlocks cannot be read), not read from the row.
	Inferred bool `json:",omitempty"`
	// Ended marks a multixact member whose transaction has ended (pgrowlocks
	// gives it no pid): the row header still names it, but it blocks no one.
	// Session is the session that ran it, when the observer saw its id.
	Ended bool `json:",omitempty"`
}

// Snapshot is one poll: the run's backends, their locks, row locks and the wait-for graph.
type Snapshot struct {
	Taken    time.Time `json:",omitempty"`
	Backends []Backend `json:",omitempty"`
	Locks    []Lock    `json:",omitempty"`
	RowLocks []RowLock `json:",omitempty"`
	// RowLockNote says why row locks are missing from this snapshot, if they are.
	RowLockNote     string        `json:",omitempty"`
	DeadlockTimeout time.Duration `json:",omitempty"`
	Graph           Graph         `json:",omitempty"`
}

// Backend finds the backend of a session by name.
func (s *Snapshot) Backend(session string) (Backend, bool) {
	for _, b := range s.Backends {
		if b.Session == session {
			return b, true
		}
	}
	return Backend{}, false
}

// LocksOf lists the locks a session holds or awaits.
func (s *Snapshot) LocksOf(session string) []Lock {
	var out []Lock
	for _, l := range s.Locks {
		if l.Session == session {
			out = append(out, l)
		}
	}
	return out
}

// RowLocksOf lists the row locks a session holds: not those of its ended
// transactions that a multixact still names.
func (s *Snapshot) RowLocksOf(session string) []RowLock {
	var out []RowLock
	for _, r := range s.RowLocks {
		if r.Session == session && !r.Ended {
			out = append(out, r)
		}
	}
	return out
}

// WaitsOnRun says whether backend b waits for one of the run's own
// sessions or prepared transactions — a backend of this snapshot — and
// which of its blockers are outside the run. A wait only on backends
// outside it (autovacuum truncating a table or extending its visibility
// map, another client) is real but not the run's: it ends without
// anything the run does, as the isolation tester's
// pg_isolation_test_session_is_blocked ignores such blockers too.
func (s *Snapshot) WaitsOnRun(b Backend) (onRun bool, outside []int32) {
	if !b.Waiting() {
		return false, nil
	}
	ours := func(pid int32) bool {
		for _, o := range s.Backends {
			if o.Pid == pid && (o.Session != "" && (pid != 0 || o.Prepared != "")) {
				return true
			}
		}
		return false
	}
	for _, pids := range [][]int32{b.BlockedBy, b.SafeSnapshotBlockedBy} {
		for _, pid := range pids {
			if ours(pid) {
				onRun = true
			} else if !slices.Contains(outside, pid) {
				outside = append(outside, pid)
			}
		}
	}
	return onRun, outside
}

// nameOf names a pid: its session, or "pid N" for a backend outside the run.
func (s *Snapshot) nameOf(pid int32) string {
	for _, b := range s.Backends {
		if b.Pid == pid && pid != 0 && b.Session != "" {
			return b.Session
		}
	}
	if pid == 0 {
		return "a prepared transaction"
	}
	return fmt.Sprintf("pid %d (not a session of this run)", pid)
}

// wantedRowMode guesses the row-lock mode a statement asks for from its text;
// pg_locks does not say, because row locks live in the row header.
func wantedRowMode(query string) (RowMode, bool) {
	q := strings.ToUpper(query)
	switch {
	case strings.Contains(q, "FOR NO KEY UPDATE"):
		return ForNoKeyUpdate, true
	case strings.Contains(q, "FOR KEY SHARE"):
		return ForKeyShare, true
	case strings.Contains(q, "FOR UPDATE"):
		return ForUpdate, true
	case strings.Contains(q, "FOR SHARE"):
		return ForShare, true
	}
	switch strings.Fields(q + " x")[0] {
	case "UPDATE":
		// lockstep's updates change balance only: not a key column.
		return ForNoKeyUpdate, true
	case "DELETE":
		return ForUpdate, true
	case "INSERT":
		// An insert waits on a row only through its foreign-key check.
		return ForKeyShare, true
	}
	return 0, false
}

// Target is the locked row in words: "accounts id=1", or "ls_stock row
// (0,1)" for another table's.
// SameRow says whether o locks the same row as r: the same table and row
// version (two rows of a scenario's table both have Account 0).
func (r RowLock) SameRow(o RowLock) bool {
	return r.Database == o.Database && r.Relation == o.Relation && r.Account == o.Account && r.Ctid == o.Ctid
}

func (r RowLock) Target() string {
	if r.Relation != "" {
		return r.Relation + " row " + r.Ctid
	}
	return fmt.Sprintf("accounts id=%d", r.Account)
}

// After is the snapshot as it stands once session's statement has ended —
// its wait over — and, when its transaction ended too (a deadlock's victim,
// whose locks the server released as it aborted), without its locks but
// its advisory ones (a session-level one outlives the transaction). A view
// shows it between that event and the next poll, which would otherwise
// still draw a wait, or a deadlock, the server has ended. A lock the
// session waited for is held now, but for those a wait takes only to wait
// (another transaction's id, a row's tuple lock, a virtual transaction id),
// which the server releases once granted. s itself is unchanged: views
// share it.
func (s *Snapshot) After(session string, ended bool) *Snapshot {
	waits := slices.ContainsFunc(s.Graph.Edges, func(e Edge) bool { return e.Waiter == session }) ||
		slices.ContainsFunc(s.Locks, func(l Lock) bool { return l.Session == session && !l.Granted })
	if !waits && !ended {
		return s
	}
	out := *s
	out.Backends = slices.Clone(s.Backends)
	for i := range out.Backends {
		if b := &out.Backends[i]; b.Session == session {
			b.BlockedBy, b.SafeSnapshotBlockedBy = nil, nil
			if b.WaitEventType == "Lock" {
				b.WaitEventType, b.WaitEvent = "", ""
			}
			if ended {
				b.XactStart, b.Xid = nil, 0
			}
		}
	}
	out.Locks = nil
	for _, l := range s.Locks {
		if l.Session == session {
			if ended && l.Type != "advisory" {
				continue
			}
			if !l.Granted {
				switch l.Type {
				case "transactionid", "tuple", "virtualxid":
					continue
				}
				l.Granted, l.WaitStart = true, nil
			}
		}
		out.Locks = append(out.Locks, l)
	}
	if ended {
		out.RowLocks = slices.DeleteFunc(slices.Clone(s.RowLocks), func(r RowLock) bool { return r.Session == session && !r.Ended })
	}
	// An application's edge (two databases) is the application's to end,
	// not the server's.
	gone := func(e Edge) bool {
		released := ended && e.Holder == session && (e.Held == nil || e.Held.Type != "advisory")
		return !e.Application && (e.Waiter == session || released)
	}
	out.Graph.Edges = slices.DeleteFunc(slices.Clone(s.Graph.Edges), gone)
	through := func(c Cycle) bool { return slices.ContainsFunc(c.Edges, gone) }
	out.Graph.Cycles = slices.DeleteFunc(slices.Clone(s.Graph.Cycles), through)
	out.Graph.SoftCycles = slices.DeleteFunc(slices.Clone(s.Graph.SoftCycles), through)
	return &out
}
