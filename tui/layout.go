package tui

import (
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// Minimum terminal size; below it one line asks for more.
const minWidth, minHeight = 80, 24

// accountsWidth is the accounts pane's width beside the sessions.
const accountsWidth = 30

// View draws the whole screen in the alternate screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "lockstep"
	return v
}

// render lays the panes out: the header; the sessions (and the accounts
// beside them when two session columns and the accounts fit); the locks
// beside the wait-for graph; the explanation beside the log (or across the
// whole width while something is selected, for the table-level conflict
// table), or the open menu; the footer.
func (m *Model) render() string {
	if m.width == 0 || m.height == 0 {
		return ""
	}
	if m.width < minWidth || m.height < minHeight {
		return fmt.Sprintf("lockstep needs a terminal of at least %d×%d; this one is %d×%d — please enlarge it.",
			minWidth, minHeight, m.width, m.height)
	}
	header := m.viewHeader()
	footer := m.viewFooter()
	bodyH := m.height - lipgloss.Height(header) - lipgloss.Height(footer)
	if m.fatal != "" || m.starting {
		msg := "starting the sessions…"
		if m.fatal != "" {
			msg = "could not start the sessions: " + m.fatal + "\n\nm picks another strategy, s another set-up, q quits."
		}
		return header + "\n" + strings.Join(m.look.panel("Sessions", strings.Split(msg, "\n"), m.width, bodyH, false), "\n") + "\n" + footer
	}
	leftW := m.width * 60 / 100
	rightW := m.width - leftW
	explainW := leftW
	if _, selected := m.sel.Selected(); selected {
		explainW = m.width
	}
	explainTitle, explain := m.explain.Content(explainW - 4)
	// The explain pane grows to show a whole conflict table when something
	// is selected; the session columns then scroll to their active statement.
	lowH := max(bodyH*30/100, min(len(explain)+3, bodyH*45/100))
	sessH := min(m.sessions.Height(), bodyH*45/100, bodyH-lowH-10)
	midH := bodyH - sessH - lowH
	accW := accountsWidth
	if m.width-accW < 2*minColumn+4 {
		accW = 0
	}
	var rows []string
	if accW > 0 {
		m.sessions.SetSize(m.width-accW, sessH)
		m.accounts.SetSize(accW, sessH)
		m.locks.SetSize(leftW, midH)
		m.graph.SetSize(rightW, midH)
		rows = hjoin(m.sessions.View(), m.accounts.View())
		rows = append(rows, hjoin(m.locks.View(), m.graph.View())...)
	} else {
		// The accounts go under the wait-for graph.
		graphH := midH * 6 / 10
		m.sessions.SetSize(m.width, sessH)
		m.locks.SetSize(leftW, midH)
		m.graph.SetSize(rightW, graphH)
		m.accounts.SetSize(rightW, midH-graphH)
		rows = m.sessions.View()
		rows = append(rows, hjoin(m.locks.View(), append(m.graph.View(), m.accounts.View()...))...)
	}
	switch m.mode {
	case modeStrategy:
		m.menu.SetSize(m.width, lowH)
		rows = append(rows, m.menu.View()...)
	case modeSetup:
		m.form.SetSize(m.width, lowH)
		rows = append(rows, m.form.View()...)
	default:
		m.explain.SetSize(explainW, lowH)
		if explainW == m.width {
			rows = append(rows, m.explain.View(explainTitle, explain)...)
		} else {
			m.log.SetSize(rightW, lowH)
			rows = append(rows, hjoin(m.explain.View(explainTitle, explain), m.log.View())...)
		}
	}
	return header + "\n" + strings.Join(rows, "\n") + "\n" + footer
}

func (m *Model) viewHeader() string {
	st, vol := m.look.st, m.look.vol
	summary := m.opts.ScenarioSummary
	if m.cfg.Scenario == nil {
		summary = m.cfg.Strategy.Summary
	}
	line1 := st.title.Render("lockstep") + "  " + st.accent.Render(m.runName()) + st.subtle.Render(" — "+summary)
	auto := "autoplay off"
	if m.autoplay {
		auto = fmt.Sprintf("autoplay ▶ every %s", speeds[m.speed])
	}
	server := m.opts.Server
	if m.cfg.TwoDatabases() && m.cfg.DB2 != nil {
		server += fmt.Sprintf(" · A = %s, B = %s", m.cfg.DB.Name(), m.cfg.DB2.Name())
	}
	line2 := st.subtle.Render(fmt.Sprintf("%s · poll %s · deadlock_timeout %s · run %s · %s",
		server, m.cfg.Poll, vol.DeadlockTimeout(m.deadlock), vol.RunID(m.runID), auto))
	return ansi.Truncate(line1, m.width, "…") + "\n" + ansi.Truncate(line2, m.width, "…")
}

func (m *Model) viewFooter() string {
	st := m.look.st
	var lines []string
	if m.mode == modeTyping && m.sessions.Selected() < len(m.sessions.sessions) {
		lines = append(lines, st.accent.Render(m.sessions.sessions[m.sessions.Selected()].Name+" SQL ")+m.input.View()+st.subtle.Render("  enter runs · esc cancels"))
	}
	if m.status != "" {
		lines = append(lines, st.warn.Render("▲ "+m.status))
	}
	lines = append(lines, m.help.View(m.keys))
	return strings.Join(lines, "\n")
}
