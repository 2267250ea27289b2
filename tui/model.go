// Package tui is lockstep's Bubble Tea interface over the engine (sim) and
// the lock observer (locks). It runs no SQL of its own: every database call
// goes through the engine, inside a tea.Cmd, so the screen never blocks.
package tui

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/jackc/pgerrcode"
	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/scenario"
	"lockstep/sim"
)

// Options set up the interface.
type Options struct {
	DB *db.Database
	// Config is the first run's set-up (its DB is set from DB).
	Config sim.Config
	// Order is the stored order autoplay plays before round-robin.
	Order []int
	// Server describes the database for the header.
	Server string
	// Transfers is the transfer set-up the strategy menu returns to when the
	// run started with a scenario (Config.Scenario set).
	Transfers sim.Config
	// ScenarioSummary is the header's line for a scenario.
	ScenarioSummary string
}

// Run shows the interface until the user quits or ctx ends, then rolls back
// every session and closes the engine.
func Run(ctx context.Context, opts Options, progOpts ...tea.ProgramOption) error {
	m := New(ctx, opts)
	defer m.Close()
	return runProgram(ctx, m, progOpts)
}

// runProgram runs a Bubble Tea program until it quits or ctx ends. A program
// killed because ctx ended (Ctrl-C, SIGTERM, SIGHUP) is no error: the
// caller's deferred cleanup rolls back and closes.
func runProgram(ctx context.Context, m tea.Model, progOpts []tea.ProgramOption) error {
	p := tea.NewProgram(m, append([]tea.ProgramOption{tea.WithContext(ctx)}, progOpts...)...)
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// engines holds the engine the interface is running, so that it is closed
// on every exit path, whatever state the model was in.
type engines struct {
	mu  sync.Mutex
	eng *sim.Engine
}

func (h *engines) swap(ctx context.Context, next *sim.Engine) {
	h.mu.Lock()
	old := h.eng
	h.eng = next
	h.mu.Unlock()
	if old != nil {
		_ = old.Close(ctx)
	}
}

type mode int

const (
	modeNormal mode = iota
	modeTyping
	modeStrategy
	modeSetup
)

// logEntry is one line of the log pane.
type logEntry struct {
	at   time.Time
	who  string
	text string
	kind sim.EventKind
	bad  bool
}

// item is a selectable line: a wait edge or a lock.
type item struct {
	edge *locks.Edge
	lock *locks.Lock
	row  *locks.RowLock
}

// Model is the interface's state. Everything the view shows is copied in
// here by Update; View reads nothing else.
type Model struct {
	ctx      context.Context
	opts     Options
	cfg      sim.Config
	engines  *engines
	eng      *sim.Engine
	engID    int
	gen      int
	starting bool
	fatal    string

	width, height int
	isDark        bool
	st            styles
	keys          keyMap
	help          help.Model
	mode          mode
	input         textinput.Model
	menu          int
	form          setupForm

	sessions []sim.SessionInfo
	snap     *locks.Snapshot
	items    []item
	sel      int // selected session
	itemSel  int // selected item, -1 for none
	accounts []ledger.Account
	books    *ledger.Books
	// byDatabase is a two-database run's balances, by database label.
	byDatabase map[string][]ledger.Account
	booksErr   string
	log        []logEntry
	status     string

	// the latest deadlock: the cycle while it stands, then its victim
	cycle      *locks.Cycle
	victim     string
	victimText string

	autoplay  bool
	autoSeq   int
	perm      int // the scenario permutation autoplay plays, counting from 1
	speed     int // index into speeds
	scheduler *sim.Scheduler

	runID    string
	deadlock time.Duration // the server's deadlock_timeout
	now      time.Time
	// masked hides pids, transaction ids and times (golden tests).
	masked bool
	// lastEvent and booksPending tell tests when the screen has caught up.
	lastEvent    time.Time
	booksPending int
}

var speeds = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

// New is the interface's model; Close releases what it started.
func New(ctx context.Context, opts Options) *Model {
	cfg := opts.Config
	cfg.DB = opts.DB
	in := textinput.New()
	in.Placeholder = "SQL to run in the session, e.g. SELECT * FROM accounts FOR SHARE"
	in.CharLimit = 2000
	m := &Model{
		ctx: ctx, opts: opts, cfg: cfg, engines: &engines{}, isDark: true, st: newStyles(true),
		keys: newKeyMap(), help: help.New(), input: in, itemSel: -1, speed: 2, starting: true, perm: 1,
		scheduler: sim.NewScheduler(opts.Order), now: time.Now(),
	}
	m.help.Styles = help.DefaultStyles(true)
	return m
}

// hasLedger says whether the run has balances to read: transfers, or a
// two-database scenario (the ledger in both).
func (m *Model) hasLedger() bool { return m.cfg.Scenario == nil || m.cfg.TwoDatabases() }

// runName is what the run is: its strategy, or its scenario.
func (m *Model) runName() string {
	if m.cfg.Scenario != nil {
		return "scenario " + m.cfg.ScenarioName
	}
	return m.cfg.Strategy.Name
}

// Close rolls back the sessions and closes the engine.
func (m *Model) Close() { m.engines.swap(context.WithoutCancel(m.ctx), nil) }

// Init starts the first engine and asks the terminal for its background.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.startEngine(m.cfg), tea.RequestBackgroundColor, tick())
}

