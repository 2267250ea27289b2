package locks

import (
	"slices"
	"strings"

	"gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/iterator"
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
// It holds the edges' indices: an Edge is large to copy.
type waitGraph struct {
	edges []Edge
	out   map[string][]int32
}

func newWaitGraph(edges []Edge, keep func(Edge) bool) waitGraph {
	g := waitGraph{edges: edges, out: map[string][]int32{}}
	for i := range edges {
		if e := &edges[i]; keep(*e) && e.Waiter != e.Holder {
			g.out[e.Waiter] = append(g.out[e.Waiter], int32(i))
		}
	}
	g.sort()
	return g
}

func (g waitGraph) sort() {
	for _, es := range g.out {
		slices.SortStableFunc(es, func(a, b int32) int { return strings.Compare(g.edges[a].Holder, g.edges[b].Holder) })
	}
}

// within is the graph's edges that keep accepts between members only.
func (g waitGraph) within(members map[string]bool, keep func(Edge) bool) waitGraph {
	sub := waitGraph{edges: g.edges, out: map[string][]int32{}}
	for w := range members {
		for _, i := range g.out[w] {
			if e := &g.edges[i]; members[e.Holder] && keep(*e) {
				sub.out[w] = append(sub.out[w], i)
			}
		}
	}
	return sub
}

// components are the graph's strongly connected components of two sessions
// or more, each sorted by name, the components in order of their first.
func (g waitGraph) components() [][]string {
	var idx []int32
	for _, es := range g.out {
		idx = append(idx, es...)
	}
	slices.Sort(idx)
	return sccs(g.edges, idx)
}

// sccs are the strongly connected components, of two sessions or more, of
// the edges at idx: each sorted by name, in order of their first.
func sccs(edges []Edge, idx []int32) [][]string {
	adj := &adjacency{}
	ids := map[string]int64{}
	id := func(n string) int64 {
		if i, ok := ids[n]; ok {
			return i
		}
		i := int64(len(adj.names))
		ids[n] = i
		adj.names = append(adj.names, n)
		adj.nodes = append(adj.nodes, simple.Node(i))
		adj.succ = append(adj.succ, nil)
		return i
	}
	for _, i := range idx {
		e := &edges[i]
		if e.Waiter == e.Holder {
			continue // a session never waits for itself
		}
		from, to := id(e.Waiter), id(e.Holder)
		if n := len(adj.succ[from]); n == 0 || adj.succ[from][n-1].ID() != to {
			adj.succ[from] = append(adj.succ[from], adj.nodes[to])
		}
	}
	var out [][]string
	for _, scc := range topo.TarjanSCC(adj) {
		if len(scc) < 2 {
			continue
		}
		c := make([]string, len(scc))
		for i, n := range scc {
			c[i] = adj.names[n.ID()]
		}
		slices.Sort(c)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// adjacency is a wait graph as gonum's graph.Directed, on slices: gonum's
// own simple.DirectedGraph, built anew for each look, cost more than the
// look's query (its maps of edges: 0.4 ms for a queue 40 deep).
type adjacency struct {
	names []string
	nodes []graph.Node
	succ  [][]graph.Node
}

func (a *adjacency) Node(id int64) graph.Node {
	if id < 0 || id >= int64(len(a.nodes)) {
		return nil
	}
	return a.nodes[id]
}
func (a *adjacency) Nodes() graph.Nodes        { return iterator.NewOrderedNodes(a.nodes) }
func (a *adjacency) From(id int64) graph.Nodes { return iterator.NewOrderedNodes(a.succ[id]) }
func (a *adjacency) HasEdgeFromTo(u, v int64) bool {
	return slices.ContainsFunc(a.succ[u], func(n graph.Node) bool { return n.ID() == v })
}
func (a *adjacency) HasEdgeBetween(x, y int64) bool {
	return a.HasEdgeFromTo(x, y) || a.HasEdgeFromTo(y, x)
}
func (a *adjacency) Edge(u, v int64) graph.Edge {
	if !a.HasEdgeFromTo(u, v) {
		return nil
	}
	return simple.Edge{F: a.nodes[u], T: a.nodes[v]}
}
func (a *adjacency) To(id int64) graph.Nodes {
	var to []graph.Node
	for u := range a.succ {
		if a.HasEdgeFromTo(int64(u), id) {
			to = append(to, a.nodes[u])
		}
	}
	return iterator.NewOrderedNodes(to)
}

// path is the shortest path of edges from one session to another inside
// members (a breadth-first search: linear in the edges), or nil when there
// is none. From and to may be the same session: then it is the shortest
// cycle through it.
func (g waitGraph) path(from, to string, members map[string]bool) []Edge {
	via := map[string]int32{}
	queue := []string{from}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, i := range g.out[n] {
			e := &g.edges[i]
			if !members[e.Holder] {
				continue
			}
			if e.Holder == to {
				p := []Edge{*e}
				for at := n; at != from; at = g.edges[via[at]].Waiter {
					p = append(p, g.edges[via[at]])
				}
				slices.Reverse(p)
				return p
			}
			if _, seen := via[e.Holder]; seen || e.Holder == from {
				continue
			}
			via[e.Holder] = i
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
// no server sees them), each with one representative cycle; and the
// cycles that close only through a queue (Soft), one per component of the
// server's edges that holds a soft edge and no deadlock, with the shortest
// cycle through its first. None of those is a deadlock (see the top of
// this file).
//
// The server's edges are searched once; only a component of them can hold
// a cycle of any kind, and a queue has none, so the common look is one
// linear pass.
func findCycles(edges []Edge) (deadlocks, soft []Cycle) {
	var visible []int32
	for i := range edges {
		if serverVisible(edges[i]) {
			visible = append(visible, int32(i))
		}
	}
	comps := sccs(edges, visible)
	// Each component's own edges, in one pass: a look may hold many.
	compOf := map[string]int{}
	for ci, comp := range comps {
		for _, n := range comp {
			compOf[n] = ci + 1
		}
	}
	within := make([]waitGraph, len(comps))
	for ci := range within {
		within[ci] = waitGraph{edges: edges, out: map[string][]int32{}}
	}
	for _, i := range visible {
		e := &edges[i]
		if c := compOf[e.Waiter]; c > 0 && compOf[e.Holder] == c && e.Waiter != e.Holder {
			within[c-1].out[e.Waiter] = append(within[c-1].out[e.Waiter], i)
		}
	}
	inServerCycle := map[string]bool{}
	for ci, comp := range comps {
		full := within[ci]
		full.sort()
		members := set(comp)
		hardOnly := full.within(members, hard)
		hardOnly.sort()
		hcs := hardOnly.components()
		for _, hc := range hcs {
			deadlocks = append(deadlocks, hardOnly.representative(hc))
			for _, n := range hc {
				inServerCycle[n] = true
			}
		}
		// A component with a deadlock in it is that deadlock's to tell.
		if c, ok := full.softCycle(comp, members); ok && len(hcs) == 0 {
			soft = append(soft, c)
		}
	}
	slices.SortFunc(deadlocks, func(a, b Cycle) int { return strings.Compare(a.Sessions[0], b.Sessions[0]) })
	if !slices.ContainsFunc(edges, func(e Edge) bool { return e.Application }) {
		return deadlocks, soft
	}
	all := newWaitGraph(edges, closes)
	for _, comp := range all.components() {
		if slices.ContainsFunc(comp, func(n string) bool { return inServerCycle[n] }) {
			continue // the server breaks the cycle inside it
		}
		c := all.representative(comp)
		c.Distributed = true
		deadlocks = append(deadlocks, c)
	}
	return deadlocks, soft
}

// softCycle is the component's cycle through its first soft edge, if it
// holds one.
func (g waitGraph) softCycle(comp []string, members map[string]bool) (Cycle, bool) {
	for _, w := range comp {
		for _, i := range g.out[w] {
			first := g.edges[i]
			if !first.Queued || !members[first.Holder] {
				continue
			}
			// Both ends of an edge inside a component lie on a cycle through it.
			c := cycle(append([]Edge{first}, g.path(first.Holder, first.Waiter, members)...)).rotated()
			c.Soft = true
			if len(comp) > len(c.Sessions) {
				c.Members = comp
			}
			return c, true
		}
	}
	return Cycle{}, false
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
