package tui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"lockstep/locks"
	"lockstep/sim"
)

// minColumn is the narrowest a session's column gets; with more sessions
// than columns of this width fit, each session is a row instead.
const minColumn = 36

// sessionsPane shows every session: with few, a column each with its whole
// script, each statement whole (wrapped, never cut in the middle), the
// rows it returned, and what it waits for; with many, a row each with the
// statement in flight or next. The selected session is the one the step
// keys act on.
type sessionsPane struct {
	box
	f      *frame
	now    time.Time
	sel    int
	asRows bool // a row each, whatever the width
	// brief: the rows do not all fit, so each says whom it waits for but
	// not the lock behind it (the why pane's): every session stays in view.
	brief bool
	// scrolled is set once the user scrolls the rows; until then, and
	// after each step, the rows keep the selected session in view.
	scrolled bool
}

// Scroll takes a key that scrolls the rows.
func (p *sessionsPane) Scroll(msg tea.KeyPressMsg) bool {
	if !p.box.Scroll(msg) {
		return false
	}
	p.scrolled = true
	return true
}

// Show takes the frame to draw and the time to count ages against.
func (p *sessionsPane) Show(f *frame, now time.Time) {
	p.f, p.now = f, now
	if p.sel >= len(f.sessions) {
		p.sel = 0
	}
}

// Selected is the index of the session the step keys act on.
func (p *sessionsPane) Selected() int { return p.sel }

// Select makes session i of n the selected one.
func (p *sessionsPane) Select(i, n int) {
	if i >= 0 && i < n {
		p.sel, p.scrolled = i, false
	}
}

// Move selects the session d along of n, wrapping around.
func (p *sessionsPane) Move(d, n int) {
	if n > 0 {
		p.sel, p.scrolled = (p.sel+d%n+n)%n, false
	}
}

// columns is how many columns fit in width w: 0 means a row each.
func columns(n, w int) int {
	if n == 0 || (w-4)/n < minColumn {
		return 0
	}
	return n
}

// Fit chooses how the sessions show at width w in at most maxH lines — a
// column each when the columns fit and have the room to show a script, a
// row each otherwise — and returns the height that needs.
func (p *sessionsPane) Fit(w, maxH int) int {
	n := len(p.f.sessions)
	p.asRows, p.brief = true, false
	if cols := columns(n, w); cols > 0 {
		colW := (w - 4) / cols
		longest := 0
		for i := range p.f.sessions {
			longest = max(longest, len(p.column(i, colW-2)))
		}
		if need := longest + 3; need <= maxH || maxH >= 10 {
			p.asRows = false
			return min(need, maxH)
		}
	}
	lines := p.rowLines(w-4, false)
	if lines+3 > maxH {
		p.brief = true
		lines = p.rowLines(w-4, true)
	}
	return min(lines+3, maxH)
}

func (p *sessionsPane) View() []string {
	n := len(p.f.sessions)
	if n == 0 {
		return p.look.panel("Sessions", nil, p.w, p.h, p.focused)
	}
	innerW, innerH := p.w-4, p.h-3
	var body []string
	if cols := columns(n, p.w); cols == 0 || p.asRows {
		var rows columnLines
		for i := range p.f.sessions {
			if i == p.sel {
				rows.focus = len(rows.lines)
			}
			rows.add(p.row(i, innerW, p.brief))
		}
		if p.scrolled {
			body = p.scroll.View(rows.lines, innerH, p.look.st)
		} else {
			body = window(rows, innerH, p.look.st)
		}
	} else {
		colW := innerW / cols
		body = make([]string, innerH)
		for i := range p.f.sessions {
			c := p.columnFocus(i, colW-2)
			// The title and the state stay; the script scrolls under them.
			const head = 2
			script := columnLines{lines: c.lines[head:], firsts: c.firsts[head:], focus: c.focus - head}
			lines := append(c.lines[:head:head], window(script, innerH-head, p.look.st)...)
			for k := range body {
				l := ""
				if k < len(lines) {
					l = lines[k]
				}
				body[k] += fit(l, colW)
			}
		}
	}
	return p.look.panel("Sessions", body, p.w, p.h, p.focused)
}