func tick() tea.Cmd {
	return tea.Tick(250*time.Millisecond, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// startEngine replaces the running engine with a new one for cfg.
func (m *Model) startEngine(cfg sim.Config) tea.Cmd {
	m.keys.twoDatabases(cfg.TwoDatabases())
	m.engID++
	id, ctx, h := m.engID, m.ctx, m.engines
	m.starting = true
	return func() tea.Msg {
		h.swap(ctx, nil) // the old sessions roll back before the new ones reset the ledger
		eng, err := sim.New(ctx, cfg)
		if err != nil {
			return engineFailedMsg{id: id, err: err}
		}
		h.swap(ctx, eng)
		return engineReadyMsg{id: id, eng: eng}
	}
}

// waitEvents reads the next events of engine id: one, blocking, then all
// that are already queued, so a burst repaints once.
func waitEvents(id int, eng *sim.Engine) tea.Cmd {
	return func() tea.Msg {
		ch := eng.Events()
		ev, ok := <-ch
		if !ok {
			return eventsMsg{id: id, closed: true}
		}
		out := []sim.Event{ev}
		for len(out) < 256 {
			select {
			case ev, ok := <-ch:
				if !ok {
					return eventsMsg{id: id, events: out, closed: true}
				}
				out = append(out, ev)
			default:
				return eventsMsg{id: id, events: out}
			}
		}
		return eventsMsg{id: id, events: out}
	}
}

// readBooks reads balances and checks the books outside the sessions.
func readBooks(ctx context.Context, id, gen int, eng *sim.Engine) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if eng.Config().TwoDatabases() {
			byDB, err := eng.Balances(ctx)
			return booksMsg{id: id, gen: gen, byDatabase: byDB, err: err}
		}
		accounts, books, err := eng.Books(ctx)
		return booksMsg{id: id, gen: gen, accounts: accounts, books: books, err: err}
	}
}

