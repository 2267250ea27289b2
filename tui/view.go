package tui

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/sim"
)

// Minimum terminal size; below it one line asks for more.
const minWidth, minHeight = 80, 24

// View draws the whole screen in the alternate screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "lockstep"
	return v
}

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
		return header + "\n" + strings.Join(m.panel("Sessions", strings.Split(msg, "\n"), m.width, bodyH, false), "\n") + "\n" + footer
	}
	leftW := m.width * 60 / 100
	rightW := m.width - leftW
	explainW := leftW
	if m.itemSel >= 0 {
		explainW = m.width
	}
	explainTitle, explain := m.explainLines(explainW - 4)
	// The explain pane grows to show a whole conflict table when something
	// is selected; the session columns then scroll to their active statement.
	lowH := max(bodyH*30/100, min(len(explain)+3, bodyH*45/100))
	sessH := min(m.sessionsHeight(), bodyH*45/100, bodyH-lowH-10)
	midH := bodyH - sessH - lowH
	// The accounts sit beside the sessions when there is room for two
	// session columns and them, else under the wait-for graph.
	accW := 30
	if m.width-accW < 2*minColumn+4 {
		accW = 0
	}
	var rows []string
	if accW > 0 {
		rows = hjoin(m.viewSessions(m.width-accW, sessH), m.viewAccounts(accW, sessH))
		rows = append(rows, hjoin(m.viewLocks(leftW, midH), m.viewGraph(rightW, midH))...)
	} else {
		graphH := midH * 6 / 10
		rows = m.viewSessions(m.width, sessH)
		rows = append(rows, hjoin(m.viewLocks(leftW, midH), append(m.viewGraph(rightW, graphH), m.viewAccounts(rightW, midH-graphH)...))...)
	}
	switch m.mode {
	case modeStrategy:
		rows = append(rows, m.viewStrategyMenu(m.width, lowH)...)
	case modeSetup:
		rows = append(rows, m.viewSetup(m.width, lowH)...)
	default:
		if explainW == m.width {
			// Explaining takes the whole width: the table-level conflict
			// table is wider than the left column.
			rows = append(rows, m.panel(explainTitle, explain, m.width, lowH, false)...)
		} else {
			rows = append(rows, hjoin(m.panel(explainTitle, explain, leftW, lowH, false), m.viewLog(rightW, lowH))...)
		}
	}
	return header + "\n" + strings.Join(rows, "\n") + "\n" + footer
}

// hjoin puts boxes of equal height side by side.
func hjoin(a, b []string) []string {
	out := make([]string, max(len(a), len(b)))
	for i := range out {
		if i < len(a) {
			out[i] = a[i]
		}
		if i < len(b) {
			out[i] += b[i]
		}
	}
	return out
}

// fit pads or cuts a line to exactly w cells.
func fit(s string, w int) string {
	sw := ansi.StringWidth(s)
	if sw > w {
		s = ansi.Truncate(s, w, "…")
		sw = ansi.StringWidth(s)
	}
	return s + strings.Repeat(" ", max(0, w-sw))
}

// panel draws a bordered box of exactly w×h cells, title first, as lines.
// Drawn by hand rather than with a lipgloss border: the screen is redrawn on
// every poll, and measuring whole joined blocks dominated the frame time.
func (m *Model) panel(title string, lines []string, w, h int, focused bool) []string {
	if w < 4 || h < 2 {
		return make([]string, max(h, 0))
	}
	tl, tr, bl, br, hz, vt := "╭", "╮", "╰", "╯", "─", "│"
	bs := m.st.border
	if focused {
		tl, tr, bl, br, hz, vt = "┏", "┓", "┗", "┛", "━", "┃"
		bs = m.st.borderFocused
	}
	innerW, innerH := w-4, h-2
	out := make([]string, 0, h)
	out = append(out, bs.Render(tl+strings.Repeat(hz, w-2)+tr))
	left, right := bs.Render(vt)+" ", " "+bs.Render(vt)
	body := append([]string{m.st.panelTitle.Render(title)}, lines...)
	for i := range innerH {
		l := ""
		if i < len(body) {
			l = body[i]
		}
		out = append(out, left+fit(l, innerW)+right)
	}
	return append(out, bs.Render(bl+strings.Repeat(hz, w-2)+br))
}

