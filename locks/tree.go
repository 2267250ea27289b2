package locks

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Tree is a snapshot as a lock monitor's users ask to see it: the root
// blockers first, each waiter under what it waits for.
type Tree struct {
	Roots []TreeNode `json:"roots"`
	// Cycles are the deadlocks standing now, each as its sessions.
	Cycles []string `json:"deadlocks"`
	// SoftCycles are cycles through a lock's queue, which the server
	// rearranges rather than breaks: no deadlock.
	SoftCycles []string `json:"queue_cycles,omitempty"`
	// Omitted counts the drawings left out to keep the tree bounded: a
	// session waiting for many is drawn once under each of the first, then
	// only counted. Every session is drawn at least once.
	Omitted int `json:"omitted,omitempty"`
}

// maxTreeNodes bounds a tree's drawings (see Tree.Omitted).
const maxTreeNodes = 2000

// TreeNode is one session in the tree, with the sessions waiting for it.
type TreeNode struct {
	Session   string     `json:"session"`
	Pid       int32      `json:"pid"`
	User      string     `json:"user,omitempty"`
	Database  string     `json:"database,omitempty"` // with --all
	Prepared  string     `json:"prepared,omitempty"` // a prepared transaction's global id
	State     string     `json:"state"`
	XactStart *time.Time `json:"xact_start,omitempty"`
	Query     string     `json:"query"`
	Waits     string     `json:"waits,omitempty"` // why it waits for its parent
	Soft      bool       `json:"soft,omitempty"`  // only behind a queued request
	Lock      string     `json:"lock,omitempty"`  // what it wants, in words
	// AlsoBehind counts the requests ahead of it in the lock's queue that
	// it waits for too (soft edges), under which it is not drawn: a queue
	// of n would otherwise draw its last n-1 times.
	AlsoBehind int `json:"also_behind,omitempty"`
	// Again marks a session drawn a second time: it waits for several, or
	// closes a cycle; its own waiters are under its first drawing.
	Again   bool       `json:"again,omitempty"`
	Waiters []TreeNode `json:"waiters,omitempty"`
	// Edge is the wait that puts the node under its parent, for a view
	// that explains it in full.
	Edge *Edge `json:"-"`
}

// HiddenQuery is what pg_stat_activity shows for another role's statement
// to a role without pg_read_all_stats.
const HiddenQuery = "<insufficient privilege>"

