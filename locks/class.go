package locks

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run is one live lockstep run on a server, as a teacher's view of the
// class lists it: who runs it where, and whether its sessions wait.
type Run struct {
	ID       string
	User     string
	Database string
	Schema   string // "" when it cannot be told (no claim yet)
	// Since is when its first connection began; nil when the server hides
	// it from this role (another role's, without pg_read_all_stats).
	Since    *time.Time
	Sessions []string
	// Waits are "T2 waits for T1", one per waiting session; a wait behind
	// a queued request says so ("T3 queues behind T2").
	Waits []string
	// Deadlock names a cycle among the run's sessions, "T1 → T2 → T1".
	Deadlock string
	// State is what the run is doing, in a few words: running, idle,
	// "T1 idle in transaction 2m10s", or "state hidden".
	State string
	// Hidden says the server hides the run's state from this role.
	Hidden bool
}

// ClassView watches every lockstep connection of a server: a watch whose
// filter is lockstep's application_name, on every database, read-only.
type ClassView struct {
	w    *Watch
	conn *pgx.Conn
}

// NewClass prepares a teacher's view of the class on conn, its own connection.
func NewClass(ctx context.Context, conn *pgx.Conn) (*ClassView, error) {
	w, err := NewWatch(ctx, conn, WatchOptions{ReadOnly: true, Filter: WatchFilter{App: "lockstep/%/%", AllDatabases: true}})
	if err != nil {
		return nil, err
	}
	return &ClassView{w: w, conn: conn}, nil
}

// Close ends the view; the connection is the caller's.
func (c *ClassView) Close() { c.w.Close() }

// Notes are what the teacher should know once: what the role does not see.
func (c *ClassView) Notes() []string {
	if c.w.SeesAll() {
		return nil
	}
	return []string{fmt.Sprintf("role %s lacks pg_read_all_stats: the server hides other roles' runs' state and start from it, "+
		"so they show as hidden and the counts of running and idle runs leave them out; their waits and deadlocks still show "+
		"(pg_blocking_pids). A superuser gives a teacher's role what it needs with: GRANT pg_read_all_stats TO %s;",
		c.w.Role(), ident(c.w.Role()))}
}

// claimsSQL reads the schema each run claims: the advisory key
// (hashtext(schema), 0) on its control connection. A schema of this
// database is named from its catalog; one of another database, when it is
// the run's role's default (lockstep_<login>) or the throwaway's (lockstep).
const claimsSQL = `
SELECT l.pid,
       coalesce(n.nspname::text,
                CASE l.classid
                    WHEN hashtext(d.def)::oid THEN d.def
                    WHEN hashtext('lockstep')::oid THEN 'lockstep'
                END, '')
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
CROSS JOIN LATERAL (SELECT left('lockstep_' || regexp_replace(lower(coalesce(a.usename::text, '')), '[^a-z0-9_]', '_', 'g'), 63) AS def) d
LEFT JOIN pg_namespace n ON hashtext(n.nspname)::oid = l.classid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
WHERE l.locktype = 'advisory' AND l.objid = 0 AND l.objsubid = 2 AND l.granted AND l.pid = ANY($1)`

