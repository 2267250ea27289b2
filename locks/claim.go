package locks

import (
	"fmt"
	"slices"
	"strings"
)

// Release is the event a wait's explanation says will end it: what the
// holder must do before the waiter can go on. The truth harness
// (sim/truth_test.go) checks each against what the server then does.
type Release int

// What will release a wait.
const (
	ReleaseUnknown Release = iota
	// AtTransactionEnd: the holder's COMMIT or ROLLBACK, or its
	// transaction failing (an error aborts it and releases its locks at
	// once), or its session ending. A statement outside a transaction
	// block is its own transaction: its end.
	AtTransactionEnd
	// AtSubtransactionEnd: the holder's ROLLBACK TO SAVEPOINT that undoes
	// the subtransaction holding the lock, or the whole transaction's end.
	AtSubtransactionEnd
	// AtStatementEnd: the holder's statement ending (a lock held only while
	// it runs).
	AtStatementEnd
	// AtAdvisoryUnlock: the holder's pg_advisory_unlock of the key, or its
	// session ending (a session-level advisory lock outlives transactions).
	AtAdvisoryUnlock
	// AtSessionEnd: only the holder's session ending releases it.
	AtSessionEnd
	// AtQueueAhead: the holder holds nothing that conflicts; it is ahead in
	// the lock's queue. The waiter goes on once the request ahead of it has
	// been granted and let go, or withdrawn.
	AtQueueAhead
	// AtSafeSnapshot: a deferrable transaction waits until the holder's
	// serializable transaction ends.
	AtSafeSnapshot
)

var releaseNames = [...]string{"unknown", "transaction end", "ROLLBACK TO SAVEPOINT", "statement end",
	"advisory unlock", "session end", "the queue ahead", "safe snapshot"}

func (r Release) String() string {
	if r < 0 || int(r) >= len(releaseNames) {
		return fmt.Sprintf("Release(%d)", int(r))
	}
	return releaseNames[r]
}

// MarshalText writes a release by its name.
func (r Release) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a release by its name.
func (r *Release) UnmarshalText(b []byte) error {
	for i, n := range releaseNames {
		if n == string(b) {
			*r = Release(i)
			return nil
		}
	}
	return fmt.Errorf("unknown release %q", b)
}

// Claim is what an explanation of a wait asserts, as data: what the waiter
// waits on, who holds it in which mode, and what will release it. The
// explanation's words are written from it (Edge.Why), and the truth harness
// holds the server to it.
type Claim struct {
	// LockType, Object and Mode are the lock the waiter asks for: pg_locks'
	// locktype, the object in words (Lock.Target), the mode in the
	// documentation's words.
	LockType string `json:",omitempty"`
	Object   string `json:",omitempty"`
	Mode     string `json:",omitempty"`
	// Holder is the session the waiter waits for, and HolderMode the mode
	// it holds on the object ("" when it holds nothing there: a queue
	// ahead). HolderRowMode is the row lock behind a wait on a transaction
	// ("FOR SHARE"), when known.
	Holder        string `json:",omitempty"`
	HolderMode    string `json:",omitempty"`
	HolderRowMode string `json:",omitempty"`
	// Subtransaction marks a lock held by one of the holder's
	// subtransactions (taken after a SAVEPOINT).
	Subtransaction bool `json:",omitempty"`
	// Prepared marks a holder that is a prepared transaction (PREPARE
	// TRANSACTION): no session's COMMIT or ROLLBACK ends it, only COMMIT
	// PREPARED or ROLLBACK PREPARED with its global id.
	Prepared bool `json:",omitempty"`
	// Release is what ends the wait.
	Release Release `json:",omitempty"`
}

// ReleaseWords says in a sentence what will release the wait: "It goes on
// when T1's transaction ends (COMMIT or ROLLBACK)."
func (c Claim) ReleaseWords(waiter string) string {
	h := c.Holder
	switch c.Release {
	case AtTransactionEnd:
		if c.Prepared {
			return fmt.Sprintf("Released when %s's transaction ends (COMMIT PREPARED or ROLLBACK PREPARED, from any session), not before.", h)
		}
		return fmt.Sprintf("Released when %s's transaction ends (COMMIT or ROLLBACK), not before.", h)
	case AtSubtransactionEnd:
		return fmt.Sprintf("Released when %s's subtransaction ends: at its ROLLBACK TO SAVEPOINT, while its transaction is still open (or when that transaction ends).", h)
	case AtStatementEnd:
		return fmt.Sprintf("Released when %s's statement ends.", h)
	case AtAdvisoryUnlock:
		return fmt.Sprintf("Released when %s's session has called pg_advisory_unlock for the key as many times as it took it (session-level advisory locks stack), or when that session ends: a session-level advisory lock outlives COMMIT.", h)
	case AtSessionEnd:
		return fmt.Sprintf("Released only when %s's session ends.", h)
	case AtQueueAhead:
		// A queue of n has n²/2 of these: short, and no Sprintf.
		return "Released once " + h + " has had its lock and let it go."
	case AtSafeSnapshot:
		return fmt.Sprintf("Released when %s's transaction ends.", h)
	}
	return ""
}

