package locks

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/lazyre"
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

// Empty says whether the filter chooses every client session.
func (f WatchFilter) Empty() bool { return f.App == "" && f.User == "" && len(f.Pids) == 0 }

// WatchOptions set up a watch.
type WatchOptions struct {
	Filter WatchFilter
	// ReadOnly refuses to cancel or terminate any backend.
	ReadOnly bool
	// Threshold is how long a wait lasts before the history keeps it; 0 means 1s.
	Threshold time.Duration
	// ServerLog is the server's log file when lockstep can read it from
	// disk (a throwaway server's). Otherwise the watch reads the log through
	// SQL where the role may (pg_current_logfile, pg_read_binary_file).
	ServerLog string
	// MaxLockRows bounds the lock rows a look reads; 0 means 20,000.
	MaxLockRows int
}

// Watch is the observer on sessions lockstep did not start: each Poll
// reads who waits for whom among them (and whoever blocks them), draws it
// as a tree, and keeps a history of long waits and deadlocks. Its methods
// may be called from several goroutines; they take turns on its connection.
type Watch struct {
	mu       sync.Mutex
	conn     *pgx.Conn
	opts     WatchOptions
	query    string
	deadlock time.Duration
	role     string
	database string
	seesAll  bool
	hist     history
	// counterAt is when a look last read the deadlock counter.
	counterAt time.Time
	log       logSource
	logNote   string
}

// WatchEvent is one entry of the history: a wait that lasted, or a
// deadlock — seen while it stood, or known only from the server's verdict.
// An entry changes after it is made (a wait lasts, a deadlock ends and
// gets its verdict): a look's New carries it again, with the same ID.
type WatchEvent struct {
	// ID numbers the watch's entries from 1; MergeHistory keys on it.
	ID   int       `json:"id,omitempty"`
	Time time.Time `json:"time"`
	// Kind is "wait" or "deadlock" ("server" in recordings made before
	// deadlocks and the server's verdicts were one entry).
	Kind string `json:"kind"`
	What string `json:"what"`
	// Lasted is how long the wait or the deadlock stood, so far when not Ended.
	Lasted time.Duration `json:"lasted_ns,omitempty"`
	Ended  bool          `json:"ended"`
	// Statements are the participants' statements, "name: statement".
	Statements []string `json:"statements,omitempty"`
	// Sessions and Pids are a deadlock's sessions: every member of its
	// component.
	Sessions []string `json:"sessions,omitempty"`
	Pids     []int32  `json:"pids,omitempty"`
	// Seen says a look saw the deadlock standing; false when only the
	// server's log or counter tells of it (it formed and broke between looks).
	Seen bool `json:"seen,omitempty"`
	// Victim is the session the server's check rolled back, when its log
	// says; VictimPid its pid.
	Victim    string `json:"victim,omitempty"`
	VictimPid int32  `json:"victim_pid,omitempty"`
	// Verdict says how the deadlock ended or will, in words: the server's
	// report, or why the victim is unknown.
	Verdict string `json:"verdict,omitempty"`
	// Counted says pg_stat_database.deadlocks rose for it.
	Counted bool `json:"counted,omitempty"`
	// Unattributed marks a deadlock known only from the counter, with a
	// filter: it may be another application's.
	Unattributed bool `json:"unattributed,omitempty"`
	// Detail is the server's own report (its log's DETAIL), when read.
	Detail string `json:"detail,omitempty"`
	// Tree is the tree as it stood (for a wait, its last look), at TreeAt;
	// only the newest entries keep theirs.
	Tree   Tree      `json:"tree,omitzero"`
	TreeAt time.Time `json:"tree_at,omitzero"`
}

// MergeHistory adds entries to a history as looks report them: one with
// the ID of an earlier one replaces it.
func MergeHistory(h []WatchEvent, news ...WatchEvent) []WatchEvent {
	for _, ev := range news {
		i := -1
		if ev.ID != 0 {
			for j := len(h) - 1; j >= 0; j-- {
				if h[j].ID == ev.ID {
					i = j
					break
				}
			}
		}
		if i >= 0 {
			h[i] = ev
		} else {
			h = append(h, ev)
		}
	}
	return h
}

