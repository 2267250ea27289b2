package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/scenario"
	"lockstep/sim"
)

// handleKey routes a key: Ctrl-C always quits; the help overlay, a
// question, a menu, a form, the input line or history mode takes the rest;
// otherwise the screen's key table.
func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	if msg.String() == "ctrl+c" {
		return tea.Quit
	}
	if m.mode != modeTyping {
		// The input line keeps its alt keys: alt+← moves a word.
		if cmd, ok := twoKeys(msg, m.handleKey); ok {
			return cmd
		}
	}
	if cmd, held := m.hold(msg, &m.status); held {
		return cmd
	}
	switch m.mode {
	case modeTyping:
		return m.typingKey(msg)
	case modeStrategy:
		return m.strategyKey(msg)
	case modeSetup:
		return m.setupKey(msg)
	}
	table := m.keyTable()
	m.status = ""
	cmd, why, found := table.handle(msg)
	if why != "" {
		m.status = why
	}
	if !found && key.Matches(msg, helpKey) {
		m.openHelp()
	}
	return cmd
}

// keyTable is the table of the screen shown: stepping, history, or a
// lesson's.
func (m *Model) keyTable() actions {
	switch {
	case m.lesson != nil && m.lesson.hist >= 0:
		return m.lessonHistKeys
	case m.lesson != nil && m.mode != modeHistory:
		return m.lessonKeys
	case m.mode == modeHistory:
		return m.histTable
	}
	return m.table
}

// openHelp lists every key of the screen shown.
func (m *Model) openHelp() {
	title := "Keys — stepping the sessions"
	if m.mode == modeHistory {
		title = "Keys — history: the run's past"
		if m.rp != nil {
			title = "Keys — replaying a recording"
		}
	}
	if m.lesson != nil {
		title = "Keys — a lesson"
		if m.lesson.hist >= 0 {
			title = "Keys — the lesson's earlier steps"
		}
	}
	m.holders.openHelp(title, m.keyTable())
}

// notRunning says why the keys that act on the sessions can do nothing
// now, or "".
func (m *Model) notRunning() string {
	switch {
	case m.rp != nil:
		return "a replay shows a recorded run: nothing runs"
	case m.fatal != "" && m.cfg.Scenario != nil:
		return "the sessions could not start: " + strings.TrimSuffix(fatalRemedy(m.fatalErr, true, scenario.FixFamily(m.cfg.ScenarioName) != nil), ".")
	case m.fatal != "":
		return "the sessions could not start: m picks another strategy, s another set-up, q quits"
	case m.eng == nil || m.starting:
		return "the sessions are starting…"
	}
	return ""
}

// selectedSession is the session the keys act on.
func (m *Model) selectedSession() (sim.SessionInfo, bool) {
	i := m.sessions.Selected()
	if i < 0 || i >= len(m.live.sessions) {
		return sim.SessionInfo{}, false
	}
	return m.live.sessions[i], true
}

// endable says why c and x cannot end the selected session's transaction
// now, in the engine's words (sim.Engine.ready): its statement still runs,
// or its application waits on its other connection; "" when they can.
func (m *Model) endable() string {
	if why := m.notRunning(); why != "" {
		return why
	}
	s, ok := m.selectedSession()
	if !ok {
		return ""
	}
	if s.State.Busy() {
		return s.Name + ": " + sim.ErrBusy.Error()
	}
	if s.State == sim.Failed {
		return s.Name + ": " + sim.ErrFailed.Error()
	}
	if s.AppBusy {
		for _, o := range m.live.sessions {
			if o.Name != s.Name && o.State.Busy() && locks.Logical(o.Name) == locks.Logical(s.Name) {
				return s.Name + ": " + sim.ErrApplicationBusy.Error() + ": " + o.Name
			}
		}
		return s.Name + ": " + sim.ErrApplicationBusy.Error()
	}
	return ""
}

