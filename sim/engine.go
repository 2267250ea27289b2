// Package sim is lockstep's one engine: several real database sessions side
// by side, each with its own connection, stepped one statement at a time;
// an observer per database reading the locks (and, when asked, the
// balances); and the policy that plays a run to its end. Statements run
// asynchronously; everything that happens — and everything the engine
// decides — leaves it as events on one channel, which the views (the
// headless transcript, the isolation tester, the interface) print. It knows
// nothing of screens or command lines.
package sim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/locks"
)

// Engine runs one set of sessions.
type Engine struct {
	cfg    Config
	runID  db.RunID
	events chan Event
	// ctx governs statements in flight; cancel ends them all (by closing
	// their connections) when the engine closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cond     *sync.Cond // signalled when a session stops being busy
	gen      int
	sessions []*session
	closing  chan struct{}
	closed   bool
	// down is true between Teardown and the next Setup: the scenario's
	// teardown blocks have run, and Close does not run them again.
	down bool
	// failedSetup says the last setup failed: no teardown block runs (as
	// PostgreSQL's isolation tester runs none after a failed setup).
	failedSetup bool
	// booksStale asks the observer to read the balances again (Config.Books).
	booksStale bool
	// pollEvery is the poll interval in force; pollTook the last poll's
	// time when it made the interval longer than the configured one.
	pollEvery, pollTook time.Duration
	pollAvg             time.Duration // the polls' running average
	pollsTimed          int           // how many polls the average has seen

	// lifeMu keeps Setup, Teardown, Reset and Close apart; emitMu keeps
	// sends off a closed channel; orderMu makes the events' times rise in
	// the order they are sent, whichever goroutine sends them.
	lifeMu      sync.Mutex
	emitMu      sync.RWMutex
	orderMu     sync.Mutex
	lastEmit    time.Time
	eventsEnded bool

	// sides are the run's databases: one, or A and B. ctlMu guards their
	// control connections.
	ctlMu sync.Mutex
	sides []*side

	kick      chan struct{}
	obsDone   chan struct{}
	observing bool
	seenCycle map[string]bool
	// polls counts the snapshots applied; a waiter on e.cond may wait for a fresh one.
	polls int
	// lastSnap is the last snapshot applied; commits are the run's COMMITs
	// that succeeded, in order (for a failure's facts).
	lastSnap *locks.Snapshot
	commits  []commitRec
	// txLog are the run's transactions that ended, each with the
	// statements it ran (the last maxTxLog), for a 40001's facts.
	txLog   []txRec
	workers sync.WaitGroup
	// opened counts the sessions', observers' and watchdogs' connections
	// the run made; closedInOrder those it closed itself while they were
	// open and idle (closeInOrder). Close compares them (Config.QuickClose).
	opened, closedInOrder atomic.Int32
}

// closeInOrder closes a connection of the run that nothing uses any more,
// counting it as ended in order when it was still open: its backend gets
// the goodbye and exits by itself.
func (e *Engine) closeInOrder(ctx context.Context, conn *pgx.Conn) error {
	if conn == nil {
		return nil
	}
	if !conn.IsClosed() {
		e.closedInOrder.Add(1)
	}
	return conn.Close(ctx)
}

