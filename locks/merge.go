package locks

import (
	"fmt"
	"strings"
)

// Logical is the logical session a connection belongs to in a two-database
// run: "T1" for "T1@A". Other names are their own logical session.
func Logical(session string) string {
	name, _, _ := strings.Cut(session, "@")
	return name
}

// Merge joins the snapshots of one run's databases — one per server or
// database, each with its own wait-for graph — into one, and adds the edges
// no server can see. A logical session (T1) holds one connection per
// database (T1@A, T1@B) and runs one statement at a time: while its
// connection to B waits, its transaction in A stays open, so whatever waits
// for T1@A waits, through the application, for T1@B. With those edges a
// cycle across databases shows up as a distributed deadlock.
func Merge(snaps ...*Snapshot) *Snapshot {
	if len(snaps) == 1 {
		return snaps[0]
	}
	out := &Snapshot{}
	var notes []string
	for _, s := range snaps {
		if s.Taken.After(out.Taken) {
			out.Taken = s.Taken
		}
		out.DeadlockTimeout = max(out.DeadlockTimeout, s.DeadlockTimeout)
		out.Backends = append(out.Backends, s.Backends...)
		out.Locks = append(out.Locks, s.Locks...)
		out.RowLocks = append(out.RowLocks, s.RowLocks...)
		out.Graph.Edges = append(out.Graph.Edges, s.Graph.Edges...)
		if s.RowLockNote != "" && !strings.Contains(strings.Join(notes, "\n"), s.RowLockNote) {
			notes = append(notes, s.RowLockNote)
		}
	}
	out.RowLockNote = strings.Join(notes, "; ")
	app := applicationEdges(out.Backends)
	// What the server sees of a holder the application keeps busy elsewhere:
	// a session idle in transaction.
	for i := range out.Graph.Edges {
		e := &out.Graph.Edges[i]
		for _, a := range app {
			if a.Waiter == e.Holder && !isActive(out.Backends, a.Waiter) {
				seen := fmt.Sprintf("the server sees %s only as idle in transaction: its application is waiting on %s", e.Holder, a.Holder)
				if strings.HasSuffix(e.Why, ".") {
					e.Why += " " + strings.ToUpper(seen[:1]) + seen[1:] + "."
				} else {
					e.Why += "; " + seen
				}
				break
			}
		}
	}
	out.Graph.Edges = append(out.Graph.Edges, app...)
	out.Graph.findCycles(out)
	return out
}

// applicationEdges draws holder ⇢ waiter between the connections of one
// logical session: the one in a transaction cannot end while the other's
// statement waits.
func applicationEdges(backends []Backend) []Edge {
	var edges []Edge
	for _, w := range backends {
		if w.Prepared != "" || !w.Waiting() || !strings.Contains(w.Session, "@") {
			continue
		}
		for _, h := range backends {
			if h.Prepared != "" || h.Session == w.Session || Logical(h.Session) != Logical(w.Session) || h.XactStart == nil {
				continue
			}
			why := fmt.Sprintf("%s cannot end its transaction in %s until %s's statement returns: the application holds one open while it waits on the other (no server sees this)",
				Logical(h.Session), dbOf(h), w.Session)
			if h.State == "active" {
				// A statement running while its other connection waits: its
				// remote part (postgres_fdw), which it waits for.
				why = fmt.Sprintf("%s's statement in %s waits for its remote part, %s, in %s (postgres_fdw): no server sees this wait",
					h.Session, dbOf(h), w.Session, dbOf(w))
			}
			edges = append(edges, Edge{
				Waiter: h.Session, WaiterPid: h.Pid, Holder: w.Session, HolderPid: w.Pid, Application: true, Why: why,
				Remote: h.State == "active",
			})
		}
	}
	return edges
}

// dbOf names a backend's database: its label, or what its session name says.
func dbOf(b Backend) string {
	if b.Database != "" {
		return b.Database
	}
	_, db, _ := strings.Cut(b.Session, "@")
	return db
}

// isActive says whether the session's backend is running a statement (a
// postgres_fdw statement waiting for its remote part), not idle in
// transaction.
func isActive(backends []Backend, session string) bool {
	for _, b := range backends {
		if b.Session == session {
			return b.State == "active"
		}
	}
	return false
}
