package locks

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func hardEdge(w, h string) Edge { return Edge{Waiter: w, Holder: h} }
func softEdge(w, h string) Edge { return Edge{Waiter: w, Holder: h, Queued: true} }

// reverseQueue is a row's queue of n waiters behind holder, queued in the
// reverse of their names' order (as psql sessions queued in the reverse of
// their pids): the head waits for holder's transaction, the others for the
// head's tuple lock (hard) and behind every request ahead (soft), as
// pg_blocking_pids names them. Each edge's lock says when its wait began.
func reverseQueue(holder string, n int, t0 time.Time) []Edge {
	name := func(i int) string { return fmt.Sprintf("q%04d", n-i) }
	at := func(i int) *Lock { s := t0.Add(time.Duration(i) * time.Millisecond); return &Lock{WaitStart: &s} }
	edges := []Edge{{Waiter: name(0), Holder: holder, Lock: at(0)}}
	for i := 1; i < n; i++ {
		edges = append(edges, Edge{Waiter: name(i), Holder: name(0), Lock: at(i)})
		for j := 1; j < i; j++ {
			edges = append(edges, Edge{Waiter: name(i), Holder: name(j), Lock: at(i), Queued: true})
		}
	}
	return edges
}

// checkCycle fails unless c is a closed chain of its edges, in order.
func checkCycle(t *testing.T, c Cycle) {
	t.Helper()
	if len(c.Sessions) < 2 || len(c.Sessions) != len(c.Edges) {
		t.Fatalf("cycle %v has %d edges", c.Sessions, len(c.Edges))
	}
	for i, e := range c.Edges {
		if e.Waiter != c.Sessions[i] || e.Holder != c.Sessions[(i+1)%len(c.Sessions)] {
			t.Fatalf("cycle %s: edge %d is %s → %s", c, i, e.Waiter, e.Holder)
		}
	}
}

// A queue 200 deep in reverse name order is 20,000 edges and no cycle: the
// search that enumerated paths took seconds at 24.
func TestDenseQueueHasNoCycle(t *testing.T) {
	t.Parallel()
	edges := reverseQueue("holder", 200, time.Now())
	if len(edges) < 19000 {
		t.Fatalf("only %d edges", len(edges))
	}
	if c, soft := findCycles(edges); len(c) != 0 || len(soft) != 0 {
		t.Errorf("cycles in a queue: %v, %v", c, soft)
	}
}

// 300 clients updating two rows in opposite orders: a and b deadlock, each
// holding one row's tuple lock, and 149 queue behind each. One deadlock,
// of a and b alone.
func TestTwoRowsThreeHundredClients(t *testing.T) {
	t.Parallel()
	edges := []Edge{hardEdge("a", "b"), hardEdge("b", "a")}
	for row, head := range []string{"a", "b"} {
		for i := range 149 {
			w := fmt.Sprintf("c%d_%03d", row, 148-i)
			edges = append(edges, hardEdge(w, head))
			for j := range i {
				edges = append(edges, softEdge(w, fmt.Sprintf("c%d_%03d", row, 148-j)))
			}
		}
	}
	if len(edges) < 20000 {
		t.Fatalf("only %d edges", len(edges))
	}
	cycles, soft := findCycles(edges)
	if len(cycles) != 1 || cycles[0].String() != "a → b → a" || cycles[0].Members != nil || cycles[0].Distributed {
		t.Fatalf("deadlocks: %+v", cycles)
	}
	checkCycle(t, cycles[0])
	if len(soft) != 0 {
		t.Errorf("soft cycles: %v", soft)
	}
}

// A tangle of seven, with several cycles through each other: one report,
// its shortest cycle through its first session, every member named.
func TestTangleIsOneDeadlock(t *testing.T) {
	t.Parallel()
	var edges []Edge
	for _, p := range [][2]string{{"s1", "s2"}, {"s2", "s3"}, {"s3", "s1"}, {"s3", "s4"}, {"s4", "s5"}, {"s5", "s3"},
		{"s5", "s6"}, {"s6", "s7"}, {"s7", "s5"}, {"s2", "s1"}, {"s7", "s1"}} {
		edges = append(edges, hardEdge(p[0], p[1]))
	}
	edges = append(edges, hardEdge("outside", "s4")) // waits for the tangle, not in it
	cycles, _ := findCycles(edges)
	if len(cycles) != 1 {
		t.Fatalf("%d reports for one tangle: %v", len(cycles), cycles)
	}
	c := cycles[0]
	checkCycle(t, c)
	if c.String() != "s1 → s2 → s1" || strings.Join(c.Members, ",") != "s1,s2,s3,s4,s5,s6,s7" {
		t.Errorf("report: %s, members %v", c, c.Members)
	}
	if d := c.Describe(); d != "s1 → s2 → s1, tangled with s3, s4, s5, s6, 1 more (7 sessions)" {
		t.Errorf("described as %q", d)
	}
}

