package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/locks"
)

// session is one database session: its connection, its script and where it
// stands. Only its worker goroutine touches the connection; the fields below
// conn are guarded by the engine's mutex.
type session struct {
	e        *Engine
	idx      int
	name     string
	transfer ledger.Transfer
	jobs     chan job
	ctl      chan ctlJob
	side     *side // the database the session connects to

	conn *pgx.Conn

	pid       int32
	script    Script
	next      int  // the script's next statement
	finished  bool // the script has ended: committed, rolled back, or given up
	state     State
	seq       int // numbers the statements sent, so stale observations are dropped
	current   string
	curStep   int // script index of the statement in flight, -1 if typed
	startedAt time.Time
	lastErr   *ServerMessage
	errAt     int // script index of the statement that failed, -1 if none
	blockedBy []string
	waits     []locks.Edge
	waitKey   string // what the last waiting event said, to report changes only
	waited    bool   // the current statement has been reported waiting
	// settled counts the statements whose end (Completed, Error,
	// ConnectionLost) has been decided; each one's event follows.
	settled int
	// lockTimeout is the session's lock_timeout as last read (0: none).
	lockTimeout time.Duration
	// deadlockTimeout is the session's own deadlock_timeout as last read:
	// each backend runs the deadlock check after its own.
	deadlockTimeout time.Duration
	// statementTimeout is the session's statement_timeout as last read.
	statementTimeout time.Duration
	// txBegan is when the statement that opened the session's transaction
	// was sent (zero outside a transaction); txStmts are the statements
	// its transaction has run, the one in flight last.
	txBegan time.Time
	txStmts []string
	// connectedAt is when the connection opened: a poll begun before then
	// cannot tell whether its backend is gone.
	connectedAt time.Time
	// notifications came on the connection since a statement last ended;
	// only the session's worker touches them (pgx reads on it).
	notifications []Notification
	// sending is the SQL on the wire, for the notices it draws: only the
	// session's worker touches it.
	sending string
	// endedAt is when the session's last statement ended.
	endedAt time.Time
	// txBefore is the connection's transaction status ('I', 'T', 'E') just
	// before its statement in flight was sent; only the worker uses it.
	txBefore byte
	// reaping is true from the poll that found the session's backend gone
	// until its worker has read the server's last message (the FATAL that
	// ended it) and sent the ConnectionLost event.
	reaping bool
	// emitting is true from the end of a statement's bookkeeping until its
	// event is sent: a waiter it released, reported after it (awaitIdle),
	// must not be sent first.
	emitting bool
	// ended is the server's message that ended the session (FATAL 25P03,
	// 57P01), once read; nil while the session lives or when none came.
	ended *ServerMessage
	// cut is the socket of the statement in flight, which the engine's
	// context cuts when it ends (watchEngine): one watch for the session's
	// life instead of pgconn's for every statement, which cost more than
	// the statement's own bookkeeping.
	cut atomic.Pointer[net.Conn]
}

// watchEngine has the engine's context, when it ends (Close's time is up,
// a server that stopped answering), cut the statement the session has in
// flight, if any, as pgconn does for a statement's own context: the
// socket's deadline passes, the read waiting for the server fails, and
// pgconn closes the connection. It returns what stops the watch.
func (s *session) watchEngine() (stop func() bool) {
	return context.AfterFunc(s.e.ctx, func() {
		if c := s.cut.Load(); c != nil {
			_ = (*c).SetDeadline(time.Now())
		}
	})
}

type job struct {
	gen, seq int
	step     int // script index, -1 for typed SQL
	sql      string
}

type ctlKind int

const (
	ctlTeardown ctlKind = iota // run the session's teardown and roll back
	ctlSetup                   // reconnect if lost, rewind the script, run the session's setup
	ctlClose                   // tear down (unless done) and close the connection
	ctlRollback                // roll back a transaction left open (Config.KeepTransactions)
	ctlReap                    // read the FATAL a backend found gone sent, and report the loss
	ctlSetLocal                // SET LOCAL a setting for the session's transaction, quietly
	ctlProbe                   // read a FATAL the server may have sent an idle session
)

