package locks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/db"
)

// WatchFilter chooses the sessions a watch looks at: client backends of the
// current database (of every database with AllDatabases), but the
// watcher's own connection.
type WatchFilter struct {
	App          string  // LIKE pattern on application_name; "" means any
	User         string  // role name; "" means any
	Pids         []int32 // these backends only, when given
	AllDatabases bool
}

// WatchOptions set up a watch.
type WatchOptions struct {
	Filter WatchFilter
	// ReadOnly refuses to cancel or terminate any backend.
	ReadOnly bool
	// Threshold is how long a wait lasts before the history keeps it; 0 means 1s.
	Threshold time.Duration
	// ServerLog is the server's log file when lockstep can read it (a
	// throwaway server's): its "deadlock detected" reports go in the history.
	ServerLog string
}

// Watch is the observer on sessions lockstep did not start: each Poll
// reads who waits for whom among them (and whoever blocks them), draws it
// as a tree, and keeps a history of long waits and deadlocks. Its methods
// may be called from several goroutines; they take turns on its connection.
type Watch struct {
	mu      sync.Mutex
	conn    *pgx.Conn
	obs     *Observer
	opts    WatchOptions
	role    string
	seesAll bool
	history []WatchEvent
	waits   map[waitKey]*waitSeen
	cycles  map[string]int // standing cycle → its history index
	counter int64          // pg_stat_database.deadlocks last seen; -1 before the first poll
	log     *logTail
	logNote string
}

type waitKey struct {
	pid   int32
	since time.Time
}

type waitSeen struct {
	index int // in history, -1 until it lasts Threshold
}

// WatchEvent is one entry of the history: a wait that lasted, a deadlock
// seen while it stood, or the server's report of one it broke.
type WatchEvent struct {
	Time time.Time `json:"time"`
	// Kind is "wait", "deadlock" or "server" (the server broke a deadlock).
	Kind string `json:"kind"`
	What string `json:"what"`
	// Lasted is how long the wait or the deadlock stood, so far when not Ended.
	Lasted time.Duration `json:"lasted_ns,omitempty"`
	Ended  bool          `json:"ended"`
	// Statements are the participants' statements, "name: statement".
	Statements []string `json:"statements,omitempty"`
	// Detail is the server's own report (its log's DETAIL), when read.
	Detail string `json:"detail,omitempty"`
	// Tree is the tree as it stood (for a wait, its last look), at TreeAt.
	Tree   Tree      `json:"tree"`
	TreeAt time.Time `json:"tree_at"`
}

// Look is one poll of a watch.
type Look struct {
	Taken time.Time
	// Took is how long the poll took, both queries.
	Took     time.Duration
	Snapshot *Snapshot
	Tree     Tree
	// Watched counts the sessions the filter chooses; InTransaction those of
	// them in a transaction, and Idle those idle in one.
	Watched, InTransaction, IdleInTransaction int
	// ReadLocks says whether pg_locks was read: only when someone waits.
	ReadLocks bool
	// New are the history entries this poll added.
	New []WatchEvent
}

// ErrReadOnly is a cancel or terminate refused by --read-only.
var ErrReadOnly = errors.New("watch is read-only (--read-only): it cancels and terminates nothing")

// NewWatch prepares to watch on conn, the watch's own connection.
func NewWatch(ctx context.Context, conn *pgx.Conn, opts WatchOptions) (*Watch, error) {
	if opts.Threshold <= 0 {
		opts.Threshold = time.Second
	}
	obs, err := NewObserver(ctx, conn, db.RunID("watch"), "", WithoutRowLocks())
	if err != nil {
		return nil, err
	}
	w := &Watch{conn: conn, obs: obs, opts: opts, waits: map[waitKey]*waitSeen{}, cycles: map[string]int{}, counter: -1}
	err = conn.QueryRow(ctx, `SELECT current_user::text,
		(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')`).
		Scan(&w.role, &w.seesAll)
	if err != nil {
		return nil, fmt.Errorf("reading the watcher's role: %w", err)
	}
	if opts.ServerLog != "" {
		if w.log, err = openLogTail(opts.ServerLog); err != nil {
			w.logNote = fmt.Sprintf("the server's log cannot be read (%v): deadlocks the server breaks are counted, not detailed", err)
		}
	}
	return w, nil
}

// Close stops reading the server's log; the connection is the caller's.
func (w *Watch) Close() {
	if w.log != nil {
		w.log.f.Close()
	}
}