// window keeps h of c's lines with its focus line in view, marking what it
// leaves out above and below.
func window(c columnLines, h int, st styles) []string {
	lines, focus := c.lines, c.focus
	if len(lines) <= h || h < 1 {
		return lines
	}
	if h < 3 {
		// Too small to scroll: the last line says what is cut.
		out := append([]string(nil), lines[:h]...)
		out[h-1] = st.subtle.Render(moreLines("↓", len(lines)-h+1))
		return out
	}
	// The focus line a third of the way down, under the marker that
	// replaces the first line: what was just done stays in view above it.
	start := min(max(0, focus-h/3-1), len(lines)-h)
	// The first line shown begins a statement.
	for start > 0 && start+1 < focus && start+h < len(lines) && !c.firsts[start+1] {
		start++
	}
	out := append([]string(nil), lines[start:start+h]...)
	if start > 0 {
		out[0] = st.subtle.Render(moreLines("↑", start+1)) // the mark hides a line too
	}
	if end := start + h; end < len(lines) {
		out[h-1] = st.subtle.Render(moreLines("↓", len(lines)-end+1))
	}
	return out
}

// moreLines says how many lines are out of view that way.
func moreLines(arrow string, n int) string {
	if n == 1 {
		return arrow + " 1 more line"
	}
	return fmt.Sprintf("%s %d more lines", arrow, n)
}

// BriefHeight is the height the sessions need as brief rows at width w:
// each session's line, and whom it waits for or why it failed.
func (p *sessionsPane) BriefHeight(w int) int { return p.rowLines(w-4, true) + 3 }

// rowLines is how many lines the sessions take as rows at width w.
func (p *sessionsPane) rowLines(w int, brief bool) int {
	n := 0
	for i := range p.f.sessions {
		n += len(p.row(i, w, brief))
	}
	return n
}

// badge is a session's state as symbol and words.
func (p *sessionsPane) badge(s sim.State) string {
	st := p.look.st
	switch s {
	case sim.Idle:
		return st.subtle.Render("○ idle")
	case sim.InTransaction:
		return st.run.Render("● in transaction")
	case sim.Running:
		return st.run.Render("▶ running")
	case sim.Waiting:
		return st.wait.Render("⏳ WAITING")
	case sim.Committed:
		return st.ok.Render("✓ committed")
	case sim.RolledBack:
		return st.warn.Render("↺ rolled back")
	case sim.Aborted:
		return st.bad.Render("✗ aborted transaction")
	case sim.Failed:
		return st.bad.Render("✗ connection lost")
	}
	return s.String()
}

// shortBadges are the badges too wide for a row's state column, in fewer
// words.
var shortBadges = map[sim.State]string{sim.Aborted: "✗ aborted", sim.Failed: "✗ no connection"}

// title names the session and what it does.
func (p *sessionsPane) title(s sim.SessionInfo) string {
	if s.Label != "" {
		return fmt.Sprintf("%s  session %s", s.Name, s.Label)
	}
	return fmt.Sprintf("%s  %s from %d to %d", s.Name, s.Transfer.Amount.StringFixed(2), s.Transfer.From, s.Transfer.To)
}

// state is the session's badge, how long it has waited, its pid and the
// age of its transaction, in w columns: with no room for all, the pid gives
// its place to a mark ("● in transaction · … · tx 12.3s"), then the age —
// never an age cut to a shorter one ("tx 1…" for 12.3s).
func (p *sessionsPane) state(s sim.SessionInfo, w int) string {
	line, pid, tx := p.stateParts(s)
	subtle := p.look.st.subtle
	for _, try := range []string{line + subtle.Render(pid+tx), line + subtle.Render(" · …"+tx), line + subtle.Render(" · …")} {
		if ansi.StringWidth(try) <= w {
			return try
		}
	}
	return ansi.Truncate(line, w, "…")
}

