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
	"time"

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
	// booksStale asks the observer to read the balances again (Config.Books).
	booksStale bool

	// lifeMu keeps Setup, Teardown, Reset and Close apart; emitMu keeps
	// sends off a closed channel.
	lifeMu      sync.Mutex
	emitMu      sync.RWMutex
	eventsEnded bool

	// sides are the run's databases: one, or A and B. ctlMu guards their
	// control connections.
	ctlMu sync.Mutex
	sides []*side

	kick      chan struct{}
	obsDone   chan struct{}
	observing bool
	seenCycle map[string]bool
	workers   sync.WaitGroup
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
			e.Close(context.WithoutCancel(ctx))
		}
	}()
	e.sides = []*side{{db: cfg.DB, run: runID}}
	if cfg.TwoDatabases() {
		e.sides = []*side{{label: "A", db: cfg.DB, run: runID}, {label: "B", db: cfg.DB2, run: runID}}
	}
	for _, sd := range e.sides {
		if sd.ctl, err = sd.controlConn(ctx); err != nil {
			return nil, err
		}
		if cfg.usesTwoPhaseCommit() {
			if err = sd.checkPrepared(ctx); err != nil {
				return nil, err
			}
		}
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
		if err = s.connect(ctx); err != nil {
			return nil, fmt.Errorf("starting session %s: %w", s.name, err)
		}
		e.sessions = append(e.sessions, s)
		e.workers.Add(1)
		go s.work()
	}
	for _, sd := range e.sides {
		if sd.obsConn, sd.obs, err = sd.newObserver(ctx, cfg.usesTwoPhaseCommit()); err != nil {
			return nil, err
		}
	}
	e.lifeMu.Lock()
	err = e.setup(ctx)
	e.lifeMu.Unlock()
	if err != nil {
		return nil, err
	}
	e.observing = true
	go e.observe()
	return e, nil
}

// RunID names the run; sessions appear in pg_stat_activity as lockstep/<RunID>/T1 ….
func (e *Engine) RunID() db.RunID { return e.runID }

// Config is the run's configuration.
func (e *Engine) Config() Config { return e.cfg }

// Events is the one channel every event leaves on. It is closed by Close.
func (e *Engine) Events() <-chan Event { return e.events }

// Observer is the run's lock observer (for its settings: deadlock_timeout,
// row-lock availability).
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
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.emitMu.RLock()
	defer e.emitMu.RUnlock()
	if e.eventsEnded {
		return
	}
	select {
	case e.events <- ev:
	case <-e.closing:
	}
}

// Errors returned by the stepping calls.
var (
	ErrBusy      = errors.New("a statement is still running in that session")
	ErrFinished  = errors.New("that session has finished its transfer; reset to start again")
	ErrFailed    = errors.New("that session's connection is lost; reset reconnects it")
	ErrNoSession = errors.New("no such session")
	ErrClosed    = errors.New("the engine is closed")
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
		return fmt.Errorf("%s: %w", s.name, ErrFinished)
	}
	e.dispatch(s, job{step: s.next, sql: s.script.SQL(s.next)})
	return nil
}

// Exec runs SQL the user typed in session i, which must not be busy.
func (e *Engine) Exec(i int, sql string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.ready(i)
	if err != nil {
		return err
	}
	e.dispatch(s, job{step: -1, sql: sql})
	return nil
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
	e.kickObserver()
}