// DeadlockTimeout is the server's deadlock_timeout.
func (w *Watch) DeadlockTimeout() time.Duration { return w.obs.DeadlockTimeout() }

// ReadOnly says whether the watch refuses to signal backends.
func (w *Watch) ReadOnly() bool { return w.opts.ReadOnly }

// Notes are what the user should know once: statements the role cannot
// see, a log that cannot be read.
func (w *Watch) Notes() []string {
	var out []string
	if !w.seesAll {
		out = append(out, fmt.Sprintf("role %s lacks pg_read_all_stats: the server hides other roles' state and statements from it "+
			"(shown as hidden); who waits for whom and on which lock still shows, from pg_locks and pg_blocking_pids", w.role))
	}
	if w.logNote != "" {
		out = append(out, w.logNote)
	}
	return out
}

// History is every entry so far, oldest first.
func (w *Watch) History() []WatchEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WatchEvent(nil), w.history...)
}

// targetsSQL reads the chosen sessions and, one step beyond the filter,
// whoever blocks them: pg_blocking_pids only for a backend that waits, or
// whose wait the server hides from this role (its state is NULL then).
// The deadlock counter rides along.
const targetsSQL = `
WITH t AS (
    SELECT a.pid, coalesce(a.application_name, '') AS app, coalesce(a.usename::text, '') AS usr,
           coalesce(a.state, '') AS state, coalesce(a.wait_event_type, '') AS wait, a.xact_start,
           coalesce(a.query, '') AS query,
           CASE WHEN a.wait_event_type IN ('Lock', 'IPC') OR a.state IS NULL THEN pg_blocking_pids(a.pid) END AS blocked_by
    FROM pg_stat_activity a
    -- A role without pg_read_all_stats reads NULL for other roles' backend_type.
    WHERE coalesce(a.backend_type, 'client backend') = 'client backend' AND a.pid <> pg_backend_pid()
      AND ($4 OR a.datname = current_database())
      AND ($1 = '' OR a.application_name LIKE $1) AND ($2 = '' OR a.usename = $2)
      AND (cardinality($3::int[]) = 0 OR a.pid = ANY($3))
)
SELECT true, t.*, (SELECT sum(deadlocks)::bigint FROM pg_stat_database WHERE $4 OR datname = current_database()) FROM t
UNION ALL
SELECT false, a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(a.state, ''),
       coalesce(a.wait_event_type, ''), a.xact_start, coalesce(a.query, ''), NULL::int[], 0::bigint
FROM pg_stat_activity a
WHERE a.pid IN (SELECT unnest(blocked_by) FROM t) AND a.pid NOT IN (SELECT pid FROM t)`

type target struct {
	chosen    bool
	pid       int32
	app, user string
	state     string
	wait      string
	xact      *time.Time
	query     string
	blockedBy []int32
}