// Update handles keys, engine events and replies.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.SetWidth(msg.Width)
		m.input.SetWidth(max(20, msg.Width-12))
		return m, nil
	case tea.BackgroundColorMsg:
		m.isDark = msg.IsDark()
		m.st = newStyles(m.isDark)
		m.help.Styles = help.DefaultStyles(m.isDark)
		return m, nil
	case tickMsg:
		m.now = time.Time(msg)
		return m, tick()
	case engineReadyMsg:
		m.byDatabase = nil
		if msg.id != m.engID {
			return m, nil
		}
		m.eng, m.starting, m.fatal, m.gen = msg.eng, false, "", msg.eng.Generation()
		m.booksPending = 0
		m.cfg = msg.eng.Config()
		m.runID, m.deadlock = string(msg.eng.RunID()), msg.eng.Observer().DeadlockTimeout()
		m.resetView()
		m.sessions = msg.eng.Sessions()
		m.logLine("", fmt.Sprintf("ready: %s, %d sessions", m.runName(), m.cfg.Sessions), sim.ResetDone, false)
		if ok, note := msg.eng.Observer().RowLocksAvailable(); !ok {
			m.logLine("", note, sim.ResetDone, true)
		}
		if !m.hasLedger() {
			return m, waitEvents(m.engID, m.eng) // a scenario has no ledger to read
		}
		m.booksPending++
		return m, tea.Batch(waitEvents(m.engID, m.eng), readBooks(m.ctx, m.engID, m.gen, m.eng))
	case engineFailedMsg:
		if msg.id == m.engID {
			m.starting, m.fatal, m.eng = false, msg.err.Error(), nil
		}
		return m, nil
	case eventsMsg:
		if msg.id != m.engID {
			return m, nil // from an engine replaced since
		}
		cmd := m.handleEvents(msg.events)
		if msg.closed {
			return m, cmd
		}
		return m, tea.Batch(cmd, waitEvents(msg.id, m.eng))
	case booksMsg:
		if msg.id != m.engID || msg.gen != m.gen {
			return m, nil
		}
		m.booksPending--
		if msg.err != nil {
			m.booksErr = booksProblem(msg.err)
			return m, nil
		}
		m.accounts, m.books, m.booksErr = msg.accounts, &msg.books, ""
		if msg.byDatabase != nil {
			m.byDatabase, m.books = msg.byDatabase, nil
		}
		return m, nil
	case actionMsg:
		if msg.id == m.engID && msg.err != nil {
			m.status = fmt.Sprintf("%s: %v", msg.what, msg.err)
		}
		if msg.id == m.engID && msg.err == nil && strings.Contains(msg.what, " PREPARED ") {
			m.logLine("", "✓ "+msg.what, sim.Completed, false)
		}
		return m, nil
	case autoplayMsg:
		return m, m.autoplayBeat(msg)
	case tea.KeyPressMsg:
		return m, m.handleKey(msg)
	}
	if m.mode == modeTyping {
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		return m, cmd
	}
	return m, nil
}

func booksProblem(err error) string {
	if strings.Contains(err.Error(), "55P03") || strings.Contains(err.Error(), "lock timeout") {
		return "balances not read: a session holds the accounts table exclusively (shown as last read)"
	}
	return "balances not read: " + err.Error()
}

// resetView forgets what the previous run showed.
func (m *Model) resetView() {
	m.snap, m.items, m.itemSel = nil, nil, -1
	m.cycle, m.victim, m.victimText = nil, "", ""
	m.accounts, m.books, m.booksErr = nil, nil, ""
	m.scheduler = sim.NewScheduler(m.opts.Order)
	m.autoplay = false
	m.autoSeq++
	if m.sel >= m.cfg.Sessions {
		m.sel = 0
	}
}

// handleEvents takes a burst of engine events into the model.
func (m *Model) handleEvents(events []sim.Event) tea.Cmd {
	readAgain := false
	for _, ev := range events {
		if ev.Gen < m.gen {
			continue // from before a reset
		}
		if ev.Kind != sim.Polled {
			m.lastEvent = ev.Time
		}
		switch ev.Kind {
		case sim.ResetDone:
			m.gen = ev.Gen
			m.booksPending = 0
			m.resetView()
			m.logLine("", "reset: sessions rolled back, ledger re-created", ev.Kind, false)
			readAgain = true
		case sim.Polled:
			m.setSnapshot(ev.Snapshot)
		case sim.Started:
			if ev.Auto {
				m.logLine(ev.Session, "↺ "+ev.SQL+"  (the application gives the transfer up)", ev.Kind, false)
			}
		case sim.WaitingForLock:
			m.logLine(ev.Session, "⏳ waits for "+strings.Join(ev.BlockedBy, ", ")+": "+oneLine(ev.SQL), ev.Kind, false)
		case sim.Completed:
			text := "✓ " + oneLine(ev.SQL)
			if ev.Tag != "" {
				text += "  → " + ev.Tag
			}
			m.logLineAt(ev.Time, ev.Session, text, ev.Kind, false)
			readAgain = true
		case sim.Error:
			m.logLineAt(ev.Time, ev.Session, fmt.Sprintf("✗ %s (SQLSTATE %s)", ev.Err.Message, ev.Err.SQLState), ev.Kind, true)
			if ev.Err.SQLState == pgerrcode.DeadlockDetected {
				m.victim, m.victimText, m.cycle = ev.Session, ev.Err.Detail, nil
			}
			readAgain = true
		case sim.ConnectionLost:
			m.logLineAt(ev.Time, ev.Session, "✗ connection lost: "+ev.Cause.Error(), ev.Kind, true)
		case sim.DeadlockFormed:
			m.cycle = ev.Cycle
			m.victim, m.victimText = "", ""
			what := "⚠ deadlock: "
			if ev.Cycle.Distributed {
				what = "⚠ distributed deadlock (no server sees it): "
			}
			m.logLine("", what+ev.Cycle.String(), ev.Kind, true)
		}
	}
	if m.eng != nil {
		m.sessions = m.eng.Sessions()
	}
	if readAgain && m.eng != nil && m.hasLedger() {
		m.booksPending++
		return readBooks(m.ctx, m.engID, m.gen, m.eng)
	}
	return nil
}

