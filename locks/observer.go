package locks

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/db"
)

// Observer polls the server for one run's locks on a connection of its own.
type Observer struct {
	conn     *pgx.Conn
	run      db.RunID
	query    string
	nsKey    uint32 // hashtext(schema): the advisory keys' first half
	deadlock time.Duration
	// rowLocks is "schema.pgrowlocks" when the extension is usable, "" if not.
	rowLocks string
	// rowNote says, once, why row locks cannot be shown.
	rowNote string
	noRows  bool
	// waitsOnly polls without lock rows (WaitsOnly).
	waitsOnly bool
	// label names the database in a two-database run ("A", "B"); "" otherwise.
	label string
	// prepared adds the run's prepared transactions to every poll.
	prepared bool
	// byPid names the sessions found by pid rather than application_name.
	byPid map[int32]string
	pids  []int32
	// inferred are the row locks the run's sessions hold by what they were
	// sent, used where pgrowlocks cannot be read.
	inferred []RowLock
	// bigNote, when set, says that the accounts table is too big for
	// pgrowlocks, which reads every row of it on every poll; sizedAt is
	// when its size was last looked at.
	bigMu   sync.Mutex // bigNote is read by the views too
	bigNote string
	sizedAt time.Time
	// serverTime is what the last poll's query cost the server.
	serverTime time.Duration
	// xidSession names the sessions' transaction ids seen in polls, so that
	// a multixact member whose transaction has ended (pgrowlocks gives it
	// pid 0) is still named by the session that ran it.
	xidSession map[uint32]string
	// heldRows reads the row locks nobody waits for on a scenario's own
	// tables (WithHeldRowLocks).
	heldRows bool
	// smallTables says, per table, whether it is small enough for pgrowlocks
	// to read whole on every poll, for the row locks nobody waits for yet.
	smallTables map[string]bool
}

// maxXids bounds xidSession: past it, the ids seen before are forgotten.
const maxXids = 4096

// smallTablePages is the size, in pages, up to which the observer reads a
// scenario table's row locks whole on every poll (pgrowlocks scans it all).
const smallTablePages = 150

// remember notes the sessions' transaction ids in this poll.
func (o *Observer) remember(snap *Snapshot) {
	if o.xidSession == nil || len(o.xidSession) > maxXids {
		o.xidSession = map[uint32]string{}
	}
	for _, b := range snap.Backends {
		if b.Xid != 0 && b.Session != "" {
			o.xidSession[b.Xid] = b.Session
		}
	}
	for _, l := range snap.Locks {
		// A subtransaction's own id (after a SAVEPOINT) too.
		if l.Type == "transactionid" && l.Granted && l.Mode == "ExclusiveLock" && l.Session != "" {
			o.xidSession[l.TransactionID] = l.Session
		}
	}
}

// ServerTime is how long the server spent on the last poll's query: the
// cost that grows with every lock on the server, measured there, not
// slowed by the client. Only the polling goroutine calls it.
func (o *Observer) ServerTime() time.Duration { return o.serverTime }

// big is bigNote, read safely from any goroutine.
func (o *Observer) big() string {
	o.bigMu.Lock()
	defer o.bigMu.Unlock()
	return o.bigNote
}

// bigPages is the size of accounts, in pages, above which the observer
// stops reading pgrowlocks (a whole-table scan per poll) and infers the row
// locks from the statements instead: about 20,000 accounts.
const bigPages = 150

// resizeEvery is how often the observer looks at the table's size again:
// only a reset changes it.
const resizeEvery = 2 * time.Second

// Infer gives the observer the row locks the sessions hold by the statements
// they were sent (a foreign-key check's FOR KEY SHARE, a SELECT … FOR
// UPDATE, an UPDATE's FOR NO KEY UPDATE). Where pgrowlocks cannot be read,
// polls report these, marked Inferred, so that a wait on a transaction is
// still explained by the row modes that decide it. Only the polling
// goroutine calls it.
func (o *Observer) Infer(rows []RowLock) { o.inferred = rows }