// X holds ACCESS SHARE and waits for Z's row; Y wants ACCESS EXCLUSIVE
// (hard, behind X); Z wants ACCESS SHARE and queues behind Y (soft). The
// server lets Z go ahead of Y: no deadlock, one soft cycle.
func TestSoftCycleIsNoDeadlock(t *testing.T) {
	t.Parallel()
	edges := []Edge{hardEdge("X", "Z"), softEdge("Z", "Y"), hardEdge("Y", "X")}
	c, soft := findCycles(edges)
	if len(c) != 0 {
		t.Fatalf("a cycle through a queue called a deadlock: %v", c)
	}
	if len(soft) != 1 || !soft[0].Soft || soft[0].String() != "X → Z → Y → X" {
		t.Fatalf("soft cycles: %+v", soft)
	}
	checkCycle(t, soft[0])
	// The tree draws all three, though none is a root blocker.
	s := &Snapshot{Graph: Graph{Edges: edges, SoftCycles: soft}}
	tree := BuildTree(s)
	if tree.Sessions() != 3 || len(tree.Cycles) != 0 || len(tree.SoftCycles) != 1 {
		t.Errorf("tree:\n%s", tree)
	}
	if !strings.Contains(tree.String(), "not a deadlock") || strings.Contains(tree.String(), "DEADLOCK") {
		t.Errorf("drawn:\n%s", tree)
	}
}

// 600 separate deadlocks of two: 600 reports, one each.
func TestManyDeadlocks(t *testing.T) {
	t.Parallel()
	var edges []Edge
	for i := range 600 {
		a, b := fmt.Sprintf("a%03d", i), fmt.Sprintf("b%03d", i)
		edges = append(edges, hardEdge(a, b), hardEdge(b, a))
	}
	cycles, _ := findCycles(edges)
	if len(cycles) != 600 {
		t.Fatalf("%d reports, want 600", len(cycles))
	}
	for i, c := range cycles {
		checkCycle(t, c)
		if want := fmt.Sprintf("a%03d → b%03d → a%03d", i, i, i); c.String() != want {
			t.Fatalf("report %d: %s, want %s", i, c, want)
		}
	}
}

// A cycle only the application closes is distributed; a component that
// holds a cycle the server sees is reported once, as the server's.
func TestDistributedCycles(t *testing.T) {
	t.Parallel()
	app := Edge{Waiter: "T1@B", Holder: "T1", Application: true}
	edges := []Edge{app, hardEdge("T1", "T2@B"), hardEdge("T2@B", "T1@B")}
	cycles, _ := findCycles(edges)
	if len(cycles) != 1 || !cycles[0].Distributed {
		t.Fatalf("distributed: %+v", cycles)
	}
	checkCycle(t, cycles[0])
	edges = append(edges, hardEdge("T1@B", "T2@B"))
	cycles, _ = findCycles(edges)
	if len(cycles) != 1 || cycles[0].Distributed || cycles[0].String() != "T1@B → T2@B → T1@B" {
		t.Fatalf("a server's cycle inside: %+v", cycles)
	}
}

// On random graphs of 1,500 edges, a third of them soft: the reports are
// exactly the strongly connected components of the hard edges (checked by
// mutual reachability), each a true cycle of hard edges, and every soft
// cycle is a true cycle through a soft edge.
func TestCyclesMatchReachability(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 29))
		const nodes = 300
		name := func(i int) string { return fmt.Sprintf("n%03d", i) }
		var edges []Edge
		for range 1500 {
			w, h := r.IntN(nodes), r.IntN(nodes)
			if w == h {
				continue
			}
			e := hardEdge(name(w), name(h))
			e.Queued = r.IntN(3) == 0
			edges = append(edges, e)
		}
		reach := func(keep func(Edge) bool) map[string]map[string]bool {
			g := newWaitGraph(edges, keep)
			out := map[string]map[string]bool{}
			for i := range nodes {
				from := name(i)
				seen := map[string]bool{}
				queue := []string{from}
				for len(queue) > 0 {
					n := queue[0]
					queue = queue[1:]
					for _, i := range g.out[n] {
						if h := edges[i].Holder; !seen[h] {
							seen[h] = true
							queue = append(queue, h)
						}
					}
				}
				out[from] = seen
			}
			return out
		}
		hardReach := reach(hard)
		cycles, softCycles := findCycles(edges)
		reported := map[string]int{}
		for ci, c := range cycles {
			checkCycle(t, c)
			for _, e := range c.Edges {
				if !hard(e) {
					t.Fatalf("seed %d: a soft edge in deadlock %s", seed, c)
				}
			}
			for _, a := range c.All() {
				if _, dup := reported[a]; dup {
					t.Fatalf("seed %d: %s in two reports", seed, a)
				}
				reported[a] = ci
				for _, b := range c.All() {
					if !hardReach[a][b] {
						t.Fatalf("seed %d: %s and %s in one report, but %s does not wait for %s", seed, a, b, a, b)
					}
				}
			}
		}
		for i := range nodes {
			a := name(i)
			if hardReach[a][a] {
				if _, ok := reported[a]; !ok {
					t.Fatalf("seed %d: %s lies on a hard cycle but is in no report", seed, a)
				}
			}
			for j := range nodes {
				b := name(j)
				ia, oka := reported[a]
				ib, okb := reported[b]
				if a != b && hardReach[a][b] && hardReach[b][a] && (!oka || !okb || ia != ib) {
					t.Fatalf("seed %d: %s and %s wait for each other but are not in one report", seed, a, b)
				}
			}
		}
		allReach := reach(serverVisible)
		for _, c := range softCycles {
			checkCycle(t, c)
			if !c.Soft || !slices.ContainsFunc(c.Edges, func(e Edge) bool { return e.Queued }) {
				t.Fatalf("seed %d: soft cycle %s has no soft edge", seed, c)
			}
			for _, a := range c.All() {
				if !allReach[a][c.Sessions[0]] || !allReach[c.Sessions[0]][a] {
					t.Fatalf("seed %d: %s is not in soft cycle %s's component", seed, a, c)
				}
			}
		}
	}
}

