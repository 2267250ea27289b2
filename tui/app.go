package tui

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/jackc/pgerrcode"

	"lockstep/db"
	"lockstep/locks"
	"lockstep/sim"
)

type mode int

const (
	modeNormal mode = iota
	modeTyping
	modeStrategy
	modeSetup
)

// Model is the interface's root. It owns the engine, turns the engine's
// events into what each pane shows, handles the global keys and hands the
// rest to the pane or menu that has them, and lays the panes out (layout.go).
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
	look          *look
	keys          keyMap
	help          help.Model
	mode          mode
	input         textinput.Model
	status        string

	sessions *sessionsPane
	sel      selection
	locks    *locksPane
	graph    *graphPane
	explain  *explainPane
	accounts *accountsPane
	log      *logPane
	menu     *strategyMenu
	form     *setupForm

	autoplay  bool
	autoSeq   int
	perm      int // the scenario permutation autoplay plays, counting from 1
	speed     int // index into speeds
	scheduler *sim.Scheduler

	runID    db.RunID
	deadlock time.Duration // the server's deadlock_timeout
	clock    func() time.Time
}

var speeds = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

// New is the interface's model; Close releases what it started.
func New(ctx context.Context, opts Options) *Model {
	cfg := opts.Config
	cfg.DB = opts.DB
	in := textinput.New()
	in.Placeholder = "SQL to run in the session, e.g. SELECT * FROM accounts FOR SHARE"
	in.CharLimit = 2000
	l := &look{st: newStyles(true), vol: opts.Volatile}
	if l.vol == nil {
		l.vol = asIs{}
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	m := &Model{
		ctx: ctx, opts: opts, cfg: cfg, engines: &engines{}, look: l,
		keys: newKeyMap(), help: help.New(), input: in, speed: 2, starting: true, perm: 1,
		scheduler: sim.NewScheduler(opts.Order), clock: clock, sel: newSelection(),
	}
	m.sessions = &sessionsPane{look: l, now: clock()}
	m.locks = &locksPane{look: l, sel: &m.sel}
	m.graph = &graphPane{look: l, sel: &m.sel, now: clock()}
	m.explain = &explainPane{look: l, sel: &m.sel}
	m.accounts = &accountsPane{look: l}
	m.log = newLogPane(l)
	m.menu = newStrategyMenu(l)
	m.form = newSetupForm(l)
	m.help.Styles = help.DefaultStyles(true)
	return m
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

// runName is what the run is: its strategy, or its scenario.
func (m *Model) runName() string { return m.cfg.Name() }

// startEngine replaces the running engine with a new one for cfg; the
// engine reads the balances itself whenever they may have changed.
func (m *Model) startEngine(cfg sim.Config) tea.Cmd {
	cfg.Books = true
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

// waitEvents reads the next events of engine id.
func waitEvents(id int, eng *sim.Engine) tea.Cmd {
	return listen(eng.Events(), func(events []sim.Event, closed bool) tea.Msg {
		return eventsMsg{id: id, events: events, closed: closed}
	})
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
		m.look.st = newStyles(msg.IsDark())
		m.explain.Restyle()
		m.help.Styles = help.DefaultStyles(msg.IsDark())
		return m, nil
	case tickMsg:
		now := m.clock()
		m.sessions.now, m.graph.now = now, now
		return m, tick()
	case engineReadyMsg:
		if msg.id != m.engID {
			return m, nil
		}
		m.ready(msg.eng)
		return m, waitEvents(m.engID, m.eng)
	case engineFailedMsg:
		if msg.id == m.engID {
			m.starting, m.fatal, m.eng = false, msg.err.Error(), nil
		}
		return m, nil
	case eventsMsg:
		if msg.id != m.engID {
			return m, nil // from an engine replaced since
		}
		m.handleEvents(msg.events)
		if msg.closed {
			return m, nil
		}
		return m, waitEvents(msg.id, m.eng)
	case actionMsg:
		if msg.id == m.engID && msg.err != nil {
			m.status = fmt.Sprintf("%s: %v", msg.what, msg.err)
		}
		if msg.id == m.engID && msg.err == nil && msg.logged != "" {
			m.log.Add(time.Now(), "", msg.logged, false)
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

// ready takes a new engine in: its run starts with a clean screen.
func (m *Model) ready(eng *sim.Engine) {
	m.eng, m.starting, m.fatal, m.gen = eng, false, "", eng.Generation()
	m.cfg = eng.Config()
	m.runID, m.deadlock = eng.RunID(), eng.Observer().DeadlockTimeout()
	m.graph.deadlock = m.deadlock
	m.resetView()
	m.sessions.SetSessions(eng.Sessions())
	m.log.Add(time.Now(), "", fmt.Sprintf("ready: %s, %d sessions", m.runName(), m.cfg.Sessions), false)
	if ok, note := eng.Observer().RowLocksAvailable(); !ok {
		m.log.Add(time.Now(), "", note, true)
	}
}

// resetView forgets what the previous run showed.
func (m *Model) resetView() {
	m.sel = newSelection()
	for _, p := range []interface{ SetSnapshot(*locks.Snapshot) }{m.locks, m.explain} {
		p.SetSnapshot(nil)
	}
	m.sessions.snap = nil
	m.graph.Forget()
	m.accounts.Forget(!m.cfg.HasLedger())
	m.scheduler = sim.NewScheduler(m.opts.Order)
	m.autoplay = false
	m.autoSeq++
}

// handleEvents takes a burst of engine events into the panes.
func (m *Model) handleEvents(events []sim.Event) {
	for _, ev := range events {
		if ev.Gen < m.gen {
			continue // from before a reset
		}
		switch ev.Kind {
		case sim.ResetDone:
			m.gen = ev.Gen
			m.resetView()
			m.log.Add(time.Now(), "", "reset: sessions rolled back, ledger re-created", false)
		case sim.Polled:
			m.setSnapshot(ev.Snapshot)
		case sim.BooksRead:
			m.accounts.SetBalances(*ev.Books)
		case sim.DeadlockFormed:
			m.graph.Formed(ev.Cycle)
			what := "⚠ deadlock: "
			if ev.Cycle.Distributed {
				what = "⚠ distributed deadlock (no server sees it): "
			}
			m.log.Add(time.Now(), "", what+ev.Cycle.String(), true)
		default:
			m.logStatement(ev)
		}
	}
	if m.eng != nil {
		m.sessions.SetSessions(m.eng.Sessions())
	}
}

// logStatement logs what a session's statement did.
func (m *Model) logStatement(ev sim.Event) {
	switch ev.Kind {
	case sim.Started:
		if ev.Auto {
			m.log.Add(time.Now(), ev.Session, "↺ "+ev.SQL+"  (the application gives the transfer up)", false)
		}
	case sim.WaitingForLock:
		m.log.Add(time.Now(), ev.Session, "⏳ waits for "+strings.Join(ev.BlockedBy, ", ")+": "+oneLine(ev.SQL), false)
	case sim.Completed:
		text := "✓ " + oneLine(ev.SQL)
		if ev.Tag != "" {
			text += "  → " + ev.Tag
		}
		m.log.Add(ev.Time, ev.Session, text, false)
	case sim.Error:
		m.log.Add(ev.Time, ev.Session, fmt.Sprintf("✗ %s (SQLSTATE %s)", ev.Err.Message, ev.Err.SQLState), true)
		if ev.Err.SQLState == pgerrcode.DeadlockDetected {
			m.graph.Broken(ev.Session, namedProcesses(ev.Err.Detail, m.sessions.sessions))
		}
	case sim.ConnectionLost:
		m.log.Add(ev.Time, ev.Session, "✗ connection lost: "+ev.Cause.Error(), true)
	}
}

// setSnapshot takes a poll in: the selectable lines are rebuilt and every
// pane that shows locks gets it.
func (m *Model) setSnapshot(s *locks.Snapshot) {
	names := make([]string, len(m.sessions.sessions))
	for i, se := range m.sessions.sessions {
		names[i] = se.Name
	}
	m.sel.Rebuild(s, names)
	m.sessions.snap = s
	m.locks.SetSnapshot(s)
	m.explain.SetSnapshot(s)
	m.graph.SetSnapshot(s)
}

var processRE = regexp.MustCompile(`(?i)process (\d+)`)

// namedProcesses adds the session's name after each "process N" of a
// server message, e.g. the DETAIL of a deadlock.
func namedProcesses(msg string, sessions []sim.SessionInfo) string {
	names := map[string]string{}
	for _, p := range sim.Processes(msg, sessions) {
		names[p.Pid] = p.Session
	}
	return processRE.ReplaceAllStringFunc(msg, func(s string) string {
		if name, ok := names[processRE.FindStringSubmatch(s)[1]]; ok {
			return s + " (" + name + ")"
		}
		return s
	})
}