// Named tells the observer which backends to read by pid, and their
// session names, besides those the run's application_name finds: sessions
// whose application_name is the user's to choose (the isolation tester
// names them PGAPPNAME/session). Only the polling goroutine calls it.
func (o *Observer) Named(byPid map[int32]string) {
	o.byPid = byPid
	o.pids = o.pids[:0]
	for pid := range byPid {
		o.pids = append(o.pids, pid)
	}
}

type backendKey struct {
	pid int32
	app string
}

// pollSQL is the poll: one query, kept as SQL in poll.sql.
//
//go:embed poll.sql
var pollSQL string

// preparedPrefix marks a prepared transaction's pseudo-backend in the poll
// query's name column.
const preparedPrefix = "prepared:"

// Option tunes an observer.
type Option func(*Observer)

// WithoutRowLocks skips pgrowlocks altogether (and never creates it), for
// runs that are not about the ledger.
func WithoutRowLocks() Option { return func(o *Observer) { o.noRows = true } }

// WithHeldRowLocks also reads, on each small table other than accounts that
// a session holds ROW SHARE or ROW EXCLUSIVE on, the sessions' row locks
// that nobody waits for yet (SKIP LOCKED's, the row a NOWAIT failed on),
// for a scenario's own tables: a query per table per poll.
func WithHeldRowLocks() Option { return func(o *Observer) { o.heldRows = true } }

// WaitsOnly makes every poll read who waits for whom and none of the lock
// rows (nor row locks): a tenth of the cost, for a view that needs no
// explanations, such as the isolation tester's.
func WaitsOnly() Option { return func(o *Observer) { o.waitsOnly, o.noRows = true, true } }

// WithLabel labels everything the observer reads with the database's name in
// a two-database run.
func WithLabel(label string) Option { return func(o *Observer) { o.label = label } }

// WithPrepared makes every poll also read the run's prepared transactions
// (global ids lockstep/<run>/…) and their locks, for runs that prepare them.
func WithPrepared() Option { return func(o *Observer) { o.prepared = true } }

// Label is the database label the observer was given.
func (o *Observer) Label() string { return o.label }

// PreparedName is how a snapshot names a prepared transaction of the run:
// "prepared " and its global id without the run's prefix ("prepared T1@B").
func PreparedName(run db.RunID, gid string) string {
	name, _ := run.Name(gid)
	return PreparedLabel(name)
}

// PreparedLabel is how a snapshot names the prepared transaction that
// session name prepared under its own name.
func PreparedLabel(name string) string { return "prepared " + name }

// NewObserver prepares to poll the sessions of run, whose ledger lives in
// schema. conn must be the observer's own connection, outside any session's
// transaction.
func NewObserver(ctx context.Context, conn *pgx.Conn, run db.RunID, schema string, opts ...Option) (*Observer, error) {
	o := &Observer{conn: conn, run: run}
	for _, opt := range opts {
		opt(o)
	}
	var version int
	var timeout string
	var ns int32
	// One round trip (no statement to prepare): every run starts with it.
	err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, current_setting('deadlock_timeout'), hashtext($1)",
		pgx.QueryExecModeSimpleProtocol, schema).
		Scan(&version, &timeout, &ns)
	if err != nil {
		return nil, fmt.Errorf("reading server settings: %w", err)
	}
	o.nsKey = uint32(ns)
	o.deadlock = ParsePgDuration(timeout)
	o.query = pollSQL
	if o.waitsOnly {
		o.query = waitsQuery(pollSQL)
	}
	if version < 140000 {
		o.query = strings.Replace(o.query, "l.waitstart\n", "NULL::timestamptz AS waitstart\n", 1)
	}
	// The observer must never wait behind a session: anything it reads from the
	// ledger's tables gives up at once if a session holds them exclusively.
	if _, err := conn.Exec(ctx, "SET lock_timeout = '50ms'"); err != nil {
		return nil, fmt.Errorf("setting the observer's lock_timeout: %w", err)
	}
	if !o.noRows {
		o.setUpRowLocks(ctx)
	}
	return o, nil
}