// New connects the control connections, the sessions and the observers,
// then sets the run up: the ledger (or the scenario's setup blocks) and each
// session's setup. Close must be called on every exit path.
func New(ctx context.Context, cfg Config) (_ *Engine, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	runID := cfg.RunID
	if runID == "" {
		runID = db.NewRunID()
	}
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &Engine{
		cfg: cfg, runID: runID, ctx: ectx, cancel: cancel,
		events: make(chan Event, 1024), closing: make(chan struct{}),
		kick: make(chan struct{}, 1), obsDone: make(chan struct{}), seenCycle: map[string]bool{},
	}
	e.cond = sync.NewCond(&e.mu)
	defer func() {
		if err != nil {
			e.Close(ctx) // Close bounds its own clean-up
		}
	}()
	e.sides = []*side{{db: cfg.DB, run: runID}}
	if cfg.TwoDatabases() {
		e.sides = []*side{{label: "A", db: cfg.DB, run: runID}, {label: "B", db: cfg.DB2, run: runID}}
	}
	var transfers []ledger.Transfer
	if cfg.Scenario == nil {
		transfers = cfg.transfers()
	} else {
		transfers = make([]ledger.Transfer, cfg.Sessions)
	}
	for i := range cfg.Sessions {
		s := &session{e: e, idx: i, name: cfg.sessionName(i), transfer: transfers[i], jobs: make(chan job, 1), ctl: make(chan ctlJob), errAt: -1}
		s.side = e.sides[0]
		if strings.HasSuffix(s.name, "@B") {
			s.side = e.sides[1]
		}
		s.script = e.scriptFor(s)
		e.sessions = append(e.sessions, s)
	}
	// The control connections, sessions and observers connect at once: each
	// connection costs the server a process start.
	var g errgroup.Group
	for _, sd := range e.sides {
		g.Go(func() (err error) {
			if sd.ctl, err = sd.controlConn(ctx); err != nil {
				return err
			}
			// Just connected: no ping before its first use.
			sd.ctlFree, sd.ctlChecked = true, time.Now()
			if !cfg.usesTwoPhaseCommit() {
				return nil
			}
			return sd.checkPrepared(ctx)
		})
	}
	for _, s := range e.sessions {
		g.Go(func() error {
			if err := s.connect(ctx); err != nil {
				return fmt.Errorf("starting session %s: %w", s.name, err)
			}
			return nil
		})
	}
	for _, sd := range e.sides {
		if cfg.Lean && cfg.OnDemand {
			// A view that asks for every poll it needs may ask for none
			// (most isolation specs): the observer connects at the first.
			break
		}
		g.Go(func() (err error) {
			sd.obsConn, sd.obs, err = sd.newObserver(ctx, cfg.usesTwoPhaseCommit(), cfg.Lean, cfg.Scenario != nil)
			if err == nil {
				e.opened.Add(1)
			}
			return err
		})
	}
	if err = g.Wait(); err != nil {
		// No worker runs yet and no setup ran: close what connected here,
		// not through Close.
		for _, s := range e.sessions {
			if s.conn != nil {
				s.conn.Close(ctx)
			}
		}
		e.sessions = nil
		for _, sd := range e.sides {
			if sd.ctl != nil {
				sd.ctl.Close(ctx)
				sd.ctl = nil
			}
		}
		return nil, err
	}
	for _, s := range e.sessions {
		e.workers.Add(1)
		go s.work()
	}
	if cfg.DeferSetup {
		e.down = true // nothing set up, nothing to tear down
	} else {
		e.lifeMu.Lock()
		err = e.setup(ctx)
		e.lifeMu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	e.observing = true
	go e.observe()
	return e, nil
}

// MadeSchemas are the databases whose schema this run created, which are
// the run's to drop at its end; a schema the run found stays as it was.
func (e *Engine) MadeSchemas() []*db.Database {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	var out []*db.Database
	for _, sd := range e.sides {
		if sd.made {
			out = append(out, sd.db)
		}
	}
	return out
}

// RunID names the run; sessions appear in pg_stat_activity as lockstep/<RunID>/T1 ….
func (e *Engine) RunID() db.RunID { return e.runID }

// Config is the run's configuration.
func (e *Engine) Config() Config { return e.cfg }

// Events is the one channel every event leaves on. It is closed by Close.
func (e *Engine) Events() <-chan Event { return e.events }

// Observer is the run's lock observer (for its settings: deadlock_timeout,
// row-lock availability). A lean run on demand (Config.OnDemand) has none
// (nil) until its first poll.
func (e *Engine) Observer() *locks.Observer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sides[0].obs
}

// Database is the database labelled label ("" or "A" is the first).
func (e *Engine) Database(label string) *db.Database {
	for _, sd := range e.sides {
		if sd.label == label {
			return sd.db
		}
	}
	return e.sides[0].db
}

func (e *Engine) generation() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen
}

func (e *Engine) tornDown() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.down
}

// emit sends an event unless the engine is closing and nobody listens.
func (e *Engine) emit(ev Event) {
	e.emitMu.RLock()
	defer e.emitMu.RUnlock()
	if e.eventsEnded {
		return
	}
	e.orderMu.Lock()
	defer e.orderMu.Unlock()
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Kind != Polled {
		// A wait is stamped with the poll that saw it, which may have begun
		// before the last event was sent: the log's times must not go back.
		if ev.Time.Before(e.lastEmit) {
			ev.Time = e.lastEmit
		}
		e.lastEmit = ev.Time
	}
	select {
	case e.events <- ev:
	case <-e.closing:
	}
}

