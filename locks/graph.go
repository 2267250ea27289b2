package locks

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Conflict points at the cell of a documented conflict table that decides an
// edge: the mode held (row) against the mode wanted (column).
type Conflict struct {
	Row    bool `json:",omitempty"` // the row-level table (Table 13.3) rather than the table-level one (13.2)
	Held   int  `json:",omitempty"`
	Wanted int  `json:",omitempty"`
}

// Table is the conflict table the cell belongs to.
func (c Conflict) Table() ConflictTable {
	if c.Row {
		return RowLevelConflicts()
	}
	return TableLevelConflicts()
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
	// Why is one line explaining the conflict.
	Why string `json:",omitempty"`
	// Conflict is the deciding cell, when a conflict table decides the edge.
	Conflict *Conflict `json:",omitempty"`
	// Queued marks a soft block: the holder holds nothing that conflicts,
	// it is ahead in the lock's queue with a conflicting request.
	Queued bool `json:",omitempty"`
	// Remote marks an application edge from a statement to its own remote
	// part (postgres_fdw), rather than a transaction the application holds
	// open.
	Remote bool `json:",omitempty"`
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
	case e.Application:
		return "the application, on its other connection"
	}
	if e.Lock == nil {
		return "a safe snapshot"
	}
	return e.Lock.ModeWords() + " on " + e.Lock.Target()
}

// Cycle is a closed chain of waits: a deadlock.
type Cycle struct {
	Sessions []string `json:",omitempty"` // in wait order: Sessions[0] waits for Sessions[1] … waits for Sessions[0]
	Edges    []Edge   `json:",omitempty"`
	// BreakAt is when the server's deadlock check will first find the cycle:
	// each waiter checks once, deadlock_timeout after its wait began. Nil when
	// the server does not report wait start times (before PostgreSQL 14).
	BreakAt *time.Time `json:",omitempty"`
	// LikelyVictim is the waiter whose check fires first after the cycle closed.
	LikelyVictim string `json:",omitempty"`
	// Distributed is true when the cycle closes through the application
	// (an Application edge): each server sees only a wait behind a session
	// idle in transaction, so no server will ever break it. Only a
	// lock_timeout can: then LockTimeout is the victim's, and BreakAt when
	// it fires.
	Distributed bool          `json:",omitempty"`
	LockTimeout time.Duration `json:",omitempty"`
}

// String is "T1 → T2 → T1".
func (c Cycle) String() string { return strings.Join(append(c.Sessions, c.Sessions[0]), " → ") }

// Graph is the wait-for graph of one snapshot.
type Graph struct {
	Edges  []Edge  `json:",omitempty"`
	Cycles []Cycle `json:",omitempty"`
}

// maxCycles bounds the enumeration; real runs have a handful.
const maxCycles = 64

// BuildGraph draws an edge waiter → holder for every pid that
// pg_blocking_pids (or pg_safe_snapshot_blocking_pids) names, explains each,
// and finds every cycle.
func BuildGraph(s *Snapshot) Graph {
	var g Graph
	for bi := range s.Backends {
		b := &s.Backends[bi]
		if !b.Waiting() {
			continue
		}
		wanted := s.wantedLock(b.Pid)
		for _, pid := range b.BlockedBy {
			for _, holder := range s.holders(pid, wanted) {
				e := Edge{Waiter: b.Session, WaiterPid: b.Pid, Holder: holder, HolderPid: pid, Lock: wanted}
				s.explain(&e, b)
				g.Edges = append(g.Edges, e)
			}
		}
		for _, pid := range b.SafeSnapshotBlockedBy {
			holder := s.nameOf(pid)
			g.Edges = append(g.Edges, Edge{
				Waiter: b.Session, WaiterPid: b.Pid, Holder: holder, HolderPid: pid,
				Why: fmt.Sprintf("%s (SERIALIZABLE READ ONLY DEFERRABLE) waits for a safe snapshot: %s's read-write serializable transaction could still make its reads unsafe", b.Session, holder),
			})
		}
	}
	g.findCycles(s)
	return g
}

// findCycles fills in the cycles of the graph's edges and says how each will end.
func (g *Graph) findCycles(s *Snapshot) {
	g.Cycles = findCycles(g.Edges)
	for i := range g.Cycles {
		c := &g.Cycles[i]
		for _, e := range c.Edges {
			c.Distributed = c.Distributed || e.Application
		}
		if !c.Distributed {
			s.predictBreak(c)
		}
	}
}

// holders names what pid stands for in pg_blocking_pids: a session, or — for
// pid 0 — the prepared transactions that hold the wanted lock's object.
func (s *Snapshot) holders(pid int32, wanted *Lock) []string {
	if pid != 0 || wanted == nil {
		return []string{s.nameOf(pid)}
	}
	var out []string
	for _, b := range s.Backends {
		if b.Prepared != "" && len(s.heldBy(b.Session, wanted)) > 0 {
			out = append(out, b.Session)
		}
	}
	if len(out) == 0 {
		return []string{s.nameOf(pid)}
	}
	return out
}

func (s *Snapshot) wantedLock(pid int32) *Lock {
	for i := range s.Locks {
		if l := &s.Locks[i]; l.Pid == pid && !l.Granted {
			return l
		}
	}
	return nil
}