type ctlJob struct {
	kind ctlKind
	ctx  context.Context
	done chan error
	gen  int    // ctlReap: the generation whose poll found the backend gone
	sql  string // ctlSetLocal: the SET LOCAL to run
}

// connect opens the session's connection, named for the observer.
func (s *session) connect(ctx context.Context) error {
	app := s.side.run.AppName(s.name)
	if s.e.cfg.AppName != nil {
		app = s.e.cfg.AppName(s.idx)
	}
	via := s.side.db
	if e := s.e; e.cfg.SessionDB != nil && s.side == e.sides[0] {
		via = e.cfg.SessionDB // the application's way in: a pooler
	}
	cfg := via.ConnConfig(app)
	// PostgreSQL 14+: a backend waiting on a lock notices within a second that
	// its client is gone, instead of holding its place until the lock comes.
	// Set as the connection starts (no round trip of its own), except through
	// a pooler, which may refuse parameters it does not know.
	checkSet := !via.Pooled() && serverMajor(via.Version()) >= 14
	if checkSet {
		cfg.RuntimeParams["client_connection_check_interval"] = "1s"
	}
	cfg.OnNotice = s.notice
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		s.notifications = append(s.notifications, Notification{Channel: n.Channel, Payload: n.Payload, Pid: n.PID})
	}
	conn, err := via.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	if !checkSet {
		_, _ = conn.Exec(ctx, "SET client_connection_check_interval = '1s'") // fails before 14: no matter
	}
	for _, sql := range s.e.cfg.Init[s.name] {
		if _, err := conn.Exec(ctx, sql); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("running %q: %w", sql, err)
		}
	}
	s.conn = conn
	s.e.opened.Add(1)
	s.e.mu.Lock()
	s.connectedAt = time.Now()
	s.pid = int32(conn.PgConn().PID())
	if via.Pooled() {
		s.pid = 0 // the pooler's make-believe, no server backend's
	}
	s.e.mu.Unlock()
	s.readTimeouts(ctx)
	return nil
}

// notice reports a notice the server sent the session. pgx calls it on the
// session's worker, while it reads the statement's results.
func (s *session) notice(_ *pgconn.PgConn, n *pgconn.Notice) {
	s.e.emit(Event{Gen: s.e.generation(), Kind: Notice, Session: s.name, Index: s.idx, Step: -1, SQL: s.sending,
		Message: serverMessage((*pgconn.PgError)(n))})
}

// control runs a control job on the session's worker and waits for it.
func (s *session) control(ctx context.Context, kind ctlKind) error {
	j := ctlJob{kind: kind, ctx: ctx, done: make(chan error, 1)}
	s.ctl <- j
	return <-j.done
}

// work is the session's worker: it runs one job at a time on the connection.
func (s *session) work() {
	defer s.e.workers.Done()
	defer s.watchEngine()()
	for {
		select {
		case j, ok := <-s.jobs:
			if !ok {
				return
			}
			s.run(j)
		case c := <-s.ctl:
			err := s.doControl(c)
			c.done <- err
			if c.kind == ctlClose {
				// Drain until the engine closes the jobs channel.
				for range s.jobs {
				}
				return
			}
		}
	}
}