// BuildTree turns a snapshot into its tree of waits. A session waiting for
// several holders is drawn under each; one that only queues behind requests
// ahead of it (soft edges) is drawn under the nearest of them, the others
// counted (AlsoBehind), so that a queue of n draws n nodes, not n². The
// deadlocks' members are roots too, so that no session in one is lost, and
// so is any waiter no root reaches (a cycle through a queue).
func BuildTree(s *Snapshot) Tree {
	var t Tree
	edges := s.Graph.Edges
	since := map[string]time.Time{} // when each waiter began waiting
	hardOf, softOf := map[string][]int32{}, map[string][]int32{}
	var waiters []string
	for i := range edges {
		e := &edges[i]
		if _, ok := since[e.Waiter]; !ok {
			since[e.Waiter] = waitStart(*e)
			waiters = append(waiters, e.Waiter)
		}
		if e.Queued {
			softOf[e.Waiter] = append(softOf[e.Waiter], int32(i))
		} else {
			hardOf[e.Waiter] = append(hardOf[e.Waiter], int32(i))
		}
	}
	waitsFor := map[string][]int32{} // holder → the edges drawn under it
	also := map[string]int{}
	for _, w := range waiters {
		if hs := hardOf[w]; len(hs) > 0 {
			for _, i := range hs {
				waitsFor[edges[i].Holder] = append(waitsFor[edges[i].Holder], i)
			}
			also[w] = len(softOf[w])
			continue
		}
		// Only queued: under the request nearest ahead, the one that began
		// waiting last.
		ss := softOf[w]
		near := ss[0]
		for _, i := range ss[1:] {
			if !since[edges[i].Holder].Before(since[edges[near].Holder]) {
				near = i
			}
		}
		waitsFor[edges[near].Holder] = append(waitsFor[edges[near].Holder], near)
		also[w] = len(ss) - 1
	}
	inCycle := map[string]bool{}
	for _, c := range s.Graph.Cycles {
		t.Cycles = append(t.Cycles, c.Describe())
		for _, n := range c.All() {
			inCycle[n] = true
		}
	}
	for _, c := range s.Graph.SoftCycles {
		t.SoftCycles = append(t.SoftCycles, c.Describe())
		for _, n := range c.All() {
			inCycle[n] = true
		}
	}
	// Under each holder, its waiters in queue order: who began waiting first.
	for _, es := range waitsFor {
		sort.SliceStable(es, func(i, j int) bool { return waitStart(edges[es[i]]).Before(waitStart(edges[es[j]])) })
	}
	var roots []string
	for holder := range waitsFor {
		if _, waits := since[holder]; !waits || inCycle[holder] {
			roots = append(roots, holder)
		}
	}
	sort.Strings(roots)
	b := treeBuilder{s: s, waitsFor: waitsFor, also: also, seen: map[string]bool{}, backends: map[string]*Backend{}}
	for i := range s.Backends {
		if _, ok := b.backends[s.Backends[i].Session]; !ok {
			b.backends[s.Backends[i].Session] = &s.Backends[i]
		}
	}
	for _, r := range roots {
		if inCycle[r] && b.seen[r] {
			continue // drawn already, inside another member's cycle
		}
		t.Roots = append(t.Roots, b.node(r, nil))
	}
	sort.Strings(waiters)
	for _, w := range waiters {
		if !b.seen[w] {
			t.Roots = append(t.Roots, b.node(w, nil))
		}
	}
	t.Omitted = b.omitted
	return t
}

// treeBuilder draws a tree's nodes, each session's waiters once.
type treeBuilder struct {
	s        *Snapshot
	backends map[string]*Backend
	waitsFor map[string][]int32 // indices in s.Graph.Edges
	also     map[string]int
	seen     map[string]bool
	nodes    int
	omitted  int
}

func (b *treeBuilder) node(name string, via *Edge) TreeNode {
	b.nodes++
	n := TreeNode{Session: name}
	if bk, ok := b.backends[name]; ok {
		n.Pid, n.User, n.Database, n.State, n.XactStart, n.Query = bk.Pid, bk.User, bk.Database, bk.State, bk.XactStart, bk.Query
		n.Prepared = bk.Prepared
	}
	if via != nil {
		n.Waits, n.Soft, n.Edge, n.AlsoBehind = via.Why, via.Queued, via, b.also[name]
		if via.Lock != nil {
			n.Lock = via.Label()
		}
	}
	if b.seen[name] {
		n.Again = true
		return n
	}
	b.seen[name] = true
	for _, i := range b.waitsFor[name] {
		e := &b.s.Graph.Edges[i]
		if b.seen[e.Waiter] && b.nodes >= maxTreeNodes {
			b.omitted++
			continue
		}
		n.Waiters = append(n.Waiters, b.node(e.Waiter, e))
	}
	return n
}

// Walk calls visit for every node, depth first, with its depth (roots are 0).
func (t Tree) Walk(visit func(n *TreeNode, depth int)) {
	var walk func(n *TreeNode, depth int)
	walk = func(n *TreeNode, depth int) {
		visit(n, depth)
		for i := range n.Waiters {
			walk(&n.Waiters[i], depth+1)
		}
	}
	for i := range t.Roots {
		walk(&t.Roots[i], 0)
	}
}

// Sessions counts the distinct sessions in the tree.
func (t Tree) Sessions() int {
	seen := map[string]bool{}
	t.Walk(func(n *TreeNode, _ int) { seen[n.Session] = true })
	return len(seen)
}