// Look is one poll of a watch.
type Look struct {
	Taken time.Time
	// Took is how long the look took, its query and the work on what it read.
	Took     time.Duration
	Snapshot *Snapshot
	Tree     Tree
	// Watched counts the sessions the filter chooses; InTransaction those of
	// them in a transaction, and Idle those idle in one. Hidden counts those
	// whose state the server hides from the watch's role (another role's,
	// without pg_read_all_stats): the other counts leave them out.
	Watched, InTransaction, IdleInTransaction, Hidden int
	// ReadLocks says whether pg_locks was read: only when someone waits.
	ReadLocks bool
	// LockRowsCut says the look read the most lock rows it may (MaxLockRows).
	LockRowsCut bool
	// New are the history entries this look added or changed.
	New []WatchEvent
	// chosen are the pids the filter chose.
	chosen []int32
}

// Partial says whether the counts leave sessions out.
func (l *Look) Partial() bool { return l.Hidden > 0 }

// ErrReadOnly is a cancel or terminate refused by --read-only.
var ErrReadOnly = errors.New("watch is read-only (--read-only): it cancels and terminates nothing")

// watchSQL is a look: one statement, kept as SQL in watch.sql.
//
//go:embed watch.sql
var watchSQL string

// NewWatch prepares to watch on conn, the watch's own connection.
func NewWatch(ctx context.Context, conn *pgx.Conn, opts WatchOptions) (*Watch, error) {
	if opts.Threshold <= 0 {
		opts.Threshold = time.Second
	}
	if opts.MaxLockRows <= 0 {
		opts.MaxLockRows = 20000
	}
	w := &Watch{conn: conn, opts: opts, query: watchSQL, hist: newHistory(opts)}
	var version int
	var timeout string
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('deadlock_timeout'),
		current_user::text, current_database()::text,
		(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')`).
		Scan(&version, &timeout, &w.role, &w.database, &w.seesAll)
	if err != nil {
		return nil, fmt.Errorf("reading the watcher's role and the server's settings: %w", err)
	}
	w.deadlock = ParsePgDuration(timeout)
	if version < 140000 {
		w.query = strings.Replace(w.query, "kept.mode, kept.granted, kept.fastpath, kept.waitstart", "kept.mode, kept.granted, kept.fastpath, NULL::timestamptz", 1)
	}
	// The watch must never wait behind a session, nor for long at all. Its
	// look is planned once: its plan does not depend on the filter's
	// values, and planning it again each time costs as much as running it.
	if _, err := conn.Exec(ctx, "SET lock_timeout = '50ms'; SET plan_cache_mode = force_generic_plan"); err != nil {
		return nil, fmt.Errorf("setting the watch's lock_timeout: %w", err)
	}
	w.log, w.logNote = openLog(ctx, conn, opts.ServerLog, w.role)
	w.hist.logged, w.hist.unlogged = w.log != nil, shortLogNote(w.logNote)
	return w, nil
}

// Close stops reading the server's log; the connection is the caller's.
func (w *Watch) Close() {
	if w.log != nil {
		w.log.close()
	}
}

// DeadlockTimeout is the server's deadlock_timeout.
func (w *Watch) DeadlockTimeout() time.Duration { return w.deadlock }

// ReadOnly says whether the watch refuses to signal backends.
func (w *Watch) ReadOnly() bool { return w.opts.ReadOnly }

// Role is the role the watch connects as.
func (w *Watch) Role() string { return w.role }

// SeesAll says whether the role sees every session's state and statement.
func (w *Watch) SeesAll() bool { return w.seesAll }

// HiddenNote says, once, what a role without pg_read_all_stats does not
// see, and how to get it.
func HiddenNote(role string) string {
	return fmt.Sprintf("role %s lacks pg_read_all_stats: other roles' state and statements are hidden and left out of the counts "+
		"(waits still show); a superuser shows them with GRANT pg_read_all_stats TO %s;", role, ident(role))
}

// ident is a role's name as SQL needs it: quoted only when it must be.
func ident(name string) string {
	if plainIdent.MatchString(name) {
		return name
	}
	return pgx.Identifier{name}.Sanitize()
}

var plainIdent = lazyre.New(`^[a-z_][a-z0-9_$]*$`)

// Notes are what the user should know once about what the tree shows:
// the state and statements the role may not see.
func (w *Watch) Notes() []string {
	if !w.seesAll {
		return []string{HiddenNote(w.role)}
	}
	return nil
}

// LogNote says why the server's log is not read, if it is not: deadlocks'
// victims are not named then. The history's verdicts say it where it
// matters; a headless watch says it once.
func (w *Watch) LogNote() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logNote
}