// Errors returned by the stepping calls.
var (
	ErrBusy = errors.New("a statement is still running in that session")
	// ErrFinished: the session's script is over. Step's error says why
	// (finishedError): a transfer that ended in 40P01 has not "finished".
	ErrFinished = errors.New("that session's script is over; reset to start again")
	// ErrScriptStopped refuses a step after the session's scripted
	// statement failed and left its transaction aborted: the script goes no
	// further, and the transaction is still open until a ROLLBACK. It is
	// also ErrFinished.
	ErrScriptStopped = errors.New("that session's script stopped at the statement that failed, and its aborted transaction is still open")
	ErrFailed        = errors.New("that session's connection is lost; reset reconnects it")
	ErrNoSession     = errors.New("no such session")
	ErrClosed        = errors.New("the engine is closed")
	// ErrApplicationBusy refuses a statement on one connection of a logical
	// session while its other connection's statement runs: the application
	// waits for that call to return.
	ErrApplicationBusy = errors.New("the application is still waiting on its other connection")
)

// busySibling is another connection of s's logical session with a
// statement in flight, or nil; e.mu is held.
func (e *Engine) busySibling(s *session) *session {
	for _, o := range e.sessions {
		if o != s && o.state.Busy() && strings.Contains(s.name, "@") && locks.Logical(o.name) == locks.Logical(s.name) {
			return o
		}
	}
	return nil
}

// ready finds session i and checks that it can take a statement; e.mu is held.
func (e *Engine) ready(i int) (*session, error) {
	if e.closed {
		return nil, ErrClosed
	}
	if i < 0 || i >= len(e.sessions) {
		return nil, fmt.Errorf("%w: T%d", ErrNoSession, i+1)
	}
	s := e.sessions[i]
	switch {
	case s.state.Busy():
		return nil, fmt.Errorf("%s: %w", s.name, ErrBusy)
	case s.state == Failed:
		return nil, fmt.Errorf("%s: %w", s.name, ErrFailed)
	}
	if o := e.busySibling(s); o != nil {
		return nil, fmt.Errorf("%s: %w: %s", s.name, ErrApplicationBusy, o.name)
	}
	return s, nil
}

// Step sends session i's next script statement and returns at once; the
// statement completes asynchronously.
func (e *Engine) Step(i int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.ready(i)
	if err != nil {
		return err
	}
	if s.finished || s.next >= s.script.Len() {
		return fmt.Errorf("%s: %w", s.name, s.overError())
	}
	e.dispatch(s, job{step: s.next, sql: s.script.SQL(s.next)})
	return nil
}

// finishedError says why a session's script is over; it is ErrFinished.
type finishedError struct {
	why     string
	stopped bool // a scripted statement failed and its transaction is aborted, still open
}

func (f finishedError) Error() string { return f.why + "; reset to start again" }
func (f finishedError) Is(target error) bool {
	return target == ErrFinished || (f.stopped && target == ErrScriptStopped)
}

// overError says why s's script is over: its last statement ran, a
// scripted statement failed (which ends the script, and rolls back a
// transaction), or the user ended its transaction by hand; e.mu is held.
func (s *session) overError() error {
	switch {
	case s.next >= s.script.Len():
		return finishedError{why: "that session has run all its statements"}
	case s.errAt >= 0 && s.lastErr != nil:
		what := "that session's statement failed"
		if s.lastErr.SQLState != "" {
			what += " with " + s.lastErr.SQLState
		}
		switch s.state {
		case RolledBack:
			what += " and its transaction was rolled back"
		case Aborted:
			return finishedError{what + " and its transaction is aborted, open until a ROLLBACK (x rolls it back): its script stops there", true}
		}
		return finishedError{why: what + ": its script stops there"}
	default:
		return finishedError{why: "that session's transaction was ended by hand: its script stops there"}
	}
}

// Exec runs SQL the user typed in session i, which must not be busy. SQL
// that is the session's next script statement, as written, runs as that
// step: typing the script's BEGIN moves the script on.
func (e *Engine) Exec(i int, sql string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.ready(i)
	if err != nil {
		return err
	}
	if !s.finished && s.next < s.script.Len() && sameStatement(sql, s.script.SQL(s.next)) {
		e.dispatch(s, job{step: s.next, sql: s.script.SQL(s.next)})
		return nil
	}
	e.dispatch(s, job{step: -1, sql: sql})
	return nil
}

