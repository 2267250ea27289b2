package locks

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Queue is one lockable object with waiters: who holds it, and who waits
// for it, in the order the server queued them. It is what lock monitors
// show as a flat list and users ask for as a tree.
type Queue struct {
	Target  string // "ls_orders", "T1's transaction", "accounts id=1 (row queue)"
	Holders []QueueEntry
	Waiters []QueueEntry // by wait start, earliest first
}

// QueueEntry is one session's lock on a queue's object.
type QueueEntry struct {
	Session string
	Mode    string // in the documentation's words: "ACCESS SHARE"
	// WaitsFor names, for a waiter, the holders it conflicts with (a hard
	// block); Behind, those ahead in the queue whose requests it conflicts
	// with though they hold nothing yet (a soft block). Soft marks a
	// waiter blocked only so.
	WaitsFor []string
	Behind   []string
	Soft     bool
}

// Queues lists the snapshot's objects with waiters, each with its holders
// and its queue in order, hard and soft blocks told apart.
func (s *Snapshot) Queues() []Queue {
	byTarget := map[string]*Queue{}
	var order []string
	for _, l := range s.Locks {
		if l.Granted {
			continue
		}
		t := l.Target()
		if _, ok := byTarget[t]; !ok {
			byTarget[t] = &Queue{Target: t}
			order = append(order, t)
		}
	}
	waitStart := map[string]int64{}
	for _, l := range s.Locks {
		q, ok := byTarget[l.Target()]
		if !ok {
			continue
		}
		e := QueueEntry{Session: l.Session, Mode: l.ModeWords()}
		if l.Granted {
			q.Holders = append(q.Holders, e)
			continue
		}
		for _, edge := range s.Graph.Edges {
			switch {
			case edge.WaiterPid != l.Pid:
			case edge.Queued:
				e.Behind = append(e.Behind, edge.Holder)
			default:
				e.WaitsFor = append(e.WaitsFor, edge.Holder)
			}
		}
		e.Soft = len(e.WaitsFor) == 0 && len(e.Behind) > 0
		if l.WaitStart != nil {
			waitStart[l.Session] = l.WaitStart.UnixNano()
		}
		q.Waiters = append(q.Waiters, e)
	}
	out := make([]Queue, 0, len(order))
	for _, t := range order {
		q := byTarget[t]
		sort.SliceStable(q.Waiters, func(i, j int) bool {
			return waitStart[q.Waiters[i].Session] < waitStart[q.Waiters[j].Session]
		})
		out = append(out, *q)
	}
	return out
}

// InOrder says whether the waiters stand in line: one is behind another's
// queued request, or waits for another waiter. Otherwise they are in no
// order — each waits for the holders alone, whose end grants them all (two
// ShareLocks on one transaction) — and a numbered queue would say what is
// not so.
func (q Queue) InOrder() bool {
	for _, w := range q.Waiters {
		if len(w.Behind) > 0 {
			return true
		}
		for _, h := range w.WaitsFor {
			if slices.ContainsFunc(q.Waiters, func(o QueueEntry) bool { return o.Session == h }) {
				return true
			}
		}
	}
	return false
}

// String is the queue in one line: "ls_orders: held by T1 (ACCESS SHARE);
// queue: 1. T2 ACCESS EXCLUSIVE, waits for T1 · 2. T3 ACCESS SHARE, behind
// T2's queued request"; waiters in no order (InOrder) are not numbered:
// "…; waiting, none behind another: T2 ShareLock, waits for T1 · T3 …".
func (q Queue) String() string {
	var held []string
	for _, h := range q.Holders {
		held = append(held, fmt.Sprintf("%s (%s)", h.Session, h.Mode))
	}
	if len(held) == 0 {
		held = []string{"nobody (the queue's head is next)"}
	}
	var waits []string
	for i, w := range q.Waiters {
		var how []string
		if len(w.WaitsFor) > 0 {
			how = append(how, "waits for "+strings.Join(w.WaitsFor, ", "))
		}
		if len(w.Behind) > 0 {
			how = append(how, "behind "+strings.Join(w.Behind, ", ")+"'s queued request")
		}
		if !q.InOrder() {
			waits = append(waits, fmt.Sprintf("%s %s, %s", w.Session, w.Mode, strings.Join(how, " and ")))
			continue
		}
		waits = append(waits, fmt.Sprintf("%d. %s %s, %s", i+1, w.Session, w.Mode, strings.Join(how, " and ")))
	}
	if !q.InOrder() {
		return fmt.Sprintf("%s: held by %s; waiting, none behind another: %s", q.Target, strings.Join(held, ", "), strings.Join(waits, " · "))
	}
	return fmt.Sprintf("%s: held by %s; queue: %s", q.Target, strings.Join(held, ", "), strings.Join(waits, " · "))
}
