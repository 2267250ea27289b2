package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

	pid       uint32
	script    Script
	next      int  // the script's next statement
	finished  bool // the script has ended: committed, rolled back, or given up
	state     State
	seq       int // numbers the statements sent, so stale observations are dropped
	current   string
	curStep   int // script index of the statement in flight, -1 if typed
	startedAt time.Time
	lastErr   *StatementError
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
}

type job struct {
	gen, seq int
	step     int // script index, -1 for typed SQL
	sql      string
}

type ctlKind int

const (
	ctlRewind ctlKind = iota // roll back, reconnect if lost, rewind the script
	ctlClose                 // roll back and close the connection
	ctlSetup                 // run the scenario session's setup
)

type ctlJob struct {
	kind ctlKind
	ctx  context.Context
	done chan error
}

// connect opens the session's connection, named for the observer.
func (s *session) connect(ctx context.Context) error {
	conn, err := s.side.db.Connect(ctx, locks.SessionAppName(s.e.runID, s.name))
	if err != nil {
		return err
	}
	// PostgreSQL 14+: a backend waiting on a lock notices within a second that
	// its client is gone, instead of holding its place until the lock comes.
	_, _ = conn.Exec(ctx, "SET client_connection_check_interval = '1s'")
	for _, sql := range s.e.cfg.Init[s.name] {
		if _, err := conn.Exec(ctx, sql); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("running %q: %w", sql, err)
		}
	}
	s.conn = conn
	return nil
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
		if s.conn.PgConn().TxStatus() != 'I' {
			_, _ = s.conn.Exec(c.ctx, "ROLLBACK")
		}
		e.sessionTeardown(c.ctx, s)
		return s.conn.Close(c.ctx)
	case ctlSetup:
		return e.sessionSetup(c.ctx, s, s.conn)
	case ctlRewind:
		if s.conn != nil && !s.conn.IsClosed() && s.conn.PgConn().TxStatus() != 'I' {
			_, _ = s.conn.Exec(c.ctx, "ROLLBACK")
		}
		e.sessionTeardown(c.ctx, s)
		if s.conn == nil || s.conn.IsClosed() {
			if err := s.connect(c.ctx); err != nil {
				return err
			}
		} else if s.conn.PgConn().TxStatus() != 'I' {
			if _, err := s.conn.Exec(c.ctx, "ROLLBACK"); err != nil {
				return fmt.Errorf("rolling back: %w", err)
			}
		}
		e.mu.Lock()
		s.script = e.scriptFor(s)
		s.next, s.finished, s.state, s.lastErr, s.errAt = 0, false, Idle, nil, -1
		s.blockedBy, s.waits, s.waitKey, s.waited, s.current = nil, nil, "", false, ""
		s.pid = s.conn.PgConn().PID()
		e.mu.Unlock()
	}
	return nil
}

// result is what one statement did.
type result struct {
	tag      string
	columns  []string
	rows     [][]string
	first    []any
	err      error
	duration time.Duration
}

// exec runs sql the way psql would: the simple protocol, several statements
// allowed, every value as text.
func (s *session) exec(sql string) result {
	start := time.Now()
	var r result
	results, err := s.conn.PgConn().Exec(s.e.ctx, sql).ReadAll()
	r.duration = time.Since(start)
	for _, res := range results {
		if res.Err != nil {
			err = res.Err
			break
		}
		r.tag = res.CommandTag.String()
		if len(res.FieldDescriptions) > 0 {
			r.columns = r.columns[:0]
			for _, f := range res.FieldDescriptions {
				r.columns = append(r.columns, f.Name)
			}
			r.rows = r.rows[:0]
			for _, row := range res.Rows {
				vals := make([]string, len(row))
				for i, v := range row {
					if v == nil {
						vals[i] = "NULL"
					} else {
						vals[i] = string(v)
					}
				}
				r.rows = append(r.rows, vals)
			}
			if len(r.rows) > 0 {
				r.first = make([]any, len(r.rows[0]))
				for i, v := range r.rows[0] {
					r.first[i] = v
				}
			}
		}
	}
	r.err = err
	return r
}