// A queue's tree draws each waiter once: under the tuple lock's holder,
// with the requests ahead of it counted, not drawn under each.
func TestQueueTreeIsLinear(t *testing.T) {
	t.Parallel()
	const n = 120
	s := &Snapshot{Graph: Graph{Edges: reverseQueue("holder", n, time.Now())}}
	tree := BuildTree(s)
	nodes := 0
	tree.Walk(func(node *TreeNode, depth int) {
		nodes++
		if node.Session != "holder" && depth == 0 {
			t.Errorf("%s is a root", node.Session)
		}
	})
	if nodes != n+1 || tree.Sessions() != n+1 || tree.Omitted != 0 {
		t.Fatalf("%d nodes for a queue of %d (omitted %d)", nodes, n, tree.Omitted)
	}
	head := tree.Roots[0].Waiters[0]
	if head.Session != fmt.Sprintf("q%04d", n) || len(head.Waiters) != n-1 {
		t.Fatalf("head %s with %d waiters", head.Session, len(head.Waiters))
	}
	last := head.Waiters[n-2]
	if last.AlsoBehind != n-2 || last.Soft || !strings.Contains(last.Also(), fmt.Sprintf("behind %d more requests", n-2)) {
		t.Errorf("the queue's last: %+v", last)
	}
}

// A waiter that only queues is drawn under the request nearest ahead of it.
func TestOnlyQueuedUnderNearest(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(d time.Duration) *Lock { s := t0.Add(d); return &Lock{WaitStart: &s} }
	// a holds ACCESS SHARE; b1 then b2 want ACCESS EXCLUSIVE; c's ACCESS
	// SHARE queues behind both.
	edges := []Edge{
		{Waiter: "b1", Holder: "a", Lock: at(0)},
		{Waiter: "b2", Holder: "a", Lock: at(time.Second)},
		{Waiter: "b2", Holder: "b1", Lock: at(time.Second), Queued: true},
		{Waiter: "c", Holder: "b1", Lock: at(2 * time.Second), Queued: true},
		{Waiter: "c", Holder: "b2", Lock: at(2 * time.Second), Queued: true},
	}
	tree := BuildTree(&Snapshot{Graph: Graph{Edges: edges}})
	cs := []TreeNode{}
	tree.Walk(func(n *TreeNode, _ int) {
		if n.Session == "c" {
			cs = append(cs, *n)
		}
	})
	if len(cs) != 1 || cs[0].Edge.Holder != "b2" || cs[0].AlsoBehind != 1 || !cs[0].Soft {
		t.Fatalf("c drawn %d times: %+v\n%s", len(cs), cs, tree)
	}
}

// A session waiting for very many is drawn under each up to the bound,
// then counted; every session is still drawn.
func TestTreeBounded(t *testing.T) {
	t.Parallel()
	var edges []Edge
	for h := range 100 {
		for w := range 100 {
			edges = append(edges, hardEdge(fmt.Sprintf("w%03d", w), fmt.Sprintf("h%03d", h)))
		}
	}
	tree := BuildTree(&Snapshot{Graph: Graph{Edges: edges}})
	nodes := 0
	tree.Walk(func(*TreeNode, int) { nodes++ })
	if nodes > maxTreeNodes+200 || tree.Sessions() != 200 || nodes+tree.Omitted != 100+100*100 {
		t.Fatalf("%d nodes, %d sessions, %d omitted", nodes, tree.Sessions(), tree.Omitted)
	}
}

// BenchmarkQueueCycles is the cycle search and the tree of a row's queue
// 40 deep: what a look of lockstep watch adds to its query there.
func BenchmarkQueueCycles(b *testing.B) {
	edges := reverseQueue("holder", 40, time.Now())
	for b.Loop() {
		s := &Snapshot{Graph: Graph{Edges: edges}}
		s.Graph.findCycles(s)
		BuildTree(s)
	}
}
