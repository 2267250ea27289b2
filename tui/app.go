package tui

import (
	"context"
	"fmt"
	"sort"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/jackc/pgerrcode"

	"lockstep/db"
	"lockstep/lazyre"
	"lockstep/locks"
	"lockstep/sim"
)

type mode int

const (
	modeNormal mode = iota
	modeTyping
	modeStrategy
	modeSetup
	modeHistory
)

// Model is the interface's root. It owns the engine, turns the engine's
// events into frames (frame.go) — the live one, and the history's — hands
// the keys to whatever has them (actions.go), and lays the panes out over
// the frame shown (layout.go).
type Model struct {
	ctx      context.Context
	opts     Options
	cfg      sim.Config
	runs     *runSwitcher
	eng      *sim.Engine
	engID    int
	gen      int
	starting bool
	fatal    string
	fatalErr error // why the sessions could not start, kept for Run's error

	width, height int
	look          *look
	theme         string
	isDark        bool
	table         actions // the live screen's keys
	histTable     actions // history mode's
	holders               // the help overlay and the question, in front of the keys
	mode          mode
	input         textinput.Model
	status        string
	// noticeText is a line from outside the run (a teacher's broadcast),
	// shown in the footer until noticeUntil.
	noticeText  string
	noticeUntil time.Time

	live    frame
	hist    history
	tl      *timeline // walks the history: the frame shown in history mode
	shownAt *frame    // the frame the selection was built from
	shownSn *locks.Snapshot

	sessions *sessionsPane
	sel      selection
	locks    *locksPane
	graph    *graphPane
	explain  *explainPane
	accounts *accountsPane
	log      *logPane
	menu     *strategyMenu
	form     *setupForm
	tab      int // the pane the compact layout shows below the explanation
	// focus is the pane the scrolling keys and z act on (noPane: the
	// screen's defaults); zoomed gives it the whole screen.
	focus  paneID
	zoomed bool

	auto *autoplayer
	// lesson is the lesson over the screen (lockstep learn), nil when the
	// student steps freely; its keys are lessonKeys and lessonHistKeys.
	lesson                     *lessonLayer
	lessonKeys, lessonHistKeys actions

	runID    db.RunID
	deadlock time.Duration // the server's deadlock_timeout
	// rp is set when the model replays a recording: no engine, no database.
	rp *replay
	// rec records the first run (Options.Record); recorded says it began.
	rec      func(sim.Event)
	recorded bool
	clock    func() time.Time
	now      time.Time
	clk      clocks
}

// New is the interface's model; Close releases what it started.
func New(ctx context.Context, opts Options) *Model {
	cfg := opts.Config
	cfg.DB = opts.DB
	in := textinput.New()
	in.Placeholder = "SQL to run in the session, e.g. SELECT * FROM accounts FOR SHARE"
	in.CharLimit = 2000
	theme, err := ParseTheme(opts.Theme)
	if err != nil {
		theme = ThemeDefault
	}
	l := &look{st: opts.styles(theme, true), vol: opts.Volatile}
	if l.vol == nil {
		l.vol = asIs{}
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	m := &Model{
		ctx: ctx, opts: opts, cfg: cfg, runs: newRunSwitcher(ctx), look: l, theme: theme, isDark: true,
		input: in, starting: true,
		auto: newAutoplayer(opts.Order), clock: clock, now: clock(), sel: newSelection(),
		live: frame{waitSince: map[string]time.Time{}, results: map[resultKey]result{}},
	}
	m.tl = newTimeline(func() int { return len(m.hist.frames) }, func(i int) time.Time { return m.hist.frames[i].at })
	m.sessions = &sessionsPane{box: box{look: l}}
	m.locks = &locksPane{box: box{look: l}, sel: &m.sel}
	m.graph = &graphPane{box: box{look: l}, sel: &m.sel}
	m.explain = &explainPane{box: box{look: l}, sel: &m.sel}
	m.accounts = &accountsPane{box: box{look: l}}
	m.log = newLogPane(l)
	m.menu = newStrategyMenu(l)
	m.form = newSetupForm(l)
	m.help.look = l
	m.table, m.histTable = m.newTable(), m.newHistTable()
	if opts.Lesson != nil {
		m.explain.lesson = true
		m.lesson = newLessonLayer(*opts.Lesson, l)
		m.lessonKeys, m.lessonHistKeys = m.lessonTable(), m.lessonHistTable()
	}
	return m
}

// Close rolls back the sessions and closes the engine.
func (m *Model) Close() { m.runs.Close() }

// Init starts the first engine and asks the terminal for its background.
func (m *Model) Init() tea.Cmd {
	if m.rp != nil {
		return tea.RequestBackgroundColor
	}
	if m.lesson != nil {
		return tea.Batch(m.startPart(0), tea.RequestBackgroundColor)
	}
	return tea.Batch(m.startEngine(m.cfg), tea.RequestBackgroundColor)
}

// runName is what the run is: its strategy, or its scenario.
func (m *Model) runName() string {
	if m.rp != nil {
		return m.rp.run.Name
	}
	if m.lesson != nil && m.lesson.title != "" {
		return m.lesson.title // a part that runs a student's answer
	}
	return m.cfg.Name()
}

// hasLedger says whether the run is about the ledger (else a scenario's own tables).
func (m *Model) hasLedger() bool {
	if m.rp != nil {
		return m.rp.run.HasLedger
	}
	return m.cfg.HasLedger()
}

// startEngine replaces the running engine with a new one for cfg (the
// run switcher starts one at a time); the engine reads the balances itself
// whenever they may have changed.
func (m *Model) startEngine(cfg sim.Config) tea.Cmd {
	cfg.Books = true
	m.engID++
	m.starting = true
	return m.runs.start(m.engID, cfg)
}

// waitEvents reads the next events of engine id.
func waitEvents(id int, eng *sim.Engine) tea.Cmd {
	return listen(eng.Events(), func(events []sim.Event, closed bool) tea.Msg {
		return eventsMsg{id: id, events: events, closed: closed}
	})
}

// Update handles keys, engine events and replies, and asks for the tick
// the clocks on screen need (clocks.go).
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if t, ok := msg.(tickMsg); ok {
		if t.seq != m.clk.seq {
			return m, nil // replaced by a sooner tick
		}
		m.clk.pending = false
	}
	if !m.live.lost {
		m.now = m.clock() // a screen that is not live stops its clocks
	}
	model, cmd := m.update(msg)
	return model, tea.Batch(cmd, m.clockCmd(msg))
}