func (m *Model) viewHeader() string {
	name, summary := m.runName(), m.opts.ScenarioSummary
	if m.cfg.Scenario == nil {
		summary = m.cfg.Strategy.Summary
	}
	line1 := m.st.title.Render("lockstep") + "  " + m.st.accent.Render(name) + m.st.subtle.Render(" — "+summary)
	run, poll, dt := m.runID, m.cfg.Poll.String(), m.deadlock.String()
	if m.masked {
		// The run id is random; deadlock_timeout is the test server's.
		run, dt = "······", "··"
	}
	auto := "autoplay off"
	if m.autoplay {
		auto = fmt.Sprintf("autoplay ▶ every %s", speeds[m.speed])
	}
	server := m.opts.Server
	if m.cfg.TwoDatabases() && m.cfg.DB2 != nil {
		server += fmt.Sprintf(" · A = %s, B = %s", m.cfg.DB.Name(), m.cfg.DB2.Name())
	}
	line2 := m.st.subtle.Render(fmt.Sprintf("%s · poll %s · deadlock_timeout %s · run %s · %s",
		server, poll, dt, run, auto))
	return ansi.Truncate(line1, m.width, "…") + "\n" + ansi.Truncate(line2, m.width, "…")
}

func (m *Model) viewFooter() string {
	var lines []string
	if m.mode == modeTyping && m.sel < len(m.sessions) {
		lines = append(lines, m.st.accent.Render(m.sessions[m.sel].Name+" SQL ")+m.input.View()+m.st.subtle.Render("  enter runs · esc cancels"))
	}
	if m.status != "" {
		lines = append(lines, m.st.warn.Render("▲ "+m.status))
	}
	lines = append(lines, m.help.View(m.keys))
	return strings.Join(lines, "\n")
}

// sessionsHeight is what the session columns need: title, state, the
// longest script, and a line for what the session waits for.
func (m *Model) sessionsHeight() int {
	longest := 0
	for _, s := range m.sessions {
		longest = max(longest, len(s.Statements))
	}
	return longest + 6
}

const minColumn = 38

func (m *Model) viewSessions(w, h int) []string {
	n := len(m.sessions)
	if n == 0 {
		return m.panel("Sessions", nil, w, h, false)
	}
	innerW := w - 4
	fit1 := max(1, min(n, innerW/minColumn))
	first := 0
	if m.sel >= fit1 {
		first = m.sel - fit1 + 1
	}
	colW := innerW / fit1
	innerH := h - 3
	body := make([]string, innerH)
	for i := first; i < first+fit1 && i < n; i++ {
		lines := m.sessionColumn(m.sessions[i], colW-2, innerH)
		for k := range body {
			l := ""
			if k < len(lines) {
				l = lines[k]
			}
			body[k] += fit(l, colW)
		}
	}
	title := "Sessions"
	if fit1 < n {
		title = fmt.Sprintf("Sessions %d–%d of %d (←/→ scrolls)", first+1, first+fit1, n)
	}
	return m.panel(title, body, w, h, false)
}

// badge is a session's state as symbol and words.
func (m *Model) badge(s sim.State) string {
	switch s {
	case sim.Idle:
		return m.st.subtle.Render("○ idle")
	case sim.InTransaction:
		return m.st.run.Render("● in transaction")
	case sim.Running:
		return m.st.run.Render("▶ running")
	case sim.Waiting:
		return m.st.wait.Render("⏳ WAITING")
	case sim.Committed:
		return m.st.ok.Render("✓ committed")
	case sim.RolledBack:
		return m.st.warn.Render("↺ rolled back")
	case sim.Aborted:
		return m.st.bad.Render("✗ aborted transaction")
	case sim.Failed:
		return m.st.bad.Render("✗ connection lost")
	}
	return s.String()
}

