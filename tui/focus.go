package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// paneID names a pane of the stepping screen, for the focus and the zoom.
type paneID int

const (
	noPane paneID = iota
	paneSessions
	paneExplain
	paneGraph
	paneAccounts
	paneLocks
	paneLog
	paneLesson // a lesson's narration (lockstep learn)
)

// scrolls says whether ↑/↓ scroll the pane when it has the focus; in the
// graph and the locks they move the selection, which the explanation
// explains, and the pane scrolls to keep it in view.
func (id paneID) scrolls() bool { return id != paneGraph && id != paneLocks }

// shownPanes are the panes on screen, in the order tab visits them.
func (m *Model) shownPanes() []paneID {
	var shown []paneID
	if m.lesson != nil {
		shown = append(shown, paneLesson)
	}
	if m.width >= gridWidth && m.height >= gridHeight+lessonGridRoom(m) {
		return append(shown, paneSessions, paneExplain, paneGraph, paneAccounts, paneLocks, paneLog)
	}
	return append(shown, paneSessions, paneExplain, tabPaneIDs[m.tab])
}

// tabPaneIDs are the panes behind tabNames.
var tabPaneIDs = []paneID{paneLocks, paneGraph, paneLog, paneAccounts}

// cycleFocus gives the focus to the next shown pane (d = -1: the one
// before); past the last, to none.
func (m *Model) cycleFocus(d int) {
	shown := m.shownPanes()
	at := -1
	for i, id := range shown {
		if id == m.focus {
			at = i
		}
	}
	switch next := at + d; {
	case at < 0 && d < 0:
		m.focus = shown[len(shown)-1]
	case next < 0 || next >= len(shown):
		m.focus = noPane
	default:
		m.focus = shown[next]
	}
	if m.focus == noPane {
		m.zoomed = false
	}
}

// box is the frame of pane id.
func (m *Model) box(id paneID) *box {
	switch id {
	case paneSessions:
		return &m.sessions.box
	case paneExplain:
		return &m.explain.box
	case paneGraph:
		return &m.graph.box
	case paneAccounts:
		return &m.accounts.box
	case paneLocks:
		return &m.locks.box
	case paneLog:
		return &m.log.box
	case paneLesson:
		return &m.lesson.pane.box
	}
	return nil
}

// markFocus draws the focused pane's border as focused, and no other's.
func (m *Model) markFocus() {
	for id := paneSessions; id <= paneLog; id++ {
		m.box(id).Focus(id == m.focus)
	}
	if m.lesson != nil {
		m.lesson.pane.Focus(m.focus == paneLesson)
	}
}

// scrollFocused scrolls the focused pane by a key (the log when none has
// the focus); it says whether the key scrolled.
func (m *Model) scrollFocused(msg tea.KeyPressMsg) bool {
	switch m.focus {
	case noPane, paneLog:
		m.log.Update(msg)
		return true
	case paneSessions:
		return m.sessions.Scroll(msg)
	}
	return m.box(m.focus).Scroll(msg)
}

// zoomView is the zoomed pane, given the whole body: w×h.
func (m *Model) zoomView(w, h int) []string {
	switch m.focus {
	case paneSessions:
		m.sessions.Fit(w, h)
		m.sessions.SetSize(w, h)
		return m.sessions.View()
	case paneExplain:
		title, lines := m.explain.Content(w-4, h-3)
		m.explain.SetSize(w, h)
		return m.explain.View(title, lines)
	case paneGraph:
		m.graph.SetSize(w, h)
		return m.graph.View()
	case paneAccounts:
		m.accounts.SetSize(w, h)
		return m.accounts.View()
	case paneLocks:
		m.locks.SetSize(w, h)
		return m.locks.View()
	case paneLesson:
		p := m.lesson.pane
		p.title, p.lines = m.lessonTitle(), m.lessonLines(w-4)
		p.SetSize(w, h)
		return p.View()
	}
	m.log.SetSize(w, h)
	return m.log.View()
}

// focusActions are the keys of the focus and the zoom, in both the live
// screen's table and history's.
func (m *Model) focusActions(group string) actions {
	return actions{
		{Binding: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "focus")),
			long:  "give the next pane the focus (its border turns bold): ↑/↓, pgup/pgdown, home/end scroll it, z zooms it; shift+tab the one before",
			group: group, bar: 10,
			run: func(tea.KeyPressMsg) tea.Cmd { m.cycleFocus(+1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("shift+tab")), group: group,
			run: func(tea.KeyPressMsg) tea.Cmd { m.cycleFocus(-1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("z"), key.WithHelp("z", "zoom")),
			long:  "zoom the focused pane (the explanation when none has the focus) to the whole screen, and back",
			group: group, bar: 6,
			run: func(tea.KeyPressMsg) tea.Cmd {
				if m.focus == noPane {
					m.focus = paneExplain
				}
				m.zoomed = !m.zoomed
				return nil
			}},
		{Binding: key.NewBinding(key.WithKeys("pgup", "pgdown", "home", "end"), key.WithHelp("pgup/pgdown", "scroll")),
			long:  "scroll the focused pane (the log when none has the focus) a page; home/end to its top or bottom",
			group: group,
			run:   func(msg tea.KeyPressMsg) tea.Cmd { m.scrollFocused(msg); return nil }},
	}
}

// arrowAction is ↑ or ↓: they scroll the focused pane where it scrolls,
// else move the selection of the lock or wait explained.
func (m *Model) arrowAction(keyName string, d int, help key.Binding, group string) *action {
	b := key.NewBinding(key.WithKeys(keyName))
	if help.Help().Key != "" {
		b = key.NewBinding(key.WithKeys(keyName), key.WithHelp(help.Help().Key, help.Help().Desc))
	}
	return &action{Binding: b, group: group,
		long: "select a wait or a lock to explain; with the focus on a pane that scrolls (sessions, explanation, accounts, log), scroll it",
		run: func(msg tea.KeyPressMsg) tea.Cmd {
			if m.focus != noPane && m.focus.scrolls() {
				m.scrollFocused(msg)
				return nil
			}
			m.sel.Move(d)
			return nil
		}}
}