// stateParts are the state line's parts: the badge with how long the
// session has waited, its pid (" · pid 4242") and its transaction's age
// (" · tx 3.1s", or "" with none open).
func (p *sessionsPane) stateParts(s sim.SessionInfo) (line, pid, tx string) {
	st, vol := p.look.st, p.look.vol
	line = p.badge(s.State)
	if s.State == sim.Failed && s.Ended != nil {
		line = st.bad.Render("✗ session ended by the server")
	}
	if t, ok := p.f.waitSince[s.Name]; ok && s.State == sim.Waiting {
		line += st.wait.Render(" " + vol.Age(p.now.Sub(t)))
	}
	pid = " · pid " + vol.Pid(s.Pid)
	if s.Pid == 0 {
		// Through a pooler: the server connection it runs on changes with
		// each transaction; the server names it by the client last on it.
		pid = " · via pooler"
		if p.f.snap != nil {
			if b, ok := p.f.snap.Backend(s.Name); ok {
				pid += " → pid " + vol.Pid(b.Pid)
			}
		}
	}
	if p.f.snap != nil {
		if b, ok := p.f.snap.Backend(s.Name); ok && b.XactStart != nil {
			tx = " · tx " + vol.Age(p.now.Sub(*b.XactStart))
		}
	}
	return line, pid, tx
}

func (p *sessionsPane) column(i, w int) []string {
	return p.columnFocus(i, w).lines
}

// columnLines is a session's column: its lines, the one its active
// statement starts on, and which lines begin a statement (a window over
// the column starts on one, not in the middle of a statement).
type columnLines struct {
	lines  []string
	firsts []bool
	focus  int
}

// add appends one item's lines: a statement, a result, a tail.
func (c *columnLines) add(text []string) {
	for j, l := range text {
		c.lines = append(c.lines, l)
		c.firsts = append(c.firsts, j == 0)
	}
}

// columnFocus is session i's column at width w — title, state, script,
// what it waits for or why it failed.
func (p *sessionsPane) columnFocus(i, w int) columnLines {
	st := p.look.st
	s := p.f.sessions[i]
	title := p.title(s)
	if i == p.sel {
		title = st.selected.Render("▸ " + title)
	} else {
		title = st.bold.Render("  " + title)
	}
	var c columnLines
	c.add([]string{ansi.Truncate(title, w, "…")})
	c.add([]string{p.state(s, w)})
	typed := p.f.typed[s.Name]
	for k, sql := range s.Statements {
		p.typed(s, typed, k, &c, w)
		if s.Finished && k == s.Next && (s.LastErr == nil || s.ErrAt != k) {
			// Its transaction was ended by hand: the script goes no
			// further, and what follows would read as still to come.
			c.add(wrapLines("— its script stops here", w))
		}
		mark, style, active := p.mark(s, k)
		if active && c.focus == 0 {
			c.focus = len(c.lines)
		}
		text := p.statement(s, k, sql, mark, style, w)
		if r, ok := p.f.results[resultKey{s.Name, k}]; ok && k < s.Next {
			text = withResult(text, resultLines(r, w, st), w)
		}
		if s.LastErr != nil && s.ErrAt == k && s.CurrentStep != k {
			// Under the statement that failed, not under the script's
			// end, which never ran.
			line := p.errLine(s)
			if s.Finished && k < len(s.Statements)-1 {
				// The statements below stay listed, but none will run:
				// without this they would read as still to come.
				line += p.look.st.bad.Render(" — its script stops here")
			}
			text = append(text, wrapLines(line, w)...)
		}
		c.add(text)
	}
	p.typed(s, typed, len(s.Statements), &c, w)
	if s.State == sim.Waiting || (s.State == sim.Failed && s.Ended != nil) {
		c.add(wrapLines(p.tail(s), w))
	}
	return c
}

