package locks

import (
	"time"
)

// LookDocument is a look as `lockstep watch --json` prints it: each
// session and each edge once, the tree by reference to them (README,
// "The JSON"). A queue of n sessions is n sessions, its edges, and a tree
// of n small nodes, however many requests each waits behind.
type LookDocument struct {
	Time              time.Time `json:"time"`
	TookMS            float64   `json:"took_ms"`
	Watched           int       `json:"watched"`
	InTransaction     int       `json:"in_transaction"`
	IdleInTransaction int       `json:"idle_in_transaction"`
	// Hidden counts the watched sessions whose state the role may not see;
	// Partial is true when there are any: the counts above leave them out.
	Hidden      int           `json:"hidden"`
	Partial     bool          `json:"partial"`
	ReadLocks   bool          `json:"read_pg_locks"`
	LockRowsCut bool          `json:"lock_rows_cut,omitempty"`
	Sessions    []SessionDoc  `json:"sessions"`
	Edges       []EdgeDoc     `json:"edges"`
	Tree        []TreeNodeDoc `json:"tree"`
	TreeOmitted int           `json:"tree_omitted,omitempty"`
	Deadlocks   []CycleDoc    `json:"deadlocks"`
	QueueCycles []CycleDoc    `json:"queue_cycles,omitempty"`
	NewHistory  []WatchEvent  `json:"new_history"`
	Notes       []string      `json:"notes,omitempty"`
}

// SessionDoc is a session of a look: one the filter chose, or one that
// blocks one (Watched false), or a prepared transaction (pid 0).
type SessionDoc struct {
	Name      string     `json:"name"`
	Pid       int32      `json:"pid"`
	User      string     `json:"user,omitempty"`
	Database  string     `json:"database,omitempty"`
	State     string     `json:"state,omitempty"`
	XactStart *time.Time `json:"xact_start,omitempty"`
	Query     string     `json:"query,omitempty"`
	Prepared  string     `json:"prepared,omitempty"`
	Waiting   bool       `json:"waiting,omitempty"`
}

// EdgeDoc is "Waiter waits for Holder", by session name.
type EdgeDoc struct {
	Waiter string `json:"waiter"`
	Holder string `json:"holder"`
	// Lock is the lock the waiter wants, in words; Held what the holder
	// holds of it, when it holds something (a hard edge).
	Lock      string     `json:"lock,omitempty"`
	Held      string     `json:"held,omitempty"`
	WaitStart *time.Time `json:"wait_start,omitempty"`
	// Soft: the holder holds nothing that conflicts; it is ahead in the
	// lock's queue with a conflicting request.
	Soft bool   `json:"soft,omitempty"`
	Why  string `json:"why"`
}

// TreeNodeDoc is a node of the tree: a root names its session; a waiter
// names the edge that puts it under its parent (the edge's waiter is the
// node's session). Again: drawn before, its own waiters are there.
type TreeNodeDoc struct {
	Session    string        `json:"session,omitempty"`
	Edge       *int          `json:"edge,omitempty"`
	Again      bool          `json:"again,omitempty"`
	AlsoBehind int           `json:"also_behind,omitempty"`
	Waiters    []TreeNodeDoc `json:"waiters,omitempty"`
}

// CycleDoc is a deadlock (or a cycle through a queue): its cycle, the
// edges that make it, and the rest of its component.
type CycleDoc struct {
	Cycle        []string   `json:"cycle"`
	Edges        []int      `json:"edges"`
	Members      []string   `json:"members,omitempty"`
	BreakAt      *time.Time `json:"break_at,omitempty"`
	LikelyVictim string     `json:"likely_victim,omitempty"`
}

// Document is the look as LookDocument, with the notes to say.
func (l *Look) Document(notes []string) LookDocument {
	d := LookDocument{Time: l.Taken, TookMS: float64(l.Took.Microseconds()) / 1000, Watched: l.Watched,
		InTransaction: l.InTransaction, IdleInTransaction: l.IdleInTransaction, Hidden: l.Hidden, Partial: l.Partial(),
		ReadLocks: l.ReadLocks, LockRowsCut: l.LockRowsCut, TreeOmitted: l.Tree.Omitted, Notes: notes,
		Sessions: []SessionDoc{}, Edges: []EdgeDoc{}, Tree: []TreeNodeDoc{}, Deadlocks: []CycleDoc{}, NewHistory: []WatchEvent{}}
	s := l.Snapshot
	if s == nil {
		s = &Snapshot{}
	}
	for _, b := range s.Backends {
		d.Sessions = append(d.Sessions, SessionDoc{Name: b.Session, Pid: b.Pid, User: b.User, Database: b.Database, State: b.State,
			XactStart: b.XactStart, Query: b.Query, Prepared: b.Prepared, Waiting: b.Waiting()})
	}
	index := map[[2]string]int{}
	for i, e := range s.Graph.Edges {
		k := [2]string{e.Waiter, e.Holder}
		if _, ok := index[k]; !ok {
			index[k] = i
		}
		ed := EdgeDoc{Waiter: e.Waiter, Holder: e.Holder, Soft: e.Queued, Why: e.Why}
		if e.Lock != nil {
			ed.Lock, ed.WaitStart = e.Label(), e.Lock.WaitStart
		}
		if e.Held != nil {
			ed.Held = e.Held.ModeWords() + " on " + e.Held.Target()
		}
		d.Edges = append(d.Edges, ed)
	}
	var node func(n TreeNode, root bool) TreeNodeDoc
	node = func(n TreeNode, root bool) TreeNodeDoc {
		nd := TreeNodeDoc{Again: n.Again, AlsoBehind: n.AlsoBehind}
		if i, ok := index[[2]string{n.Session, edgeHolder(n)}]; ok && !root {
			nd.Edge = &i
		} else {
			nd.Session = n.Session
		}
		for _, w := range n.Waiters {
			nd.Waiters = append(nd.Waiters, node(w, false))
		}
		return nd
	}
	for _, r := range l.Tree.Roots {
		d.Tree = append(d.Tree, node(r, true))
	}
	cycle := func(c Cycle) CycleDoc {
		cd := CycleDoc{Cycle: c.Sessions, Members: c.Members, BreakAt: c.BreakAt, LikelyVictim: c.LikelyVictim, Edges: []int{}}
		for _, e := range c.Edges {
			if i, ok := index[[2]string{e.Waiter, e.Holder}]; ok {
				cd.Edges = append(cd.Edges, i)
			}
		}
		return cd
	}
	for _, c := range s.Graph.Cycles {
		d.Deadlocks = append(d.Deadlocks, cycle(c))
	}
	for _, c := range s.Graph.SoftCycles {
		d.QueueCycles = append(d.QueueCycles, cycle(c))
	}
	for _, ev := range l.New {
		ev.Tree, ev.TreeAt = Tree{}, time.Time{} // the look's tree is the document's
		d.NewHistory = append(d.NewHistory, ev)
	}
	return d
}

func edgeHolder(n TreeNode) string {
	if n.Edge == nil {
		return ""
	}
	return n.Edge.Holder
}
