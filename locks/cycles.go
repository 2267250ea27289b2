package locks

import (
	"slices"
	"strings"

	"gonum.org/v1/gonum/graph/simple"
	"gonum.org/v1/gonum/graph/topo"
)

// A wait-for graph's cycles are found through its strongly connected
// components (Tarjan's algorithm, gonum's), in time linear in its edges:
// enumerating every cycle grows exponentially with a queue's depth (a
// 24-deep queue took seconds). Each component yields one report, with one
// representative cycle: the shortest through its first session by name.
//
// Only hard edges — a holder holding a conflicting lock — make a deadlock.
// A soft edge (Edge.Queued: a request queued ahead, holding nothing that
// conflicts) can close a cycle too, but that cycle is the server's to
// rearrange: its deadlock check moves the queued request ahead and grants
// it, and counts no deadlock. Such cycles are reported apart, as Soft.

// hard says whether an edge can close a deadlock the server breaks.
func hard(e Edge) bool { return !e.Queued && !e.Application }

// closes says whether an edge can close a deadlock at all: a hard one, or
// one only the application sees (a distributed deadlock).
func closes(e Edge) bool { return !e.Queued }

// serverVisible is every edge a server draws, hard or soft.
func serverVisible(e Edge) bool { return !e.Application }

// waitGraph is the edges keep accepts, by waiter, each waiter's edges in
// the order of their holders' names (so that a search is deterministic).
type waitGraph struct {
	out map[string][]Edge
}

func newWaitGraph(edges []Edge, keep func(Edge) bool) waitGraph {
	g := waitGraph{out: map[string][]Edge{}}
	for _, e := range edges {
		if keep(e) && e.Waiter != e.Holder {
			g.out[e.Waiter] = append(g.out[e.Waiter], e)
		}
	}
	for _, es := range g.out {
		slices.SortStableFunc(es, func(a, b Edge) int { return strings.Compare(a.Holder, b.Holder) })
	}
	return g
}

// components are the graph's strongly connected components of two sessions
// or more, each sorted by name, the components in order of their first.
func (g waitGraph) components() [][]string {
	ids := map[string]int64{}
	var names []string
	id := func(n string) int64 {
		if i, ok := ids[n]; ok {
			return i
		}
		ids[n] = int64(len(names))
		names = append(names, n)
		return ids[n]
	}
	dg := simple.NewDirectedGraph()
	// Nodes and edges in a fixed order: the components do not depend on it,
	// but the work done should not vary from one look to the next.
	waiters := make([]string, 0, len(g.out))
	for w := range g.out {
		waiters = append(waiters, w)
	}
	slices.Sort(waiters)
	for _, w := range waiters {
		from := id(w)
		for _, e := range g.out[w] {
			to := id(e.Holder)
			if dg.Node(from) == nil {
				dg.AddNode(simple.Node(from))
			}
			if dg.Node(to) == nil {
				dg.AddNode(simple.Node(to))
			}
			if !dg.HasEdgeFromTo(from, to) {
				dg.SetEdge(dg.NewEdge(simple.Node(from), simple.Node(to)))
			}
		}
	}
	var out [][]string
	for _, scc := range topo.TarjanSCC(dg) {
		if len(scc) < 2 {
			continue // no self-waits: a session never waits for itself
		}
		c := make([]string, len(scc))
		for i, n := range scc {
			c[i] = names[n.ID()]
		}
		slices.Sort(c)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// path is the shortest path of edges from one session to another inside
// members (a breadth-first search: linear in the edges), or nil when there
// is none. From and to may be the same session: then it is the shortest
// cycle through it.
func (g waitGraph) path(from, to string, members map[string]bool) []Edge {
	via := map[string]Edge{}
	queue := []string{from}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, e := range g.out[n] {
			if !members[e.Holder] {
				continue
			}
			if e.Holder == to {
				p := []Edge{e}
				for at := n; at != from; at = via[at].Waiter {
					p = append(p, via[at])
				}
				slices.Reverse(p)
				return p
			}
			if _, seen := via[e.Holder]; seen || e.Holder == from {
				continue
			}
			via[e.Holder] = e
			queue = append(queue, e.Holder)
		}
	}
	return nil
}

// cycle makes a Cycle of a closed path of edges.
func cycle(edges []Edge) Cycle {
	var c Cycle
	for _, e := range edges {
		c.Sessions = append(c.Sessions, e.Waiter)
		c.Edges = append(c.Edges, e)
	}
	return c
}

// set is a component's sessions as a set.
func set(component []string) map[string]bool {
	members := make(map[string]bool, len(component))
	for _, n := range component {
		members[n] = true
	}
	return members
}

// representative is the component's cycle to show: the shortest through
// its first session by name. Every session of a component lies on a cycle
// of its edges, so there is one.
func (g waitGraph) representative(component []string) Cycle {
	c := cycle(g.path(component[0], component[0], set(component)))
	if len(component) > len(c.Sessions) {
		c.Members = component
	}
	return c
}

// findCycles reports the deadlocks among edges, one per strongly connected
// component of their hard edges: first those the server sees (it breaks
// each), then those that close only through the application (Distributed:
// no server sees them), each with one representative cycle.
func findCycles(edges []Edge) []Cycle {
	server := newWaitGraph(edges, hard)
	var cycles []Cycle
	inServerCycle := map[string]bool{}
	for _, comp := range server.components() {
		cycles = append(cycles, server.representative(comp))
		for _, n := range comp {
			inServerCycle[n] = true
		}
	}
	all := newWaitGraph(edges, closes)
	for _, comp := range all.components() {
		if slices.ContainsFunc(comp, func(n string) bool { return inServerCycle[n] }) {
			continue // the server breaks the cycle inside it
		}
		c := all.representative(comp)
		c.Distributed = true
		cycles = append(cycles, c)
	}
	return cycles
}

// findSoftCycles reports the cycles that close only through a queue: one
// per strongly connected component of the server's edges that holds a soft
// edge, with the shortest cycle through its first soft edge. None is a
// deadlock (see the top of this file).
func findSoftCycles(edges []Edge) []Cycle {
	g := newWaitGraph(edges, serverVisible)
	var out []Cycle
	for _, comp := range g.components() {
		members := set(comp)
		var first *Edge
		for _, w := range comp {
			for i, e := range g.out[w] {
				if e.Queued && members[e.Holder] {
					first = &g.out[w][i]
					break
				}
			}
			if first != nil {
				break
			}
		}
		if first == nil {
			continue // a component of hard edges alone: a deadlock, reported as one
		}
		// Both ends of an edge inside a component lie on a cycle through it.
		c := cycle(append([]Edge{*first}, g.path(first.Holder, first.Waiter, members)...)).rotated()
		c.Soft = true
		if len(comp) > len(c.Sessions) {
			c.Members = comp
		}
		out = append(out, c)
	}
	return out
}

// rotated is the cycle starting at its first session by name.
func (c Cycle) rotated() Cycle {
	i := 0
	for j, s := range c.Sessions {
		if s < c.Sessions[i] {
			i = j
		}
	}
	out := c
	out.Sessions = append(append([]string(nil), c.Sessions[i:]...), c.Sessions[:i]...)
	out.Edges = append(append([]Edge(nil), c.Edges[i:]...), c.Edges[:i]...)
	return out
}
