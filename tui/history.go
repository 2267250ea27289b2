package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/jackc/pgerrcode"

	"lockstep/sim"
)

// newHistTable is history mode's keys — the live run's past (h) or a
// recording's replay: the timeline's, jumps to the next wait, deadlock and
// error, and the selection of a lock or wait to explain.
func (m *Model) newHistTable() actions {
	tk := newTimelineKeys()
	replayOnly := func() string {
		if m.rp == nil {
			return "the live run's past is read, not played: esc returns to the run"
		}
		return ""
	}
	liveOnly := func() string {
		if m.rp != nil && !m.zoomed {
			return "a replay has no live run to return to: q quits"
		}
		return ""
	}
	move := func(msg tea.KeyPressMsg) tea.Cmd {
		m.sel.Clear()
		cmd, _ := m.tl.Update(msg, tk)
		return cmd
	}
	jump := func(what string, match frameMatcher) func(tea.KeyPressMsg) tea.Cmd {
		return func(msg tea.KeyPressMsg) tea.Cmd { m.jump(msg, what, match); return nil }
	}
	const moving, finding, look = "Move through the run", "Find a moment", "Look closer"
	return append(actions{
		{Binding: tk.Play, group: moving, bar: 1, why: replayOnly, run: move},
		{Binding: tk.Back, group: moving, bar: 1, run: move},
		{Binding: tk.Forward, group: moving, run: move},
		{Binding: tk.First, group: moving, bar: 6, run: move},
		{Binding: tk.Last, group: moving, run: move},
		{Binding: tk.Speed, group: moving, bar: 5, why: replayOnly, run: move},
		{Binding: key.NewBinding(key.WithKeys("d", "D"), key.WithHelp("d/D", "deadlock")),
			long:  "the next/previous deadlock (searching on from the other end when there is none that way)",
			group: finding, bar: 2, run: jump("deadlock", isDeadlockFrame)},
		{Binding: key.NewBinding(key.WithKeys("w", "W"), key.WithHelp("w/W", "wait")),
			long:  "the next/previous moment a session began to wait",
			group: finding, bar: 3, run: jump("wait", isWaitFrame)},
		{Binding: key.NewBinding(key.WithKeys("e", "E"), key.WithHelp("e/E", "error")),
			long:  "the next/previous error (a deadlock's victim, a timeout, a serialization failure…)",
			group: finding, bar: 3, run: jump("error", isErrorFrame)},
		m.arrowAction("up", -1, key.NewBinding(key.WithHelp("↑/↓", "explain a lock")), look),
		m.arrowAction("down", +1, key.Binding{}, look),
		{Binding: key.NewBinding(key.WithKeys("L"), key.WithHelp("L", "log")),
			long:  "the log as it was at this moment, full screen",
			group: look, run: func(tea.KeyPressMsg) tea.Cmd { m.zoomLog(); return nil }},
		{Binding: key.NewBinding(key.WithKeys("esc", "h"), key.WithHelp("esc", "live")),
			long:  "back to the live run",
			group: look, bar: 1, why: liveOnly,
			run: func(msg tea.KeyPressMsg) tea.Cmd {
				if m.zoomed && msg.String() == "esc" {
					m.zoomed = false
					return nil
				}
				m.mode = modeNormal
				m.tl.Pause()
				m.sel.Clear()
				return nil
			}},
		{Binding: helpKey, group: look, run: func(tea.KeyPressMsg) tea.Cmd { m.openHelp(); return nil }},
		{Binding: quitKey, group: look,
			run: func(tea.KeyPressMsg) tea.Cmd {
				if m.rp != nil {
					return tea.Quit
				}
				return m.askQuit()
			}},
	}, m.focusActions(look)...)
}

// A frame matcher says whether moment i of frames is of a kind the jump
// keys look for.
type frameMatcher func(frames []frame, i int) bool

func isWaitFrame(frames []frame, i int) bool { return frames[i].kind == sim.WaitingForLock }

// isDeadlockFrame is a deadlock as it stood, or — when no poll saw it
// stand — the server's breaking it.
func isDeadlockFrame(frames []frame, i int) bool {
	f := &frames[i]
	if f.kind == sim.DeadlockFormed {
		return true
	}
	if f.kind != sim.Error || f.code != pgerrcode.DeadlockDetected {
		return false
	}
	for j := i - 1; j >= 0 && frames[j].kind != sim.Completed && frames[j].kind != sim.Started; j-- {
		if frames[j].kind == sim.DeadlockFormed {
			return false // the moment it stood is the one to show
		}
	}
	return true
}

func isErrorFrame(frames []frame, i int) bool {
	return frames[i].kind == sim.Error || frames[i].kind == sim.ConnectionLost
}

// frameIs is a matcher over the history's frames, as the timeline jumps by.
func (m *Model) frameIs(match frameMatcher) func(i int) bool {
	return func(i int) bool { return match(m.hist.frames, i) }
}

// enterHistory shows the run's past, from its newest moment.
func (m *Model) enterHistory() {
	if len(m.hist.frames) == 0 {
		m.status = "no history yet: step a session first"
		return
	}
	m.mode = modeHistory
	m.tl.Go(m.tl.last())
	m.sel.Clear()
}

// jump moves to the next moment of a kind (the shifted key: the previous);
// past the last, the search goes on from the first, and says so.
func (m *Model) jump(msg tea.KeyPressMsg, what string, match frameMatcher) {
	dir, way := +1, "after"
	if s := msg.String(); s == "W" || s == "D" || s == "E" {
		dir, way = -1, "before"
	}
	m.sel.Clear()
	if m.tl.Jump(m.frameIs(match), dir) {
		return
	}
	from := -1
	if dir < 0 {
		from = m.tl.n()
	}
	for i := from + dir; i >= 0 && i < m.tl.n(); i += dir {
		if i != m.tl.pos && match(m.hist.frames, i) {
			m.tl.Go(i)
			m.status = fmt.Sprintf("no %s %s this moment: went on from the %s", what, way, map[int]string{1: "first", -1: "last"}[dir])
			return
		}
	}
	m.status = fmt.Sprintf("no other %s in this run", what)
}

// historyBanner is the header's mark in history mode: where it is, and —
// replaying — how it plays.
func (m *Model) historyBanner() string {
	if m.rp != nil {
		return m.look.st.banner.Render(" REPLAY " + m.tl.Banner() + " ")
	}
	return m.look.st.banner.Render(fmt.Sprintf(" HISTORY %d/%d ", m.tl.pos+1, m.tl.n()))
}
