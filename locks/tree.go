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
}

// TreeNode is one session in the tree, with the sessions waiting for it.
type TreeNode struct {
	Session   string     `json:"session"`
	Pid       int32      `json:"pid"`
	User      string     `json:"user,omitempty"`
	State     string     `json:"state"`
	XactStart *time.Time `json:"xact_start,omitempty"`
	Query     string     `json:"query"`
	Waits     string     `json:"waits,omitempty"` // why it waits for its parent
	Soft      bool       `json:"soft,omitempty"`  // only behind a queued request
	Lock      string     `json:"lock,omitempty"`  // what it wants, in words
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
// several appears under each; a cycle's members are roots too, so that no
// session in it is lost.
func BuildTree(s *Snapshot) Tree {
	var t Tree
	waitsFor := map[string][]Edge{} // holder → edges of its waiters
	waiting := map[string]bool{}
	for _, e := range s.Graph.Edges {
		waitsFor[e.Holder] = append(waitsFor[e.Holder], e)
		waiting[e.Waiter] = true
	}
	inCycle := map[string]bool{}
	for _, c := range s.Graph.Cycles {
		t.Cycles = append(t.Cycles, c.String())
		for _, n := range c.Sessions {
			inCycle[n] = true
		}
	}
	// Under each holder, its waiters in queue order: who began waiting first.
	for _, es := range waitsFor {
		sort.SliceStable(es, func(i, j int) bool { return waitStart(es[i]).Before(waitStart(es[j])) })
	}
	var roots []string
	for holder := range waitsFor {
		if !waiting[holder] || inCycle[holder] {
			roots = append(roots, holder)
		}
	}
	sort.Strings(roots)
	seen := map[string]bool{}
	for _, r := range roots {
		if inCycle[r] && seen[r] {
			continue // drawn already, inside another member's cycle
		}
		t.Roots = append(t.Roots, s.treeNode(r, nil, waitsFor, seen))
	}
	return t
}

func (s *Snapshot) treeNode(name string, via *Edge, waitsFor map[string][]Edge, seen map[string]bool) TreeNode {
	n := TreeNode{Session: name}
	if b, ok := s.Backend(name); ok {
		n.Pid, n.User, n.State, n.XactStart, n.Query = b.Pid, b.User, b.State, b.XactStart, b.Query
	}
	if via != nil {
		n.Waits, n.Soft, n.Edge = via.Why, via.Queued, via
		if via.Lock != nil {
			n.Lock = via.Label()
		}
	}
	if seen[name] {
		n.Again = true
		return n
	}
	seen[name] = true
	for i := range waitsFor[name] {
		e := waitsFor[name][i]
		n.Waiters = append(n.Waiters, s.treeNode(e.Waiter, &e, waitsFor, seen))
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
	if len(t.Roots) == 0 {
		b.WriteString("no session waits\n")
	}
	for _, r := range t.Roots {
		drawNode(&b, r, "", true, now)
	}
	return b.String()
}

func drawNode(b *strings.Builder, n TreeNode, indent string, root bool, now time.Time) {
	if root {
		fmt.Fprintf(b, "%s\n  %s\n", n.Header(now), n.Statement())
		indent = "  "
	} else {
		fmt.Fprintf(b, "%s└─ %s %s: %s\n", indent, n.Session, n.Relation(), n.Statement())
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