// Cancel asks the server to cancel session i's running statement (pg_cancel_backend).
func (e *Engine) Cancel(ctx context.Context, i int) error {
	e.mu.Lock()
	if i < 0 || i >= len(e.sessions) {
		e.mu.Unlock()
		return fmt.Errorf("%w: T%d", ErrNoSession, i+1)
	}
	s := e.sessions[i]
	busy, pid := s.state.Busy(), s.pid
	e.mu.Unlock()
	if !busy {
		return fmt.Errorf("%s has no statement running", s.name)
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
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if _, err := sd.ctl.Exec(ctx, "SELECT "+fn+"($1)", pid); err != nil {
		return fmt.Errorf("%s(%d): %w", fn, pid, err)
	}
	return nil
}

// Books reads the balances and checks the books on the control connection,
// outside every session's transaction. While a session holds the accounts
// table exclusively it fails at once with ErrLedgerLocked rather than wait.
func (e *Engine) Books(ctx context.Context) ([]ledger.Account, ledger.Books, error) {
	if e.cfg.Scenario != nil {
		return nil, ledger.Books{}, ErrNoLedger
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	accounts, err := e.sides[0].accounts(ctx)
	if err != nil {
		return nil, ledger.Books{}, err
	}
	books, err := e.sides[0].books(ctx)
	return accounts, books, err
}

// Balances reads the ledger's accounts in every database of a two-database
// run, by label, on the control connections.
func (e *Engine) Balances(ctx context.Context) (map[string][]ledger.Account, error) {
	if !e.cfg.TwoDatabases() {
		return nil, errors.New("balances by database: this run has one database")
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	out := map[string][]ledger.Account{}
	for _, sd := range e.sides {
		accounts, err := sd.accounts(ctx)
		if err != nil {
			return nil, err
		}
		out[sd.label] = accounts
	}
	return out, nil
}

// readBalances is what a BooksRead event carries: a one-database run's
// balances and books, or a two-database run's balances by database.
func (e *Engine) readBalances(ctx context.Context) Balances {
	b := Balances{Taken: time.Now()}
	if e.cfg.TwoDatabases() {
		b.ByDatabase, b.Err = e.Balances(ctx)
		return b
	}
	accounts, books, err := e.Books(ctx)
	if err != nil {
		b.Err = err
		return b
	}
	b.Accounts, b.Books = accounts, &books
	return b
}

// InSync says whether both databases hold the same balances.
func InSync(balances map[string][]ledger.Account) bool {
	a, b := balances["A"], balances["B"]
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !a[i].Balance.Equal(b[i].Balance) {
			return false
		}
	}
	return true
}

// Prepared lists the run's prepared transactions in every database, from pg_prepared_xacts.
func (e *Engine) Prepared(ctx context.Context) ([]Prepared, error) {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	return e.prepared(ctx)
}

// prepared lists them; e.ctlMu is held.
func (e *Engine) prepared(ctx context.Context) ([]Prepared, error) {
	var out []Prepared
	for _, sd := range e.sides {
		list, err := sd.prepared(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
	}
	return out, nil
}

// ResolvePrepared ends a prepared transaction of the run, as an operator
// would after a crash: COMMIT PREPARED (commit true) or ROLLBACK PREPARED,
// in the database that holds it.
func (e *Engine) ResolvePrepared(ctx context.Context, p Prepared, commit bool) error {
	if _, ours := e.runID.Name(p.GID); !ours {
		return fmt.Errorf("%q is not a prepared transaction of this run", p.GID)
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	for _, sd := range e.sides {
		if sd.label == p.Database {
			if err := sd.endPrepared(ctx, p.GID, commit); err != nil {
				return err
			}
			e.kickObserver()
			return nil
		}
	}
	return fmt.Errorf("no database %q in this run", p.Database)
}

// rollbackPrepared rolls back whatever the run left prepared, so that no
// lock outlives it; e.ctlMu is held.
func (e *Engine) rollbackPrepared(ctx context.Context) error {
	if !e.cfg.usesTwoPhaseCommit() {
		return nil
	}
	list, err := e.prepared(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range list {
		for _, sd := range e.sides {
			if sd.label == p.Database {
				errs = append(errs, sd.endPrepared(ctx, p.GID, false))
			}
		}
	}
	return errors.Join(errs...)
}

// quiesce cancels every statement in flight and waits until no session is
// busy. Statements that ignore the cancel are ended with pg_terminate_backend.
func (e *Engine) quiesce(ctx context.Context) {
	e.mu.Lock()
	type busy struct {
		side *side
		pid  int32
	}
	var pids []busy
	for _, s := range e.sessions {
		if s.state.Busy() {
			pids = append(pids, busy{s.side, s.pid})
		}
	}
	e.mu.Unlock()
	for _, b := range pids {
		_ = e.signalBackend(ctx, b.side, "pg_cancel_backend", b.pid)
	}
	timer := time.AfterFunc(5*time.Second, func() {
		for _, b := range pids {
			_ = e.signalBackend(context.WithoutCancel(ctx), b.side, "pg_terminate_backend", b.pid)
		}
	})
	defer timer.Stop()
	e.mu.Lock()
	for e.anyBusy() {
		e.cond.Wait()
	}
	e.mu.Unlock()
}

func (e *Engine) anyBusy() bool {
	for _, s := range e.sessions {
		if s.state.Busy() {
			return true
		}
	}
	return false
}

// checkOpen fails with ErrClosed once Close has begun.
func (e *Engine) checkOpen() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	return nil
}

// Teardown ends what the sessions are doing: it cancels the statements in
// flight, runs each session's teardown and rolls back what is left open,
// then rolls back what the run left prepared and runs the scenario's global
// teardown. The sessions stay connected, for Setup.
func (e *Engine) Teardown(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if err := e.checkOpen(); err != nil {
		return err
	}
	return e.teardownAll(ctx)
}

// teardownAll is Teardown; e.lifeMu is held.
func (e *Engine) teardownAll(ctx context.Context) error {
	e.quiesce(ctx)
	e.mu.Lock()
	sessions := append([]*session(nil), e.sessions...)
	e.mu.Unlock()
	for _, s := range sessions {
		if err := s.control(ctx, ctlTeardown); err != nil {
			return fmt.Errorf("tearing down session %s: %w", s.name, err)
		}
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	var err error
	for _, sd := range e.sides {
		if err == nil {
			err = sd.reconnectControl(ctx)
		}
	}
	if err == nil {
		err = e.teardown(ctx)
	}
	e.mu.Lock()
	e.down = true
	e.mu.Unlock()
	return err
}

// Setup begins a new generation after Teardown: the ledger is re-created
// (or the scenario's setup blocks run again), each session reconnects if
// its connection was lost, its script starts over and its setup runs.
// Events from before carry an older Gen.
func (e *Engine) Setup(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if err := e.checkOpen(); err != nil {
		return err
	}
	e.mu.Lock()
	e.gen++
	e.seenCycle = map[string]bool{}
	e.mu.Unlock()
	return e.setup(ctx)
}

// setup prepares the data and the sessions; e.lifeMu is held.
func (e *Engine) setup(ctx context.Context) error {
	e.ctlMu.Lock()
	var err error
	for _, sd := range e.sides {
		if err == nil {
			err = sd.reconnectControl(ctx)
		}
	}
	if err == nil {
		err = e.prepare(ctx)
	}
	e.ctlMu.Unlock()
	if err != nil {
		return fmt.Errorf("setting the run up: %w", err)
	}
	e.mu.Lock()
	sessions := append([]*session(nil), e.sessions...)
	e.down, e.booksStale = false, true
	e.mu.Unlock()
	for _, s := range sessions {
		if err := s.control(ctx, ctlSetup); err != nil {
			return fmt.Errorf("setting up session %s: %w", s.name, err)
		}
	}
	return nil
}

// Reset rolls every session back, reconnects failed ones, re-creates the
// ledger and rewinds the scripts: Teardown, then Setup, then a ResetDone
// event.
func (e *Engine) Reset(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if err := e.checkOpen(); err != nil {
		return err
	}
	if err := e.teardownAll(ctx); err != nil {
		return fmt.Errorf("resetting: %w", err)
	}
	e.mu.Lock()
	e.gen++
	gen := e.gen
	e.seenCycle = map[string]bool{}
	e.mu.Unlock()
	if err := e.setup(ctx); err != nil {
		return err
	}
	e.emit(Event{Gen: gen, Kind: ResetDone, Index: -1, Step: -1})
	e.changed()
	return nil
}

// Close rolls back every session, closes all connections, makes sure no
// backend of the run is left on the server, and closes the event channel.
// It is safe to call more than once.
func (e *Engine) Close(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	sessions, down := e.sessions, e.down
	e.mu.Unlock()
	// From here on events are dropped rather than block: nobody reads
	// what the run does while it ends.
	close(e.closing)
	var errs []error
	started := len(e.sides) > 0 && e.sides[len(e.sides)-1].ctl != nil
	if started {
		e.quiesce(ctx)
	}
	for _, s := range sessions {
		if err := s.control(ctx, ctlClose); err != nil {
			errs = append(errs, fmt.Errorf("closing session %s: %w", s.name, err))
		}
		close(s.jobs)
	}
	if e.observing {
		<-e.obsDone
	}
	e.workers.Wait()
	e.cancel()
	for _, sd := range e.sides {
		if sd.obsConn != nil {
			sd.obsConn.Close(ctx)
		}
	}
	if started {
		e.ctlMu.Lock()
		if !down {
			if err := e.teardown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		for _, sd := range e.sides {
			sd.ctl.Close(ctx)
		}
		e.ctlMu.Unlock()
	}
	for _, sd := range e.sides {
		// Belt and braces: no backend of this run may outlive it.
		if err := sd.db.EndBackends(ctx, e.runID.Like("")); err != nil {
			errs = append(errs, err)
		}
	}
	e.emitMu.Lock()
	e.eventsEnded = true
	close(e.events)
	e.emitMu.Unlock()
	return errors.Join(errs...)
}