// typed adds the statements the user typed into session s that ran before
// its script statement k (at the script's end, k = len: those after it),
// each with its state, its rows and its error whole. The newest, when
// nothing of the script ran since, is the line the column keeps in view.
func (p *sessionsPane) typed(s sim.SessionInfo, typed []typedStmt, k int, c *columnLines, w int) {
	for i, t := range typed {
		if t.after != k && (k < len(s.Statements) || t.after < k) {
			continue
		}
		if i == len(typed)-1 && t.after >= s.Next {
			c.focus = len(c.lines)
		}
		c.add(p.typedLines(s, t, w))
	}
}

// typedLines is one typed statement: marked by how it went, with what it
// returned or why it failed.
func (p *sessionsPane) typedLines(s sim.SessionInfo, t typedStmt, w int) []string {
	st := p.look.st
	mark, style := "⌨ ", styleFunc(st.accent.Render)
	switch t.state {
	case typedRunning:
		mark, style = "… ", st.run.Render
	case typedWaiting:
		mark, style = "⏳ ", st.wait.Render
	case typedFailed:
		mark, style = "✗ ", st.bad.Render
	}
	text := p.statement(s, -1, t.sql, mark, style, w)
	if t.res != nil {
		text = withResult(text, resultLines(*t.res, w, st), w)
	}
	if t.err != nil {
		text = append(text, wrapLines(st.bad.Render(fmt.Sprintf("  ✗ %s %s", t.err.SQLState, t.err.Message)), w)...)
		for _, more := range []string{t.err.Detail, t.err.Hint} {
			if more != "" {
				text = append(text, wrapLines(st.subtle.Render("    "+oneLine(p.look.vol.Text(more))), w)...)
			}
		}
	}
	return text
}

// mark is how a script statement shows: done, failed, in flight, waiting,
// next, or to come; active for the one the column keeps in view.
func (p *sessionsPane) mark(s sim.SessionInfo, k int) (string, styleFunc, bool) {
	st := p.look.st
	switch {
	case s.CurrentStep == k && s.State == sim.Waiting:
		return "⏳ ", st.wait.Render, true
	case s.CurrentStep == k:
		return "… ", st.run.Render, true
	case s.ErrAt == k:
		return "✗ ", st.bad.Render, true
	case k < s.Next:
		return "✓ ", st.ok.Render, false
	case k == s.Next && !s.Finished:
		return "▶ ", st.accent.Render, true
	}
	return "  ", st.subtle.Render, false
}

type styleFunc func(...string) string

// statement is one statement, whole, wrapped to w with its mark and — for
// a scenario — its step's name.
func (p *sessionsPane) statement(s sim.SessionInfo, k int, sql, mark string, style styleFunc, w int) []string {
	return p.statementAs(s, k, sql, mark, style, w, false)
}

// statementAs is statement, brief or not (see wrapSQL).
func (p *sessionsPane) statementAs(s sim.SessionInfo, k int, sql, mark string, style styleFunc, w int, brief bool) []string {
	st := p.look.st
	name := ""
	if k >= 0 && k < len(s.StepNames) && !brief {
		name = s.StepNames[k] + ": "
	}
	markW := ansi.StringWidth(mark) // "⏳ " is three cells, "✓ " two
	text := p.look.wrapSQL(name, sql, w-markW, brief)
	out := make([]string, len(text))
	for j, l := range text {
		prefix := strings.Repeat(" ", markW)
		if j == 0 {
			prefix = mark
		}
		if mark == "✓ " || mark == "  " {
			// Done and to come read as the script; the mark says which.
			out[j] = style(prefix) + st.script.Render(l)
		} else {
			out[j] = style(prefix + l)
		}
	}
	return out
}

// tail is what the session waits for — and the lock behind the wait — or
// why its last statement failed.
func (p *sessionsPane) tail(s sim.SessionInfo) string {
	st := p.look.st
	switch {
	case s.State == sim.Waiting && len(s.BlockedBy) > 0:
		return st.wait.Render("⏳ waits for " + strings.Join(s.BlockedBy, ", ") + p.behind(s.Name))
	case s.State == sim.Failed && s.Ended != nil:
		return st.bad.Render(fmt.Sprintf("✗ %s %s %s: the server ended this session; its transaction rolled back, its locks released",
			s.Ended.Severity, s.Ended.SQLState, s.Ended.Message))
	case lastFailed(s):
		return p.errLine(s)
	}
	return ""
}

