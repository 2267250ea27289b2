package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"lockstep/scenario"
	"lockstep/sim"
)

// handleKey routes a key: Ctrl-C always quits; a question, a menu, a form,
// the input line or history mode takes the rest; otherwise the global keys,
// then those that need a running engine.
func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	if msg.String() == "ctrl+c" {
		return tea.Quit
	}
	if msg.Mod&tea.ModAlt != 0 && msg.Mod&tea.ModCtrl == 0 && m.mode != modeTyping {
		// Esc and a key pressed quickly after it arrive as alt+key: they
		// are two keys, and the second must not be lost. (The input line
		// keeps its alt keys: alt+← moves a word.)
		esc := m.handleKey(tea.KeyPressMsg{Code: tea.KeyEscape})
		msg.Mod &^= tea.ModAlt
		return tea.Batch(esc, m.handleKey(msg))
	}
	switch m.mode {
	case modeQuit:
		return m.quitKey(msg)
	case modeTyping:
		return m.typingKey(msg)
	case modeStrategy:
		return m.strategyKey(msg)
	case modeSetup:
		return m.setupKey(msg)
	case modeHistory:
		if m.rp != nil {
			return m.replayKey(msg)
		}
		return m.historyKey(msg)
	}
	k := m.keys
	m.status = ""
	switch {
	case key.Matches(msg, k.Quit):
		return m.askQuit()
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
	case key.Matches(msg, k.Strategy):
		m.mode = modeStrategy
		if m.cfg.Strategy != nil {
			m.menu.Open(m.cfg.Strategy.Name)
		}
	case key.Matches(msg, k.Setup):
		if m.cfg.Scenario != nil {
			m.status = "the set-up form is for the transfer strategies; m picks one"
			return nil
		}
		m.mode = modeSetup
		m.form.Open(m.cfg)
	case key.Matches(msg, k.ScrollLog):
		return m.log.Update(msg)
	case key.Matches(msg, k.Log):
		m.logFull = !m.logFull
	case key.Matches(msg, k.Pane):
		m.tab = (m.tab + 1) % len(tabNames)
	case key.Matches(msg, k.History):
		m.enterHistory()
	case key.Matches(msg, k.Up):
		m.sel.Move(-1)
	case key.Matches(msg, k.Down):
		m.sel.Move(+1)
	case key.Matches(msg, k.Unselect):
		m.sel.Clear()
	default:
		if m.eng == nil || m.starting {
			m.status = "the sessions are starting…"
			return nil
		}
		return m.runKey(msg)
	}
	return nil
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
	m.mode = modeQuit
	m.status = fmt.Sprintf("%s hold%s a transaction: quit and roll back? y or q quits, any other key stays",
		strings.Join(held, ", "), map[bool]string{true: "s", false: ""}[len(held) == 1])
	return nil
}

func (m *Model) quitKey(msg tea.KeyPressMsg) tea.Cmd {
	m.mode, m.status = modeNormal, ""
	if s := msg.String(); s == "y" || s == "q" {
		return tea.Quit
	}
	return nil
}

// enterHistory shows the run's past, from its newest moment.
func (m *Model) enterHistory() {
	if len(m.hist.frames) == 0 {
		m.status = "no history yet: step a session first"
		return
	}
	m.mode, m.histPos = modeHistory, len(m.hist.frames)-1
	m.sel.Clear()
}

func (m *Model) historyKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.histKeys
	last := len(m.hist.frames) - 1
	switch {
	case key.Matches(msg, k.Back):
		m.histPos = max(0, m.histPos-1)
	case key.Matches(msg, k.Forward):
		m.histPos = min(last, m.histPos+1)
	case key.Matches(msg, k.First):
		m.histPos = 0
	case key.Matches(msg, k.Last):
		m.histPos = last
	case key.Matches(msg, k.Leave):
		m.mode = modeNormal
		m.sel.Clear()
	case msg.String() == "up":
		m.sel.Move(-1)
	case msg.String() == "down":
		m.sel.Move(+1)
	case key.Matches(msg, m.keys.Quit):
		return m.askQuit()
	case key.Matches(msg, m.keys.ScrollLog):
		return m.log.Update(msg)
	}
	return nil
}