// quiet is true when the screen shows a settled state: no statement whose
// fate is unknown, a lock snapshot newer than the last event, no balances
// read outstanding.
func (m *Model) quiet() bool {
	if m.eng == nil || m.starting || m.snap == nil || m.booksPending > 0 || !m.snap.Taken.After(m.lastEvent) {
		return false
	}
	for _, s := range m.sessions {
		if s.State == sim.Running {
			return false
		}
	}
	return true
}

// setSnapshot takes a poll in and rebuilds the selectable lines: wait edges
// first, then each session's locks, most telling first.
func (m *Model) setSnapshot(s *locks.Snapshot) {
	var prev item
	if m.itemSel >= 0 && m.itemSel < len(m.items) {
		prev = m.items[m.itemSel]
	}
	m.snap = s
	m.items = m.items[:0]
	for i := range s.Graph.Edges {
		m.items = append(m.items, item{edge: &s.Graph.Edges[i]})
	}
	var ls []*locks.Lock
	for i := range s.Locks {
		if s.Locks[i].Type != "virtualxid" {
			ls = append(ls, &s.Locks[i])
		}
	}
	sort.SliceStable(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if a.Session != b.Session {
			return a.Session < b.Session
		}
		return lockRank(a) < lockRank(b)
	})
	rows := s.RowLocks
	names := sessionNames(m.sessions)
	for _, b := range s.Backends {
		if b.Prepared != "" {
			// A prepared transaction holds locks with no session: list them too.
			names = append(names, b.Session)
		}
	}
	for _, name := range names {
		// A session's locks, its row locks after its table locks: what it
		// waits for, tables, rows, then transactions, keys, indexes.
		rowsDone := false
		addRows := func() {
			for i := range rows {
				if rows[i].Session == name {
					m.items = append(m.items, item{row: &rows[i]})
				}
			}
			rowsDone = true
		}
		for _, l := range ls {
			if l.Session != name {
				continue
			}
			if !rowsDone && lockRank(l) > 1 {
				addRows()
			}
			m.items = append(m.items, item{lock: l})
		}
		if !rowsDone {
			addRows()
		}
	}
	// Keep the selection on the same thing if it is still there.
	if m.itemSel >= 0 {
		m.itemSel = -1
		for i, it := range m.items {
			if sameItem(it, prev) {
				m.itemSel = i
				break
			}
		}
	}
	if m.cycle != nil && len(s.Graph.Cycles) == 0 && m.victim == "" {
		m.cycle = nil
	}
}

func sameItem(a, b item) bool {
	switch {
	case a.edge != nil && b.edge != nil:
		return a.edge.Waiter == b.edge.Waiter && a.edge.Holder == b.edge.Holder
	case a.lock != nil && b.lock != nil:
		return a.lock.Session == b.lock.Session && a.lock.Target() == b.lock.Target() && a.lock.Mode == b.lock.Mode
	case a.row != nil && b.row != nil:
		return a.row.Session == b.row.Session && a.row.Account == b.row.Account && a.row.Mode == b.row.Mode
	}
	return false
}

// lockRank orders a session's locks: what it waits for, tables, rows,
// transactions, advisory keys, then indexes and sequences.
func lockRank(l *locks.Lock) int {
	switch {
	case !l.Granted:
		return 0
	case l.Type == "relation" && l.RelKind == "r":
		return 1
	case l.Type == "tuple":
		return 2
	case l.Type == "transactionid":
		return 3
	case l.Type == "advisory":
		return 4
	case l.Type == "relation":
		return 6
	}
	return 5
}

