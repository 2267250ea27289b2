// Package sim runs several real database sessions side by side, each with
// its own connection, and steps them one statement at a time. Statements run
// asynchronously; what happens leaves the engine as events on one channel,
// with the lock observer's findings among them. It knows nothing of screens.
package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/spec"
)

// Direction says which way the sessions' transfers go.
type Direction int

const (
	// Same: every session transfers from account 1 to account 2.
	Same Direction = iota
	// Opposite: even-numbered sessions transfer from 2 to 1.
	Opposite
)

// ParseDirection reads --direction.
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "same":
		return Same, nil
	case "opposite":
		return Opposite, nil
	}
	return Same, fmt.Errorf("unknown --direction %q: use same or opposite", s)
}

func (d Direction) String() string {
	if d == Opposite {
		return "opposite"
	}
	return "same"
}

// Limits on the number of sessions.
const (
	MinSessions = 2
	MaxSessions = 9
)

// DefaultPoll is how often the observer polls when nothing is in flight.
const DefaultPoll = 200 * time.Millisecond

// Config sets up a run.
type Config struct {
	DB *db.Database
	// DB2 is the second database of a two-database scenario, whose sessions
	// are named T1@A, T1@B, …: those ending in @B connect to DB2.
	DB2       *db.Database
	Ledger    *ledger.Ledger
	Strategy  *ledger.Strategy
	Sessions  int
	Direction Direction
	// Amount is what each session transfers; zero means 10.00.
	Amount decimal.Decimal
	// Transfers, if set, gives each session its own transfer, overriding
	// Direction and Amount.
	Transfers []ledger.Transfer
	Setup     ledger.Setup
	// Poll is the observer's interval; zero means DefaultPoll.
	Poll time.Duration
	// RunID names the run in application_name; empty means a random one.
	RunID string
	// Init is SQL run on a session's connection when it connects, by session
	// name: e.g. {"T1": {"SET deadlock_timeout = '10s'"}} to choose the victim.
	Init map[string][]string
	// Scenario, if set, replaces the transfers: its sessions' steps are the
	// scripts, its setup and teardown blocks replace the ledger. Name names it.
	Scenario     *spec.Spec
	ScenarioName string
}

// Transfers is each session's transfer under the config.
func (c Config) transfers() []ledger.Transfer {
	if len(c.Transfers) > 0 {
		return c.Transfers
	}
	amount := c.Amount
	if amount.IsZero() {
		amount = decimal.RequireFromString("10.00")
	}
	out := make([]ledger.Transfer, c.Sessions)
	for i := range out {
		out[i] = ledger.Transfer{From: 1, To: 2, Amount: amount}
		if c.Direction == Opposite && (i+1)%2 == 0 {
			out[i] = ledger.Transfer{From: 2, To: 1, Amount: amount}
		}
	}
	return out
}

// Validate reports a config that cannot run, in words a user can act on.
func (c Config) Validate() error {
	if c.Scenario != nil {
		if n := len(c.Scenario.Sessions); n < 1 || n > MaxSessions {
			return fmt.Errorf("the scenario has %d sessions; lockstep steps 1 to %d", n, MaxSessions)
		}
		if c.Sessions != len(c.Scenario.Sessions) {
			return fmt.Errorf("%d sessions for a scenario of %d", c.Sessions, len(c.Scenario.Sessions))
		}
		if c.TwoDatabases() {
			return c.validateTwoDatabases()
		}
		return nil
	}
	if c.Sessions < MinSessions || c.Sessions > MaxSessions {
		return fmt.Errorf("--sessions %d: choose %d to %d", c.Sessions, MinSessions, MaxSessions)
	}
	if c.Strategy == nil {
		return errors.New("no strategy chosen")
	}
	if len(c.Transfers) > 0 && len(c.Transfers) != c.Sessions {
		return fmt.Errorf("%d transfers for %d sessions", len(c.Transfers), c.Sessions)
	}
	for i, t := range c.transfers() {
		if t.From == t.To || t.From < 1 || t.To < 1 || int(max(t.From, t.To)) > c.Setup.Accounts {
			return fmt.Errorf("T%d's transfer %s: accounts must differ and exist (1..%d)", i+1, t, c.Setup.Accounts)
		}
		if !t.Amount.IsPositive() {
			return fmt.Errorf("T%d's transfer %s: the amount must be positive", i+1, t)
		}
	}
	if c.Poll < 0 {
		return fmt.Errorf("--poll %s: must be positive", c.Poll)
	}
	return c.Setup.Validate()
}