// setUpRowLocks finds or creates the pgrowlocks extension, or notes why not.
func (o *Observer) setUpRowLocks(ctx context.Context) {
	find := func() string {
		var schema string
		err := o.conn.QueryRow(ctx,
			"SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgrowlocks'").Scan(&schema)
		if err != nil {
			return ""
		}
		return pgx.Identifier{schema}.Sanitize() + ".pgrowlocks"
	}
	if o.rowLocks = find(); o.rowLocks != "" {
		return
	}
	// In public, not the ledger's schema: an extension exists once per
	// database, and a reset drops the ledger's schema.
	_, err := o.conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pgrowlocks SCHEMA public")
	if err != nil {
		// Another lockstep may have created it at the same moment (a unique
		// violation on pg_extension): then it is there to use.
		if o.rowLocks = find(); o.rowLocks != "" {
			return
		}
		cfg := o.conn.Config()
		if code := db.SQLState(err); code == pgerrcode.FeatureNotSupported || code == pgerrcode.UndefinedFile {
			// The server has no pgrowlocks to add: its contrib is not
			// installed ("is not available" in recent releases, "could
			// not open extension control file" in older ones).
			o.rowNote = "row locks: from the statements lockstep sent, not read from the rows " +
				"(this server's installation has no pgrowlocks: install its contrib package, e.g. postgresql-contrib)"
			return
		}
		o.rowNote = fmt.Sprintf("row locks: from the statements lockstep sent, not read from the rows "+
			"(pgrowlocks is not in database %s, and role %s may not add it; an administrator can, once, for every role: "+
			"CREATE EXTENSION pgrowlocks;)", cfg.Database, cfg.User)
		return
	}
	o.rowLocks = find()
}

// waitsQuery is the poll without its lock rows: the backends alone, with
// NULL in every lock column.
func waitsQuery(poll string) string {
	backends, _, _ := strings.Cut(poll, "\nSELECT b.pid,")
	return backends + `
SELECT b.pid, b.name, b.state, b.wait_event_type, b.wait_event, b.xact_start, b.xid, b.query,
       b.blocking_pids, b.safe_snapshot_blocking_pids,
       NULL::text, NULL::text, NULL::text, NULL::int4, NULL::int2, NULL::text, 0::bigint,
       NULL::bigint, NULL::bigint, NULL::int2, NULL::text, NULL::bool, NULL::bool, NULL::timestamptz,
       extract(epoch FROM clock_timestamp() - statement_timestamp())::float8
FROM backend b
ORDER BY b.name`
}

// DeadlockTimeout is the server's deadlock_timeout.
func (o *Observer) DeadlockTimeout() time.Duration { return o.deadlock }

// RowLocksAvailable says whether pgrowlocks can be read; if not, the note
// says why: it is not there, or the table is too big to scan on every poll.
func (o *Observer) RowLocksAvailable() (bool, string) {
	if big := o.big(); o.rowLocks != "" && big != "" {
		return false, big
	}
	return o.rowLocks != "", o.rowNote
}

// sizeUp looks, now and then, at how big the accounts table is.
func (o *Observer) sizeUp(ctx context.Context) {
	if o.rowLocks == "" || time.Since(o.sizedAt) < resizeEvery {
		return
	}
	o.sizedAt = time.Now()
	var pages int64
	if err := o.conn.QueryRow(ctx, "SELECT coalesce(pg_relation_size(to_regclass('accounts')), 0) / current_setting('block_size')::int").Scan(&pages); err != nil {
		return
	}
	note := ""
	if pages > bigPages {
		note = fmt.Sprintf("row locks: from the statements lockstep sent, not read from the rows (pgrowlocks reads all %d pages of accounts on every poll: too slow for a ledger this size)", pages)
	}
	o.bigMu.Lock()
	o.bigNote = note
	o.bigMu.Unlock()
}

