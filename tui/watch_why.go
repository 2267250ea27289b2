package tui

import (
	"fmt"
	"strings"

	"lockstep/locks"
)

// watchWhyPane explains what is selected: why a waiter waits, with the row
// of the conflict table that decides it; what a root blocker is doing; a
// standing deadlock as the stepping view explains it; or, while the
// history has the focus, its selected entry.
type watchWhyPane struct {
	box
	m *watchModel
}

func (p *watchWhyPane) View() []string {
	title, lines := p.content(p.w - 4)
	return p.draw(title, lines)
}

func (p *watchWhyPane) content(inner int) (string, []string) {
	m, st := p.m, p.look.st
	if m.explained == watchHistory && m.hist.sel >= 0 && m.hist.sel < len(m.history) {
		return historyDetail(st, &m.history[m.hist.sel], inner)
	}
	n, ok := m.tree.selected()
	if m.viewing != nil && !ok {
		return historyDetail(st, m.viewing, inner)
	}
	if c := m.cycleOf(n); ok && m.viewing == nil && c != nil {
		m.explain.now, m.explain.room, m.explain.width = m.now(), p.bodyH(), inner
		return m.explain.standing(c, inner)
	}
	if !ok {
		return "Why does a session wait?", wrapAll([]string{st.subtle.Render(
			"When a watched session waits for a lock, the tree shows it under the session that blocks it, and this pane says why: " +
				"the lock it wants, the lock the other holds, and the row of PostgreSQL's conflict table that decides it.")}, inner)
	}
	if n.Edge == nil {
		var lines []string
		title := fmt.Sprintf("%s blocks %d session(s)", n.Session, len(n.Waiters))
		switch {
		case strings.HasPrefix(n.State, "idle in transaction"):
			lines = append(lines, st.bad.Render("⚠ idle in transaction:")+" its application has sent no statement since the last one, nor COMMIT or ROLLBACK. "+
				"Every lock the transaction took stays held until it ends — the sessions under it wait for that. It runs no statement: "+
				"k would cancel nothing; T ends its session, and its transaction rolls back.")
		case n.State == "active":
			lines = append(lines, "It is running a statement; the locks it holds stay held until its transaction ends, not when the statement does. "+
				"k cancels its statement, T ends its session (both ask first).")
		}
		lines = append(lines, st.subtle.Render("Its last statement is the tree's; the lock each waiter wants is on its line."))
		return title, wrapAll(lines, inner)
	}
	e := n.Edge
	title := "Why " + e.Waiter + " waits for " + e.Holder
	lines := wrapAll([]string{e.Why}, inner)
	if e.Queued {
		lines = append(lines, wrapAll([]string{st.subtle.Render("A soft block: it would not conflict with what is held, but PostgreSQL grants locks in order, so it waits its turn behind the conflicting request ahead of it.")}, inner)...)
	}
	if e.Conflict != nil {
		table := conflictLines(e.Conflict.Table(), e.Conflict.Held, e.Conflict.Wanted, st)
		wide := 0
		for _, l := range table {
			wide = max(wide, len([]rune(l)))
		}
		if len(lines)+len(table) <= p.bodyH() && wide <= inner {
			lines = append(lines, table...)
		} else {
			title += " · z: the conflict table"
		}
	}
	return title, lines
}

// historyDetail shows a history entry: what, when, the statements, and
// the server's own report.
func historyDetail(st styles, ev *locks.WatchEvent, w int) (string, []string) {
	lines := []string{ev.What}
	if ev.Verdict != "" {
		lines = append(lines, ev.Verdict)
	}
	if ev.Counted {
		lines = append(lines, st.subtle.Render("counted by the server (pg_stat_database.deadlocks)"))
	}
	for _, s := range ev.Statements {
		lines = append(lines, st.subtle.Render("  "+s))
	}
	if ev.Detail != "" {
		lines = append(lines, st.subtle.Render("the server's report:"))
		for _, d := range strings.Split(ev.Detail, "\n") {
			lines = append(lines, "  "+d)
		}
	}
	return ev.Time.Format("15:04:05") + " — " + historyKind(*ev), wrapAll(lines, w)
}

func historyKind(ev locks.WatchEvent) string {
	switch {
	case ev.Kind == "deadlock" && ev.Seen:
		return "a deadlock seen"
	case ev.Kind == "deadlock":
		return "a deadlock the server broke between two looks"
	case ev.Kind == "server":
		return "the server's verdict"
	}
	return "a long wait"
}