// TwoDatabases says whether the run's sessions are connections to two
// databases: a scenario whose sessions are named T1@A, T1@B, ….
func (c Config) TwoDatabases() bool {
	if c.Scenario == nil {
		return false
	}
	for _, s := range c.Scenario.Sessions {
		if strings.Contains(s.Name, "@") {
			return true
		}
	}
	return false
}

// sessionName is session i's name: T1, T2, …, or in a two-database
// scenario the scenario's own name for it (T1@A).
func (c Config) sessionName(i int) string {
	if c.TwoDatabases() {
		return c.Scenario.Sessions[i].Name
	}
	return fmt.Sprintf("T%d", i+1)
}

// Engine runs one set of sessions.
type Engine struct {
	cfg    Config
	runID  string
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

	// lifeMu keeps Reset and Close apart; emitMu keeps sends off a closed channel.
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

// New connects the sessions, the observer and a control connection, and
// resets the ledger. Close must be called on every exit path.
func New(ctx context.Context, cfg Config) (_ *Engine, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	runID := cfg.RunID
	if runID == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		runID = hex.EncodeToString(b)
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
	e.sides = []*side{{db: cfg.DB}}
	if cfg.TwoDatabases() {
		e.sides = []*side{{label: "A", db: cfg.DB}, {label: "B", db: cfg.DB2}}
	}
	for _, sd := range e.sides {
		if sd.ctl, err = e.controlConn(ctx, sd); err != nil {
			return nil, err
		}
	}
	if err = e.checkPrepared(ctx); err != nil {
		return nil, err
	}
	if err = e.prepare(ctx); err != nil {
		return nil, err
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
		if err = e.sessionSetup(ctx, s, s.conn); err != nil {
			s.conn.Close(ctx)
			return nil, err
		}
		s.pid = s.conn.PgConn().PID()
		e.sessions = append(e.sessions, s)
		e.workers.Add(1)
		go s.work()
	}
	for _, sd := range e.sides {
		if sd.obsConn, sd.obs, err = e.newObserver(ctx, sd); err != nil {
			return nil, err
		}
	}
	e.observing = true
	go e.observe()
	return e, nil
}

// RunID names the run; sessions appear in pg_stat_activity as lockstep/<RunID>/T1 ….
func (e *Engine) RunID() string { return e.runID }

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

func (e *Engine) session(i int) (*session, error) {
	if e.closed {
		return nil, ErrClosed
	}
	if i < 0 || i >= len(e.sessions) {
		return nil, fmt.Errorf("%w: T%d", ErrNoSession, i+1)
	}
	return e.sessions[i], nil
}

// Step sends session i's next script statement and returns at once; the
// statement completes asynchronously.
func (e *Engine) Step(i int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.session(i)
	if err != nil {
		return err
	}
	switch {
	case s.state.Busy():
		return fmt.Errorf("%s: %w", s.name, ErrBusy)
	case s.state == Failed:
		return fmt.Errorf("%s: %w", s.name, ErrFailed)
	case s.finished || s.next >= s.script.Len():
		return fmt.Errorf("%s: %w", s.name, ErrFinished)
	}
	if o := e.busySibling(s); o != nil {
		return fmt.Errorf("%s: %w: %s", s.name, ErrApplicationBusy, o.name)
	}
	e.dispatch(s, job{step: s.next, sql: s.script.SQL(s.next)})
	return nil
}

// Exec runs SQL the user typed in session i, which must not be busy.
func (e *Engine) Exec(i int, sql string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.session(i)
	if err != nil {
		return err
	}
	if s.state.Busy() {
		return fmt.Errorf("%s: %w", s.name, ErrBusy)
	}
	if s.state == Failed {
		return fmt.Errorf("%s: %w", s.name, ErrFailed)
	}
	if o := e.busySibling(s); o != nil {
		return fmt.Errorf("%s: %w: %s", s.name, ErrApplicationBusy, o.name)
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
	s, err := e.session(i)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	busy, pid := s.state.Busy(), s.pid
	e.mu.Unlock()
	if !busy {
		return fmt.Errorf("%s has no statement running", s.name)
	}
	return e.cancelBackend(ctx, s.side, pid)
}

func (e *Engine) cancelBackend(ctx context.Context, sd *side, pid uint32) error {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if _, err := sd.ctl.Exec(ctx, "SELECT pg_cancel_backend($1)", int32(pid)); err != nil {
		return fmt.Errorf("cancelling pid %d: %w", pid, err)
	}
	return nil
}

// Terminate ends session i's backend from outside (pg_terminate_backend), as
// an operator or a crash would; the session fails and the others go on.
func (e *Engine) Terminate(ctx context.Context, i int) error {
	e.mu.Lock()
	s, err := e.session(i)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if _, err := s.side.ctl.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(s.pid)); err != nil {
		return fmt.Errorf("terminating %s: %w", s.name, err)
	}
	return nil
}

// Books reads the balances and checks the books on the control connection,
// outside every session's transaction. While a session holds the accounts
// table exclusively it fails at once with a lock timeout (55P03) rather than wait.
func (e *Engine) Books(ctx context.Context) ([]ledger.Account, ledger.Books, error) {
	if e.cfg.Scenario != nil {
		return nil, ledger.Books{}, ErrNoLedger
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	sd := e.sides[0]
	if err := e.reconnectControl(ctx, sd); err != nil {
		return nil, ledger.Books{}, err
	}
	accounts, err := ledger.Accounts(ctx, sd.ctl)
	if err != nil {
		return nil, ledger.Books{}, err
	}
	books, err := ledger.CheckBooks(ctx, sd.ctl)
	return accounts, books, err
}

// quiesce cancels every statement in flight and waits until no session is
// busy. Statements that ignore the cancel are ended with pg_terminate_backend.
func (e *Engine) quiesce(ctx context.Context) {
	e.mu.Lock()
	type busy struct {
		side *side
		pid  uint32
	}
	var pids []busy
	for _, s := range e.sessions {
		if s.state.Busy() {
			pids = append(pids, busy{s.side, s.pid})
		}
	}
	e.mu.Unlock()
	for _, b := range pids {
		_ = e.cancelBackend(ctx, b.side, b.pid)
	}
	timer := time.AfterFunc(5*time.Second, func() {
		e.ctlMu.Lock()
		for _, b := range pids {
			_, _ = b.side.ctl.Exec(context.WithoutCancel(ctx), "SELECT pg_terminate_backend($1)", int32(b.pid))
		}
		e.ctlMu.Unlock()
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

// Reset rolls every session back, reconnects failed ones, re-creates the
// ledger and rewinds the scripts. Events from before it carry an older Gen.
func (e *Engine) Reset(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	e.quiesce(ctx)
	e.mu.Lock()
	e.gen++
	gen := e.gen
	sessions := append([]*session(nil), e.sessions...)
	e.seenCycle = map[string]bool{}
	e.mu.Unlock()
	for _, s := range sessions {
		if err := s.control(ctx, ctlRewind); err != nil {
			return fmt.Errorf("resetting session %s: %w", s.name, err)
		}
	}
	e.ctlMu.Lock()
	var err error
	for _, sd := range e.sides {
		if err == nil {
			err = e.reconnectControl(ctx, sd)
		}
	}
	if err == nil {
		if err = e.teardown(ctx); err == nil {
			err = e.prepare(ctx)
		}
	}
	e.ctlMu.Unlock()
	if err != nil {
		return fmt.Errorf("re-creating the ledger: %w", err)
	}
	if e.cfg.Scenario != nil {
		for _, s := range sessions {
			if err := s.control(ctx, ctlSetup); err != nil {
				return err
			}
		}
	}
	e.emit(Event{Gen: gen, Kind: ResetDone, Index: -1, Step: -1})
	e.kickObserver()
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
	sessions := e.sessions
	e.mu.Unlock()
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
	close(e.closing) // from here on, events are dropped rather than block
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
		if err := e.teardown(ctx); err != nil {
			errs = append(errs, err)
		}
		for _, sd := range e.sides {
			sd.ctl.Close(ctx)
		}
		e.ctlMu.Unlock()
	}
	for _, sd := range e.sides {
		// Belt and braces: no backend of this run may outlive it.
		if err := sd.db.EndBackends(ctx, "lockstep/"+e.runID+"/%"); err != nil {
			errs = append(errs, err)
		}
	}
	e.emitMu.Lock()
	e.eventsEnded = true
	close(e.events)
	e.emitMu.Unlock()
	return errors.Join(errs...)
}

// reconnectControl replaces a lost control connection (the server went away
// and came back); e.ctlMu is held.
func (e *Engine) reconnectControl(ctx context.Context, sd *side) error {
	// pgx learns that the server hung up only when it next uses the
	// connection: ask it.
	if !sd.ctl.IsClosed() && sd.ctl.Ping(ctx) == nil {
		return nil
	}
	sd.ctl.Close(ctx)
	conn, err := e.controlConn(ctx, sd)
	if err != nil {
		return err
	}
	sd.ctl = conn
	return nil
}