// Poll reads the run's lock state once and builds its wait-for graph.
func (o *Observer) Poll(ctx context.Context) (*Snapshot, error) {
	snap := &Snapshot{Taken: time.Now(), DeadlockTimeout: o.deadlock}
	pids := o.pids
	if pids == nil {
		pids = []int32{}
	}
	o.serverTime = 0
	rows, err := o.conn.Query(ctx, o.query, o.run.Like("T"), o.run.Like(""), o.prepared, pids)
	if err != nil {
		return nil, fmt.Errorf("polling pg_locks: %w", err)
	}
	var (
		// seen is by pid and name: sessions found by pid may share an
		// application_name (two psql windows), prepared transactions share pid 0.
		seen       = map[backendKey]bool{}
		xidOwner   = map[uint32]string{}
		needRows   bool
		exclusive  bool
		tupleCtids []string
	)
	for rows.Next() {
		var (
			b                          Backend
			app                        string
			xid                        int64
			locktype, relname, relkind *string
			l                          Lock
			vxid, mode                 *string
			txid                       int64
			classid, objid             *int64
			objsubid                   *int16
			granted, fastpath          *bool
			serverSeconds              float64
		)
		err := rows.Scan(&b.Pid, &app, &b.State, &b.WaitEventType, &b.WaitEvent, &b.XactStart, &xid, &b.Query,
			&b.BlockedBy, &b.SafeSnapshotBlockedBy,
			&locktype, &relname, &relkind, &l.Page, &l.Tuple, &vxid, &txid, &classid, &objid, &objsubid,
			&mode, &granted, &fastpath, &l.WaitStart, &serverSeconds)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading pg_locks: %w", err)
		}
		o.serverTime = max(o.serverTime, time.Duration(serverSeconds*float64(time.Second)))
		b.Session, _ = o.run.Name(app)
		if name, ok := o.byPid[b.Pid]; ok && b.Pid != 0 {
			b.Session = name
		}
		if gid, ok := strings.CutPrefix(app, preparedPrefix); ok {
			b.Prepared, b.Session = gid, PreparedName(o.run, gid)
		}
		b.Xid = uint32(xid)
		if b.Query == HiddenQuery && len(b.BlockedBy) > 0 {
			// The server hides the wait event from this role; pg_blocking_pids
			// still says the backend waits for a lock.
			b.WaitEventType = "Lock"
		}
		b.Database = o.label
		if k := (backendKey{b.Pid, app}); !seen[k] {
			seen[k] = true
			snap.Backends = append(snap.Backends, b)
			if b.Xid != 0 {
				xidOwner[b.Xid] = b.Session
			}
		}
		if locktype == nil {
			continue // a backend holding no lock
		}
		l.Pid, l.Session, l.Type, l.Database = b.Pid, b.Session, *locktype, o.label
		l.Relation, l.RelKind, l.VirtualXID, l.Mode = str(relname), str(relkind), str(vxid), str(mode)
		l.TransactionID = uint32(txid)
		l.ClassID, l.ObjID = uint32(i64(classid)), uint32(i64(objid))
		if objsubid != nil {
			l.ObjSubID = *objsubid
		}
		l.Granted, l.FastPath = granted != nil && *granted, fastpath != nil && *fastpath
		if l.Type == "advisory" && l.ObjSubID == 2 && l.ClassID == o.nsKey {
			l.Account = int64(l.ObjID)
		}
		if l.Relation == "accounts" {
			needRows = true
			// A tuple lock's mode is AccessExclusiveLock for FOR UPDATE: only a
			// table lock in that mode blocks the observer's reads.
			if l.Type == "relation" && l.Mode == "AccessExclusiveLock" {
				exclusive = true
			}
			if l.Type == "tuple" {
				tupleCtids = append(tupleCtids, l.Ctid())
			}
		}
		snap.Locks = append(snap.Locks, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_locks: %w", err)
	}
	// Every backend holds ExclusiveLock on its own virtual transaction id;
	// whoever waits on one waits for that transaction to end.
	vxOwner := map[string]string{}
	for _, l := range snap.Locks {
		if l.Type == "virtualxid" && l.Granted && l.Mode == "ExclusiveLock" {
			vxOwner[l.VirtualXID] = l.Session
		}
	}
	// A subtransaction (after a SAVEPOINT) holds ExclusiveLock on an id of
	// its own, which is not the backend's top-level backend_xid.
	subOwner := map[uint32]string{}
	for _, l := range snap.Locks {
		if l.Type == "transactionid" && l.Granted && l.Mode == "ExclusiveLock" && xidOwner[l.TransactionID] == "" && l.Session != "" {
			subOwner[l.TransactionID] = l.Session
		}
	}
	for i := range snap.Locks {
		switch l := &snap.Locks[i]; l.Type {
		case "transactionid":
			l.TxOwner = xidOwner[l.TransactionID]
			if l.TxOwner == "" && subOwner[l.TransactionID] != "" {
				l.TxOwner, l.Subtransaction = subOwner[l.TransactionID], true
			}
		case "virtualxid":
			l.TxOwner = vxOwner[l.VirtualXID]
		}
	}
	o.remember(snap)
	if err := o.readRows(ctx, snap, needRows, exclusive, tupleCtids); err != nil {
		return nil, err
	}
	snap.Graph = BuildGraph(snap)
	return snap, nil
}