func (m *Model) sessionColumn(s sim.SessionInfo, w, h int) []string {
	title := fmt.Sprintf("%s  %s from %d to %d", s.Name, s.Transfer.Amount.StringFixed(2), s.Transfer.From, s.Transfer.To)
	if s.Label != "" {
		title = fmt.Sprintf("%s  session %s", s.Name, s.Label)
	}
	if s.Index == m.sel {
		title = m.st.selected.Render("▸ " + title)
	} else {
		title = m.st.bold.Render("  " + title)
	}
	pid, age := fmt.Sprint(s.Pid), ""
	if m.snap != nil {
		if b, ok := m.snap.Backend(s.Name); ok && b.XactStart != nil {
			age = " · tx " + roundAge(m.now.Sub(*b.XactStart))
		}
	}
	if m.masked {
		pid = "·····"
		if age != "" {
			age = " · tx ··"
		}
	}
	lines := []string{title, m.badge(s.State) + m.st.subtle.Render(" · pid "+pid+age)}
	var body []string
	focus := 0
	for i, sql := range s.Statements {
		var mark string
		style := m.st.subtle
		active := false
		switch {
		case s.CurrentStep == i && s.State == sim.Waiting:
			mark, style, active = "⏳ ", m.st.wait, true
		case s.CurrentStep == i:
			mark, style, active = "… ", m.st.run, true
		case s.ErrAt == i:
			mark, style, active = "✗ ", m.st.bad, true
		case i < s.Next:
			mark, style = "✓ ", m.st.ok
		case i == s.Next && !s.Finished:
			mark, style, active = "▶ ", m.st.accent, true
		default:
			mark = "  "
		}
		if active {
			focus = len(body)
			wrapped := strings.Split(ansi.Wrap(oneLine(sql), w-2, ""), "\n")
			if len(wrapped) > 3 {
				wrapped = wrapped[:3]
			}
			for k, l := range wrapped {
				prefix := "  "
				if k == 0 {
					prefix = mark
				}
				body = append(body, style.Render(prefix+l))
			}
			continue
		}
		short := elideMiddle(oneLine(sql), w-2)
		if mark == "✓ " {
			body = append(body, m.st.ok.Render("✓ ")+m.st.subtle.Render(short))
		} else {
			body = append(body, style.Render(mark+short))
		}
	}
	var tail string
	switch {
	case s.State == sim.Waiting && len(s.BlockedBy) > 0:
		tail = m.st.wait.Render("⏳ waits for " + strings.Join(s.BlockedBy, ", "))
	case s.LastErr != nil:
		tail = m.st.bad.Render(fmt.Sprintf("✗ %s %s", s.LastErr.SQLState, s.LastErr.Message))
	case s.Current != "" && s.CurrentStep < 0:
		tail = m.st.run.Render("… " + oneLine(s.Current))
	}
	room := h - len(lines) - 1
	if len(body) > room && room > 0 {
		// Keep the active statement in view.
		start := min(max(0, focus-room/2), len(body)-room)
		body = body[start : start+room]
	}
	lines = append(lines, body...)
	if tail != "" {
		lines = append(lines, tail)
	}
	for i := range lines {
		lines[i] = ansi.Truncate(lines[i], w, "…")
	}
	return lines
}

