package locks

import (
	"context"
	"fmt"
	"slices"
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
	Schema   string // "" when it cannot be told (another database, no claim)
	Since    time.Time
	Sessions []string
	// Waits are "T2 waits for T1", one per waiting session.
	Waits []string
	// Deadlock names a cycle among the run's sessions, "T1 → T2 → T1".
	Deadlock string
}

// classSQL reads every lockstep connection of the server and, for those in
// this database, the schema their run claims (the advisory key
// (hashtext(schema), 0) on the run's control connection).
const classSQL = `
SELECT a.pid, a.usename::text, coalesce(a.datname::text, ''), a.application_name, a.backend_start,
       CASE WHEN a.wait_event_type IN ('Lock', 'IPC') THEN pg_blocking_pids(a.pid) END,
       coalesce((SELECT n.nspname::text FROM pg_locks l JOIN pg_namespace n ON hashtext(n.nspname)::oid = l.classid
                 WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.objid = 0 AND l.objsubid = 2
                   AND a.datname = current_database() LIMIT 1), '')
FROM pg_stat_activity a
WHERE a.application_name LIKE 'lockstep/%/%'
ORDER BY a.backend_start`

// Class lists the live lockstep runs on conn's server, oldest first.
func Class(ctx context.Context, conn *pgx.Conn) ([]Run, error) {
	rows, err := conn.Query(ctx, classSQL)
	if err != nil {
		return nil, fmt.Errorf("reading the class's runs: %w", err)
	}
	type backend struct {
		pid     int32
		run     string
		name    string
		blocked []int32
	}
	byID := map[string]*Run{}
	var order []string
	var backends []backend
	for rows.Next() {
		var (
			b                 backend
			user, dbname, app string
			schema            string
			since             time.Time
		)
		if err := rows.Scan(&b.pid, &user, &dbname, &app, &since, &b.blocked, &schema); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the class's runs: %w", err)
		}
		parts := strings.SplitN(app, "/", 3)
		b.run, b.name = parts[1], parts[2]
		r, ok := byID[b.run]
		if !ok {
			r = &Run{ID: b.run, User: user, Database: dbname, Since: since}
			byID[b.run] = r
			order = append(order, b.run)
		}
		if schema != "" {
			r.Schema = schema
		}
		if isSession(b.name) {
			r.Sessions = append(r.Sessions, b.name)
		}
		backends = append(backends, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the class's runs: %w", err)
	}
	names := map[int32]string{}
	for _, b := range backends {
		names[b.pid] = b.name
	}
	edges := map[string][]string{}
	for _, b := range backends {
		if !isSession(b.name) || len(b.blocked) == 0 {
			continue
		}
		var holders []string
		for _, pid := range b.blocked {
			h, ok := names[pid]
			if !ok {
				h = fmt.Sprintf("pid %d", pid)
			}
			holders = append(holders, h)
			edges[b.run+"/"+b.name] = append(edges[b.run+"/"+b.name], b.run+"/"+h)
		}
		r := byID[b.run]
		r.Waits = append(r.Waits, b.name+" waits for "+strings.Join(holders, ", "))
	}
	out := make([]Run, 0, len(order))
	for _, id := range order {
		r := byID[id]
		sort.Strings(r.Sessions)
		sort.Strings(r.Waits)
		r.Deadlock = cycleFrom(edges, id+"/", r.Sessions)
		out = append(out, *r)
	}
	return out, nil
}

// isSession says whether a connection's name is a run's session (T1,
// T2@B) rather than its control, observer or a chaos worker.
func isSession(name string) bool {
	return strings.HasPrefix(name, "T") && len(name) > 1 && name[1] >= '0' && name[1] <= '9'
}

// cycleFrom finds a wait-for cycle among a run's sessions, as
// "T1 → T2 → T1", or "": a depth-first walk of the waits.
func cycleFrom(edges map[string][]string, prefix string, sessions []string) string {
	var path []string
	onPath := map[string]bool{}
	var walk func(n string) string
	walk = func(n string) string {
		if onPath[n] {
			i := slices.Index(path, n)
			var names []string
			for _, p := range append(path[i:], n) {
				names = append(names, strings.TrimPrefix(p, prefix))
			}
			return strings.Join(names, " → ")
		}
		if !slices.Contains(sessions, strings.TrimPrefix(n, prefix)) {
			return ""
		}
		onPath[n] = true
		path = append(path, n)
		for _, m := range edges[n] {
			if c := walk(m); c != "" {
				return c
			}
		}
		path = path[:len(path)-1]
		onPath[n] = false
		return ""
	}
	for _, start := range sessions {
		if c := walk(prefix + start); c != "" {
			return c
		}
	}
	return ""
}