// newTable is the live screen's keys: what each does and when it cannot.
func (m *Model) newTable() actions {
	running := m.notRunning
	step := func(i int) tea.Cmd {
		m.report(m.eng.Step(i))
		return nil
	}
	onSession := func(act func(eng *sim.Engine, i int) error) func(tea.KeyPressMsg) tea.Cmd {
		return func(tea.KeyPressMsg) tea.Cmd {
			m.report(act(m.eng, m.sessions.Selected()))
			return nil
		}
	}
	const stepping, run, look = "Step the sessions", "Choose the run", "Look closer"
	return append(actions{
		{Binding: key.NewBinding(key.WithKeys("space", "enter"), key.WithHelp("space", "step")),
			long:  "step the selected session: run its next statement",
			group: stepping, bar: 1, why: running,
			run: func(tea.KeyPressMsg) tea.Cmd { return step(m.sessions.Selected()) }},
		{Binding: key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6", "7", "8", "9"), key.WithHelp("1–9", "step N")),
			long:  "step session N (and select it)",
			group: stepping, bar: 2, why: running,
			run: func(msg tea.KeyPressMsg) tea.Cmd {
				n := int(msg.String()[0] - '1')
				if n >= len(m.live.sessions) {
					m.status = fmt.Sprintf("there are %d sessions: 1–%d step them", len(m.live.sessions), len(m.live.sessions))
					return nil
				}
				m.sessions.Select(n, len(m.live.sessions))
				return step(n)
			}},
		{Binding: key.NewBinding(key.WithKeys("left"), key.WithHelp("←/→", "session")),
			long:  "select the previous/next session: the keys act on the selected one",
			group: stepping, bar: 9,
			run: func(tea.KeyPressMsg) tea.Cmd { m.sessions.Move(-1, len(m.live.sessions)); return nil }},
		{Binding: key.NewBinding(key.WithKeys("right")),
			group: stepping,
			run:   func(tea.KeyPressMsg) tea.Cmd { m.sessions.Move(+1, len(m.live.sessions)); return nil }},
		{Binding: key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "commit")),
			group: stepping, bar: 3, why: m.endable, run: onSession((*sim.Engine).Commit)},
		{Binding: key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "rollback")),
			group: stepping, bar: 3, why: m.endable, run: onSession((*sim.Engine).Rollback)},
		{Binding: key.NewBinding(key.WithKeys("k"), key.WithHelp("k", "cancel")),
			long:  "cancel the selected session's running or waiting statement (a cancel request, as Ctrl-C in psql)",
			group: stepping, bar: 6,
			why: func() string {
				if why := running(); why != "" {
					return why
				}
				if s, ok := m.selectedSession(); ok && !s.State.Busy() {
					return s.Name + " runs no statement: k cancels one that runs or waits"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd {
				id, eng, ctx, i := m.engID, m.eng, m.ctx, m.sessions.Selected()
				return func() tea.Msg { return actionMsg{id: id, what: "cancel", err: eng.Cancel(ctx, i)} }
			}},
		{Binding: key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "type SQL")),
			long:  "type SQL to run in the selected session, in its transaction",
			group: stepping, bar: 5,
			why: func() string {
				if why := running(); why != "" {
					return why
				}
				if s, ok := m.selectedSession(); ok && s.State.Busy() {
					return s.Name + " is busy: wait, or k to cancel its statement"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd {
				m.mode = modeTyping
				m.input.Reset()
				return m.input.Focus()
			}},
		{Binding: key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "autoplay")),
			long:  "autoplay: step the sessions by themselves, one statement a beat (a again stops)",
			group: run, bar: 4, why: running,
			run: func(tea.KeyPressMsg) tea.Cmd { return m.auto.Toggle() }},
		{Binding: key.NewBinding(key.WithKeys("+", "-"), key.WithHelp("+/-", "speed")),
			long:  "autoplay faster/slower",
			group: run,
			run: func(msg tea.KeyPressMsg) tea.Cmd {
				if msg.String() == "+" {
					m.auto.Faster()
				} else {
					m.auto.Slower()
				}
				return nil
			}},
		{Binding: key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "permutation")),
			long:  "make autoplay play the scenario's next permutation",
			group: run,
			why: func() string {
				if sc := m.cfg.Scenario; sc == nil || len(sc.Permutations) == 0 {
					return "p picks among a scenario's permutations; this run has none"
				}
				return running()
			},
			run: func(tea.KeyPressMsg) tea.Cmd { m.nextPermutation(); return nil }},
		{Binding: key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "next fix")),
			long:  "switch to the scenario's next fix (the run starts again)",
			group: run, bar: 2,
			why: func() string {
				if scenario.FixFamily(m.cfg.ScenarioName) == nil {
					return "f cycles a scenario's fixes; this run has none (" + strings.Join(scenario.Problems(), ", ") + " have)"
				}
				if m.fatal != "" && m.rp == nil {
					// This fix could not start (coupled-2pc on a server
					// without prepared transactions): the next one may.
					return ""
				}
				return running()
			},
			run: func(tea.KeyPressMsg) tea.Cmd { return m.nextFix() }},
		{Binding: key.NewBinding(key.WithKeys("C", "X"), key.WithHelp("C/X", "end prepared")),
			long:  "COMMIT PREPARED (C) or ROLLBACK PREPARED (X) the run's oldest prepared transaction, as an operator would",
			group: run, bar: 3,
			why: func() string {
				if !m.cfg.TwoDatabases() {
					return "prepared transactions come from the two-database scenarios (--scenario coupled-2pc)"
				}
				return running()
			},
			run: func(msg tea.KeyPressMsg) tea.Cmd {
				return endOldestPrepared(m.ctx, m.engID, m.eng, msg.String() == "C")
			}},
		{Binding: key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "strategy")),
			long:  "pick another transfer strategy (the run starts again)",
			group: run, bar: 7,
			why: func() string {
				if m.rp != nil {
					return "a replay shows a recorded run"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd {
				m.mode = modeStrategy
				if m.cfg.Strategy != nil {
					m.menu.Open(m.cfg.Strategy.Name)
				}
				return nil
			}},
		{Binding: key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "set-up")),
			long:  "change the set-up: sessions, direction, accounts, amounts (the run starts again)",
			group: run,
			why: func() string {
				if m.cfg.Scenario != nil {
					return "the set-up form is for the transfer strategies; m picks one"
				}
				if m.rp != nil {
					return "a replay shows a recorded run"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd {
				m.mode = modeSetup
				m.form.Open(m.cfg)
				return nil
			}},
		{Binding: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "reset")),
			long:  "reset: roll every session back and re-create the run's tables",
			group: run, bar: 8, why: running,
			run: func(tea.KeyPressMsg) tea.Cmd {
				m.status = "resetting…"
				id, eng, ctx := m.engID, m.eng, m.ctx
				return func() tea.Msg { return actionMsg{id: id, what: "reset", err: eng.Reset(ctx)} }
			}},
		m.arrowAction("up", -1, key.NewBinding(key.WithHelp("↑/↓", "explain a lock")), look),
		m.arrowAction("down", +1, key.Binding{}, look),
		{Binding: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
			group: look,
			long:  "un-zoom; else take the focus away and explain the newest wait again",
			run:   func(tea.KeyPressMsg) tea.Cmd { m.back(); return nil }},
		{Binding: key.NewBinding(key.WithKeys("h"), key.WithHelp("h", "history")),
			long:  "history: step back through the run's moments (the run goes on underneath)",
			group: look, bar: 4,
			why: func() string {
				if len(m.hist.frames) == 0 {
					return "no history yet: step a session first"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd { m.enterHistory(); return nil }},
		{Binding: key.NewBinding(key.WithKeys("L"), key.WithHelp("L", "log")),
			long:  "the log, full screen, every line whole (L again returns)",
			group: look,
			run:   func(tea.KeyPressMsg) tea.Cmd { m.zoomLog(); return nil }},
		{Binding: key.NewBinding(key.WithKeys("v"), key.WithHelp("v", "next pane")),
			long:  "show the next pane below the explanation (on screens too small for all of them)",
			group: look,
			why: func() string {
				if m.width >= gridWidth && m.height >= gridHeight {
					return fmt.Sprintf("at %d×%d every pane is shown; v switches panes on smaller screens", m.width, m.height)
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd {
				wasTab := m.focus == tabPaneIDs[m.tab]
				m.tab = (m.tab + 1) % len(tabNames)
				if wasTab {
					m.focus = tabPaneIDs[m.tab] // the focus stays below the explanation
				}
				return nil
			}},
		{Binding: helpKey, group: look,
			run: func(tea.KeyPressMsg) tea.Cmd { m.openHelp(); return nil }},
		{Binding: quitKey, group: look,
			run: func(tea.KeyPressMsg) tea.Cmd { return m.askQuit() }},
	}, m.focusActions(look)...)
}

// back is esc: out of the zoom, else the focus and the selection go.
func (m *Model) back() {
	if m.zoomed {
		m.zoomed = false
		return
	}
	m.focus = noPane
	m.sel.Clear()
}

// zoomLog gives the log the whole screen, or takes it back.
func (m *Model) zoomLog() {
	if m.zoomed && m.focus == paneLog {
		m.zoomed = false
		return
	}
	m.focus, m.zoomed = paneLog, true
}

// holding lists the sessions with a transaction open.
func (m *Model) holding() []string {
	var names []string
	for _, s := range m.live.sessions {
		switch s.State {
		case sim.InTransaction, sim.Running, sim.Waiting, sim.Aborted:
			names = append(names, s.Name)
		}
	}
	return names
}

// askQuit quits, or — while sessions hold transactions, the demo's state —
// asks first.
func (m *Model) askQuit() tea.Cmd {
	held := m.holding()
	if len(held) == 0 {
		return tea.Quit
	}
	verb := "holds"
	if len(held) > 1 {
		verb = "hold"
	}
	m.ask = &prompt{
		question: fmt.Sprintf("%s %s a transaction: quit and roll back? y or q quits, any other key stays", strings.Join(held, ", "), verb),
		also:     []string{"q"},
		yes:      func() tea.Cmd { return tea.Quit },
	}
	return nil
}

// endOldestPrepared finds the run's oldest prepared transaction, to end
// as an operator would: COMMIT PREPARED (commit) or ROLLBACK PREPARED. The
// model logs that it sends it before it does (preparedChosenMsg): the
// waiter it releases may report going on before the statement's own
// answer comes back, and the log must not show the waiter going on first.
func endOldestPrepared(ctx context.Context, id int, eng *sim.Engine, commit bool) tea.Cmd {
	return func() tea.Msg {
		list, err := eng.Prepared(ctx)
		if err == nil && len(list) == 0 {
			err = errors.New("no prepared transaction of this run is left")
		}
		if err != nil {
			return actionMsg{id: id, what: "resolve", err: err}
		}
		verb := "ROLLBACK PREPARED"
		if commit {
			verb = "COMMIT PREPARED"
		}
		return preparedChosenMsg{id: id, p: list[0], commit: commit, what: verb + " " + list[0].Name + " in database " + list[0].Database}
	}
}

// resolvePrepared sends the COMMIT PREPARED or ROLLBACK PREPARED chosen.
func resolvePrepared(ctx context.Context, eng *sim.Engine, msg preparedChosenMsg) tea.Cmd {
	return func() tea.Msg {
		return actionMsg{id: msg.id, what: msg.what, err: eng.ResolvePrepared(ctx, msg.p, msg.commit), logged: "✓ " + msg.what}
	}
}

func (m *Model) report(err error) {
	if err != nil {
		m.status = err.Error()
	}
}

// nextPermutation makes autoplay play the scenario's next permutation.
func (m *Model) nextPermutation() {
	sc := m.cfg.Scenario
	if sc == nil || len(sc.Permutations) == 0 {
		m.status = "p picks among a scenario's permutations; this run has none"
		return
	}
	m.opts.Order = m.auto.NextPermutation(sc)
	var names []string
	for _, ps := range sc.Permutations[m.auto.perm-1].Steps {
		names = append(names, ps.Step.Name)
	}
	m.status = fmt.Sprintf("autoplay plays permutation %d of %d: %s (from where the sessions are; r resets)",
		m.auto.perm, len(sc.Permutations), strings.Join(names, " "))
}

// autoplayBeat steps the session autoplay's beat chose.
func (m *Model) autoplayBeat(msg autoplayMsg) tea.Cmd {
	if m.eng == nil {
		return nil
	}
	idx, next, done := m.auto.Beat(msg, m.live.sessions)
	if done {
		m.status = "autoplay: " + scriptsOver(m.live.sessions)
	}
	if idx >= 0 {
		m.sessions.Select(idx, len(m.live.sessions))
		m.slowCheck(idx)
		m.report(m.eng.Step(idx))
	}
	return next
}

// autoplayCheck is the deadlock_timeout autoplay asks for the transaction
// of a session it steps while another waits: a step that closes a cycle
// leaves it standing that long (the other waiters' checks have run), long
// enough to be seen.
const autoplayCheck = 2 * time.Second

// slowCheck asks the server, before autoplay steps session idx while
// another session waits, to run idx's deadlock check autoplayCheck after
// its wait begins, for the rest of its transaction (SET LOCAL
// deadlock_timeout). A server that refuses (it is a superuser's setting)
// keeps its own, and the status says so.
func (m *Model) slowCheck(idx int) {
	s := m.live.sessions[idx]
	if s.State != sim.InTransaction || s.DeadlockTimeout >= autoplayCheck {
		return
	}
	waiting := false
	for _, o := range m.live.sessions {
		waiting = waiting || o.State == sim.Waiting
	}
	if !waiting {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, time.Second)
	defer cancel()
	if err := m.eng.SetDeadlockTimeoutLocal(ctx, idx, autoplayCheck); err != nil {
		m.status = "autoplay could not lengthen " + s.Name + "'s deadlock check (" + err.Error() + "): a deadlock may break as it forms"
		return
	}
	m.logLine(logEntry{at: time.Now(), who: s.Name, text: fmt.Sprintf("autoplay: SET LOCAL deadlock_timeout = '%s' — a deadlock this step closes stands until %s's check", autoplayCheck, s.Name)})
}

// nextFix switches a scenario with fixes (coupled, ddl-queue, job-queue) to
// the next of them: a new run.
func (m *Model) nextFix() tea.Cmd {
	family := scenario.FixFamily(m.cfg.ScenarioName)
	if family == nil {
		m.status = "f cycles a scenario's fixes: start with lockstep --scenario coupled, ddl-queue or job-queue"
		return nil
	}
	next := family[0]
	for i, name := range family {
		if name == m.cfg.ScenarioName {
			next = family[(i+1)%len(family)]
		}
	}
	cmd, err := m.startScenario(next, "scenario "+next+": the run starts again")
	if err != nil {
		m.status = err.Error()
	}
	return cmd
}

// startScenario starts built-in scenario name from its first step: a new
// run, logged as why.
func (m *Model) startScenario(name, why string) (tea.Cmd, error) {
	sc, err := scenario.LoadBuiltin(name, "")
	if err != nil {
		return nil, err
	}
	for _, b := range scenario.Builtins() {
		if b.Name == name {
			m.opts.ScenarioSummary = b.Summary
		}
	}
	m.opts.ScenarioExpected = scenario.Expected(name, "")
	cfg := m.cfg
	cfg.Scenario, cfg.ScenarioName, cfg.Sessions = sc, name, len(sc.Sessions)
	m.cfg = cfg
	m.opts.Order, _ = sc.SessionOrder(1)
	m.auto.perm = 1
	m.auto.Restart(m.opts.Order)
	m.logLine(logEntry{at: m.clock(), text: why})
	return m.startEngine(cfg), nil
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
			m.report(m.eng.Exec(m.sessions.Selected(), sql))
		}
		return nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return cmd
}