// Header is a root's line: who, as whom, in what state for how long.
func (n TreeNode) Header(now time.Time) string {
	parts := []string{n.Session}
	if n.User != "" {
		parts = append(parts, "user "+n.User)
	}
	if n.Database != "" {
		parts = append(parts, "database "+n.Database)
	}
	state := n.State
	if state == "" && n.Query == HiddenQuery {
		state = "state hidden"
	}
	if n.XactStart != nil && state != "" {
		state += fmt.Sprintf(" (transaction open %s)", Age(now.Sub(*n.XactStart)))
	}
	if state != "" {
		parts = append(parts, state)
	}
	return strings.Join(parts, " · ")
}

// Statement is the node's statement on one line, or what hides it.
func (n TreeNode) Statement() string {
	if n.Query == HiddenQuery {
		return "(statement hidden: this role lacks pg_read_all_stats)"
	}
	if n.Prepared != "" && n.Query == "" {
		return fmt.Sprintf("(a prepared transaction: no session runs it; COMMIT PREPARED '%s' or ROLLBACK PREPARED '%s' ends it)", n.Prepared, n.Prepared)
	}
	return strings.Join(strings.Fields(n.Query), " ")
}

// Relation is how a waiter stands to its parent, in two words.
func (n TreeNode) Relation() string {
	switch {
	case n.Soft:
		return "queues behind it"
	case n.Again:
		return "waits for it too"
	}
	return "waits for it"
}

// Also is what a waiter waits for besides its parent, in words: " (and
// behind 3 more requests ahead of it in the queue)", or "".
func (n TreeNode) Also() string {
	switch {
	case n.AlsoBehind == 1:
		return " (and behind 1 more request ahead of it in the queue)"
	case n.AlsoBehind > 1:
		return fmt.Sprintf(" (and behind %d more requests ahead of it in the queue)", n.AlsoBehind)
	}
	return ""
}

// SoftCycleWhy says why a cycle through a queue is no deadlock.
const SoftCycleWhy = "the server's deadlock check lets the queued request go ahead of the one it queues behind; it breaks nothing"

// Age is a duration as a person reads it: 850ms, 12s, 4m05s, 2h10m.
func Age(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// String draws the tree in lines: a root with its state and statement,
// each waiter indented under it with why it waits.
func (t Tree) String() string { return t.Draw(time.Now()) }

// Draw is String with ages counted to now.
func (t Tree) Draw(now time.Time) string {
	var b strings.Builder
	for _, c := range t.Cycles {
		fmt.Fprintf(&b, "DEADLOCK %s (the server breaks it after deadlock_timeout)\n", c)
	}
	for _, c := range t.SoftCycles {
		fmt.Fprintf(&b, "A CYCLE THROUGH A QUEUE, not a deadlock: %s (%s)\n", c, SoftCycleWhy)
	}
	if len(t.Roots) == 0 {
		b.WriteString("no session waits\n")
	}
	for _, r := range t.Roots {
		drawNode(&b, r, "", true, now)
	}
	if t.Omitted > 0 {
		fmt.Fprintf(&b, "(%d more waits of sessions drawn already are not drawn again)\n", t.Omitted)
	}
	return b.String()
}

func drawNode(b *strings.Builder, n TreeNode, indent string, root bool, now time.Time) {
	if root {
		fmt.Fprintf(b, "%s\n  %s\n", n.Header(now), n.Statement())
		indent = "  "
	} else {
		fmt.Fprintf(b, "%s└─ %s %s%s: %s\n", indent, n.Session, n.Relation(), n.Also(), n.Statement())
		fmt.Fprintf(b, "%s   %s\n", indent, n.Waits)
		indent += "   "
	}
	for _, w := range n.Waiters {
		drawNode(b, w, indent, false, now)
	}
}

// waitStart is when the edge's wait began, or the zero time when the
// server does not say (before PostgreSQL 14).
func waitStart(e Edge) time.Time {
	if e.Lock == nil || e.Lock.WaitStart == nil {
		return time.Time{}
	}
	return *e.Lock.WaitStart
}
