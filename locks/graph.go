package locks

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"lockstep/lazyre"
)

// Conflict points at the cell of a documented conflict table that decides an
// edge: the mode held (row) against the mode wanted (column).
type Conflict struct {
	Row    bool `json:",omitempty"` // the row-level table (Table 13.3) rather than the table-level one (13.2)
	Held   int  `json:",omitempty"`
	Wanted int  `json:",omitempty"`
	// Type is the pg_locks locktype of the lock the cell decides, when
	// it is no table ("advisory", "tuple", …): the server decides those
	// with the table-level modes' conflicts, but no table is locked.
	// Empty for a table (relation) lock and for the row-level table.
	Type string `json:",omitempty"`
}

// Table is the conflict table the cell belongs to.
func (c Conflict) Table() ConflictTable {
	if c.Row {
		return RowLevelConflicts()
	}
	return ModeConflicts(c.Type)
}

// Edge is "Waiter waits for Holder", labelled with the lock that causes it.
type Edge struct {
	Waiter, Holder       string `json:",omitempty"`
	WaiterPid, HolderPid int32  `json:",omitempty"`
	// Lock is the lock the waiter asks for (nil for a safe-snapshot wait).
	Lock *Lock `json:",omitempty"`
	// Held is the holder's lock in pg_locks that conflicts with Lock, when
	// there is one (a queue ahead holds none yet).
	Held *Lock `json:",omitempty"`
	// HeldRow is the holder's row lock, from pgrowlocks, that a wait on the
	// holder's transaction is about: the lock behind the wait, when known.
	HeldRow *RowLock `json:",omitempty"`
	// Why is one line explaining the conflict, written from Claim.
	Why string `json:",omitempty"`
	// Claim is what Why asserts, as data: the lock, the holder's mode, and
	// what will release the wait.
	Claim Claim `json:",omitzero"`
	// Conflict is the deciding cell, when a conflict table decides the edge.
	Conflict *Conflict `json:",omitempty"`
	// Queued marks a soft block: the holder holds nothing that conflicts,
	// it is ahead in the lock's queue with a conflicting request.
	Queued bool `json:",omitempty"`
	// Remote marks an application edge from a statement to its own remote
	// part (postgres_fdw), rather than a transaction the application holds
	// open.
	Remote bool `json:",omitempty"`
	// RemotePart marks an application edge from a postgres_fdw remote part
	// (RemotePart backend) to the waiting session whose transaction it
	// belongs to: no application holds it open.
	RemotePart bool `json:",omitempty"`
	// Application marks an edge no server sees: one logical session's
	// connection holds its transaction open while the same session's
	// connection to another database waits (see Merge).
	Application bool `json:",omitempty"`
}

// Label is the edge's lock in a few words: "ShareLock on T1's transaction".
func (e Edge) Label() string {
	switch {
	case e.Application && e.Remote:
		return "its statement's remote part (postgres_fdw)"
	case e.Application && e.RemotePart:
		return "the transaction it is the remote part of (postgres_fdw)"
	case e.Application:
		return "the application, on its other connection"
	}
	if e.Lock == nil {
		return "a safe snapshot"
	}
	return e.Lock.ModeWords() + " on " + e.Lock.Target()
}

// Cycle is a closed chain of waits: a deadlock, one per strongly connected
// component of the hard wait-for graph (see cycles.go), or, when Soft, a
// cycle that closes only through a lock's queue, which the server
// rearranges rather than breaks.
type Cycle struct {
	Sessions []string `json:",omitempty"` // in wait order: Sessions[0] waits for Sessions[1] … waits for Sessions[0]
	Edges    []Edge   `json:",omitempty"`
	// Members are every session of the component, by name, when more
	// than the cycle's: a tangle in which each waits, through the others,
	// for every other. Nil when the cycle is the whole component.
	Members []string `json:",omitempty"`
	// Soft marks a cycle through at least one soft edge (Edge.Queued): not
	// a deadlock. The server's deadlock check moves the queued request
	// ahead of the one it queues behind, grants it, and breaks nothing.
	Soft bool `json:",omitempty"`
	// BreakAt is when the server's deadlock check will first find the cycle:
	// each waiter checks once, deadlock_timeout after its wait began. Nil when
	// the server does not report wait start times (before PostgreSQL 14).
	BreakAt *time.Time `json:",omitempty"`
	// LikelyVictim is the waiter whose check fires first after the cycle closed.
	LikelyVictim string `json:",omitempty"`
	// Checks are when each waiter's deadlock check runs, in wait order:
	// once, its own deadlock_timeout after its wait began. Nil when a
	// waiter's wait start or deadlock_timeout is not known.
	Checks []DeadlockCheck `json:",omitempty"`
	// Distributed is true when the cycle closes through the application
	// (an Application edge): each server sees only a wait behind a session
	// idle in transaction, so no server will ever break it. Only a
	// lock_timeout can: then LockTimeout is the victim's, and BreakAt when
	// it fires.
	Distributed bool          `json:",omitempty"`
	LockTimeout time.Duration `json:",omitempty"`
}

