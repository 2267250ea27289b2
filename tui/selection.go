package tui

import (
	"sort"

	"lockstep/locks"
)

// item is a selectable line: a wait edge (in the graph pane) or a lock or
// row lock (in the locks pane).
type item struct {
	edge *locks.Edge
	lock *locks.Lock
	row  *locks.RowLock
}

func (a item) same(b item) bool {
	switch {
	case a.edge != nil && b.edge != nil:
		return a.edge.Waiter == b.edge.Waiter && a.edge.Holder == b.edge.Holder
	case a.lock != nil && b.lock != nil:
		return a.lock.Session == b.lock.Session && a.lock.Target() == b.lock.Target() && a.lock.Mode == b.lock.Mode
	case a.row != nil && b.row != nil:
		return a.row.Session == b.row.Session && a.row.Mode == b.row.Mode && a.row.SameRow(*b.row)
	}
	return false
}

// selection is what ↑/↓ move through, across the graph and the locks
// panes: the wait edges first, then each session's locks, most telling
// first. The explain pane explains the selected item.
type selection struct {
	items []item
	cur   int // -1 for none
}

func newSelection() selection { return selection{cur: -1} }

// Selected is the selected item, if any.
func (s *selection) Selected() (item, bool) {
	if s.cur < 0 || s.cur >= len(s.items) {
		return item{}, false
	}
	return s.items[s.cur], true
}

// Move moves the cursor d items along, wrapping around.
func (s *selection) Move(d int) {
	if len(s.items) == 0 {
		s.cur = -1
		return
	}
	s.cur += d
	if s.cur < 0 {
		s.cur = len(s.items) - 1
	}
	if s.cur >= len(s.items) {
		s.cur = 0
	}
}

// Clear selects nothing.
func (s *selection) Clear() { s.cur = -1 }

// Rebuild takes a new snapshot's edges and locks — the locks behind the
// waits first, newest wait first (each waiter's request, then the holder's
// conflicting lock), then each session's others in the order names gives (a
// prepared transaction's after them) — and keeps the cursor on the same
// thing if it is still there.
func (s *selection) Rebuild(snap *locks.Snapshot, names []string, waitOrder []string) {
	prev, had := s.Selected()
	s.items = s.items[:0]
	edges := append([]*locks.Edge(nil), pointers(snap.Graph.Edges)...)
	rank := map[string]int{}
	for i, n := range waitOrder {
		rank[n] = i
	}
	sort.SliceStable(edges, func(i, j int) bool { return rank[edges[i].Waiter] < rank[edges[j].Waiter] })
	for _, e := range edges {
		s.items = append(s.items, item{edge: e})
	}
	// Every transaction holds its own virtual transaction id: listed only
	// when a session waits on one (CREATE INDEX CONCURRENTLY), the wait and
	// the lock it waits for.
	waitedVXID := map[string]bool{}
	for _, l := range snap.Locks {
		if l.Type == "virtualxid" && !l.Granted {
			waitedVXID[l.VirtualXID] = true
		}
	}
	var ls []*locks.Lock
	for i := range snap.Locks {
		if l := &snap.Locks[i]; l.Type != "virtualxid" || waitedVXID[l.VirtualXID] {
			ls = append(ls, l)
		}
	}
	sort.SliceStable(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if a.Session != b.Session {
			return a.Session < b.Session
		}
		return lockRank(a) < lockRank(b)
	})
	// A multixact member whose transaction has ended holds nothing: it is
	// named in the explanation of the wait, not listed as a lock.
	var rows []*locks.RowLock
	for i := range snap.RowLocks {
		if !snap.RowLocks[i].Ended {
			rows = append(rows, &snap.RowLocks[i])
		}
	}
	ls, rows = s.addBlocking(edges, ls, rows)
	for _, b := range snap.Backends {
		if b.Prepared != "" {
			// A prepared transaction holds locks with no session: list them too.
			names = append(names, b.Session)
		}
	}
	for _, name := range names {
		s.addSession(name, ls, rows)
	}
	s.cur = -1
	if had {
		for i, it := range s.items {
			if it.same(prev) {
				s.cur = i
				break
			}
		}
	}
}

func pointers[T any](xs []T) []*T {
	out := make([]*T, len(xs))
	for i := range xs {
		out[i] = &xs[i]
	}
	return out
}

// addBlocking lists, for each wait, the lock the waiter asks for and the
// holder's lock that conflicts with it, and returns the locks left.
func (s *selection) addBlocking(edges []*locks.Edge, ls []*locks.Lock, rows []*locks.RowLock) ([]*locks.Lock, []*locks.RowLock) {
	takeLock := func(match func(*locks.Lock) bool) {
		for i, l := range ls {
			if match(l) {
				s.items = append(s.items, item{lock: l})
				ls = append(ls[:i:i], ls[i+1:]...)
				return
			}
		}
	}
	for _, e := range edges {
		if e.Lock != nil {
			takeLock(func(l *locks.Lock) bool { return l.Pid == e.WaiterPid && !l.Granted })
		}
		switch {
		case e.HeldRow != nil:
			for i, r := range rows {
				if r.Session == e.HeldRow.Session && r.Mode == e.HeldRow.Mode && r.SameRow(*e.HeldRow) {
					s.items = append(s.items, item{row: r})
					rows = append(rows[:i:i], rows[i+1:]...)
					break
				}
			}
		case e.Held != nil:
			h := e.Held
			takeLock(func(l *locks.Lock) bool {
				return l.Session == h.Session && l.Granted && l.Mode == h.Mode && l.Target() == h.Target()
			})
		}
	}
	return ls, rows
}

// addSession lists a session's locks, its row locks after its table locks:
// what it waits for, tables, rows, then transactions, keys, indexes.
func (s *selection) addSession(name string, ls []*locks.Lock, rows []*locks.RowLock) {
	rowsDone := false
	addRows := func() {
		for _, r := range rows {
			if r.Session == name {
				s.items = append(s.items, item{row: r})
			}
		}
		rowsDone = true
	}
	for _, l := range ls {
		if l.Session != name {
			continue
		}
		if !rowsDone && lockRank(l) > 1 {
			addRows()
		}
		s.items = append(s.items, item{lock: l})
	}
	if !rowsDone {
		addRows()
	}
}

// lockRank orders a session's locks: what it waits for, tables, rows,
// transactions, advisory keys, then indexes and sequences.
func lockRank(l *locks.Lock) int {
	switch {
	case !l.Granted:
		return 0
	case l.Type == "relation" && l.RelKind == "r":
		return 1
	case l.Type == "tuple":
		return 2
	case l.Type == "transactionid":
		return 3
	case l.Type == "advisory":
		return 4
	case l.Type == "relation":
		return 6
	}
	return 5
}