// sameStatement compares two statements as written, but for case, blanks
// and a trailing semicolon.
func sameStatement(a, b string) bool {
	if a == b {
		return true // a player sends the script's own text
	}
	norm := func(s string) string {
		return strings.ToUpper(strings.Join(strings.Fields(strings.TrimRight(strings.TrimSpace(s), ";")), " "))
	}
	return norm(a) == norm(b)
}

// Commit commits session i's transaction (its script ends there).
func (e *Engine) Commit(i int) error { return e.Exec(i, "COMMIT") }

// Rollback rolls session i's transaction back (its script ends there).
func (e *Engine) Rollback(i int) error { return e.Exec(i, "ROLLBACK") }

// dispatch hands a job to the session's worker; e.mu is held.
func (e *Engine) dispatch(s *session, j job) {
	j.gen = e.gen
	s.seq++
	j.seq = s.seq
	s.state = Running
	s.current, s.curStep = j.sql, j.step
	s.startedAt = time.Now()
	s.waitKey = ""
	s.jobs <- j // the worker is idle (not busy), so it is waiting on jobs
	if !e.cfg.Lean {
		e.kickObserver()
	}
}

// Cancel asks the server to cancel session i's running statement (pg_cancel_backend).
func (e *Engine) Cancel(ctx context.Context, i int) error {
	e.mu.Lock()
	if i < 0 || i >= len(e.sessions) {
		e.mu.Unlock()
		return fmt.Errorf("%w: T%d", ErrNoSession, i+1)
	}
	s := e.sessions[i]
	busy, pid, conn := s.state.Busy(), s.pid, s.conn
	e.mu.Unlock()
	if !busy {
		return fmt.Errorf("%s has no statement running", s.name)
	}
	if pid == 0 && conn != nil {
		// Through a pooler the backend is the pooler's to name: the cancel
		// goes through the pooler too.
		return conn.PgConn().CancelRequest(ctx)
	}
	return e.signalBackend(ctx, s.side, "pg_cancel_backend", pid)
}

// Terminate ends session i's backend from outside (pg_terminate_backend), as
// an operator or a crash would; the session fails and the others go on.
func (e *Engine) Terminate(ctx context.Context, i int) error {
	e.mu.Lock()
	if i < 0 || i >= len(e.sessions) {
		e.mu.Unlock()
		return fmt.Errorf("%w: T%d", ErrNoSession, i+1)
	}
	s := e.sessions[i]
	pid := s.pid
	e.mu.Unlock()
	return e.signalBackend(ctx, s.side, "pg_terminate_backend", pid)
}

// signalBackend cancels (pg_cancel_backend) or ends (pg_terminate_backend)
// a backend from the side's control connection.
func (e *Engine) signalBackend(ctx context.Context, sd *side, fn string, pid int32) error {
	if pid == 0 {
		return nil // a pooled session's backend is not its own to signal
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if _, err := sd.ctl.Exec(ctx, "SELECT "+fn+"($1)", pid); err != nil {
		return fmt.Errorf("%s(%d): %w", fn, pid, err)
	}
	return nil
}

// errNoTransaction refuses a SET LOCAL outside a transaction, where it
// would do nothing.
var errNoTransaction = errors.New("the session has no transaction open")

// SetDeadlockTimeoutLocal asks the server to run session i's deadlock check
// d after a wait begins, for the rest of its transaction (SET LOCAL
// deadlock_timeout: a superuser's setting; a server that refuses says so
// in the error). The session must be idle in a transaction. The engine
// reads the setting back, so a deadlock's countdown uses it.
func (e *Engine) SetDeadlockTimeoutLocal(ctx context.Context, i int, d time.Duration) error {
	e.mu.Lock()
	s, err := e.ready(i)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	j := ctlJob{kind: ctlSetLocal, ctx: ctx, done: make(chan error, 1),
		sql: fmt.Sprintf("SET LOCAL deadlock_timeout = '%dms'", d.Milliseconds())}
	select {
	case s.ctl <- j:
	case <-e.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-j.done
}