// readRows resolves tuple locks to account ids and reads pgrowlocks. Both
// read the accounts table, so both are skipped while a session holds or
// wants ACCESS EXCLUSIVE on it: the observer's ACCESS SHARE would queue
// behind it, and sessions arriving later would queue behind the observer.
func (o *Observer) readRows(ctx context.Context, snap *Snapshot, touched, exclusive bool, ctids []string) error {
	o.sizeUp(ctx)
	snap.RowLockNote = o.rowNote
	big := o.big()
	if big != "" {
		snap.RowLockNote = big
	}
	if err := o.readQueuedRows(ctx, snap); err != nil {
		return err
	}
	if !touched || o.noRows {
		return nil
	}
	if exclusive {
		snap.RowLockNote = "row locks not read while accounts is locked in ACCESS EXCLUSIVE mode"
		return nil
	}
	if len(ctids) > 0 {
		if err := o.resolveTuples(ctx, snap, ctids); err != nil {
			return err
		}
	}
	if o.rowLocks == "" || big != "" {
		for _, r := range o.inferred {
			if _, ok := snap.Backend(r.Session); ok {
				r.Database = o.label
				snap.RowLocks = append(snap.RowLocks, r)
			}
		}
		return nil
	}
	return o.readRowLocks(ctx, snap)
}

// resolveTuples names the account each tuple lock on accounts is for.
func (o *Observer) resolveTuples(ctx context.Context, snap *Snapshot, ctids []string) error {
	rows, err := o.conn.Query(ctx, "SELECT ctid::text, id FROM accounts WHERE ctid = ANY($1::tid[])", ctids)
	if err != nil {
		return o.rowError(snap, "resolving tuple locks", err)
	}
	accountOf := map[string]int64{}
	for rows.Next() {
		var ctid string
		var id int64
		if err := rows.Scan(&ctid, &id); err != nil {
			rows.Close()
			return fmt.Errorf("resolving tuple locks: %w", err)
		}
		accountOf[ctid] = id
	}
	if err := rows.Err(); err != nil {
		return o.rowError(snap, "resolving tuple locks", err)
	}
	for i := range snap.Locks {
		if l := &snap.Locks[i]; l.Type == "tuple" && l.Relation == "accounts" {
			l.Account = accountOf[l.Ctid()]
		}
	}
	return nil
}

// readRowLocks reads pgrowlocks on accounts: the run's sessions' row locks,
// by session, then account.
func (o *Observer) readRowLocks(ctx context.Context, snap *Snapshot) error {
	names := map[int32]string{}
	for _, b := range snap.Backends {
		names[b.Pid] = b.Session
	}
	// The join finds the row version this (READ COMMITTED) statement sees,
	// which is the version the lockers hold: an uncommitted update's new
	// version is invisible to it.
	rows, err := o.conn.Query(ctx, `
		SELECT coalesce((SELECT a.id FROM accounts a WHERE a.ctid = r.locked_row), 0) AS id,
		       r.locked_row::text, r.multi, r.xids::text[], r.modes, r.pids
		FROM `+o.rowLocks+`('accounts') r
		ORDER BY id`)
	if err != nil {
		return o.rowError(snap, "reading pgrowlocks", err)
	}
	for rows.Next() {
		var (
			id    int64
			ctid  string
			multi bool
			xids  []string
			modes []string
			pids  []int32
		)
		if err := rows.Scan(&id, &ctid, &multi, &xids, &modes, &pids); err != nil {
			rows.Close()
			return fmt.Errorf("reading pgrowlocks: %w", err)
		}
		for i := range modes {
			mode, ok := ParseRowMode(modes[i])
			if !ok || i >= len(pids) {
				continue
			}
			name, ours := names[pids[i]]
			if !ours {
				continue
			}
			var xid uint64
			if i < len(xids) {
				xid, _ = strconv.ParseUint(xids[i], 10, 32)
			}
			snap.RowLocks = append(snap.RowLocks, RowLock{
				Database: o.label, Account: id, Ctid: ctid, Multi: multi, Pid: pids[i], Session: name, Xid: uint32(xid), Mode: mode, Raw: modes[i],
			})
		}
	}
	if err := rows.Err(); err != nil {
		return o.rowError(snap, "reading pgrowlocks", err)
	}
	sort.SliceStable(snap.RowLocks, func(i, j int) bool {
		a, b := snap.RowLocks[i], snap.RowLocks[j]
		if a.Session != b.Session {
			return a.Session < b.Session
		}
		return a.Account < b.Account
	})
	return nil
}