func (s *Snapshot) heldBy(session string, like *Lock) []Lock {
	var out []Lock
	for _, l := range s.Locks {
		if l.Session == session && l.Granted && l.Type == like.Type && l.Relation == like.Relation &&
			l.TransactionID == like.TransactionID && l.ClassID == like.ClassID && l.ObjID == like.ObjID &&
			l.ObjSubID == like.ObjSubID && l.Ctid() == like.Ctid() {
			out = append(out, l)
		}
	}
	return out
}

// explain fills in the edge's one-line reason and deciding table cell.
func (s *Snapshot) explain(e *Edge, waiter *Backend) {
	w := e.Lock
	switch {
	case w == nil && waiter.WaitsThroughWorker():
		e.Why = fmt.Sprintf("%s's parallel query waits for its workers, and one of them waits for a lock %s holds", e.Waiter, e.Holder)
		return
	case w == nil:
		e.Why = fmt.Sprintf("%s waits for %s (the server names no lock)", e.Waiter, e.Holder)
		return
	}
	wantedMode, wantedOK := ParseTableMode(w.Mode)
	held := s.heldBy(e.Holder, w)
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
	}
	switch w.Type {
	case "transactionid":
		s.explainRowWait(e, waiter)
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
			e.Why = fmt.Sprintf("%s queues for %s: %s is ahead in that row's queue (it holds the tuple lock while it waits for the row's locker to end)",
				e.Waiter, strings.TrimSuffix(w.Target(), " (row queue)"), e.Holder)
			return
		}
	case "advisory":
		if heldOK {
			e.Why = fmt.Sprintf("%s wants the %s: %s holds it, and %s conflicts with %s", e.Waiter, w.Target(), e.Holder,
				heldMode.String(), wantedMode.String())
			return
		}
	case "relation":
		if heldOK {
			e.Why = fmt.Sprintf("%s wants %s on %s: %s holds %s on it (taken by %s), which conflicts with %s",
				e.Waiter, wantedMode, w.Target(), e.Holder, heldMode, heldMode.TakenBy(), wantedMode)
			return
		}
	}
	if !heldOK {
		// pg_blocking_pids also names backends ahead in the queue whose own
		// request conflicts, though they hold nothing yet.
		e.Queued = true
		e.Why = fmt.Sprintf("%s wants %s on %s and queues behind %s, which is ahead of it waiting for a conflicting lock",
			e.Waiter, w.ModeWords(), w.Target(), e.Holder)
		return
	}
	e.Why = fmt.Sprintf("%s wants %s on %s: %s holds %s, which conflicts", e.Waiter, w.ModeWords(), w.Target(), e.Holder, heldMode)
}

// explainRowWait explains a wait on another transaction's id: the waiter
// needs a row that transaction has locked, and waits for it to end.
func (s *Snapshot) explainRowWait(e *Edge, waiter *Backend) {
	// The holder's ExclusiveLock on its transaction id against the waiter's
	// ShareLock is no table-level conflict: the row lock behind it decides.
	e.Conflict = nil
	want, wantOK := wantedRowMode(waiter.Query)
	account := int64(0)
	row := "a row"
	for _, l := range s.Locks {
		// The granted tuple lock (not an SIReadLock) marks the row it queues for.
		if l.Pid == waiter.Pid && l.Type == "tuple" && l.Granted && l.Mode != "SIReadLock" {
			if l.Account != 0 {
				account = l.Account
			} else if l.Relation != "" {
				row = fmt.Sprintf("the row at %s in %s", l.Ctid(), l.Relation)
			}
		}
	}
	prefix := fmt.Sprintf("%s wants ShareLock on %s's transaction, i.e. waits for it to end", e.Waiter, e.Holder)
	if wantOK {
		for _, r := range s.RowLocks {
			if r.Pid != e.HolderPid || (account != 0 && r.Account != account) || !RowConflicts(r.Mode, want) {
				continue
			}
			by := r.Mode.TakenBy()
			if r.Mode == ForKeyShare {
				by = "a foreign-key check"
			}
			e.Why = fmt.Sprintf("%s: %s holds %s on accounts id=%d (%s), which conflicts with %s",
				prefix, e.Holder, r.Mode, r.Account, by, want)
			if r.Inferred {
				e.Why += fmt.Sprintf(" (by the statements lockstep sent %s)", e.Holder)
			}
			e.Conflict = &Conflict{Row: true, Held: int(r.Mode), Wanted: int(want)}
			e.HeldRow = &r
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

// findCycles lists every elementary cycle once, each starting at its
// smallest node, up to maxCycles.
func findCycles(edges []Edge) []Cycle {
	adj := map[string][]Edge{}
	var nodes []string
	for _, e := range edges {
		if _, ok := adj[e.Waiter]; !ok {
			nodes = append(nodes, e.Waiter)
		}
		adj[e.Waiter] = append(adj[e.Waiter], e)
	}
	sort.Strings(nodes)
	var cycles []Cycle
	for _, start := range nodes {
		var path []Edge
		onPath := map[string]bool{start: true}
		var walk func(n string)
		walk = func(n string) {
			for _, e := range adj[n] {
				if len(cycles) >= maxCycles {
					return
				}
				switch {
				case e.Holder == start:
					c := Cycle{}
					for _, pe := range append(path, e) {
						c.Sessions = append(c.Sessions, pe.Waiter)
						c.Edges = append(c.Edges, pe)
					}
					cycles = append(cycles, c)
				case e.Holder > start && !onPath[e.Holder]:
					onPath[e.Holder] = true
					path = append(path, e)
					walk(e.Holder)
					path = path[:len(path)-1]
					onPath[e.Holder] = false
				}
			}
		}
		walk(start)
	}
	return cycles
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