// lastFailed says whether the session's last script statement is the one
// that failed: a scenario's session goes on after a failure outside a
// transaction block (a retry), and its row then shows what came after.
func lastFailed(s sim.SessionInfo) bool {
	return s.LastErr != nil && s.ErrAt >= 0 && s.ErrAt >= s.Next-1
}

// errLine is the error a script statement failed with.
func (p *sessionsPane) errLine(s sim.SessionInfo) string {
	return p.look.st.bad.Render(fmt.Sprintf("✗ %s %s", s.LastErr.SQLState, s.LastErr.Message))
}

// behind says which held lock a session's wait is about: ": T2 holds FOR
// KEY SHARE on accounts id=1".
func (p *sessionsPane) behind(name string) string {
	if p.f.snap == nil {
		return ""
	}
	for _, e := range p.f.snap.Graph.Edges {
		if e.Waiter == name {
			if held := heldWords(e); held != "" {
				return ": " + e.Holder + " holds " + held
			}
		}
	}
	return ""
}

// heldWords names the holder's lock behind an edge: "FOR KEY SHARE on
// accounts id=1", or "" when pg_locks shows none (a queue ahead).
func heldWords(e locks.Edge) string {
	switch {
	case e.HeldRow != nil:
		return fmt.Sprintf("%s on %s", e.HeldRow.Mode, e.HeldRow.Target())
	case e.Held != nil && e.Held.Type == "transactionid":
		// Its own transaction id: the row lock behind it is unknown here.
		return "a lock on a row the waiter needs, until its transaction ends"
	case e.Held != nil:
		return e.Held.ModeWords() + " on " + e.Held.Target()
	}
	return ""
}

// row is session i as a row of width w: name, state, the statement in
// flight (or next), what it waits for.
func (p *sessionsPane) row(i, w int, brief bool) []string {
	st := p.look.st
	s := p.f.sessions[i]
	named := func(name string) string {
		if i == p.sel {
			return st.selected.Render("▸" + name)
		}
		return st.bold.Render(" " + name)
	}
	name := named(fmt.Sprintf("%-5s", s.Name))
	indent := 24
	head := name + " " + p.badge(s.State)
	if s.State == sim.Failed && s.Ended != nil {
		head = name + " " + st.bad.Render("✗ ended")
	}
	if ansi.StringWidth(head) >= indent {
		if short, ok := shortBadges[s.State]; ok && s.Ended == nil {
			head = name + " " + p.look.st.bad.Render(short) // never cut in the middle of a word
		}
	}
	waitsFor := ""
	if s.State == sim.Waiting && len(s.BlockedBy) > 0 {
		waitsFor = "⏳ waits for " + strings.Join(s.BlockedBy, ", ")
	}
	if t, ok := p.f.waitSince[s.Name]; ok && s.State == sim.Waiting {
		head += st.wait.Render(" " + p.look.vol.Age(p.now.Sub(t)))
	}
	if brief && waitsFor != "" {
		// Short of room, whom it waits for takes the state's place, ⏳ and
		// all (the state's symbol, which NO_COLOR keeps): the name gives up
		// its padding first ("▸T3 ⏳ waits for T1, T2").
		for _, who := range []string{name, named(s.Name)} {
			if ansi.StringWidth(who)+1+ansi.StringWidth(waitsFor) < indent {
				head, waitsFor = who+" "+st.wait.Render(waitsFor), ""
				break
			}
		}
	}
	head = fit(head, indent)
	k, sql := p.rowStatement(s)
	mark, style, _ := p.mark(s, k)
	if sql == "" {
		mark, style = "", st.subtle.Render
		sql = fmt.Sprintf("%d of %d statements run", s.Next, len(s.Statements))
	}
	// One line a session when it fits: the statement, then whom it waits
	// for; the lock behind the wait is the graph's and the locks' to show.
	short := ""
	if waitsFor != "" {
		short = st.wait.Render(waitsFor)
	}
	room := w - indent - ansi.StringWidth(short) - 1
	text := p.statementAs(s, k, sql, mark, style, room, brief)
	if r, ok := p.f.results[resultKey{s.Name, k}]; ok && k >= 0 && k < s.Next {
		text = withResult(text, resultLines(r, room, st), room)
	}
	switch {
	case len(text) == 1 && short != "":
		text[0] += " " + short
	case short != "" && brief:
		text = append(p.statementAs(s, k, sql, mark, style, w-indent, true), short)
	case short != "":
		text = p.statement(s, k, sql, mark, style, w-indent)
		text = append(text, wrapLines(p.tail(s), w-indent)...)
	case s.LastErr != nil && k == s.ErrAt:
		text = append(text, wrapLines(p.tail(s), w-indent)...)
	}
	if ts := p.f.typed[s.Name]; len(ts) > 0 && ts[len(ts)-1].after >= s.Next && s.Current == "" {
		// The newest typed statement, once it has ended (in flight, it is
		// the row's statement).
		text = append(text, p.typedLines(s, ts[len(ts)-1], w-indent)...)
	}
	out := make([]string, len(text))
	for j, l := range text {
		if j == 0 {
			out[j] = head + l
		} else {
			out[j] = strings.Repeat(" ", indent) + l
		}
	}
	return out
}