func (s *session) doControl(c ctlJob) error {
	e := s.e
	switch c.kind {
	case ctlClose:
		if s.conn == nil || s.conn.IsClosed() {
			return nil
		}
		if !e.tornDown() {
			s.teardown(c.ctx, true)
		}
		// Close sends Terminate and closes the socket whatever happens;
		// an error only says the server had already gone (it ended the
		// session: idle_in_transaction_session_timeout, say), which leaves
		// nothing of the session to end.
		_ = e.closeInOrder(c.ctx, s.conn)
		return nil
	case ctlTeardown:
		s.teardown(c.ctx, false)
	case ctlRollback:
		if s.conn == nil || s.conn.IsClosed() || s.conn.PgConn().TxStatus() == 'I' {
			return nil
		}
		_, err := s.conn.Exec(c.ctx, "ROLLBACK")
		e.mu.Lock()
		if s.conn.PgConn().TxStatus() == 'I' {
			s.state = RolledBack
		}
		e.mu.Unlock()
		return err
	case ctlReap:
		s.reap(c.ctx, c.gen)
	case ctlProbe:
		s.probe(c.ctx, c.gen)
	case ctlSetLocal:
		if s.conn == nil || s.conn.IsClosed() || s.conn.PgConn().TxStatus() != 'T' {
			return errNoTransaction
		}
		if _, err := s.conn.Exec(c.ctx, c.sql); err != nil {
			return err
		}
		s.readTimeouts(c.ctx)
	case ctlSetup:
		e.mu.Lock()
		lost := s.state == Failed // the observer may have found its backend gone
		s.reaping = false
		e.mu.Unlock()
		if lost && s.conn != nil {
			s.conn.Close(c.ctx)
		}
		if s.conn == nil || s.conn.IsClosed() {
			if err := s.connect(c.ctx); err != nil {
				return err
			}
		}
		e.mu.Lock()
		s.script = e.scriptFor(s)
		s.next, s.finished, s.state, s.lastErr, s.errAt, s.ended = 0, false, Idle, nil, -1, nil
		s.blockedBy, s.waits, s.waitKey, s.waited, s.current = nil, nil, "", false, ""
		e.mu.Unlock()
		err := s.setup(c.ctx)
		s.syncState() // a transaction kept open (Config.KeepTransactions) or opened by the setup
		return err
	}
	return nil
}

// runSQL runs sql the way psql would: the simple protocol, several
// statements allowed, every value as text. It returns each statement's
// result up to the first error, and the first row of the last result that
// had rows (for a script to record).
func runSQL(ctx context.Context, conn *pgconn.PgConn, sql string) ([]Result, []any, error) {
	results, err := readAll(conn.Exec(ctx, sql))
	var out []Result
	var first []any
	for _, res := range results {
		if res.Err != nil {
			return out, first, res.Err
		}
		r := textResult(res)
		if r.Columns != nil {
			first = nil
			if len(r.Rows) > 0 {
				first = make([]any, len(r.Rows[0]))
				for i, v := range r.Rows[0] {
					first[i] = v
				}
			}
		}
		out = append(out, r)
	}
	return out, first, err
}

// readAll is pgconn's ReadAll keeping the columns of a result without
// rows: pgconn copies a result's field descriptions only along with its
// first row, and a SELECT that finds nothing is printed with its header.
func readAll(mrr *pgconn.MultiResultReader) ([]*pgconn.Result, error) {
	var results []*pgconn.Result
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		res := rr.Read()
		if res.FieldDescriptions == nil && rr.FieldDescriptions() != nil {
			// Copied at once: pgconn reuses the slice for the next result.
			res.FieldDescriptions = slices.Clone(rr.FieldDescriptions())
		}
		results = append(results, res)
	}
	return results, mrr.Close()
}

// textResult is a result with its values as text, NULLs marked.
func textResult(res *pgconn.Result) Result {
	r := Result{Tag: res.CommandTag.String()}
	if len(res.FieldDescriptions) == 0 {
		return r
	}
	r.Columns = make([]string, len(res.FieldDescriptions))
	for i, f := range res.FieldDescriptions {
		r.Columns[i] = f.Name
	}
	r.Rows = make([][]string, len(res.Rows))
	for i, row := range res.Rows {
		r.Rows[i] = make([]string, len(row))
		for j, v := range row {
			r.Rows[i][j] = string(v)
			if v == nil {
				if r.Null == nil {
					r.Null = make([][]bool, len(res.Rows))
				}
				if r.Null[i] == nil {
					r.Null[i] = make([]bool, len(row))
				}
				r.Null[i][j] = true
			}
		}
	}
	return r
}

// ServerError is the server error in err's chain with all its fields, or
// nil when there is none.
func ServerError(err error) *ServerMessage {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	return serverMessage(pgErr)
}

// serverMessage keeps the fields of an error or notice the views print.
func serverMessage(e *pgconn.PgError) *ServerMessage {
	return &ServerMessage{SQLState: e.Code, Severity: e.Severity, Message: e.Message, Detail: e.Detail, Hint: e.Hint,
		Position: e.Position, InternalQuery: e.InternalQuery, InternalPosition: e.InternalPosition, Context: e.Where}
}