func sessionNames(ss []sim.SessionInfo) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (m *Model) logLine(who, text string, kind sim.EventKind, bad bool) {
	m.logLineAt(time.Now(), who, text, kind, bad)
}

func (m *Model) logLineAt(at time.Time, who, text string, kind sim.EventKind, bad bool) {
	m.log = append(m.log, logEntry{at: at, who: who, text: text, kind: kind, bad: bad})
	if len(m.log) > 500 {
		m.log = m.log[len(m.log)-500:]
	}
}

// handleKey routes a key by mode.
func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	if msg.String() == "ctrl+c" {
		return tea.Quit
	}
	switch m.mode {
	case modeTyping:
		return m.typingKey(msg)
	case modeStrategy:
		return m.strategyKey(msg)
	case modeSetup:
		return m.setupKey(msg)
	}
	k := m.keys
	m.status = ""
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
		return nil
	case key.Matches(msg, k.Strategy):
		m.mode = modeStrategy
		m.menu = 0
		for i, s := range ledger.Strategies() {
			if m.cfg.Strategy != nil && s.Name == m.cfg.Strategy.Name {
				m.menu = i
			}
		}
		return nil
	case key.Matches(msg, k.Setup):
		if m.cfg.Scenario != nil {
			m.status = "the set-up form is for the transfer strategies; m picks one"
			return nil
		}
		m.mode, m.form = modeSetup, newSetupForm(m.cfg)
		return nil
	}
	if m.eng == nil || m.starting {
		m.status = "the sessions are starting…"
		return nil
	}
	n := len(m.sessions)
	switch {
	case key.Matches(msg, k.Prev):
		m.sel = (m.sel + n - 1) % n
	case key.Matches(msg, k.Next):
		m.sel = (m.sel + 1) % n
	case key.Matches(msg, k.Step):
		m.step(m.sel)
	case key.Matches(msg, k.StepN):
		i := int(msg.String()[0] - '1')
		if i < n {
			m.sel = i
			m.step(i)
		}
	case key.Matches(msg, k.Commit):
		m.report(m.eng.Commit(m.sel))
	case key.Matches(msg, k.Rollback):
		m.report(m.eng.Rollback(m.sel))
	case key.Matches(msg, k.Cancel):
		id, eng, ctx, i := m.engID, m.eng, m.ctx, m.sel
		return func() tea.Msg { return actionMsg{id: id, what: "cancel", err: eng.Cancel(ctx, i)} }
	case key.Matches(msg, k.Type):
		if m.sessions[m.sel].State.Busy() {
			m.status = m.sessions[m.sel].Name + " is busy: wait, or k to cancel its statement"
			return nil
		}
		m.mode = modeTyping
		m.input.Reset()
		return m.input.Focus()
	case key.Matches(msg, k.Reset):
		id, eng, ctx := m.engID, m.eng, m.ctx
		m.status = "resetting…"
		return func() tea.Msg { return actionMsg{id: id, what: "reset", err: eng.Reset(ctx)} }
	case key.Matches(msg, k.Autoplay):
		m.autoplay = !m.autoplay
		m.autoSeq++
		if m.autoplay {
			return m.autoplayBeat(autoplayMsg{seq: m.autoSeq})
		}
	case key.Matches(msg, k.Permutation):
		sc := m.cfg.Scenario
		if sc == nil || len(sc.Permutations) == 0 {
			m.status = "p picks among a scenario's permutations; this run has none"
			return nil
		}
		m.perm = m.perm%len(sc.Permutations) + 1
		order, _ := sc.SessionOrder(m.perm)
		m.opts.Order, m.autoplay = order, false
		m.scheduler = sim.NewScheduler(order)
		var names []string
		for _, ps := range sc.Permutations[m.perm-1].Steps {
			names = append(names, ps.Step.Name)
		}
		m.status = fmt.Sprintf("autoplay plays permutation %d of %d: %s (from where the sessions are; r resets)",
			m.perm, len(sc.Permutations), strings.Join(names, " "))
	case key.Matches(msg, k.Fix):
		return m.nextFix()
	case key.Matches(msg, k.CommitPrepared), key.Matches(msg, k.RollbackPrepared):
		commit := key.Matches(msg, k.CommitPrepared)
		id, eng, ctx := m.engID, m.eng, m.ctx
		return func() tea.Msg {
			list, err := eng.Prepared(ctx)
			if err == nil && len(list) == 0 {
				err = errors.New("no prepared transaction of this run is left")
			}
			what := "resolve"
			if err == nil {
				err = eng.ResolvePrepared(ctx, list[0], commit)
				verb := "ROLLBACK PREPARED"
				if commit {
					verb = "COMMIT PREPARED"
				}
				what = verb + " " + list[0].Name + " in database " + list[0].Database
			}
			return actionMsg{id: id, what: what, err: err}
		}
	case key.Matches(msg, k.Speed):
		if msg.String() == "+" && m.speed > 0 {
			m.speed--
		} else if msg.String() == "-" && m.speed < len(speeds)-1 {
			m.speed++
		}
	case key.Matches(msg, k.Up):
		m.moveItem(-1)
	case key.Matches(msg, k.Down):
		m.moveItem(+1)
	case key.Matches(msg, k.Unselect):
		m.itemSel = -1
	}
	return nil
}