// elideMiddle shortens s to w cells by cutting its middle, keeping the
// start and the end of a statement (where FOR UPDATE and RETURNING are).
func elideMiddle(s string, w int) string {
	r := []rune(s)
	if len(r) <= w || w < 8 {
		return ansi.Truncate(s, w, "…")
	}
	head := (w - 1) * 6 / 10
	tail := w - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

func roundAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// lockLine is one lock in the locks panel: who, what kind, on what, mode, status.
func (m *Model) lockLine(it item, sessW int) string {
	format := "%-" + fmt.Sprint(sessW) + "s %-8s %-22s %-17s %s"
	switch {
	case it.lock != nil:
		l := it.lock
		kind, target := l.Type, l.Target()
		switch l.Type {
		case "relation":
			kind, target = map[string]string{"i": "index", "S": "sequence"}[l.RelKind], l.Relation
			if kind == "" {
				kind = "table"
			}
		case "transactionid":
			kind = "xid"
		}
		status := "granted"
		if !l.Granted {
			status = "WAITING"
			for _, e := range m.snapEdges() {
				if e.WaiterPid == l.Pid {
					status = "WAITING ← " + e.Holder
					break
				}
			}
		}
		return fmt.Sprintf(format, l.Session, kind, ansi.Truncate(target, 22, "…"), ansi.Truncate(l.ModeWords(), 17, "…"), status)
	case it.row != nil:
		r := it.row
		return fmt.Sprintf(format, r.Session, "row", fmt.Sprintf("accounts id=%d", r.Account), r.Mode.String(), "row lock")
	}
	return ""
}

func (m *Model) snapEdges() []locks.Edge {
	if m.snap == nil {
		return nil
	}
	return m.snap.Graph.Edges
}

func (m *Model) viewLocks(w, h int) []string {
	innerH := h - 3
	var idx []int
	for i, it := range m.items {
		if it.edge == nil {
			idx = append(idx, i)
		}
	}
	sessW := m.sessionWidth()
	header := m.st.subtle.Render(fmt.Sprintf(" %-*s %-8s %-22s %-17s %s", sessW, "", "type", "on", "mode", "status"))
	lines := []string{header}
	room := innerH - 1
	note := ""
	if m.snap != nil && m.snap.RowLockNote != "" {
		note = m.st.dim.Render(m.snap.RowLockNote)
		room--
	}
	start := 0
	for k, i := range idx {
		if i == m.itemSel && k >= room {
			start = k - room + 1
		}
	}
	for k := start; k < len(idx) && k < start+room; k++ {
		it := m.items[idx[k]]
		line := m.lockLine(it, sessW)
		switch {
		case idx[k] == m.itemSel:
			line = m.st.selected.Render("▸" + line)
		case it.lock != nil && !it.lock.Granted:
			line = m.st.wait.Render(" " + line)
		case it.row != nil:
			line = m.st.accent.Render(" " + line)
		case it.lock != nil && it.lock.Type == "relation" && it.lock.RelKind != "r":
			line = m.st.dim.Render(" " + line)
		default:
			line = " " + line
		}
		lines = append(lines, line)
	}
	if len(idx) == 0 {
		lines = append(lines, m.st.subtle.Render(" no locks: no session has a transaction open"))
	}
	if note != "" {
		for len(lines) < innerH {
			lines = append(lines, "")
		}
		lines = append(lines[:innerH-1], note)
	}
	title := "Locks held and awaited (pg_locks, pgrowlocks)"
	if len(idx) > room {
		title += fmt.Sprintf(" — %d of %d, ↑/↓", min(room, len(idx)), len(idx))
	}
	return m.panel(title, lines, w, h, false)
}

// sessionWidth is the width of the lock list's session column: T1, T1@A, or
// "prepared T1@B".
func (m *Model) sessionWidth() int {
	w := 3
	for _, it := range m.items {
		switch {
		case it.lock != nil:
			w = max(w, len(it.lock.Session))
		case it.row != nil:
			w = max(w, len(it.row.Session))
		}
	}
	return w
}

var digits = regexp.MustCompile(`\d{3,}`)

func (m *Model) viewGraph(w, h int) []string {
	innerW := w - 4
	var lines []string
	inCycle := map[string]bool{}
	if m.cycle != nil {
		for _, e := range m.cycle.Edges {
			inCycle[e.Waiter+"→"+e.Holder] = true
		}
		title := " ⚠ DEADLOCK "
		when := fmt.Sprintf("the server breaks it after deadlock_timeout (%s)", m.deadlock)
		if m.cycle.Distributed {
			title = " ⚠ DISTRIBUTED DEADLOCK "
			when = "no server sees it: it never ends by itself (k cancels, x rolls back)"
		}
		lines = append(lines, m.st.banner.Render(title)+" "+m.st.cycle.Render(m.cycle.String()))
		if m.cycle.Distributed && m.cycle.BreakAt != nil {
			left := roundAge(m.cycle.BreakAt.Sub(m.now))
			if m.masked {
				left = "··"
			}
			when = fmt.Sprintf("no server sees it; %s's lock_timeout (%s) ends it in %s", m.cycle.LikelyVictim, m.cycle.LockTimeout, left)
		} else if m.cycle.BreakAt != nil {
			left := roundAge(m.cycle.BreakAt.Sub(m.now))
			if m.masked {
				left = "··"
			}
			when = "the server breaks it in " + left
			if m.cycle.LikelyVictim != "" {
				when = "broken in " + left + " · likely victim " + m.cycle.LikelyVictim
			}
		}
		lines = append(lines, m.st.cycle.Render("↻ "+when))
	}
	if m.victim != "" {
		lines = append(lines, m.st.bad.Render("✗ deadlock broken: "+m.victim+" was the victim"))
		detail := m.withSessionNames(m.victimText)
		if m.masked {
			detail = digits.ReplaceAllString(detail, "N")
		}
		for _, l := range strings.Split(ansi.Wrap(oneLine(detail), innerW, ""), "\n") {
			lines = append(lines, m.st.subtle.Render(l))
		}
	}
	for i, it := range m.items {
		if it.edge == nil {
			continue
		}
		e := it.edge
		text := fmt.Sprintf("%s ──%s──▶ %s", e.Waiter, e.Label(), e.Holder)
		style := m.st.wait
		if inCycle[e.Waiter+"→"+e.Holder] {
			style, text = m.st.cycle, "↻ "+text
		}
		if i == m.itemSel {
			style, text = m.st.selected, "▸"+text
		}
		lines = append(lines, style.Render(text))
	}
	if len(lines) == 0 {
		lines = append(lines, m.st.subtle.Render("no session waits"))
	}
	return m.panel("Wait-for graph (waiter ──lock──▶ holder)", lines, w, h, false)
}

func (m *Model) viewAccounts(w, h int) []string {
	var lines []string
	for _, a := range m.accounts {
		lines = append(lines, fmt.Sprintf("%3d %-7s %10s", a.ID, a.Owner, a.Balance.StringFixed(2)))
	}
	if m.books != nil {
		if m.books.OK() {
			lines = append(lines, m.st.ok.Render("✓ "+m.books.Summary()))
		} else {
			lines = append(lines, m.st.bad.Render("✗ books broken: "+m.books.Summary()))
		}
	}
	if m.booksErr != "" {
		lines = append(lines, m.st.warn.Render(m.booksErr))
	}
	if m.byDatabase != nil {
		a, b := m.byDatabase["A"], m.byDatabase["B"]
		lines = append(lines, m.st.subtle.Render(fmt.Sprintf("%-7s %7s %7s", "", "in A", "in B")))
		for i := range a {
			line := fmt.Sprintf("%d %-5s %7s", a[i].ID, a[i].Owner, a[i].Balance.StringFixed(2))
			if i < len(b) {
				line += fmt.Sprintf(" %7s", b[i].Balance.StringFixed(2))
			}
			lines = append(lines, line)
		}
		if sim.InSync(m.byDatabase) {
			lines = append(lines, m.st.ok.Render("✓ the databases agree"))
		} else {
			lines = append(lines, m.st.bad.Render("✗ the databases disagree"))
		}
	} else if m.cfg.Scenario != nil {
		lines = append(lines, m.st.subtle.Render("a scenario has no ledger: its own tables, in its setup"))
	}
	return m.panel("Accounts", wrapAll(lines, w-4), w, h, false)
}

func wrapAll(lines []string, w int) []string {
	var out []string
	for _, l := range lines {
		out = append(out, strings.Split(ansi.Wrap(l, w, ""), "\n")...)
	}
	return out
}

// explainLines says why the selected lock or wait conflicts, with the
// deciding cell of PostgreSQL's documented conflict table marked; it returns
// the pane's title and lines wrapped to w.
func (m *Model) explainLines(w int) (string, []string) {
	var text []string
	var table *locks.ConflictTable
	held, wanted := -1, -1
	useConflict := func(e locks.Edge) {
		text = append(text, e.Why)
		if c := e.Conflict; c != nil {
			t := c.Table()
			table, held, wanted = &t, c.Held, c.Wanted
		}
	}
	if m.itemSel < 0 || m.itemSel >= len(m.items) {
		return "Explain", wrapAll([]string{m.st.subtle.Render("↑/↓ selects a wait or a lock; this pane says why it conflicts, from PostgreSQL's conflict tables.")}, w)
	}
	it := m.items[m.itemSel]
	switch {
	case it.edge != nil:
		useConflict(*it.edge)
	case it.lock != nil && !it.lock.Granted:
		for _, e := range m.snapEdges() {
			if e.WaiterPid == it.lock.Pid {
				useConflict(e)
				break
			}
		}
	case it.lock != nil:
		l := it.lock
		if mode, ok := locks.ParseTableMode(l.Mode); ok {
			text = append(text, fmt.Sprintf("%s holds %s on %s (taken by %s). Requests in the marked row's X columns wait for it.",
				l.Session, mode, l.Target(), mode.TakenBy()))
			t := locks.TableLevelConflicts()
			table, held = &t, int(mode)
		} else {
			text = append(text, fmt.Sprintf("%s holds %s on %s.", l.Session, l.Mode, l.Target()))
		}
	case it.row != nil:
		r := it.row
		text = append(text, fmt.Sprintf("%s holds %s on accounts id=%d (taken by %s). Row locks live in the row header, not in pg_locks.",
			r.Session, r.Mode, r.Account, r.Mode.TakenBy()))
		t := locks.RowLevelConflicts()
		table, held = &t, int(r.Mode)
	}
	lines := wrapAll(text, w)
	title := "Explain"
	if table != nil {
		title = "Explain — " + table.Title
		rendered := table.Render(held, wanted)
		for i, l := range rendered {
			switch {
			case i == 0 && l == table.Title:
				continue // the pane's title says it
			case i == len(rendered)-1 && wanted >= 0 && strings.Contains(l, "→"):
				continue // the explanation above says it
			case strings.HasPrefix(strings.TrimSpace(l), "▶"):
				lines = append(lines, m.st.selected.Render(l))
			default:
				lines = append(lines, l)
			}
		}
	}
	return title, lines
}

func (m *Model) viewLog(w, h int) []string {
	innerH := h - 3
	start := max(0, len(m.log)-innerH)
	var lines []string
	for _, e := range m.log[start:] {
		at := e.at.Format("15:04:05.000")
		if m.masked {
			at = "--:--:--.---"
		}
		who := e.who
		if who == "" {
			who = "··"
		}
		text := e.text
		if m.masked {
			text = digits.ReplaceAllStringFunc(text, func(s string) string {
				if len(s) >= 4 {
					return "N"
				}
				return s
			})
		}
		line := m.st.subtle.Render(at) + " " + m.st.bold.Render(fmt.Sprintf("%-2s", who)) + " " + text
		if e.bad {
			line = m.st.subtle.Render(at) + " " + m.st.bold.Render(fmt.Sprintf("%-2s", who)) + " " + m.st.bad.Render(text)
		}
		lines = append(lines, line)
	}
	return m.panel("Log", lines, w, h, false)
}

func (m *Model) viewStrategyMenu(w, h int) []string {
	lines := []string{m.st.subtle.Render("↑/↓ choose · enter switches (the run starts again) · esc closes")}
	all := ledger.Strategies()
	innerH := h - 4
	start := max(0, min(m.menu-innerH/2, len(all)-innerH))
	for i := start; i < len(all) && i < start+innerH; i++ {
		s := all[i]
		line := fmt.Sprintf("%-18s %s", s.Name, s.Summary)
		if i == m.menu {
			line = m.st.selected.Render("▸ " + line)
		} else {
			line = "  " + line
		}
		lines = append(lines, line)
	}
	return m.panel("Strategy", lines, w, h, true)
}

func (m *Model) viewSetup(w, h int) []string {
	f := m.form
	values := []string{
		fmt.Sprint(f.sessions),
		directions[f.direction],
		fmt.Sprint(f.accounts),
		f.amount.StringFixed(2),
		f.balance.StringFixed(2),
	}
	names := []string{"sessions", "direction", "accounts", "amount per transfer", "opening balance"}
	lines := []string{m.st.subtle.Render("↑/↓ field · ←/→ change · enter starts a new run with this set-up · esc closes")}
	for i, n := range names {
		line := fmt.Sprintf("%-20s ◂ %s ▸", n, values[i])
		if i == f.field {
			line = m.st.selected.Render("▸ " + line)
		} else {
			line = "  " + line
		}
		lines = append(lines, line)
	}
	return m.panel("Set-up", lines, w, h, true)
}

var processRE = regexp.MustCompile(`(?i)process (\d+)`)

// withSessionNames adds the session's name after each "process N" of a
// server message, e.g. the DETAIL of a deadlock.
func (m *Model) withSessionNames(msg string) string {
	return processRE.ReplaceAllStringFunc(msg, func(s string) string {
		pid := processRE.FindStringSubmatch(s)[1]
		for _, se := range m.sessions {
			if fmt.Sprint(se.Pid) == pid {
				return s + " (" + se.Name + ")"
			}
		}
		return s
	})
}