// History is every entry so far, oldest first (the oldest dropped past
// a bound, see history).
func (w *Watch) History() []WatchEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hist.entries()
}

// Made counts the history's entries ever made of a kind ("wait",
// "deadlock"), those dropped past the history's bound too.
func (w *Watch) Made(kind string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hist.made[kind]
}

// Poll looks once: one statement reads the chosen sessions and their
// blockers and — only when one of them waits — the lock rows that explain
// the waits. ctx ends it mid-query: pgx cancels the statement.
func (w *Watch) Poll(ctx context.Context) (*Look, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	f := w.opts.Filter
	pids := f.Pids
	if pids == nil {
		pids = []int32{}
	}
	// The counter rises seconds after a deadlock (see history.remember):
	// once a second is often enough, and it costs as much as a small look.
	readCounter := time.Since(w.counterAt) >= time.Second
	if readCounter {
		w.counterAt = start
	}
	rows, err := w.conn.Query(ctx, w.query, f.App, f.User, pids, f.AllDatabases, w.opts.MaxLockRows, readCounter)
	if err != nil {
		return nil, fmt.Errorf("looking at the sessions: %w", err)
	}
	look := &Look{}
	snap := &Snapshot{DeadlockTimeout: w.deadlock}
	var counter *int64
	var myDB uint32 // the connection's database's oid
	lockRows := 0
	prepared := map[string]string{} // a prepared transaction's virtual transaction → its session
	type rawLock struct {
		Lock
		vtx string
	}
	var raw []rawLock
	for rows.Next() {
		var (
			kind                                 string
			pid                                  int32
			chosen                               *bool
			datname, app, usr, state, wtype, wev *string
			xact, backendStart                   *time.Time
			query                                *string
			blockedBy, safeBy                    []int32
			count                                *int64
			vtx, locktype, lockDB, relname, vxid *string
			relkind                              *string
			dbOID, relOID, txid, classid, objid  *int64
			page                                 *int32
			tuple, objsubid                      *int16
			mode                                 *string
			granted, fastpath                    *bool
			waitStart                            *time.Time
		)
		if err := rows.Scan(&kind, &pid, &chosen, &datname, &app, &usr, &state, &wtype, &wev, &xact, &backendStart, &query,
			&blockedBy, &safeBy, &count, &vtx, &locktype, &dbOID, &relOID, &lockDB, &relname, &relkind, &page, &tuple, &vxid,
			&txid, &classid, &objid, &objsubid, &mode, &granted, &fastpath, &waitStart); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading a look at the sessions: %w", err)
		}
		switch kind {
		case "c":
			counter = count
			if oid, err := strconv.ParseUint(str(datname), 10, 32); err == nil {
				myDB = uint32(oid)
			}
		case "s":
			b := Backend{Pid: pid, User: str(usr), State: str(state), WaitEventType: str(wtype), WaitEvent: str(wev),
				XactStart: xact, Started: backendStart, Query: str(query), BlockedBy: blockedBy, SafeSnapshotBlockedBy: safeBy}
			name := str(app)
			if gid, ok := strings.CutPrefix(name, preparedPrefix); ok {
				b.Prepared, b.Session = gid, "prepared "+gid
				prepared[str(vtx)] = b.Session
			} else {
				if name == "" {
					name = "pid"
				}
				b.Session = name + " " + strconv.Itoa(int(pid))
			}
			if f.AllDatabases {
				b.Database = str(datname)
			}
			hidden := state == nil && b.Query == HiddenQuery
			if hidden && len(b.BlockedBy) > 0 {
				// The server hides the wait event from this role;
				// pg_blocking_pids still says the backend waits for a lock.
				b.WaitEventType = "Lock"
			}
			if chosen != nil && *chosen {
				look.Watched++
				look.chosen = append(look.chosen, pid)
				switch {
				case hidden:
					look.Hidden++
				case strings.HasPrefix(b.State, "idle in transaction"):
					// An aborted transaction has no xact_start, yet holds its locks.
					look.InTransaction++
					look.IdleInTransaction++
				case b.XactStart != nil:
					look.InTransaction++
				}
			}
			snap.Backends = append(snap.Backends, b)
		case "l":
			lockRows++
			l := Lock{Pid: pid, Type: str(locktype), Relation: str(relname), RelKind: str(relkind), Page: page, Tuple: tuple,
				VirtualXID: str(vxid), TransactionID: uint32(i64(txid)), ClassID: uint32(i64(classid)), ObjID: uint32(i64(objid)),
				Mode: str(mode), Granted: granted != nil && *granted, FastPath: fastpath != nil && *fastpath, WaitStart: waitStart,
				RelationID: uint32(i64(relOID)), DatabaseID: uint32(i64(dbOID))}
			if objsubid != nil {
				l.ObjSubID = *objsubid
			}
			raw = append(raw, rawLock{l, str(vtx)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading a look at the sessions: %w", err)
	}
	look.ReadLocks, look.LockRowsCut = lockRows > 0, lockRows >= w.opts.MaxLockRows
	names, dbOf := map[int32]string{}, map[int32]string{}
	for _, b := range snap.Backends {
		if b.Pid != 0 {
			names[b.Pid], dbOf[b.Pid] = b.Session, b.Database
		}
	}
	for _, r := range raw {
		l := r.Lock
		if l.Relation == "" && l.RelationID != 0 {
			// Another database's relation (or one just dropped): its name
			// is in that database's catalog alone. A lock of a database's
			// own is its backend's database's.
			l.Relation = fmt.Sprintf("relation %d", l.RelationID)
			if l.DatabaseID != 0 && l.DatabaseID != myDB {
				l.Relation += " of another database"
				if db := dbOf[l.Pid]; db != "" {
					l.Relation = fmt.Sprintf("relation %d of database %s", l.RelationID, db)
				}
			}
		}
		switch {
		case l.Pid == 0:
			l.Session = prepared[r.vtx]
		default:
			l.Session = names[l.Pid]
		}
		if l.Session == "" {
			l.Session = snap.nameOf(l.Pid)
		}
		snap.Locks = append(snap.Locks, l)
	}
	// Whose transaction a transactionid or virtualxid lock is: the holder
	// of its ExclusiveLock, among the rows read (a blocker's, when it blocks).
	owner := map[string]string{}
	for _, l := range snap.Locks {
		if l.Granted && l.Mode == "ExclusiveLock" && (l.Type == "transactionid" || l.Type == "virtualxid") {
			owner[l.Type+l.VirtualXID+strconv.FormatUint(uint64(l.TransactionID), 10)] = l.Session
		}
	}
	for i := range snap.Locks {
		if l := &snap.Locks[i]; l.Type == "transactionid" || l.Type == "virtualxid" {
			l.TxOwner = owner[l.Type+l.VirtualXID+strconv.FormatUint(uint64(l.TransactionID), 10)]
		}
	}
	snap.Taken = time.Now()
	snap.Graph = BuildGraph(snap)
	look.Taken, look.Snapshot, look.Tree = snap.Taken, snap, BuildTree(snap)
	var verdicts []serverDeadlock
	if w.log != nil {
		var note string
		verdicts, note = w.log.read(ctx, w.conn)
		if note != "" {
			w.logNote = note
		}
	}
	look.New = w.hist.remember(look, counter, verdicts)
	look.Took = time.Since(start)
	return look, nil
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