func (m *Model) moveItem(d int) {
	if len(m.items) == 0 {
		m.itemSel = -1
		return
	}
	m.itemSel += d
	if m.itemSel < 0 {
		m.itemSel = len(m.items) - 1
	}
	if m.itemSel >= len(m.items) {
		m.itemSel = 0
	}
}

func (m *Model) step(i int) {
	if err := m.eng.Step(i); err != nil {
		m.report(err)
	}
}

func (m *Model) report(err error) {
	if err != nil {
		m.status = err.Error()
	}
}

// autoplayBeat steps the next session of the stored order, once the last
// statement has settled (finished, or reported waiting by the server).
func (m *Model) autoplayBeat(msg autoplayMsg) tea.Cmd {
	if !m.autoplay || msg.seq != m.autoSeq || m.eng == nil {
		return nil
	}
	next := tea.Tick(speeds[m.speed], func(time.Time) tea.Msg { return autoplayMsg{seq: msg.seq} })
	for _, s := range m.sessions {
		if s.State == sim.Running {
			return next // not settled yet
		}
	}
	idx, _, done := m.scheduler.Next(m.sessions)
	if done {
		m.autoplay = false
		m.status = "autoplay: every session has finished"
		return nil
	}
	if idx >= 0 {
		m.sel = idx
		m.step(idx)
	}
	return next
}

// coupledFixes are the coupled scenario and its fixes, in the order f cycles them.
var coupledFixes = []string{"coupled", "coupled-ordered", "coupled-lock-timeout", "coupled-2pc", "coupled-2pc-interrupted"}

// nextFix switches a coupled run to the next of its fixes: a new run.
func (m *Model) nextFix() tea.Cmd {
	if !m.cfg.TwoDatabases() {
		m.status = "f switches among the coupled scenario's fixes: start with lockstep --scenario coupled"
		return nil
	}
	next := coupledFixes[0]
	for i, name := range coupledFixes {
		if name == m.cfg.ScenarioName {
			next = coupledFixes[(i+1)%len(coupledFixes)]
		}
	}
	sc, err := scenario.LoadBuiltin(next, "")
	if err != nil {
		m.status = err.Error()
		return nil
	}
	for _, b := range scenario.Builtins() {
		if b.Name == next {
			m.opts.ScenarioSummary = b.Summary
		}
	}
	cfg := m.cfg
	cfg.Scenario, cfg.ScenarioName, cfg.Sessions = sc, next, len(sc.Sessions)
	m.cfg = cfg
	m.perm = 1
	m.opts.Order, _ = sc.SessionOrder(1)
	m.scheduler = sim.NewScheduler(m.opts.Order)
	m.logLine("", "scenario "+next+": the run starts again", sim.ResetDone, false)
	return m.startEngine(cfg)
}

func (m *Model) typingKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		m.mode = modeNormal
		m.input.Blur()
		return nil
	case "enter":
		sql := strings.TrimSpace(m.input.Value())
		m.mode = modeNormal
		m.input.Blur()
		if sql != "" {
			m.report(m.eng.Exec(m.sel, sql))
		}
		return nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return cmd
}