func (m *Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.input.SetWidth(max(20, msg.Width-12))
		return m, nil
	case tea.BackgroundColorMsg:
		m.isDark = msg.IsDark()
		m.look.st = m.opts.styles(m.theme, m.isDark)
		m.explain.Restyle()
		return m, nil
	case tickMsg:
		m.lessonTick(msg.at)
		return m, nil
	case lessonDoneMsg:
		m.lessonDone(msg)
		return m, nil
	case editedMsg:
		if msg.err != nil {
			m.status = "the editor: " + msg.err.Error()
		} else {
			m.status = "saved " + msg.path + ": g grades it"
		}
		return m, nil
	case gradedMsg:
		if m.lesson != nil {
			m.lesson.grading = false
			m.lesson.grade = msg.grade
			m.status = ""
			if msg.err != nil {
				m.status = "grading: " + msg.err.Error()
			}
		}
		return m, nil
	case engineReadyMsg:
		if msg.id != m.engID {
			return m, nil
		}
		m.ready(msg.eng)
		return m, waitEvents(m.engID, m.eng)
	case engineFailedMsg:
		if msg.id == m.engID {
			m.starting, m.fatal, m.fatalErr, m.eng = false, msg.err.Error(), msg.err, nil
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
		m.actionDone(msg)
		return m, nil
	case preparedChosenMsg:
		if msg.id != m.engID || m.eng == nil {
			return m, nil
		}
		m.logLine(logEntry{at: m.clock(), text: "… " + msg.what + " (sent)"})
		return m, resolvePrepared(m.ctx, m.eng, msg)
	case autoplayMsg:
		return m, m.autoplayBeat(msg)
	case timelineTickMsg:
		cmd, ended := m.tl.Tick(msg)
		if ended {
			m.status = "the end of the recording (space plays it again)"
		}
		return m, cmd
	case tea.KeyPressMsg:
		return m, m.handleKey(msg)
	case StartRunMsg:
		return m, m.startRun(msg)
	case NoticeMsg:
		m.notice(msg.Text)
		return m, nil
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
	m.explain.deadlock = m.deadlock
	m.resetView()
	m.live.sessions = eng.Sessions()
	m.startRecording(eng)
	m.logLine(logEntry{at: m.clock(), text: fmt.Sprintf("ready: %s, %d sessions", m.runName(), m.cfg.Sessions)})
	if ok, note := eng.Observer().RowLocksAvailable(); !ok {
		m.logLine(logEntry{at: m.clock(), text: note, bad: true})
	}
	m.hist.push(m.live.copy())
	if m.lesson != nil {
		m.lessonReady()
	}
}

// startRecording records the first run, when asked; a later run (another
// strategy, a new set-up) ends the recording, which is of one run.
func (m *Model) startRecording(eng *sim.Engine) {
	switch {
	case m.opts.Record == nil:
	case !m.recorded:
		m.recorded = true
		w, err := m.opts.Record(eng)
		if err != nil {
			m.status = "not recording: " + err.Error()
			return
		}
		m.rec = w.Tap(eng.Sessions)
	case m.rec != nil:
		m.rec = nil
		m.status = "the recording holds the first run only: it ended when this one began"
	}
}

// resetView forgets what the previous run showed.
func (m *Model) resetView() {
	m.sel = newSelection()
	m.live = frame{at: m.clock(), gen: m.gen, waitSince: map[string]time.Time{}, results: map[resultKey]result{}}
	if m.lesson == nil {
		m.hist = history{} // a lesson's parts share one history, for ←
	}
	m.shownAt, m.shownSn = nil, nil
	if m.mode == modeHistory {
		m.mode = modeNormal
	}
	m.auto.Restart(m.opts.Order)
}

func (m *Model) logLine(e logEntry) {
	m.log.Add(e)
	m.live.logLen = m.log.Written()
}

// The status line while autoplay pauses on a deadlock, standing, and once
// the server broke it.
const (
	statusStanding = "autoplay paused: a deadlock stands until the server's deadlock check breaks it (a resumes, h steps back)"
	statusBroken   = "autoplay paused on the deadlock, which the server has now broken (a resumes, h steps back through it)"
)

// handleEvents takes a burst of engine events into the live frame, keeping
// a frame of history after each that changed what the screen shows.
func (m *Model) handleEvents(events []sim.Event) {
	if m.eng == nil && m.rp == nil {
		return
	}
	for _, ev := range events {
		if ev.Gen < m.gen {
			continue // from before a reset
		}
		if m.rec != nil {
			m.rec(ev)
		}
		if ev.Kind == sim.ResetDone && m.rp == nil {
			// A new run begins: its history with it.
			m.gen = ev.Gen
			m.sel = newSelection()
			m.hist = history{}
			if m.mode == modeHistory {
				m.mode = modeNormal
			}
		}
		if ev.Kind == sim.DeadlockFormed && m.auto.on && !ev.Cycle.Distributed {
			// The deadlock stands: let it be read before the server breaks it.
			m.auto.Stop()
			m.auto.pausedStanding = true
			m.status = statusStanding
		}
		if ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.DeadlockDetected && m.auto.pausedStanding {
			m.auto.pausedStanding = false // paused on it already, as it stood
			if m.status == statusStanding {
				m.status = statusBroken // it stands no more
			}
		} else if ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.DeadlockDetected && m.auto.on {
			// The lesson is on screen now: let it be read.
			m.auto.Stop()
			m.status = statusBroken
		}
		keep, line := m.live.apply(ev)
		if line.text != "" {
			m.logLine(line)
		}
		if keep {
			// The moment shown in history stays shown as old ones go.
			m.tl.Dropped(m.hist.push(m.live.copy()))
		} else {
			m.hist.settle(&m.live, ev)
		}
		if m.lesson != nil && m.rp == nil {
			m.lessonEvent(ev)
		}
	}
	if m.eng != nil {
		m.live.sessions = m.eng.Sessions()
	}
	if m.sessions.Selected() >= len(m.live.sessions) {
		m.sessions.Select(0, len(m.live.sessions))
	}
}

// actionDone reports the end of a slow action.
func (m *Model) actionDone(msg actionMsg) {
	if msg.id != m.engID {
		return
	}
	switch {
	case msg.err != nil:
		m.status = fmt.Sprintf("%s: %v", msg.what, msg.err)
	case msg.what == "reset":
		m.status = ""
	}
	if msg.err == nil && msg.logged != "" {
		m.logLine(logEntry{at: m.clock(), text: msg.logged})
	}
}

// shown is the frame the screen shows: the live one, or the history's.
func (m *Model) shown() *frame {
	if m.mode == modeHistory && m.tl.pos < len(m.hist.frames) {
		return &m.hist.frames[m.tl.pos]
	}
	return &m.live
}

// showFrame gives every pane the frame shown, rebuilding the selectable
// locks when its snapshot changed.
func (m *Model) showFrame() {
	f := m.shown()
	now := m.now
	if m.mode == modeHistory || f.lost {
		now = f.at
	}
	if f.snap != m.shownSn || f != m.shownAt {
		if f.snap != nil {
			m.sel.Rebuild(f.snap, sessionNames(f.sessions), waitOrder(f))
		} else {
			m.sel = newSelection()
		}
		m.shownSn, m.shownAt = f.snap, f
	}
	m.sessions.Show(f, now)
	m.explain.Show(f, now)
	m.graph.Show(f)
	m.locks.Show(f)
	m.accounts.Show(f, !m.hasLedger(), m.opts.ScenarioExpected)
	m.accounts.maxRows = max(m.height, 10)
	limit := -1
	if m.mode == modeHistory {
		limit = f.logLen
	}
	m.log.Show(limit, m.zoomed && m.focus == paneLog)
	m.markFocus()
}

func sessionNames(ss []sim.SessionInfo) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

// waitOrder is the waiting sessions, the newest wait first.
func waitOrder(f *frame) []string {
	var names []string
	for name := range f.waitSince {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return f.waitSince[names[i]].After(f.waitSince[names[j]]) })
	return names
}

var processRE = lazyre.New(`(?i)process (\d+)`)

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