// readQueuedRows reads, with pgrowlocks, the row locks on tables other than
// accounts. For a row a session queues for (it holds the row's tuple lock
// while it waits), every locker: a multixact's members and their modes,
// which pg_locks never shows, a member whose transaction has ended named by
// the session that ran it. Then, on each small table a session holds a
// row-level table lock on (ROW SHARE, ROW EXCLUSIVE), the sessions' own row
// locks that nobody waits for yet (WithHeldRowLocks): SKIP LOCKED's, or the one a NOWAIT
// failed on. A table some session locks or wants in ACCESS EXCLUSIVE mode
// is left alone, since the read would queue.
func (o *Observer) readQueuedRows(ctx context.Context, snap *Snapshot) error {
	if o.rowLocks == "" || o.noRows {
		return nil
	}
	names := map[int32]string{}
	waiting := map[int32]bool{}
	for _, b := range snap.Backends {
		names[b.Pid] = b.Session
		waiting[b.Pid] = b.WaitingForLock()
	}
	exclusive := map[string]bool{}
	for _, l := range snap.Locks {
		if l.Type == "relation" && l.Mode == "AccessExclusiveLock" {
			exclusive[l.Relation] = true
		}
	}
	// The transaction ids running now, by holder: pgrowlocks gives no pid
	// for a subtransaction's id (after a SAVEPOINT), though it runs.
	live := map[uint32]xidHolder{}
	for _, l := range snap.Locks {
		if l.Type == "transactionid" && l.Granted && l.Mode == "ExclusiveLock" {
			live[l.TransactionID] = xidHolder{l.Pid, l.Session}
		}
	}
	done := map[string]bool{}
	for _, l := range snap.Locks {
		if l.Type != "tuple" || !l.Granted || !waiting[l.Pid] || l.Relation == "" || l.Relation == "accounts" ||
			exclusive[l.Relation] || done[l.Relation+l.Ctid()] {
			continue
		}
		done[l.Relation+l.Ctid()] = true
		var (
			multi bool
			xids  []string
			modes []string
			pids  []int32
		)
		err := o.conn.QueryRow(ctx, `SELECT r.multi, r.xids::text[], r.modes, r.pids FROM `+o.rowLocks+`($1) r WHERE r.locked_row = $2::tid`,
			l.Relation, l.Ctid()).Scan(&multi, &xids, &modes, &pids)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return o.rowError(snap, "reading pgrowlocks on "+l.Relation, err)
		}
		snap.RowLocks = append(snap.RowLocks, o.rowLockers(names, live, l.Relation, l.Ctid(), multi, xids, modes, pids, true)...)
	}
	held := map[string]bool{}
	var tables []string
	for _, l := range snap.Locks {
		if !o.heldRows {
			break
		}
		if l.Type != "relation" || !l.Granted || l.Session == "" || l.RelKind != "r" || l.Relation == "" ||
			l.Relation == "accounts" || exclusive[l.Relation] || held[l.Relation] ||
			(l.Mode != "RowShareLock" && l.Mode != "RowExclusiveLock") {
			continue
		}
		held[l.Relation] = true
		tables = append(tables, l.Relation)
	}
	for _, rel := range tables {
		small, err := o.smallTable(ctx, rel)
		if err != nil {
			return o.rowError(snap, "sizing "+rel, err)
		}
		if !small {
			continue
		}
		rows, err := o.conn.Query(ctx, `SELECT r.locked_row::text, r.multi, r.xids::text[], r.modes, r.pids FROM `+o.rowLocks+`($1) r`, rel)
		if err != nil {
			return o.rowError(snap, "reading pgrowlocks on "+rel, err)
		}
		for rows.Next() {
			var (
				ctid  string
				multi bool
				xids  []string
				modes []string
				pids  []int32
			)
			if err := rows.Scan(&ctid, &multi, &xids, &modes, &pids); err != nil {
				rows.Close()
				return fmt.Errorf("reading pgrowlocks on %s: %w", rel, err)
			}
			if done[rel+ctid] {
				continue // a queued row, read whole above
			}
			snap.RowLocks = append(snap.RowLocks, o.rowLockers(names, live, rel, ctid, multi, xids, modes, pids, false)...)
		}
		if err := rows.Err(); err != nil {
			return o.rowError(snap, "reading pgrowlocks on "+rel, err)
		}
	}
	return nil
}