// DeadlockCheck is when one waiter of a cycle runs the server's deadlock
// check.
type DeadlockCheck struct {
	Waiter  string
	At      time.Time     // its wait's start plus Timeout
	Timeout time.Duration // the waiter's own deadlock_timeout
}

// Closed is when the cycle closed: the start of its last wait. Zero when a
// wait's start is not known.
func (c Cycle) Closed() time.Time {
	var closed time.Time
	for _, ed := range c.Edges {
		if ed.Lock == nil || ed.Lock.WaitStart == nil {
			return time.Time{}
		}
		if ed.Lock.WaitStart.After(closed) {
			closed = *ed.Lock.WaitStart
		}
	}
	return closed
}

// String is "T1 → T2 → T1".
func (c Cycle) String() string {
	return strings.Join(append(append([]string(nil), c.Sessions...), c.Sessions[0]), " → ")
}

// Describe is String, and the rest of the component when there is more:
// "T1 → T2 → T1, tangled with T3, T4 (4 sessions)".
func (c Cycle) Describe() string {
	if len(c.Members) <= len(c.Sessions) {
		return c.String()
	}
	in := map[string]bool{}
	for _, s := range c.Sessions {
		in[s] = true
	}
	var rest []string
	for _, m := range c.Members {
		if !in[m] {
			rest = append(rest, m)
		}
	}
	const named = 4
	if len(rest) > named {
		rest = append(rest[:named], fmt.Sprintf("%d more", len(rest)-named))
	}
	return fmt.Sprintf("%s, tangled with %s (%d sessions)", c, strings.Join(rest, ", "), len(c.Members))
}

// All is every session of the cycle's component: its members, or the cycle's own.
func (c Cycle) All() []string {
	if c.Members != nil {
		return c.Members
	}
	return c.Sessions
}

// Graph is the wait-for graph of one snapshot.
type Graph struct {
	Edges []Edge `json:",omitempty"`
	// Cycles are the deadlocks: one per strongly connected component of
	// the hard edges, never through a soft one.
	Cycles []Cycle `json:",omitempty"`
	// SoftCycles close through a lock's queue (a soft edge): no deadlock,
	// though they look like one.
	SoftCycles []Cycle `json:",omitempty"`
}

// BuildGraph draws an edge waiter → holder for every pid that
// pg_blocking_pids (or pg_safe_snapshot_blocking_pids) names, explains each,
// and finds the deadlocks. Its work grows with the edges and lock rows, not
// faster: the lock rows are indexed once.
func BuildGraph(s *Snapshot) Graph {
	var g Graph
	x := newIndex(s)
	for bi := range s.Backends {
		b := &s.Backends[bi]
		if !b.Waiting() {
			continue
		}
		wanted := x.wanted[b.Pid]
		for _, pid := range b.BlockedBy {
			for _, holder := range x.holders(pid, wanted) {
				e := Edge{Waiter: b.Session, WaiterPid: b.Pid, Holder: holder, HolderPid: pid, Lock: wanted}
				x.explain(&e, b)
				x.claimFor(&e, b)
				if !e.Queued {
					e.Why = withRelease(e.Why, e.Claim.ReleaseWords(e.Waiter))
				}
				g.Edges = append(g.Edges, e)
			}
		}
		for _, pid := range b.SafeSnapshotBlockedBy {
			holder := x.nameOf(pid)
			e := Edge{
				Waiter: b.Session, WaiterPid: b.Pid, Holder: holder, HolderPid: pid,
				Why: fmt.Sprintf("%s (SERIALIZABLE READ ONLY DEFERRABLE) waits for a safe snapshot: %s's read-write serializable transaction could still make its reads unsafe", b.Session, holder),
			}
			x.claimFor(&e, b)
			e.Why = withRelease(e.Why, e.Claim.ReleaseWords(e.Waiter))
			g.Edges = append(g.Edges, e)
		}
	}
	g.findCycles(s)
	return g
}

