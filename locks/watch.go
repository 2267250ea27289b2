package locks

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// WatchFilter chooses the sessions a watch looks at: client backends of the
// current database, but the watcher's own connection.
type WatchFilter struct {
	App  string  // LIKE pattern on application_name; "" means any
	User string  // role name; "" means any
	Pids []int32 // these backends only, when given
}

// WatchTargets finds the backends the filter chooses and names each for
// the tree: its application_name and pid ("psql 4711"), or "pid 4711".
func WatchTargets(ctx context.Context, conn *pgx.Conn, f WatchFilter) (map[int32]string, error) {
	pids := f.Pids
	if pids == nil {
		pids = []int32{}
	}
	rows, err := conn.Query(ctx, `SELECT pid, coalesce(application_name, '') FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid()
		  AND ($1 = '' OR application_name LIKE $1) AND ($2 = '' OR usename = $2)
		  AND (cardinality($3::int[]) = 0 OR pid = ANY($3))`, f.App, f.User, pids)
	if err != nil {
		return nil, fmt.Errorf("finding the sessions to watch: %w", err)
	}
	out := map[int32]string{}
	for rows.Next() {
		var pid int32
		var app string
		if err := rows.Scan(&pid, &app); err != nil {
			rows.Close()
			return nil, err
		}
		if app == "" {
			app = "pid"
		}
		out[pid] = fmt.Sprintf("%s %d", app, pid)
	}
	return out, rows.Err()
}

// Tree is a snapshot as a lock monitor's users ask to see it: the root
// blockers first, each waiter under what it waits for.
type Tree struct {
	Roots []TreeNode `json:"roots"`
	// Cycles are the deadlocks standing now, each as its sessions.
	Cycles []string `json:"deadlocks"`
}

// TreeNode is one session in the tree, with the sessions waiting for it.
type TreeNode struct {
	Session string     `json:"session"`
	Pid     int32      `json:"pid"`
	State   string     `json:"state"`
	Query   string     `json:"query"`
	Waits   string     `json:"waits,omitempty"` // why it waits for its parent
	Soft    bool       `json:"soft,omitempty"`  // only behind a queued request
	Lock    string     `json:"lock,omitempty"`  // what it wants, in words
	Waiters []TreeNode `json:"waiters,omitempty"`
}

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
		t.Cycles = append(t.Cycles, strings.Join(append(append([]string(nil), c.Sessions...), c.Sessions[0]), " → "))
		for _, n := range c.Sessions {
			inCycle[n] = true
		}
	}
	var roots []string
	for holder := range waitsFor {
		if !waiting[holder] || inCycle[holder] {
			roots = append(roots, holder)
		}
	}
	sort.Strings(roots)
	for _, r := range roots {
		t.Roots = append(t.Roots, s.treeNode(r, nil, waitsFor, map[string]bool{}))
	}
	return t
}

func (s *Snapshot) treeNode(name string, via *Edge, waitsFor map[string][]Edge, seen map[string]bool) TreeNode {
	n := TreeNode{Session: name}
	if b, ok := s.Backend(name); ok {
		n.Pid, n.State, n.Query = b.Pid, b.State, b.Query
	}
	if via != nil {
		n.Waits, n.Soft = via.Why, via.Queued
		if via.Lock != nil {
			n.Lock = via.Label()
		}
	}
	if seen[name] {
		return n // a cycle: drawn once
	}
	seen[name] = true
	for i := range waitsFor[name] {
		e := waitsFor[name][i]
		n.Waiters = append(n.Waiters, s.treeNode(e.Waiter, &e, waitsFor, seen))
	}
	return n
}

// String draws the tree in lines: a root with its state and statement,
// each waiter indented under it with why it waits.
func (t Tree) String() string {
	var b strings.Builder
	for _, c := range t.Cycles {
		fmt.Fprintf(&b, "DEADLOCK %s (the server breaks it after deadlock_timeout)\n", c)
	}
	if len(t.Roots) == 0 {
		b.WriteString("no session waits\n")
	}
	for _, r := range t.Roots {
		drawNode(&b, r, "", true)
	}
	return b.String()
}

func drawNode(b *strings.Builder, n TreeNode, indent string, root bool) {
	query := strings.Join(strings.Fields(n.Query), " ")
	if len(query) > 100 {
		query = query[:99] + "…"
	}
	if root {
		fmt.Fprintf(b, "%s — %s — %s\n", n.Session, n.State, query)
	} else {
		kind := "waits for it"
		if n.Soft {
			kind = "queues behind it"
		}
		fmt.Fprintf(b, "%s└─ %s %s: %s\n", indent, n.Session, kind, query)
		fmt.Fprintf(b, "%s   %s\n", indent, n.Waits)
		indent += "   "
	}
	for _, w := range n.Waiters {
		drawNode(b, w, indent, false)
	}
}