// rowLockers turns one pgrowlocks row into row locks: every locker when all
// is set (a queued row), else only the run's sessions' live ones.
// xidHolder is the backend running a transaction id.
type xidHolder struct {
	pid     int32
	session string
}

func (o *Observer) rowLockers(names map[int32]string, live map[uint32]xidHolder, rel, ctid string, multi bool, xids, modes []string, pids []int32, all bool) []RowLock {
	var out []RowLock
	for i := range modes {
		mode, ok := ParseRowMode(modes[i])
		if !ok || i >= len(pids) {
			continue
		}
		var xid uint64
		if i < len(xids) {
			xid, _ = strconv.ParseUint(xids[i], 10, 32)
		}
		r := RowLock{Database: o.label, Relation: rel, Ctid: ctid, Multi: multi,
			Pid: pids[i], Session: names[pids[i]], Xid: uint32(xid), Mode: mode, Raw: modes[i]}
		if h, ok := live[r.Xid]; ok && r.Pid == 0 {
			// A subtransaction's id: pgrowlocks finds no backend for it,
			// but the backend holding its id runs it.
			r.Pid, r.Session = h.pid, h.session
		} else if r.Pid == 0 {
			// No backend runs this member's transaction: it has ended,
			// though the header still names it.
			r.Ended, r.Session = true, o.xidSession[r.Xid]
		}
		if !all && (r.Ended || r.Session == "") {
			continue
		}
		out = append(out, r)
	}
	return out
}

// smallTable says whether rel is small enough for pgrowlocks to read whole
// on every poll; it is looked at once per table.
func (o *Observer) smallTable(ctx context.Context, rel string) (bool, error) {
	if small, ok := o.smallTables[rel]; ok {
		return small, nil
	}
	var small bool
	err := o.conn.QueryRow(ctx, "SELECT coalesce(pg_relation_size(to_regclass(quote_ident($1))) <= $2 * current_setting('block_size')::bigint, false)", rel, smallTablePages).Scan(&small)
	if err != nil {
		return false, err
	}
	if o.smallTables == nil {
		o.smallTables = map[string]bool{}
	}
	o.smallTables[rel] = small
	return small, nil
}

// rowError turns a failure to read rows into a note when it is only the
// ledger being busy or gone (lock timeout, a reset under way); anything else
// fails the poll.
func (o *Observer) rowError(snap *Snapshot, what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgerrcode.LockNotAvailable, pgerrcode.UndefinedTable, pgerrcode.InvalidSchemaName, pgerrcode.UndefinedFunction:
			snap.RowLockNote = fmt.Sprintf("row locks not read this time (%s: %s)", what, pgErr.Message)
			return nil
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func i64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// ParsePgDuration reads a duration setting as current_setting prints it: "1s", "200ms", "1min".
func ParsePgDuration(s string) time.Duration {
	s = strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"ms", time.Millisecond}, {"min", time.Minute}, {"s", time.Second}, {"h", time.Hour}, {"d", 24 * time.Hour}} {
		if strings.HasSuffix(s, u.suffix) {
			n, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err == nil {
				return time.Duration(n * float64(u.unit))
			}
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(n * float64(time.Millisecond))
}