// run executes one job and reports it.
func (s *session) run(j job) {
	e := s.e
	step, auto := j.step, j.step == autoRollback
	if auto {
		step = -1
	}
	e.emit(Event{Gen: j.gen, Kind: Started, Session: s.name, Index: s.idx, Step: step, Auto: auto, SQL: j.sql, State: Running})
	r := s.exec(j.sql)
	if r.err == nil && s.e.cfg.TwoDatabases() && touchesLockTimeout(j.sql) {
		s.readLockTimeout(s.e.ctx)
	}
	if r.err == nil && j.step >= 0 {
		e.mu.Lock() // views render the script with its values
		r.err = s.script.Record(j.step, r.first)
		e.mu.Unlock()
	}
	var pgErr *pgconn.PgError
	isPg := errors.As(r.err, &pgErr)
	switch {
	case r.err == nil:
		s.finish(j, r, nil, false)
	case isPg && pgErr.Severity != "FATAL" && pgErr.Severity != "PANIC" && !s.conn.IsClosed():
		se := &StatementError{SQLState: pgErr.Code, Severity: pgErr.Severity, Message: pgErr.Message, Detail: pgErr.Detail, Hint: pgErr.Hint}
		// As application code would, a failed scripted transfer rolls back and gives up.
		rollback := j.step >= 0 && e.autoRollbackOnError() && s.conn.PgConn().TxStatus() == 'E'
		s.finish(j, r, se, rollback)
		if rollback {
			s.run(job{gen: j.gen, seq: j.seq, step: autoRollback, sql: "ROLLBACK"})
		}
	case isPg || s.conn.IsClosed() || pgconn.SafeToRetry(r.err) || isConnError(r.err):
		// A FATAL error (pg_terminate_backend, a server shutdown) ends the
		// connection as surely as a broken socket.
		_ = s.conn.Close(context.WithoutCancel(e.ctx))
		e.mu.Lock()
		s.state = Failed
		s.current = ""
		s.settled++
		e.cond.Broadcast()
		e.mu.Unlock()
		e.emit(Event{Gen: j.gen, Kind: ConnectionLost, Session: s.name, Index: s.idx, Step: j.step, SQL: j.sql,
			Cause: r.err, State: Failed, Duration: r.duration})
	default:
		// A client-side failure reading the result (e.g. capturing a value).
		s.finish(j, r, &StatementError{Message: r.err.Error()}, false)
	}
}

// touchesLockTimeout says whether a statement may change the session's
// lock_timeout: it sets it, or ends a transaction (SET LOCAL ends there).
func touchesLockTimeout(sql string) bool {
	q := strings.ToUpper(sql)
	switch strings.Fields(strings.TrimRight(q, "; ") + " x")[0] {
	case "COMMIT", "ROLLBACK", "END", "ABORT", "PREPARE":
		return true
	}
	return strings.Contains(q, "LOCK_TIMEOUT")
}

// readLockTimeout reads the session's lock_timeout, which decides whether a
// distributed deadlock ends by itself. Only the session's worker calls it.
func (s *session) readLockTimeout(ctx context.Context) {
	var v string
	if err := s.conn.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&v); err != nil {
		return
	}
	d := locks.ParsePgDuration(v)
	s.e.mu.Lock()
	s.lockTimeout = d
	s.e.mu.Unlock()
}

func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "conn closed")
}

// autoRollback marks the ROLLBACK the engine sends after a scripted statement failed.
const autoRollback = -2

// finish records a statement's end and emits Completed or Error. With
// rollbackNext, the session stays busy for the ROLLBACK that follows.
func (s *session) finish(j job, r result, se *StatementError, rollbackNext bool) {
	e := s.e
	auto := j.step == autoRollback
	step := j.step
	if auto {
		step = -1
	}
	e.mu.Lock()
	if se == nil && len(s.blockedBy) > 0 {
		// The statement was released by its blockers' transactions ending:
		// report it after what they did (a COMMIT, or a deadlock error and
		// the ROLLBACK after it), so transcripts read in causal order.
		e.awaitIdle(s.blockedBy, time.Now().Add(2*time.Second))
	}
	tx := s.conn.PgConn().TxStatus()
	verb := strings.ToUpper(strings.TrimRight(strings.TrimSpace(j.sql), ";"))
	ends := verb == "COMMIT" || verb == "ROLLBACK" || verb == "END" || verb == "ABORT"
	switch {
	case tx == 'E':
		s.state = Aborted
	case tx == 'T':
		s.state = InTransaction
	case se == nil && ends && r.tag == "ROLLBACK":
		s.state = RolledBack
	case se == nil && ends:
		s.state = Committed
	case auto:
		s.state = RolledBack
	default:
		s.state = Idle
	}
	if se != nil {
		s.lastErr, s.errAt = se, step
	}
	if j.step >= 0 && se == nil {
		s.next = j.step + 1
		if s.next >= s.script.Len() {
			s.finished = true
		}
	}
	if (j.step >= 0 && se != nil) || (j.step < 0 && ends) || auto {
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
	state := s.state
	if rollbackNext {
		s.state, s.current = Running, "ROLLBACK"
	} else {
		e.cond.Broadcast()
	}
	e.mu.Unlock()
	ev := Event{Gen: j.gen, Session: s.name, Index: s.idx, Step: step, Auto: auto, SQL: j.sql,
		Tag: r.tag, Columns: r.columns, Rows: r.rows, Duration: r.duration, State: state}
	if se != nil {
		ev.Kind, ev.Err = Error, se
	} else {
		ev.Kind = Completed
	}
	e.emit(ev)
	e.kickObserver()
}

// awaitIdle waits, with e.mu held, until the named sessions have no
// statement in flight, or until deadline (a bound, not a guess: a blocker
// may run a long statement after releasing its locks).
func (e *Engine) awaitIdle(names []string, deadline time.Time) {
	timer := time.AfterFunc(time.Until(deadline), func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	defer timer.Stop()
	for time.Now().Before(deadline) {
		busy := false
		for _, o := range e.sessions {
			// A prepared transaction ("prepared T1@A") ends by its own
			// session's COMMIT PREPARED, as a rule.
			if o.state.Busy() && (slices.Contains(names, o.name) || slices.Contains(names, locks.PreparedName("", o.name))) {
				busy = true
			}
		}
		if !busy {
			return
		}
		e.cond.Wait()
	}
}