// run executes one job and reports it.
func (s *session) run(j job) {
	e := s.e
	step, auto := j.step, j.step == autoRollback
	if auto {
		step = -1
	}
	if !e.cfg.Lean { // a lean view learns of a statement from its own call
		e.emit(Event{Gen: j.gen, Kind: Started, Session: s.name, Index: s.idx, Step: step, Auto: auto, SQL: j.sql, State: Running})
	}
	start := time.Now()
	var (
		res   []Result
		first []any
		err   error
	)
	if !e.cfg.Lean {
		err = s.pendingEnd(e.ctx)
	}
	if err == nil {
		s.sending = j.sql
		s.txBefore = s.conn.PgConn().TxStatus()
		nc := s.conn.PgConn().Conn()
		s.cut.Store(&nc)
		// Marked before the engine's context is looked at: a context
		// that ends from here on finds the socket to cut.
		if err = e.ctx.Err(); err == nil {
			res, first, err = runSQL(context.Background(), s.conn.PgConn(), j.sql)
		}
		s.cut.Store(nil)
		s.sending = ""
	}
	took := time.Since(start)
	if err == nil && !e.cfg.Lean && touchesTimeouts(j.sql) { // a lean run reads no timeouts
		s.readTimeouts(e.ctx)
	}
	if err == nil && j.step >= 0 {
		e.mu.Lock() // views render the script with its values
		if rr, ok := s.script.(ResultRecorder); ok {
			err = rr.RecordResults(j.step, res)
		} else {
			err = s.script.Record(j.step, first)
		}
		e.mu.Unlock()
	}
	var pgErr *pgconn.PgError
	isPg := errors.As(err, &pgErr)
	switch {
	case err == nil:
		s.finish(j, res, took, nil, false)
	case isPg && pgErr.Severity != "FATAL" && pgErr.Severity != "PANIC" && !s.conn.IsClosed():
		// As application code would, a failed scripted transfer rolls back and gives up.
		rollback := j.step >= 0 && e.autoRollbackOnError() && s.conn.PgConn().TxStatus() == 'E'
		s.finish(j, res, took, ServerError(err), rollback)
		if rollback {
			e.mu.Lock()
			seq := s.seq
			e.mu.Unlock()
			s.run(job{gen: j.gen, seq: seq, step: autoRollback, sql: "ROLLBACK"})
		}
	case isPg || s.conn.IsClosed() || pgconn.SafeToRetry(err) || isConnError(err) || e.ctx.Err() != nil:
		// A FATAL error (pg_terminate_backend, a server shutdown) ends the
		// connection as surely as a broken socket.
		db.CloseConn(e.ctx, s.conn)
		msg := ServerError(err)
		e.mu.Lock()
		s.state = Failed
		s.current = ""
		s.ended = msg
		s.settled++
		s.endedAt = time.Now()
		e.cond.Broadcast()
		e.mu.Unlock()
		e.emit(Event{Gen: j.gen, Kind: ConnectionLost, Session: s.name, Index: s.idx, Step: j.step, SQL: j.sql,
			Cause: err, Err: msg, State: Failed, Duration: took, Failure: endedFailure(s.name, j.sql, msg)})
	default:
		// A client-side failure reading the result (e.g. capturing a value).
		s.finish(j, res, took, &ServerMessage{Message: err.Error()}, false)
	}
}

// pendingEnd reads what the server sent this session since its last
// statement ended, before the next is sent: a FATAL there means the server
// ended the session while it sat idle (pg_terminate_backend,
// idle_in_transaction_session_timeout), and is returned as the statement's
// error — written to the socket the server has closed, the statement would
// fail with a broken pipe that hides the server's reason. Nil when nothing
// waits to be read, or nothing that ends the session.
func (s *session) pendingEnd(ctx context.Context) error {
	if s.conn == nil || s.conn.IsClosed() || socketUnread(s.conn.PgConn().Conn()) <= 0 {
		return nil
	}
	if _, isTLS := s.conn.PgConn().Conn().(*tls.Conn); isTLS {
		// Unread bytes may be a TLS record with no message in it (a
		// session ticket): a read could wait for nothing.
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second) // bytes wait: see readWaiting
	defer cancel()
	for socketUnread(s.conn.PgConn().Conn()) > 0 {
		m, err := s.conn.PgConn().ReceiveMessage(rctx)
		if err != nil {
			return err
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			if pe := pgconn.ErrorResponseToPgError(er); pe.Severity == "FATAL" || pe.Severity == "PANIC" {
				return pe
			}
		}
	}
	return nil
}