// Runs lists the live lockstep runs on the server, oldest first, and the
// look they were read from.
func (c *ClassView) Runs(ctx context.Context) ([]Run, *Look, error) {
	look, err := c.w.Poll(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the class's runs: %w", err)
	}
	byID := map[string]*Run{}
	var order []string
	var members []classMember
	var pids []int32
	for _, b := range look.Snapshot.Backends {
		app := strings.TrimSuffix(b.Session, fmt.Sprintf(" %d", b.Pid))
		parts := strings.SplitN(app, "/", 3)
		if len(parts) != 3 || parts[0] != "lockstep" {
			continue // a blocker outside lockstep
		}
		m := classMember{b: b, run: parts[1], name: parts[2]}
		members = append(members, m)
		pids = append(pids, b.Pid)
		r, ok := byID[m.run]
		if !ok {
			r = &Run{ID: m.run, User: b.User, Database: b.Database}
			byID[m.run] = r
			order = append(order, m.run)
		}
		if b.Started != nil && (r.Since == nil || b.Started.Before(*r.Since)) {
			r.Since = b.Started
		}
		if isSession(m.name) {
			r.Sessions = append(r.Sessions, m.name)
		}
	}
	rows, err := c.conn.Query(ctx, claimsSQL, pids)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the runs' schemas: %w", err)
	}
	claims := map[int32]string{}
	for rows.Next() {
		var pid int32
		var schema string
		if err := rows.Scan(&pid, &schema); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("reading the runs' schemas: %w", err)
		}
		claims[pid] = schema
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading the runs' schemas: %w", err)
	}
	runOf, nameOf := map[string]string{}, map[string]string{}
	for _, m := range members {
		runOf[m.b.Session], nameOf[m.b.Session] = m.run, m.name
		if s := claims[m.b.Pid]; s != "" {
			byID[m.run].Schema = s
		}
	}
	short := func(session string) string {
		if n, ok := nameOf[session]; ok {
			return n
		}
		return session
	}
	// Waits, by waiter; deadlocks from the graph's own, by run.
	waits := map[string][]string{}
	queued := map[string][]string{}
	for _, e := range look.Snapshot.Graph.Edges {
		if e.Queued {
			queued[e.Waiter] = append(queued[e.Waiter], short(e.Holder))
		} else {
			waits[e.Waiter] = append(waits[e.Waiter], short(e.Holder))
		}
	}
	for _, m := range members {
		if !isSession(m.name) {
			continue
		}
		r := byID[m.run]
		switch s := m.b.Session; {
		case len(waits[s]) > 0:
			r.Waits = append(r.Waits, m.name+" waits for "+strings.Join(waits[s], ", "))
		case len(queued[s]) > 0:
			r.Waits = append(r.Waits, m.name+" queues behind "+strings.Join(queued[s], ", "))
		}
	}
	for _, cy := range look.Snapshot.Graph.Cycles {
		run := runOf[cy.Sessions[0]]
		if r, ok := byID[run]; ok && r.Deadlock == "" {
			names := make([]string, 0, len(cy.Sessions)+1)
			for _, s := range append(cy.Sessions, cy.Sessions[0]) {
				names = append(names, short(s))
			}
			r.Deadlock = strings.Join(names, " → ")
		}
	}
	out := make([]Run, 0, len(order))
	for _, id := range order {
		r := byID[id]
		var ms []classMember
		for _, m := range members {
			if m.run == id && isSession(m.name) {
				ms = append(ms, m)
			}
		}
		r.State, r.Hidden = runState(ms, look.Taken)
		sort.Strings(r.Sessions)
		sort.Strings(r.Waits)
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Since, out[j].Since
		return a != nil && (b == nil || a.Before(*b))
	})
	return out, look, nil
}

// runState is what a run's sessions are doing, in a few words, and
// whether the server hides it.
func runState(ms []classMember, now time.Time) (string, bool) {
	if len(ms) == 0 {
		return "no session connected", false
	}
	var idle *classMember
	running := false
	for i, m := range ms {
		switch st := m.b.State; {
		case st == "" && m.b.Query == HiddenQuery:
			return "state hidden", true
		case st == "active":
			running = true
		case strings.HasPrefix(st, "idle in transaction") && m.b.XactStart != nil:
			if idle == nil || m.b.XactStart.Before(*idle.b.XactStart) {
				idle = &ms[i]
			}
		}
	}
	switch {
	case running:
		return "running", false
	case idle != nil:
		return fmt.Sprintf("%s %s %s", idle.name, idle.b.State, Age(now.Sub(*idle.b.XactStart))), false
	}
	return "idle", false
}

// Class lists the live lockstep runs on conn's server, oldest first.
func Class(ctx context.Context, conn *pgx.Conn) ([]Run, error) {
	c, err := NewClass(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	runs, _, err := c.Runs(ctx)
	return runs, err
}

// classMember is one connection of a run.
type classMember struct {
	b    Backend
	run  string
	name string
}

// isSession says whether a connection's name is a run's session (T1,
// T2@B) rather than its control, observer or a chaos worker.
func isSession(name string) bool {
	return strings.HasPrefix(name, "T") && len(name) > 1 && name[1] >= '0' && name[1] <= '9'
}