// rowStatement is the statement a session's row shows: the one in
// flight, the one that failed, the next, or the last run.
func (p *sessionsPane) rowStatement(s sim.SessionInfo) (int, string) {
	switch {
	case s.Current != "":
		return s.CurrentStep, s.Current
	case lastFailed(s) && s.ErrAt < len(s.Statements):
		return s.ErrAt, s.Statements[s.ErrAt]
	case s.Next < len(s.Statements) && !s.Finished:
		return s.Next, s.Statements[s.Next]
	case s.Next > 0 && s.Next <= len(s.Statements):
		return s.Next - 1, s.Statements[s.Next-1]
	}
	return -1, ""
}

// resultLines show the rows a statement returned: one value inline, or a
// few rows and how many there were.
func resultLines(r result, w int, st styles) []string {
	switch {
	case r.total == 1 && len(r.columns) == 1:
		return []string{"  " + st.accent.Render(ansi.Truncate("→ "+r.columns[0]+" = "+r.rows[0][0], w-2, "…"))}
	case r.total == 0:
		return []string{"  " + st.accent.Render(ansi.Truncate("→ no rows ("+strings.Join(r.columns, " | ")+")", w-2, "…"))}
	}
	out := []string{"  " + st.accent.Render(ansi.Truncate(fmt.Sprintf("→ %d rows: %s", r.total, strings.Join(r.columns, " | ")), w-2, "…"))}
	for _, row := range r.rows {
		out = append(out, "    "+st.accent.Render(ansi.Truncate(strings.Join(row, " | "), w-4, "…")))
	}
	if r.total > len(r.rows) {
		out = append(out, "    "+st.subtle.Render(fmt.Sprintf("… %d more", r.total-len(r.rows))))
	}
	return out
}

// withResult puts a one-line result at the end of the statement's last
// line when it fits there, else under it.
func withResult(stmt, result []string, w int) []string {
	if len(result) == 1 && len(stmt) > 0 {
		last := stmt[len(stmt)-1]
		inline := strings.TrimLeft(result[0], " ")
		if ansi.StringWidth(last)+1+ansi.StringWidth(inline) <= w {
			stmt[len(stmt)-1] = last + " " + inline
			return stmt
		}
	}
	return append(stmt, result...)
}

// wrapLines wraps a styled line to w cells; "" has no lines.
func wrapLines(s string, w int) []string {
	if s == "" {
		return nil
	}
	return wrap(s, w)
}