// readWaiting is how long a read of what the server has sent may take:
// when the socket says bytes wait, long enough for a loaded machine to get
// to them (a read whose deadline passed before it ran fails, and pgconn
// closes the connection, losing the FATAL in it); else short, since
// nothing may come.
func readWaiting(c net.Conn, short time.Duration) time.Duration {
	if socketUnread(c) > 0 {
		return 2 * time.Second
	}
	return short
}

// touchesTimeouts says whether a statement may change the session's
// lock_timeout or deadlock_timeout: it sets one, or ends a transaction (SET
// LOCAL ends there).
func touchesTimeouts(sql string) bool {
	q := strings.ToUpper(sql)
	switch strings.Fields(strings.TrimRight(q, "; ") + " x")[0] {
	case "COMMIT", "ROLLBACK", "END", "ABORT", "PREPARE":
		return true
	}
	return strings.Contains(q, "LOCK_TIMEOUT") || strings.Contains(q, "STATEMENT_TIMEOUT")
}

// readTimeouts reads the session's lock_timeout, which decides whether a
// distributed deadlock ends by itself, and its deadlock_timeout, which
// decides when it runs the server's deadlock check. Only the session's
// worker calls it, or its starter.
// SHOW, not SELECT current_setting: a utility statement takes no snapshot,
// so reading them inside a REPEATABLE READ or SERIALIZABLE transaction
// does not fix the snapshot its next statement would have taken.
// Both in one round trip (the simple protocol's two statements).
func (s *session) readTimeouts(ctx context.Context) {
	if s.e.cfg.Lean {
		return
	}
	res, err := s.conn.PgConn().Exec(ctx, "SHOW lock_timeout; SHOW deadlock_timeout; SHOW statement_timeout").ReadAll()
	if err != nil || len(res) != 3 || len(res[0].Rows) != 1 || len(res[1].Rows) != 1 || len(res[2].Rows) != 1 {
		return
	}
	s.e.mu.Lock()
	s.lockTimeout = locks.ParsePgDuration(string(res[0].Rows[0][0]))
	s.deadlockTimeout = locks.ParsePgDuration(string(res[1].Rows[0][0]))
	s.statementTimeout = locks.ParsePgDuration(string(res[2].Rows[0][0]))
	s.e.mu.Unlock()
}

// isConnError says whether err means the connection is unusable.
func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.Is(err, context.Canceled) || errors.Is(err, pgconn.ErrConnClosed)
}

// autoRollback marks the ROLLBACK the engine sends after a scripted statement failed.
const autoRollback = -2