// index is a snapshot's lock rows and names, looked up by pid and session.
type index struct {
	*Snapshot
	names    map[int32]string
	wanted   map[int32]*Lock    // a backend's awaited lock
	held     map[string][]*Lock // a session's granted locks
	prepared []string           // the prepared transactions' sessions
	wants    map[*Lock]*wanted
}

func newIndex(s *Snapshot) *index {
	x := &index{Snapshot: s, names: map[int32]string{}, wanted: map[int32]*Lock{}, held: map[string][]*Lock{}, wants: map[*Lock]*wanted{}}
	for _, b := range s.Backends {
		if b.Pid != 0 && b.Session != "" {
			if _, ok := x.names[b.Pid]; !ok {
				x.names[b.Pid] = b.Session
			}
		}
		if b.Prepared != "" {
			x.prepared = append(x.prepared, b.Session)
		}
	}
	for i := range s.Locks {
		l := &s.Locks[i]
		if !l.Granted {
			if _, ok := x.wanted[l.Pid]; !ok {
				x.wanted[l.Pid] = l
			}
			continue
		}
		x.held[l.Session] = append(x.held[l.Session], l)
	}
	return x
}

// nameOf names a pid: its session, or "pid N" for a backend outside the run.
func (x *index) nameOf(pid int32) string {
	if n, ok := x.names[pid]; ok {
		return n
	}
	return x.Snapshot.nameOf(pid)
}

// findCycles fills in the deadlocks of the graph's edges and says how each
// will end, and the cycles that close only through a queue.
func (g *Graph) findCycles(s *Snapshot) {
	g.Cycles, g.SoftCycles = findCycles(g.Edges)
	for i := range g.Cycles {
		if c := &g.Cycles[i]; !c.Distributed {
			s.predictBreak(c)
		}
	}
}