// Poll looks once: the chosen sessions from pg_stat_activity, and — only
// when one of them waits — the locks of the waiters and their blockers
// from pg_locks, which costs the server in proportion to every lock it holds.
func (w *Watch) Poll(ctx context.Context) (*Look, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	f := w.opts.Filter
	pids := f.Pids
	if pids == nil {
		pids = []int32{}
	}
	rows, err := w.conn.Query(ctx, targetsSQL, f.App, f.User, pids, f.AllDatabases)
	if err != nil {
		return nil, fmt.Errorf("finding the sessions to watch: %w", err)
	}
	var (
		targets  []target
		counter  *int64
		look     = &Look{}
		anyWaits bool
	)
	for rows.Next() {
		var t target
		var c *int64
		if err := rows.Scan(&t.chosen, &t.pid, &t.app, &t.user, &t.state, &t.wait, &t.xact, &t.query, &t.blockedBy, &c); err != nil {
			rows.Close()
			return nil, fmt.Errorf("finding the sessions to watch: %w", err)
		}
		if t.chosen {
			counter = c
			look.Watched++
			// An aborted transaction has no xact_start, yet holds its locks.
			if t.xact != nil || strings.HasPrefix(t.state, "idle in transaction") {
				look.InTransaction++
			}
			if strings.HasPrefix(t.state, "idle in transaction") {
				look.IdleInTransaction++
			}
		}
		anyWaits = anyWaits || len(t.blockedBy) > 0
		targets = append(targets, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding the sessions to watch: %w", err)
	}
	snap := &Snapshot{Taken: time.Now(), DeadlockTimeout: w.obs.DeadlockTimeout()}
	if anyWaits {
		// Every session found, not only those seen waiting or blocking: the
		// lock poll comes a moment later, and may see a wait this one did not.
		names, users := map[int32]string{}, map[int32]string{}
		for _, t := range targets {
			name := t.app
			if name == "" {
				name = "pid"
			}
			names[t.pid], users[t.pid] = fmt.Sprintf("%s %d", name, t.pid), t.user
		}
		w.obs.Named(names)
		if snap, err = w.obs.Poll(ctx); err != nil {
			return nil, err
		}
		for i := range snap.Backends {
			snap.Backends[i].User = users[snap.Backends[i].Pid]
		}
		look.ReadLocks = true
	}
	look.Taken, look.Snapshot, look.Tree = snap.Taken, snap, BuildTree(snap)
	look.New = w.remember(look, counter)
	look.Took = time.Since(start)
	return look, nil
}

// remember adds to the history what this look shows: waits that have
// lasted the threshold, cycles, and deadlocks the server broke.
func (w *Watch) remember(look *Look, counter *int64) []WatchEvent {
	before := len(w.history)
	snap, now := look.Snapshot, look.Taken
	statement := func(name string) string {
		if b, ok := snap.Backend(name); ok {
			return name + ": " + TreeNode{Query: b.Query}.Statement()
		}
		return name
	}
	// Waits, by waiter and when its wait began.
	holders := map[waitKey][]string{}
	var order []waitKey
	for _, e := range snap.Graph.Edges {
		since := now
		if e.Lock != nil && e.Lock.WaitStart != nil {
			since = *e.Lock.WaitStart
		}
		k := waitKey{e.WaiterPid, since.Truncate(time.Millisecond)}
		if e.Lock == nil || e.Lock.WaitStart == nil {
			// No start from the server (before 14): the first look's time stands for it.
			for old := range w.waits {
				if old.pid == e.WaiterPid {
					k = old
				}
			}
		}
		if _, ok := holders[k]; !ok {
			order = append(order, k)
		}
		holders[k] = append(holders[k], e.Holder)
	}
	for old, ws := range w.waits {
		if _, ok := holders[old]; !ok {
			if ws.index >= 0 {
				w.history[ws.index].Ended = true
			}
			delete(w.waits, old)
		}
	}
	for _, k := range order {
		ws, ok := w.waits[k]
		if !ok {
			ws = &waitSeen{index: -1}
			w.waits[k] = ws
		}
		lasted := now.Sub(k.since)
		if lasted < w.opts.Threshold {
			continue
		}
		waiter := snap.nameOf(k.pid)
		if ws.index < 0 {
			ev := WatchEvent{Time: k.since, Kind: "wait", What: waiter + " waits for " + strings.Join(holders[k], ", ")}
			ev.Statements = append(ev.Statements, statement(waiter))
			for _, h := range holders[k] {
				ev.Statements = append(ev.Statements, statement(h))
			}
			ws.index = len(w.history)
			w.history = append(w.history, ev)
		}
		w.history[ws.index].Lasted, w.history[ws.index].Tree, w.history[ws.index].TreeAt = lasted, look.Tree, now
	}
	// Deadlocks while they stand.
	standing := map[string]bool{}
	for _, c := range snap.Graph.Cycles {
		k := cycleKey(c)
		standing[k] = true
		if i, ok := w.cycles[k]; ok {
			w.history[i].Lasted, w.history[i].Tree, w.history[i].TreeAt = now.Sub(w.history[i].Time), look.Tree, now
			continue
		}
		ev := WatchEvent{Time: now, Kind: "deadlock", What: "DEADLOCK " + c.String(), Tree: look.Tree, TreeAt: now}
		for _, s := range c.Sessions {
			ev.Statements = append(ev.Statements, statement(s))
		}
		w.cycles[k] = len(w.history)
		w.history = append(w.history, ev)
	}
	for k, i := range w.cycles {
		if !standing[k] {
			w.history[i].Ended = true
			delete(w.cycles, k)
		}
	}
	// The server's verdicts: its log when lockstep can read it, else its counter.
	if w.log != nil {
		for _, r := range w.log.deadlocks() {
			ev := WatchEvent{Time: now, Kind: "server", Ended: true,
				What: "the server broke a deadlock: " + r.verdict, Detail: r.detail}
			w.attachLastDeadlock(&ev)
			w.history = append(w.history, ev)
		}
	}
	if counter != nil {
		if w.counter >= 0 && *counter > w.counter && w.log == nil {
			ev := WatchEvent{Time: now, Kind: "server", Ended: true,
				What: fmt.Sprintf("the server broke %d deadlock(s): pg_stat_database.deadlocks went from %d to %d", *counter-w.counter, w.counter, *counter)}
			w.attachLastDeadlock(&ev)
			w.history = append(w.history, ev)
		}
		w.counter = *counter
	}
	return append([]WatchEvent(nil), w.history[before:]...)
}

// attachLastDeadlock gives a server's verdict the tree of the last
// deadlock seen standing, when there is one.
func (w *Watch) attachLastDeadlock(ev *WatchEvent) {
	for i := len(w.history) - 1; i >= 0; i-- {
		if h := w.history[i]; h.Kind == "deadlock" {
			ev.Tree, ev.TreeAt, ev.Statements = h.Tree, h.TreeAt, h.Statements
			ev.What += " (the cycle seen at " + h.Time.Format("15:04:05") + ": " + strings.TrimPrefix(h.What, "DEADLOCK ") + ")"
			return
		}
	}
}

func cycleKey(c Cycle) string {
	names := append([]string(nil), c.Sessions...)
	sort.Strings(names)
	return strings.Join(names, "|")
}

// Signal cancels the statement of backend pid (pg_cancel_backend) or, with
// terminate, ends its session (pg_terminate_backend). The caller asks the
// user first; a read-only watch refuses.
func (w *Watch) Signal(ctx context.Context, pid int32, terminate bool) error {
	if w.opts.ReadOnly {
		return ErrReadOnly
	}
	fn, verb := "pg_cancel_backend", "cancel the statement of"
	if terminate {
		fn, verb = "pg_terminate_backend", "terminate"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var ok bool
	if err := w.conn.QueryRow(ctx, "SELECT "+fn+"($1)", pid).Scan(&ok); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege {
			return fmt.Errorf("the server refused to %s pid %d: %s (a role may signal its own sessions only, unless it has pg_signal_backend)",
				verb, pid, pgErr.Message)
		}
		return fmt.Errorf("trying to %s pid %d: %w", verb, pid, err)
	}
	if !ok {
		return fmt.Errorf("pid %d is not a backend any more: nothing to %s", pid, strings.Fields(verb)[0])
	}
	return nil
}

// logTail reads what a server appends to its log.
type logTail struct {
	f       *os.File
	r       *bufio.Reader
	partial string
	pending []string
}

func openLogTail(path string) (*logTail, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	return &logTail{f: f, r: bufio.NewReader(f)}, nil
}

// serverDeadlock is one "deadlock detected" the log reports.
type serverDeadlock struct {
	verdict, detail string
}

// logLine splits a line of the default log_line_prefix ('%m [%p] ') into
// its pid and message.
var logLine = regexp.MustCompile(`^\S+ \S+ \S+ \[(\d+)\] (\w+):  (.*)$`)

// deadlocks reads the log's new lines and returns the deadlock reports
// complete in them: the ERROR line and the DETAIL that follows it (with
// its tab-indented lines). A report still being written waits for the next call.
func (t *logTail) deadlocks() []serverDeadlock {
	for {
		line, err := t.r.ReadString('\n')
		if err != nil {
			t.partial += line
			break
		}
		t.pending = append(t.pending, strings.TrimRight(t.partial+line, "\n"))
		t.partial = ""
	}
	var out []serverDeadlock
	keep := 0
	for i := 0; i < len(t.pending); i++ {
		m := logLine.FindStringSubmatch(t.pending[i])
		if m == nil || m[2] != "ERROR" || m[3] != "deadlock detected" {
			keep = i + 1
			continue
		}
		// The report ends at the first line of another message after its DETAIL.
		var detail []string
		end := -1
		for j := i + 1; j < len(t.pending); j++ {
			l := t.pending[j]
			if strings.HasPrefix(l, "\t") {
				if len(detail) > 0 {
					detail = append(detail, strings.TrimSpace(l))
				}
				continue
			}
			dm := logLine.FindStringSubmatch(l)
			if dm != nil && dm[1] == m[1] && dm[2] == "DETAIL" {
				detail = append(detail, dm[3])
				continue
			}
			end = j
			break
		}
		if end < 0 && len(detail) == 0 {
			break // wait for the rest
		}
		out = append(out, serverDeadlock{verdict: "pid " + m[1] + " got 40P01 (deadlock detected), and its transaction was rolled back",
			detail: strings.Join(detail, "\n")})
		if end < 0 {
			keep = len(t.pending)
			break
		}
		keep, i = end, end-1
	}
	t.pending = t.pending[keep:]
	return out
}