// runKey handles the keys that act on the running engine.
func (m *Model) runKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	i := m.sessions.Selected()
	id, eng, ctx := m.engID, m.eng, m.ctx
	switch {
	case key.Matches(msg, k.Prev):
		m.sessions.Move(-1, len(m.live.sessions))
	case key.Matches(msg, k.Next):
		m.sessions.Move(+1, len(m.live.sessions))
	case key.Matches(msg, k.Step):
		m.report(eng.Step(i))
	case key.Matches(msg, k.StepN):
		if n := int(msg.String()[0] - '1'); n < len(m.live.sessions) {
			m.sessions.Select(n, len(m.live.sessions))
			m.report(eng.Step(n))
		}
	case key.Matches(msg, k.Commit):
		m.report(eng.Commit(i))
	case key.Matches(msg, k.Rollback):
		m.report(eng.Rollback(i))
	case key.Matches(msg, k.Cancel):
		return func() tea.Msg { return actionMsg{id: id, what: "cancel", err: eng.Cancel(ctx, i)} }
	case key.Matches(msg, k.Type):
		if s := m.live.sessions[i]; s.State.Busy() {
			m.status = s.Name + " is busy: wait, or k to cancel its statement"
			return nil
		}
		m.mode = modeTyping
		m.input.Reset()
		return m.input.Focus()
	case key.Matches(msg, k.Reset):
		m.status = "resetting…"
		return func() tea.Msg { return actionMsg{id: id, what: "reset", err: eng.Reset(ctx)} }
	case key.Matches(msg, k.Autoplay):
		return m.auto.Toggle()
	case key.Matches(msg, k.Permutation):
		m.nextPermutation()
	case key.Matches(msg, k.Fix):
		return m.nextFix()
	case key.Matches(msg, k.CommitPrepared), key.Matches(msg, k.RollbackPrepared):
		return endOldestPrepared(ctx, id, eng, key.Matches(msg, k.CommitPrepared))
	case key.Matches(msg, k.Speed):
		if msg.String() == "+" {
			m.auto.Faster()
		} else {
			m.auto.Slower()
		}
	}
	return nil
}

// endOldestPrepared ends the run's oldest prepared transaction, as an
// operator would: COMMIT PREPARED (commit) or ROLLBACK PREPARED.
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
		what := verb + " " + list[0].Name + " in database " + list[0].Database
		return actionMsg{id: id, what: what, err: eng.ResolvePrepared(ctx, list[0], commit), logged: "✓ " + what}
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
		m.status = "autoplay: every session has finished"
	}
	if idx >= 0 {
		m.sessions.Select(idx, len(m.live.sessions))
		m.report(m.eng.Step(idx))
	}
	return next
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
	m.opts.ScenarioExpected = scenario.Expected(next, "")
	cfg := m.cfg
	cfg.Scenario, cfg.ScenarioName, cfg.Sessions = sc, next, len(sc.Sessions)
	m.cfg = cfg
	m.opts.Order, _ = sc.SessionOrder(1)
	m.auto.perm = 1
	m.auto.Restart(m.opts.Order)
	m.logLine(logEntry{at: m.clock(), text: "scenario " + next + ": the run starts again"})
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
		cfg := m.cfg
		if cfg.Scenario != nil {
			// Leaving the scenario for the transfers.
			cfg = m.opts.Transfers
			cfg.DB = m.opts.DB
		}
		cfg.Strategy = m.menu.Chosen()
		m.cfg = cfg
		m.logLine(logEntry{at: m.clock(), text: "strategy " + cfg.Strategy.Name + ": the run starts again"})
		return m.startEngine(cfg)
	}
	return cmd
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