// finish records a statement's end and emits Completed or Error. With
// rollbackNext, the session stays busy for the ROLLBACK that follows.
func (s *session) finish(j job, res []Result, took time.Duration, se *ServerMessage, rollbackNext bool) {
	e := s.e
	auto := j.step == autoRollback
	step := j.step
	if auto {
		step = -1
	}
	tag := ""
	if len(res) > 0 {
		tag = res[len(res)-1].Tag
	}
	ordered := !e.cfg.OnDemand // an on-demand view orders what it prints itself
	if se == nil && ordered {
		s.probeIdleBlockers()
	}
	e.mu.Lock()
	if ordered && len(s.blockedBy) > 0 && (se == nil || se.SQLState == pgerrcode.SerializationFailure || strings.HasPrefix(se.SQLState, "23")) {
		// The statement was released by its blockers' transactions ending
		// (and failed, when one of them changed its row first: 40001 under
		// REPEATABLE READ, a duplicate key): report it after what they did
		// (a COMMIT, or a deadlock error and the ROLLBACK after it), so
		// transcripts read in causal order. The
		// blockers last seen may not be all: a wait on a multixact waits
		// for its members one after the other, so a transaction ending
		// right now counts too.
		e.awaitIdle(append(slices.Clone(s.blockedBy), e.ending(s)...), time.Now().Add(2*time.Second))
	}
	tx := s.conn.PgConn().TxStatus()
	var failure *Failure
	ends := endsTransaction(j.sql)
	// A COMMIT or ROLLBACK sent with no transaction open (the server warns
	// 25P01 "there is no transaction in progress") ends nothing: the
	// session did not commit, nor roll back, anything.
	nothingOpen := s.txBefore == 'I' && !auto
	switch {
	case tx == 'E':
		s.state = Aborted
	case tx == 'T':
		s.state = InTransaction
	case se == nil && ends && nothingOpen:
		s.state = Idle
	case se == nil && ends && tag == "ROLLBACK":
		s.state = RolledBack
	case se == nil && ends:
		s.state = Committed
	case auto:
		s.state = RolledBack
	default:
		s.state = Idle
	}
	if s.txBegan.IsZero() {
		s.txStmts = nil // this statement begins a transaction (or is one)
	}
	if !auto {
		s.txStmts = append(s.txStmts, j.sql)
	}
	if se != nil {
		s.lastErr, s.errAt = se, step
		// An explanation is for the views that show one (Config.OnDemand).
		if !e.cfg.OnDemand {
			failure = e.failure(s, j, se, took)
			failure.TxAborted = tx == 'E'
		}
	}
	if tx == 'I' && ends && nothingOpen {
		// No transaction to record: the COMMIT or ROLLBACK ended nothing.
		s.txBegan, s.txStmts = time.Time{}, nil
	} else if tx == 'I' {
		began := s.txBegan
		if began.IsZero() {
			began = s.startedAt
		}
		e.txLog = append(e.txLog, txRec{session: s.name, began: began, ended: time.Now(), stmts: s.txStmts,
			committed: se == nil && (tag == "COMMIT" || !ends)})
		if n := len(e.txLog) - maxTxLog; n > 0 {
			e.txLog = slices.Delete(e.txLog, 0, n)
		}
		s.txBegan, s.txStmts = time.Time{}, nil
	} else if s.txBegan.IsZero() {
		s.txBegan = s.startedAt
	}
	if se == nil && tag == "COMMIT" && !nothingOpen {
		e.commits = append(e.commits, commitRec{session: s.name, at: time.Now()})
	}
	if j.step >= 0 && se == nil {
		s.next = j.step + 1
		if s.next >= s.script.Len() {
			s.finished = true
		}
	}
	goesOn := j.step >= 0 && se != nil && e.cfg.Scenario != nil && tx == 'I' && !rollbackNext && se.Severity != "FATAL"
	if goesOn {
		// A scenario's statement that failed outside a transaction block
		// leaves nothing aborted: as in the isolation tester, the
		// session's next step runs (ddl-queue-lock-timeout's retry).
		s.next = j.step + 1
		s.finished = s.next >= s.script.Len()
	}
	if !goesOn && ((j.step >= 0 && se != nil) || (j.step < 0 && ends) || auto) {
		// A scripted statement failed, or the user ended the transaction:
		// the script is over.
		s.finished = true
	}
	if j.step >= 0 && se != nil && e.cfg.Scenario == nil && !e.cfg.Strategy.Transactional {
		s.finished = true
	}
	s.current = ""
	s.blockedBy, s.waits, s.waitKey, s.waited = nil, nil, "", false
	s.settled++
	s.endedAt = time.Now()
	state := s.state
	if rollbackNext {
		// A new statement: a poll begun while the failed one waited must
		// not take the ROLLBACK for a waiter.
		s.seq++
		s.state, s.current, s.curStep = Running, "ROLLBACK", -1
	} else {
		e.cond.Broadcast()
	}
	// Only an ordered view holds a released waiter back (awaitIdle); an
	// on-demand one (spec) orders what it prints itself, and its statements
	// skip the second lock below.
	s.emitting = ordered
	e.mu.Unlock()
	ev := Event{Gen: j.gen, Session: s.name, Index: s.idx, Step: step, Auto: auto, SQL: j.sql,
		Tag: tag, Results: res, Duration: took, State: state, Notifications: s.notifications}
	s.notifications = nil
	if se != nil {
		ev.Kind, ev.Err, ev.Failure = Error, se, failure
	} else {
		ev.Kind = Completed
	}
	if testBeforeEmit != nil {
		testBeforeEmit(ev)
	}
	e.emit(ev)
	if ordered {
		e.mu.Lock()
		s.emitting = false
		e.cond.Broadcast()
		e.mu.Unlock()
	}
	e.changed()
}