// claimFor fills in the edge's claim from what the snapshot shows, before
// the words are written.
func (x *index) claimFor(e *Edge, waiter *Backend) {
	c := Claim{Holder: e.Holder, Prepared: slices.Contains(x.prepared, e.Holder)}
	w := e.Lock
	if w == nil {
		c.Release = ReleaseUnknown
		if len(waiter.SafeSnapshotBlockedBy) > 0 {
			c.Release = AtSafeSnapshot
		}
		e.Claim = c
		return
	}
	c.LockType, c.Object, c.Mode = w.Type, w.Target(), w.ModeWords()
	if e.Held != nil {
		c.HolderMode = e.Held.ModeWords()
	}
	switch {
	case e.Queued:
		c.Release = AtQueueAhead
	case w.Type == "transactionid" && x.isSubtransaction(e.HolderPid, w.TransactionID):
		c.Subtransaction, c.Release = true, AtSubtransactionEnd
	case w.Type == "advisory" && !x.advisoryXact(e.HolderPid, waiter):
		c.Release = AtAdvisoryUnlock
	default:
		c.Release = AtTransactionEnd
	}
	e.Claim = c
}

// isSubtransaction says whether transaction id xid, on which a waiter
// waits, is one of pid's subtransactions: pid holds it, and it is not the
// top-level transaction pg_stat_activity shows (backend_xid).
func (x *index) isSubtransaction(pid int32, xid uint32) bool {
	if pid == 0 || xid == 0 {
		return false
	}
	var top uint32
	for _, b := range x.Backends {
		if b.Pid == pid {
			top = b.Xid
		}
	}
	if top == 0 || top == xid {
		return false
	}
	for _, l := range x.Locks {
		if l.Pid == pid && l.Granted && l.Type == "transactionid" && l.TransactionID == xid {
			return true
		}
	}
	return false
}

// advisoryXact says whether pid's advisory locks are transaction-level
// (pg_advisory_xact_lock), as far as its last statement tells: pg_locks
// does not say which kind an advisory lock is.
// A holder with no transaction open holds a session-level one; otherwise
// the holder's or the waiter's statement naming pg_advisory_xact_lock (the
// same code takes the same kind) says it is transaction-level.
func (x *index) advisoryXact(pid int32, waiter *Backend) bool {
	xact := func(q string) bool { return strings.Contains(strings.ToLower(q), "advisory_xact_lock") }
	for _, b := range x.Backends {
		if b.Pid == pid {
			if b.XactStart == nil {
				return false
			}
			return xact(b.Query) || xact(waiter.Query)
		}
	}
	return xact(waiter.Query)
}

// withRelease ends an explanation with what will release the wait.
func withRelease(why, release string) string {
	if release == "" {
		return why
	}
	return strings.TrimSuffix(why, ".") + ". " + release
}

// TakenByWords says what took a table-level lock in mode on relation: the
// holder's own statement when its last one (holderQuery) is a LOCK TABLE
// that takes exactly that ("taken by its LOCK TABLE ls_t IN SHARE MODE"),
// and otherwise the statements that take the mode, worded as examples
// ("a mode taken by e.g. CREATE INDEX"): pg_locks does not say which
// statement took a lock.
func TakenByWords(mode TableMode, relation, holderQuery string) string {
	// Of several statements sent at once ("BEGIN; LOCK ls_t;"), the last.
	last := strings.TrimRight(holderQuery, "; \n\t")
	if i := strings.LastIndex(last, ";"); i >= 0 {
		last = last[i+1:]
	}
	holderQuery = strings.TrimSpace(last)
	q := strings.Join(strings.Fields(strings.ToUpper(holderQuery)), " ")
	rel := strings.ToUpper(relation)
	if i := strings.LastIndex(rel, "."); i >= 0 {
		rel = rel[i+1:]
	}
	if strings.HasPrefix(q, "LOCK ") && rel != "" && strings.Contains(q, rel) {
		in := strings.Contains(q, " IN ")
		if (in && strings.Contains(q, " IN "+mode.String()+" MODE")) || (!in && mode == AccessExclusive) {
			return "taken by its " + strings.Join(strings.Fields(holderQuery), " ")
		}
	}
	return "a mode taken by e.g. " + mode.TakenBy()
}

// QueryOf is the last statement pg_stat_activity shows for pid, or "".
func (s *Snapshot) QueryOf(pid int32) string {
	for _, b := range s.Backends {
		if b.Pid == pid {
			return b.Query
		}
	}
	return ""
}

// MultixactWords names the multixact that locks a row: the transactions the
// row header names through it and the mode each holds ("The row's header
// names a multixact: T1's FOR KEY SHARE and T2's FOR SHARE, combined.").
func MultixactWords(rows []RowLock, relation, ctid string) string {
	var members []string
	for _, r := range rows {
		if r.Multi && r.Relation == relation && r.Ctid == ctid {
			switch {
			case r.Ended && r.Session != "":
				members = append(members, fmt.Sprintf("%s's %s (%s's transaction has ended: that lock no longer blocks)", r.Session, r.Mode, r.Session))
			case r.Ended:
				members = append(members, fmt.Sprintf("the %s of transaction %d (ended: that lock no longer blocks)", r.Mode, r.Xid))
			case r.Session == "":
				members = append(members, fmt.Sprintf("pid %d's %s", r.Pid, r.Mode))
			default:
				members = append(members, r.Session+"'s "+r.Mode.String())
			}
		}
	}
	if len(members) < 2 {
		return "The row's header names a multixact: several transactions' locks on it, combined."
	}
	return "The row's header names a multixact, one id for several lockers: " +
		strings.Join(members[:len(members)-1], ", ") + " and " + members[len(members)-1] + ", combined."
}