func (m *Model) strategyKey(msg tea.KeyPressMsg) tea.Cmd {
	all := ledger.Strategies()
	switch msg.String() {
	case "esc", "q", "m":
		m.mode = modeNormal
	case "up", "k":
		m.menu = (m.menu + len(all) - 1) % len(all)
	case "down", "j":
		m.menu = (m.menu + 1) % len(all)
	case "enter", "space":
		m.mode = modeNormal
		cfg := m.cfg
		if cfg.Scenario != nil {
			// Leaving the scenario for the transfers.
			cfg = m.opts.Transfers
			cfg.DB = m.opts.DB
		}
		cfg.Strategy = all[m.menu]
		m.cfg = cfg
		m.logLine("", "strategy "+cfg.Strategy.Name+": the run starts again", sim.ResetDone, false)
		return m.startEngine(cfg)
	}
	return nil
}

// setupForm edits the number of sessions, their directions, the accounts
// and the amounts; applying it starts a new run.
type setupForm struct {
	field     int
	sessions  int
	direction int // 0 same, 1 opposite, 2 ring
	accounts  int
	amount    decimal.Decimal
	balance   decimal.Decimal
}

var directions = []string{"same (1 → 2)", "opposite (even sessions 2 → 1)", "ring (T1 1 → 2, T2 2 → 3, …, last → 1)"}

func newSetupForm(cfg sim.Config) setupForm {
	f := setupForm{sessions: cfg.Sessions, accounts: cfg.Setup.Accounts, amount: cfg.Amount, balance: cfg.Setup.Balance}
	if f.amount.IsZero() {
		f.amount = decimal.RequireFromString("10.00")
	}
	if cfg.Direction == sim.Opposite {
		f.direction = 1
	}
	if len(cfg.Transfers) > 0 {
		f.direction = 2
	}
	return f
}

const setupFields = 5

func (f *setupForm) adjust(d int) {
	step := decimal.RequireFromString("5.00")
	switch f.field {
	case 0:
		f.sessions = min(sim.MaxSessions, max(sim.MinSessions, f.sessions+d))
	case 1:
		f.direction = (f.direction + d + len(directions)) % len(directions)
	case 2:
		f.accounts = min(20, max(2, f.accounts+d))
	case 3:
		if a := f.amount.Add(step.Mul(decimal.NewFromInt(int64(d)))); a.IsPositive() {
			f.amount = a
		}
	case 4:
		if b := f.balance.Add(decimal.NewFromInt(int64(50 * d))); !b.IsNegative() {
			f.balance = b
		}
	}
}

// config is the form as a run's set-up.
func (f setupForm) config(base sim.Config) sim.Config {
	cfg := base
	cfg.Sessions, cfg.Amount, cfg.Transfers = f.sessions, f.amount, nil
	cfg.Direction = sim.Same
	if f.direction == 1 {
		cfg.Direction = sim.Opposite
	}
	cfg.Setup = ledger.Setup{Accounts: f.accounts, Balance: f.balance}
	if f.direction == 2 {
		cfg.Setup.Accounts = max(f.accounts, f.sessions)
		for i := range f.sessions {
			from := int64(i%cfg.Setup.Accounts) + 1
			to := from%int64(f.sessions) + 1
			cfg.Transfers = append(cfg.Transfers, ledger.Transfer{From: from, To: to, Amount: f.amount})
		}
	}
	return cfg
}

func (m *Model) setupKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc", "q", "s":
		m.mode = modeNormal
	case "up":
		m.form.field = (m.form.field + setupFields - 1) % setupFields
	case "down", "tab":
		m.form.field = (m.form.field + 1) % setupFields
	case "left", "-":
		m.form.adjust(-1)
	case "right", "+":
		m.form.adjust(+1)
	case "enter":
		cfg := m.form.config(m.cfg)
		if err := cfg.Validate(); err != nil {
			m.status = err.Error()
			return nil
		}
		m.mode = modeNormal
		m.cfg = cfg
		if m.sel >= cfg.Sessions {
			m.sel = 0
		}
		return m.startEngine(cfg)
	}
	return nil
}