// holders names what pid stands for in pg_blocking_pids: a session, or — for
// pid 0 — the prepared transactions that hold the wanted lock's object.
func (x *index) holders(pid int32, wanted *Lock) []string {
	if pid != 0 || wanted == nil {
		return []string{x.nameOf(pid)}
	}
	var out []string
	for _, p := range x.prepared {
		if len(x.heldBy(p, wanted)) > 0 {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return []string{x.nameOf(pid)}
	}
	return out
}

// heldBy is what session holds of the object like locks.
func (x *index) heldBy(session string, like *Lock) []Lock {
	var out []Lock
	for _, l := range x.held[session] {
		if sameObject(l, like) {
			out = append(out, *l)
		}
	}
	return out
}

// sameObject says whether two rows of pg_locks are on one object. Where
// the rows carry their oids (a watch's), relations are told apart by oid
// and database, not by a name that another database's oid cannot have.
func sameObject(a, b *Lock) bool {
	if a.Type != b.Type || a.TransactionID != b.TransactionID || a.VirtualXID != b.VirtualXID ||
		a.ClassID != b.ClassID || a.ObjID != b.ObjID || a.ObjSubID != b.ObjSubID ||
		(a.Page == nil) != (b.Page == nil) || deref(a.Page) != deref(b.Page) ||
		(a.Tuple == nil) != (b.Tuple == nil) || (a.Tuple != nil && *a.Tuple != *b.Tuple) {
		return false
	}
	if a.DatabaseID != 0 && b.DatabaseID != 0 && a.DatabaseID != b.DatabaseID {
		return false
	}
	if a.RelationID != 0 || b.RelationID != 0 {
		return a.RelationID == b.RelationID
	}
	return a.Relation == b.Relation
}

// explain fills in the edge's one-line reason and deciding table cell.
func (x *index) explain(e *Edge, waiter *Backend) {
	w := e.Lock
	switch {
	case w == nil && waiter.WaitsThroughWorker():
		e.Why = fmt.Sprintf("%s's parallel query waits for its workers, and one of them waits for a lock %s holds", e.Waiter, e.Holder)
		return
	case w == nil:
		e.Why = fmt.Sprintf("%s waits for %s (the server names no lock)", e.Waiter, e.Holder)
		return
	}
	wi := x.want(w)
	wantedMode, wantedOK := wi.mode, wi.modeOK
	held := x.heldBy(e.Holder, w)
	var heldMode TableMode
	heldOK := false
	for i, h := range held {
		if m, ok := ParseTableMode(h.Mode); ok && wantedOK && TableConflicts(m, wantedMode) {
			heldMode, heldOK = m, true
			e.Held = &held[i]
			break
		}
	}
	if heldOK {
		e.Conflict = &Conflict{Held: int(heldMode), Wanted: int(wantedMode)}
		if w.Type != "relation" {
			e.Conflict.Type = w.Type
		}
	}
	switch w.Type {
	case "transactionid":
		x.explainRowWait(e, waiter)
		return
	case "virtualxid":
		// No conflict table decides this: a virtual transaction id's lock
		// is its owner's until the transaction ends.
		e.Conflict = nil
		e.Why = fmt.Sprintf("%s waits for %s's transaction to end, whatever it holds: %s waits for every transaction that "+
			"could still see the table as it was (a snapshot taken before it began), here %s's; it asks for ShareLock on "+
			"%s's virtual transaction %s, which only its end releases", e.Waiter, e.Holder, e.Waiter, e.Holder, e.Holder, w.VirtualXID)
		return
	case "tuple":
		if heldOK {
			e.Why = e.Waiter + " queues for " + strings.TrimSuffix(wi.target, " (row queue)") + ": " + e.Holder +
				" is ahead in that row's queue (it holds the tuple lock while it waits for the row's locker to end)"
			return
		}
	case "advisory":
		if heldOK {
			e.Why = fmt.Sprintf("%s wants the %s: %s holds it, and %s conflicts with %s", e.Waiter, wi.target, e.Holder,
				heldMode.String(), wantedMode.String())
			return
		}
	case "relation":
		if heldOK {
			e.Why = fmt.Sprintf("%s wants %s on %s: %s holds %s on it (%s), which conflicts with %s",
				e.Waiter, wantedMode, wi.target, e.Holder, heldMode, TakenByWords(heldMode, w.Relation, x.QueryOf(e.HolderPid)), wantedMode)
			return
		}
	}
	if !heldOK {
		// pg_blocking_pids also names backends ahead in the queue whose own
		// request conflicts, though they hold nothing yet.
		// A queue of n has n²/2 of these: no Sprintf.
		e.Queued = true
		// The release is in the words (withRelease leaves them be).
		e.Why = e.Waiter + " wants " + wi.words + " on " + wi.target + " and queues behind " + e.Holder +
			"'s conflicting request: released once that is granted and let go."
		return
	}
	e.Why = fmt.Sprintf("%s wants %s on %s: %s holds %s, which conflicts", e.Waiter, wi.words, wi.target, e.Holder, heldMode)
}

// wanted is what the explanations of a waiter's edges say of the lock it
// wants, worked out once for them all.
type wanted struct {
	mode          TableMode
	modeOK        bool
	target, words string
}

func (x *index) want(l *Lock) *wanted {
	if wi, ok := x.wants[l]; ok {
		return wi
	}
	wi := &wanted{target: l.Target(), words: l.ModeWords()}
	wi.mode, wi.modeOK = ParseTableMode(l.Mode)
	x.wants[l] = wi
	return wi
}

// explainRowWait explains a wait on another transaction's id: the waiter
// needs a row that transaction has locked, and waits for it to end.
func (x *index) explainRowWait(e *Edge, waiter *Backend) {
	// The holder's ExclusiveLock on its transaction id against the waiter's
	// ShareLock is no table-level conflict: the row lock behind it decides.
	e.Conflict = nil
	want, wantOK := wantedRowMode(waiter.Query)
	account := int64(0)
	row := "a row"
	tupleRel, tupleCtid := "", ""
	for _, l := range x.held[waiter.Session] {
		// The granted tuple lock (not an SIReadLock) marks the row it queues for.
		if l.Pid == waiter.Pid && l.Type == "tuple" && l.Mode != SIReadMode {
			tupleRel, tupleCtid = l.Relation, l.Ctid()
			if l.Account != 0 {
				account = l.Account
			} else if l.Relation != "" {
				row = fmt.Sprintf("the row at %s in %s", l.Ctid(), l.Relation)
			}
		}
	}
	if account == 0 && tupleRel == "" {
		// No tuple lock: a member of the row's multixact waits with none
		// (the server skips it, lest it deadlock with the other members).
		// The row is then the one its statement names ("… FROM accounts
		// WHERE id = 2 FOR UPDATE"), not the holder's first row lock — the
		// holder may lock several (a transfer's foreign-key checks lock
		// both its accounts).
		if id, ok := queriedAccount(waiter.Query); ok {
			account = id
		}
	}
	prefix := fmt.Sprintf("%s wants ShareLock on %s's transaction, i.e. waits for it to end", e.Waiter, e.Holder)
	if e.Lock != nil && x.isSubtransaction(e.HolderPid, e.Lock.TransactionID) {
		prefix = fmt.Sprintf("%s wants ShareLock on %s's subtransaction (the one its SAVEPOINT began), i.e. waits for that subtransaction to end, not the whole transaction", e.Waiter, e.Holder)
	}
	if wantOK {
		var cands []RowLock
		for _, r := range x.RowLocks {
			if r.Pid != e.HolderPid || !RowConflicts(r.Mode, want) {
				continue
			}
			if r.Relation != "" && tupleRel != "" && (r.Relation != tupleRel || r.Ctid != tupleCtid) {
				continue // another table's row, read for another waiter
			}
			if r.Relation == "" && account != 0 && r.Account != account {
				continue
			}
			if r.Relation != "" && tupleRel == "" && account != 0 {
				continue // the waiter queues on an account's row
			}
			if slices.ContainsFunc(cands, func(o RowLock) bool { return o.SameRow(r) }) {
				continue // one row, locked twice by the holder (its FOR NO KEY UPDATE, then its UPDATE)
			}
			cands = append(cands, r)
		}
		if tupleRel == "" && account == 0 {
			cands = x.rowsWithoutTupleLock(cands, waiter)
		}
		switch {
		case len(cands) == 1:
			r := cands[0]
			e.Why = fmt.Sprintf("%s: %s holds %s on %s (%s), which conflicts with %s",
				prefix, e.Holder, r.Mode, r.Target(), rowTakenBy(r), want)
			if r.Inferred {
				e.Why += fmt.Sprintf(" (by the statements lockstep sent %s)", e.Holder)
			}
			if words := multixactWaitWords(x.RowLocks, r, waiter, want, e.Holder); r.Multi && (words != "" || endedMember(x.RowLocks, r)) {
				e.Why += ". " + MultixactWords(x.RowLocks, r.Relation, r.Ctid)
				if words != "" {
					e.Why += " " + words
				}
			}
			e.Conflict = &Conflict{Row: true, Held: int(r.Mode), Wanted: int(want)}
			e.HeldRow = &r
			return
		case len(cands) > 1:
			// Which of these rows the waiter needs, pg_locks does not say:
			// a session that already shares a row's lock (a member of its
			// multixact) waits without taking the row's tuple lock. Each
			// is named, none singled out.
			var held, ctids []string
			same := true
			for _, r := range cands {
				held = append(held, fmt.Sprintf("%s on %s", r.Mode, r.Target()))
				ctids = append(ctids, r.Ctid)
				same = same && r.Mode == cands[0].Mode && r.Relation == cands[0].Relation && r.Relation != ""
			}
			what := strings.Join(held, ", ")
			if same {
				// "FOR KEY SHARE on ls_accounts rows (0,1) and (0,2)"
				what = fmt.Sprintf("%s on %s rows %s and %s", cands[0].Mode, cands[0].Relation,
					strings.Join(ctids[:len(ctids)-1], ", "), ctids[len(ctids)-1])
			}
			e.Why = fmt.Sprintf("%s: %s holds %s (%s), which conflicts with %s; %s needs one of these rows "+
				"(pg_locks does not say which: a session that already shares a row's lock waits for it without taking the row's tuple lock)",
				prefix, e.Holder, what, rowTakenBy(cands[0]), want, e.Waiter)
			same = same || !slices.ContainsFunc(cands, func(r RowLock) bool { return r.Mode != cands[0].Mode })
			if same {
				e.Conflict = &Conflict{Row: true, Held: int(cands[0].Mode), Wanted: int(want)}
			}
			return
		}
	}
	if account != 0 {
		row = fmt.Sprintf("accounts id=%d", account)
	}
	if wantOK {
		e.Why = fmt.Sprintf("%s: %s holds a lock on %s that conflicts with %s (row locks live in the row header, not in pg_locks)",
			prefix, e.Holder, row, want)
		return
	}
	e.Why = fmt.Sprintf("%s: %s has locked or changed %s that %s's statement needs", prefix, e.Holder, row, e.Waiter)
}

// accountRow matches a statement on one row of the ledger's accounts: "…
// FROM accounts WHERE id = 2 …", "UPDATE accounts SET … WHERE id = 1 …".
var accountRow = lazyre.New(`(?is)^\s*(?:select\b.*\bfrom|update)\s+(?:\w+\.)?accounts\b[^;]*?\bwhere\s+id\s*=\s*(\d+)\b`)

// queriedAccount is the one account a statement reads or changes by id, if
// it is one of those (not "id IN (1, 2)", not a join).
func queriedAccount(query string) (int64, bool) {
	m := accountRow.FindStringSubmatch(query)
	if m == nil || strings.Contains(strings.ToUpper(query), " JOIN ") {
		return 0, false
	}
	id, err := strconv.ParseInt(m[1], 10, 64)
	return id, err == nil
}

// predictBreak works out when the server's deadlock check will find the
// cycle. Each waiter runs the check once, deadlock_timeout after its own wait
// began; a check that runs before the cycle closes finds nothing. So the
// cycle breaks at the earliest such moment after the last member began
// waiting, and that member's session is the likely victim.
func (s *Snapshot) predictBreak(c *Cycle) {
	var starts []time.Time
	for _, e := range c.Edges {
		if e.Lock == nil || e.Lock.WaitStart == nil {
			return
		}
		starts = append(starts, *e.Lock.WaitStart)
	}
	closed := starts[0]
	for _, t := range starts {
		if t.After(closed) {
			closed = t
		}
	}
	var best time.Time
	for i, t := range starts {
		at := t.Add(s.DeadlockTimeout)
		if at.Before(closed) {
			continue
		}
		if best.IsZero() || at.Before(best) {
			best, c.LikelyVictim = at, c.Sessions[i]
		}
	}
	c.BreakAt = &best
}

// endedMember says whether the multixact locking r's row names a member
// whose transaction has ended: the header still names it, its lock no
// longer blocks.
func endedMember(rows []RowLock, r RowLock) bool {
	for _, m := range rows {
		if m.Multi && m.Relation == r.Relation && m.Ctid == r.Ctid && m.Ended {
			return true
		}
	}
	return false
}

// multixactWaitWords says whom a waiter on a multixact waits for when it is
// more than the holder: each other member whose lock conflicts with the
// mode it wants, one after the other, as the server does (its own lock, a
// member's that does not conflict, and an ended member's it does not wait
// for). With one such member it is "" — the wait on the holder is all.
func multixactWaitWords(rows []RowLock, r RowLock, waiter *Backend, want RowMode, holder string) string {
	if !r.Multi {
		return ""
	}
	var whom []string
	seen := map[string]bool{}
	for _, m := range rows {
		if !m.Multi || m.Relation != r.Relation || m.Ctid != r.Ctid || m.Pid == waiter.Pid || !RowConflicts(m.Mode, want) || m.Ended {
			// An ended member's lock no longer blocks: the waiter will not
			// wait for it (multixact: T2 rolled back while T3 waited for
			// T1 was still named "T1, then T2").
			continue
		}
		who := m.Session
		if who == "" {
			if m.Pid == 0 {
				continue // no backend: the member's transaction has ended
			}
			who = fmt.Sprintf("pid %d", m.Pid)
		}
		if !seen[who] {
			seen[who] = true
			whom = append(whom, who)
		}
	}
	if len(whom) < 2 {
		return ""
	}
	return fmt.Sprintf("%s waits for each member whose lock conflicts with %s, one after the other (%s); now for %s",
		waiter.Session, want, strings.Join(whom, ", then "), holder)
}

// rowTakenBy says which statement took a row lock when it is known (the
// statements lockstep sent), else the statements that take its mode, as
// examples.
func rowTakenBy(r RowLock) string {
	switch {
	case r.Mode == ForKeyShare && r.Inferred:
		return "a foreign-key check"
	case r.Mode == ForKeyShare:
		return "a mode taken by e.g. a foreign-key check or SELECT … FOR KEY SHARE"
	}
	return "a mode taken by e.g. " + r.Mode.TakenBy()
}

// rowsWithoutTupleLock narrows the holder's conflicting row locks, when
// the waiter holds no tuple lock to say which row it waits for. PostgreSQL
// skips the tuple lock only when the waiter already holds a lock on the
// row itself (it shares the row's multixact): the rows it holds a lock on
// too are the candidates (or those known only from the statements sent,
// where pgrowlocks cannot be read). (On accounts the waiter's statement
// names the row: queriedAccount.)
func (x *index) rowsWithoutTupleLock(cands []RowLock, waiter *Backend) []RowLock {
	shares := func(r RowLock) bool {
		for _, o := range x.RowLocks {
			if o.Pid == waiter.Pid && o.SameRow(r) {
				return true
			}
		}
		return false
	}
	var out []RowLock
	for _, r := range cands {
		if r.Inferred || shares(r) {
			out = append(out, r)
		}
	}
	return out
}