func (m *Model) strategyKey(msg tea.KeyPressMsg) tea.Cmd {
	res, cmd := m.menu.Update(msg)
	switch res {
	case menuClosed:
		m.mode = modeNormal
	case menuChosen:
		m.mode = modeNormal
		s := m.menu.Chosen()
		return m.startStrategy(s, "strategy "+s.Name+": the run starts again")
	}
	return cmd
}

// startStrategy starts the transfers under strategy s from their first
// statement: a new run, logged as why.
func (m *Model) startStrategy(s *ledger.Strategy, why string) tea.Cmd {
	cfg := m.cfg
	if cfg.Scenario != nil {
		// Leaving the scenario for the transfers.
		cfg = m.opts.Transfers
		cfg.DB = m.opts.DB
	}
	cfg.Strategy = s
	m.cfg = cfg
	m.logLine(logEntry{at: m.clock(), text: why})
	return m.startEngine(cfg)
}

func (m *Model) setupKey(msg tea.KeyPressMsg) tea.Cmd {
	switch m.form.Update(msg) {
	case menuClosed:
		m.mode = modeNormal
	case menuChosen:
		cfg := m.form.Config(m.cfg)
		if err := cfg.Validate(); err != nil {
			m.status = err.Error()
			return nil
		}
		m.mode = modeNormal
		m.cfg = cfg
		return m.startEngine(cfg)
	}
	return nil
}