// testBeforeEmit, set by a test, runs between a statement's bookkeeping
// and the sending of its event: it widens the window a released waiter
// must not overtake.
var testBeforeEmit func(Event)

// ending names the other sessions whose statement in flight ends their
// transaction (COMMIT, ROLLBACK, END, ABORT); e.mu is held.
func (e *Engine) ending(s *session) []string {
	var out []string
	for _, o := range e.sessions {
		if o == s || o.state != Running {
			continue
		}
		if endsTransaction(o.current) {
			out = append(out, o.name)
		}
	}
	return out
}

// endsTransaction says whether sql is COMMIT, ROLLBACK, END or ABORT alone
// (any case, a trailing semicolon, space around), without copying it: every
// statement's end asks.
func endsTransaction(sql string) bool {
	verb := strings.TrimRight(strings.TrimSpace(sql), ";")
	for _, v := range [...]string{"COMMIT", "ROLLBACK", "END", "ABORT"} {
		if strings.EqualFold(verb, v) {
			return true
		}
	}
	return false
}

// awaitIdle waits, with e.mu held, until the named sessions have no
// statement in flight, or until a poll taken after the call says that
// those still busy wait (they did not release the lock: a soft deadlock's
// queue was rearranged, say), or until deadline (a bound, not a guess: a
// blocker may run a long statement after releasing its locks). A named
// session that sits in its transaction with no statement running may have
// released the lock by a statement that ended (ROLLBACK TO SAVEPOINT, an
// advisory unlock) or because the server ended it
// (idle_in_transaction_session_timeout, pg_terminate_backend): a poll
// taken after the call decides, and a session it finds gone is reported
// lost first.
func (e *Engine) awaitIdle(names []string, deadline time.Time) {
	timer := time.AfterFunc(time.Until(deadline), func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	defer timer.Stop()
	// The poll under way may have been taken before the release; the one
	// after it was not.
	fresh := e.polls + 2
	for time.Now().Before(deadline) {
		busy, running, idle, reaping := false, false, false, false
		for _, o := range e.sessions {
			// A prepared transaction ("prepared T1@A") ends by its own
			// session's COMMIT PREPARED, as a rule.
			named := slices.Contains(names, o.name) || slices.Contains(names, locks.PreparedLabel(o.name))
			if named && (o.state.Busy() || o.emitting) {
				busy = true
				running = running || o.state == Running || o.emitting
			}
			if named && (o.state == InTransaction || o.state == Aborted) {
				idle = true
			}
			reaping = reaping || (named && o.reaping)
		}
		polled := e.polls >= fresh
		if !reaping && ((!busy && (!idle || polled)) || (!running && polled)) {
			return
		}
		if !running && !polled {
			// Only waiters (or idle holders) are left: ask the server.
			e.kickObserver()
		}
		e.cond.Wait()
	}
}

// reap runs on the worker of a session whose backend a poll found gone: it
// reads what the server sent before it ended the session — the FATAL that
// says why (25P03 idle_in_transaction_session_timeout, 57P01
// pg_terminate_backend) — closes the connection and reports the loss, with
// that message when one came.
func (s *session) reap(ctx context.Context, gen int) {
	e := s.e
	e.mu.Lock()
	ok := s.reaping && s.state == Failed && e.gen == gen
	e.mu.Unlock()
	if !ok {
		return
	}
	var msg *ServerMessage
	if s.conn != nil && !s.conn.IsClosed() {
		// The server wrote its FATAL before it closed the socket: it is
		// there to read, or nothing is.
		rctx, cancel := context.WithTimeout(ctx, readWaiting(s.conn.PgConn().Conn(), 500*time.Millisecond))
		for msg == nil {
			m, err := s.conn.PgConn().ReceiveMessage(rctx)
			if err != nil {
				msg = ServerError(err)
				break
			}
			if er, isErr := m.(*pgproto3.ErrorResponse); isErr {
				msg = serverMessage(pgconn.ErrorResponseToPgError(er))
			}
		}
		cancel()
		db.CloseConn(ctx, s.conn)
	}
	if msg == nil {
		// A probe that read the FATAL as a poll found the backend gone
		// left it here (and closed the connection).
		e.mu.Lock()
		msg = s.ended
		e.mu.Unlock()
	}
	var cause error = errBackendGone
	if msg != nil {
		cause = fmt.Errorf("%w: the server said %s %s (SQLSTATE %s)", errBackendGone, msg.Severity, msg.Message, msg.SQLState)
	}
	e.mu.Lock()
	s.ended, s.reaping = msg, false
	e.cond.Broadcast()
	e.mu.Unlock()
	e.emit(Event{Gen: gen, Kind: ConnectionLost, Session: s.name, Index: s.idx, Step: -1, Cause: cause, Err: msg, State: Failed,
		Failure: endedFailure(s.name, "", msg)})
}

// probeIdleBlockers runs when s's statement ended without error: of the
// sessions it waited for, those sitting idle in a transaction released
// nothing by a statement of theirs — the server may have ended them. The
// server sends its FATAL before the ending backend releases its locks, so
// by now it is on the blocker's connection: each such blocker's worker
// reads it, and reports the loss before s reports its end. A worker that
// does not take the probe at once (a statement just sent) is left alone.
func (s *session) probeIdleBlockers() {
	e := s.e
	e.mu.Lock()
	var idle []*session
	for _, o := range e.sessions {
		if o != s && slices.Contains(s.blockedBy, o.name) && (o.state == InTransaction || o.state == Aborted) && o.pid != 0 {
			idle = append(idle, o)
		}
	}
	gen := e.gen
	e.mu.Unlock()
	for _, o := range idle {
		j := ctlJob{kind: ctlProbe, ctx: e.ctx, done: make(chan error, 1), gen: gen}
		select {
		case o.ctl <- j:
			<-j.done
		case <-time.After(100 * time.Millisecond):
		case <-e.closing:
			return
		}
	}
}

// probe reads, for a moment, what the server sent an idle session: a FATAL
// means the server ended it, which is reported as a poll finding its
// backend gone would.
func (s *session) probe(ctx context.Context, gen int) {
	e := s.e
	e.mu.Lock()
	ok := (s.state == InTransaction || s.state == Aborted) && e.gen == gen && s.conn != nil && !s.conn.IsClosed()
	e.mu.Unlock()
	if !ok {
		return
	}
	if socketUnread(s.conn.PgConn().Conn()) == 0 {
		return // nothing came: no read, which a timeout would end by closing the connection
	}
	rctx, cancel := context.WithTimeout(ctx, readWaiting(s.conn.PgConn().Conn(), 50*time.Millisecond))
	_, err := s.conn.PgConn().ReceiveMessage(rctx)
	cancel()
	msg := ServerError(err)
	if msg == nil || msg.Severity != "FATAL" {
		return // nothing came, or not an ending
	}
	db.CloseConn(ctx, s.conn)
	e.mu.Lock()
	if s.state == Failed {
		// A poll found it gone first: its reap reports it, with the FATAL
		// read here (the connection is closed now; the reap cannot read it).
		s.ended = msg
		e.mu.Unlock()
		return
	}
	s.state, s.current, s.blockedBy, s.waits, s.waitKey = Failed, "", nil, nil, ""
	s.settled++
	s.ended = msg
	e.cond.Broadcast()
	e.mu.Unlock()
	cause := fmt.Errorf("%w: the server said %s %s (SQLSTATE %s)", errBackendGone, msg.Severity, msg.Message, msg.SQLState)
	e.emit(Event{Gen: gen, Kind: ConnectionLost, Session: s.name, Index: s.idx, Step: -1, Cause: cause, Err: msg, State: Failed,
		Failure: endedFailure(s.name, "", msg)})
}

// serverMajor is the major version in a server_version ("15.20 (Debian
// 15.20-0+deb12u1)", "17devel"), or 0 when there is none.
func serverMajor(version string) int {
	n := 0
	for _, c := range version {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
