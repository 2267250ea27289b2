package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"charm.land/lipgloss/v2/table"
	"github.com/charmbracelet/x/ansi"

	"lockstep/locks"
	"lockstep/sim"
)

// explainPane answers "why is this session waiting?" without a key press:
// it follows the newest wait — the waiting statement whole, why it waits
// (the lock it wants and the holder's conflicting lock) and the deciding
// row of PostgreSQL's documented conflict table — and a deadlock while it
// stands, then how the server broke it. ↑/↓ explain another wait or lock
// instead, until esc.
type explainPane struct {
	box
	sel *selection
	f   *frame
	now time.Time
	// deadlock is the server's deadlock_timeout.
	deadlock time.Duration
	// room and width are the lines and cells the layout has for the
	// pane's body.
	room, width int
	// tableHidden is set when the conflict table that decides what the
	// pane explains did not fit: the title then says z shows it.
	tableHidden bool
	// lesson says a lesson steps the sessions (space), not the digits;
	// replay that the keys walk a recording's moments, stepping nothing.
	lesson, replay bool
	// tables keeps each conflict table drawn, by the cells it marks: there
	// are few, and drawing one with lipgloss/table is half a frame's time.
	tables map[tableKey][]string
}

type tableKey struct {
	title        string
	held, wanted int
}

// Restyle forgets the tables drawn in the old colours.
func (p *explainPane) Restyle() { p.tables = nil }

// table is the conflict table with held and wanted marked, drawn once.
func (p *explainPane) table(ct locks.ConflictTable, held, wanted int) []string {
	k := tableKey{ct.Title, held, wanted}
	if lines, ok := p.tables[k]; ok {
		return lines
	}
	if p.tables == nil {
		p.tables = map[tableKey][]string{}
	}
	p.tables[k] = conflictLines(ct, held, wanted, p.look.st)
	return p.tables[k]
}

// Show takes the frame to explain and the time to count down against.
func (p *explainPane) Show(f *frame, now time.Time) { p.f, p.now = f, now }

// Content is the pane's title and its lines wrapped to w cells, at most h
// of them: the layout asks for them first, since the pane grows to show what
// it explains. Where the conflict table does not fit, the words stay.
func (p *explainPane) Content(w, h int) (string, []string) {
	p.room, p.width, p.tableHidden = h, w, false
	title, lines := p.content(w)
	if p.tableHidden {
		title += " · z: the conflict table"
	}
	return title, lines
}

func (p *explainPane) content(w int) (string, []string) {
	if it, ok := p.sel.Selected(); ok {
		return p.item(it, w)
	}
	switch {
	case p.f.cycle != nil:
		return p.standing(p.f.cycle, w)
	case p.f.broken != nil:
		return p.brokenLines(p.f.broken, w)
	case p.f.failed != nil:
		return p.failureLines(p.f.failed, w)
	}
	if name, ok := p.f.newestWait(); ok {
		return p.wait(name, w)
	}
	// A session the server ended stays explained while nothing waits, from
	// the message its column keeps, whatever step came since.
	for _, s := range p.f.sessions {
		if s.State == sim.Failed && s.Ended != nil {
			return p.failureLines(&sim.Failure{Kind: sim.Classify(s.Ended, false), Session: s.Name, Err: *s.Ended}, w)
		}
	}
	st := p.look.st
	if p.lesson {
		// Short: in a lesson the sessions and the question need the room.
		return "Why does a session wait?", wrapAll([]string{st.subtle.Render("No session waits; when one does, this pane says why.")}, w)
	}
	if p.replay {
		return "Why does a session wait?", wrapAll([]string{st.subtle.Render("No session waits at this moment. At a moment where one does (w jumps to the next), this pane says why; ↑/↓ explain any lock instead.")}, w)
	}
	lines := wrapAll([]string{st.subtle.Render("No session waits. Step the sessions (space, or 1–9): " +
		"when one waits, this pane says why — the lock it wants, who holds a conflicting one, and the row of PostgreSQL's conflict table that decides it. " +
		"↑/↓ explain any lock instead.")}, w)
	if len(lines) > 2 && p.room < 8 {
		// Short of room, the sessions matter more than the instructions.
		lines = wrapAll([]string{st.subtle.Render("No session waits: step with space or 1–9, and when one waits this pane says why. ↑/↓ explain a lock.")}, w)
	}
	return "Why does a session wait?", lines
}

// wait explains the newest wait: the statement, each of its edges, and the
// table that decides the first.
func (p *explainPane) wait(name string, w int) (string, []string) {
	st := p.look.st
	var edges []locks.Edge
	for _, e := range p.f.snap.Graph.Edges {
		if e.Waiter == name {
			edges = append(edges, e)
		}
	}
	var holders []string
	for _, e := range edges {
		holders = append(holders, e.Holder)
	}
	title := "Why " + name + " waits"
	if len(holders) > 0 {
		title += " for " + strings.Join(holders, ", ")
	}
	var lines []string
	for _, s := range p.f.sessions {
		if s.Name == name && s.Current != "" {
			label := name + " runs "
			for i, l := range p.look.wrapSQL("", s.Current, w-len(label), false) {
				if i > 0 {
					label = strings.Repeat(" ", len(label))
				}
				lines = append(lines, st.subtle.Render(label)+st.wait.Render(l))
			}
		}
	}
	for _, e := range edges {
		lines = append(lines, wrapAll([]string{e.Why}, w)...)
	}
	if others := p.otherWaits(name); others != "" {
		lines = append(lines, st.subtle.Render(others))
	}
	if len(edges) > 0 {
		lines = p.withTable(lines, p.conflict(edges[0]))
	}
	return title, lines
}

// otherWaits names the sessions that also wait, for ↑/↓.
func (p *explainPane) otherWaits(newest string) string {
	var names []string
	for _, s := range p.f.sessions {
		if s.State == sim.Waiting && s.Name != newest {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return "also waiting: " + strings.Join(names, ", ") + " (↑/↓ selects a wait to explain)"
}

// withTable adds the conflict table under the words when the pane has the
// room for both; else it says where the table is.
func (p *explainPane) withTable(lines, table []string) []string {
	if len(table) == 0 {
		return lines
	}
	wide := 0
	for _, l := range table {
		wide = max(wide, ansi.StringWidth(l))
	}
	if len(lines)+len(table) > p.room || (p.width > 0 && wide > p.width) {
		p.tableHidden = true // the title says where it is
		return lines
	}
	return append(lines, table...)
}

// conflict is the conflict table that decides an edge, if one does.
func (p *explainPane) conflict(e locks.Edge) []string {
	if e.Conflict == nil {
		return nil
	}
	return p.table(e.Conflict.Table(), e.Conflict.Held, e.Conflict.Wanted)
}

// standing explains a deadlock while it stands: the cycle, how it will end,
// and each wait in it.
func (p *explainPane) standing(c *locks.Cycle, w int) (string, []string) {
	st, vol := p.look.st, p.look.vol
	banner := " ⚠ DEADLOCK "
	if c.Distributed {
		banner = " ⚠ DISTRIBUTED DEADLOCK "
	}
	lines := wrapAll([]string{st.banner.Render(banner) + " " + st.cycle.Render(cycleDrawing(c))}, w)
	var when string
	// What each server sees: a wait behind a session idle in transaction —
	// or, through postgres_fdw, behind one running the statement that waits
	// for its remote part (fdw-deadlock: T1@A is active, not idle).
	sees := "each sees a session waiting behind one idle in transaction"
	if slices.ContainsFunc(c.Edges, func(e locks.Edge) bool { return e.Application && e.Remote }) {
		sees = "each sees a session waiting behind one idle in transaction or running a statement that waits for its postgres_fdw remote part"
	}
	switch {
	case c.Distributed && c.BreakAt != nil:
		when = fmt.Sprintf("No server sees this cycle: %s. %s's lock_timeout (%s) ends it in %s: it fails with 55P03.",
			sees, c.LikelyVictim, c.LockTimeout, vol.Age(c.BreakAt.Sub(p.now)))
	case c.Distributed:
		when = "No server sees this cycle: " + sees + ", so no 40P01 will ever come. Only the application can end it: k cancels a waiting connection's statement; x cannot act while the cycle stands."
	case c.BreakAt != nil:
		when = fmt.Sprintf("Each session waits for a lock the next one holds: none can go on. A waiter runs the server's deadlock check once it has waited its deadlock_timeout (%s); the check cancels one transaction. Broken in %s",
			p.deadlockTimeouts(c), vol.Age(c.BreakAt.Sub(p.now)))
		if c.LikelyVictim != "" {
			when += " · likely victim " + c.LikelyVictim
		}
		when += "."
	default:
		when = fmt.Sprintf("Each session waits for a lock the next one holds: none can go on. The server breaks it once a waiter has waited its deadlock_timeout (%s).", p.deadlockTimeouts(c))
	}
	whenLines := wrapAll([]string{st.cycle.Render(when)}, w)
	edges := p.cycleEdges(c, w, p.room-len(lines)-len(whenLines))
	if len(lines)+len(whenLines)+len(edges) > p.room && c.BreakAt != nil && !c.Distributed {
		// A long ring: the countdown and the victim, in fewer words.
		when = fmt.Sprintf("None can go on. The server's deadlock check breaks it in %s", vol.Age(c.BreakAt.Sub(p.now)))
		if c.LikelyVictim != "" {
			when += " · likely victim " + c.LikelyVictim
		}
		whenLines = wrapAll([]string{st.cycle.Render(when + ".")}, w)
	}
	lines = append(append(lines, whenLines...), edges...)
	if len(c.Edges) > 0 {
		lines = p.withTable(lines, p.conflict(c.Edges[len(c.Edges)-1]))
	}
	if c.Distributed {
		return "Distributed deadlock", lines
	}
	return "Deadlock", lines
}

// deadlockTimeouts is the cycle's waiters' own deadlock_timeout — a
// session may SET its own — as one value when they agree ("1s"), else each
// ("T1 12s, T2 1s"); the server's where a session's is not known.
func (p *explainPane) deadlockTimeouts(c *locks.Cycle) string {
	vol := p.look.vol
	own := map[string]time.Duration{}
	for _, s := range p.f.sessions {
		if s.DeadlockTimeout > 0 {
			own[s.Name] = s.DeadlockTimeout
		}
	}
	var parts []string
	same := true
	for i, name := range c.Sessions {
		d, ok := own[name]
		if !ok {
			d = p.deadlock
		}
		if first, ok := own[c.Sessions[0]]; (ok && d != first) || (!ok && i > 0 && d != p.deadlock) {
			same = false
		}
		parts = append(parts, name+" "+vol.DeadlockTimeout(d))
	}
	if same {
		d, ok := own[c.Sessions[0]]
		if !ok {
			d = p.deadlock
		}
		return vol.DeadlockTimeout(d)
	}
	return strings.Join(parts, ", ")
}

// cycleEdges are the waits in a cycle, one bullet each: each edge's whole
// reason when they fit in room lines, else the holder's lock alone ("T1 ──▶
// T2: T2 holds FOR NO KEY UPDATE on accounts id=2") so that a ring of nine
// still shows every edge.
func (p *explainPane) cycleEdges(c *locks.Cycle, w, room int) []string {
	var full []string
	for _, e := range c.Edges {
		full = append(full, wrapAll([]string{"• " + e.Why}, w)...)
	}
	if len(full) <= room {
		return full
	}
	var short []string
	for _, e := range c.Edges {
		what := e.Label()
		if held := heldWords(e); held != "" {
			what = e.Holder + " holds " + held
		}
		short = append(short, wrapAll([]string{"• " + e.Waiter + " ──▶ " + e.Holder + ": " + what}, w)...)
	}
	return short
}

// brokenLines say how the server broke a deadlock: the cycle as it stood,
// the victim, the server's DETAIL with each process's session.
func (p *explainPane) brokenLines(b *brokenDeadlock, w int) (string, []string) {
	st, vol := p.look.st, p.look.vol
	cycle := "the deadlock"
	if b.cycle != nil {
		cycle = "the deadlock " + cycleDrawing(b.cycle)
	}
	ended := b.victim + "'s statement failed with 40P01 (deadlock detected) and its transaction was rolled back, its locks released: that ends the cycle."
	for _, s := range p.f.sessions {
		if s.Name == b.victim && s.State == sim.Aborted {
			// A scenario's session keeps its aborted transaction open.
			ended = b.victim + "'s statement failed with 40P01 (deadlock detected) and its transaction was aborted: its changes undone and its locks released at once, which ends the cycle. It stays in the aborted transaction until a ROLLBACK."
		}
	}
	text := []string{
		st.bad.Render("✗ The server broke " + cycle + ": " + b.victim + " was the victim."),
		ended,
		"Why " + b.victim + ": " + p.whyVictim(b),
		st.ok.Render("Avoid it: ") + "take the locks in the same order in every transaction; and retry the victim's transaction.",
		st.subtle.Render("DETAIL: " + vol.Text(oneLine(b.detail))),
	}
	return "Deadlock broken: " + b.victim + " was the victim", wrapAll(text, w)
}

// whyVictim says why the server chose b's victim: each waiter runs the
// deadlock check once, its own deadlock_timeout into its wait, and the
// first check to run once the cycle had closed finds it. With each
// waiter's check time known, and the victim the one whose check was due
// first after the close, it names them: whose checks ran before the cycle
// closed (and found none), and the victim's.
func (p *explainPane) whyVictim(b *brokenDeadlock) string {
	vol := p.look.vol
	generic := "each waiter runs the server's deadlock check once, when it has waited its own deadlock_timeout. " +
		"The first check to run once the cycle had closed was " + b.victim + "'s: it found the cycle, and the server cancels the statement of the session whose check finds it."
	c := b.cycle
	if c == nil || c.LikelyVictim != b.victim || len(c.Checks) == 0 || c.Closed().IsZero() {
		return generic
	}
	closed := c.Closed()
	closer := ""
	for _, e := range c.Edges {
		if e.Lock.WaitStart.Equal(closed) {
			closer = e.Waiter
		}
	}
	var before, after []string
	var beforeTimeouts []time.Duration
	var own time.Duration
	for _, ch := range c.Checks {
		switch {
		case ch.Waiter == b.victim:
			own = ch.Timeout
		case ch.At.Before(closed):
			before, beforeTimeouts = append(before, ch.Waiter), append(beforeTimeouts, ch.Timeout)
		default:
			after = append(after, ch.Waiter)
		}
	}
	text := "each waiter runs the server's deadlock check once, its own deadlock_timeout into its wait. "
	switch {
	case len(before) == 1:
		text += fmt.Sprintf("%s's check ran %s into its wait, before %s's wait closed the cycle, and found none. ",
			before[0], vol.DeadlockTimeout(beforeTimeouts[0]), closer)
	case len(before) > 1:
		each := ""
		if !slices.ContainsFunc(beforeTimeouts, func(d time.Duration) bool { return d != beforeTimeouts[0] }) {
			each = ", each " + vol.DeadlockTimeout(beforeTimeouts[0]) + " into its wait,"
		}
		text += fmt.Sprintf("The checks of %s ran%s before %s's wait closed the cycle, and found none. ", andList(before), each, closer)
	}
	text += fmt.Sprintf("%s's ran %s into its wait: the first check after the cycle closed. It found the cycle, and the server cancels the statement of the session whose check finds it.",
		b.victim, vol.DeadlockTimeout(own))
	switch {
	case len(after) == 1:
		text += " " + after[0] + "'s would have come later."
	case len(after) > 1:
		text += " The checks of " + andList(after) + " would have come later."
	}
	return text
}

// andList is "T1", "T1 and T2", "T1, T2 and T3".
func andList(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// item explains what ↑/↓ selected: a wait, or a lock and what it blocks.
func (p *explainPane) item(it item, w int) (string, []string) {
	var text []string
	var ct *locks.ConflictTable
	held, wanted := -1, -1
	useEdge := func(e locks.Edge) {
		text = append(text, e.Why)
		if c := e.Conflict; c != nil {
			t := c.Table()
			ct, held, wanted = &t, c.Held, c.Wanted
		}
	}
	switch {
	case it.edge != nil:
		useEdge(*it.edge)
	case it.lock != nil && !it.lock.Granted:
		if e, ok := waitOf(p.f.snap, it.lock.Pid); ok {
			useEdge(e)
		}
	case it.lock != nil:
		words, table := heldLockWords(p.f.snap, *it.lock)
		text = append(text, words)
		if table {
			mode, _ := locks.ParseTableMode(it.lock.Mode)
			t := locks.ModeConflicts(it.lock.Type)
			ct, held = &t, int(mode)
		}
	case it.row != nil:
		r := it.row
		text = append(text, fmt.Sprintf("%s holds %s on %s (a mode taken by e.g. %s). Row locks live in the row header, not in pg_locks.",
			r.Session, r.Mode, r.Target(), r.Mode.TakenBy()))
		if r.Multi {
			text = append(text, multixactWords(p.f.snap, r))
		}
		t := locks.RowLevelConflicts()
		ct, held = &t, int(r.Mode)
	}
	lines := wrapAll(text, w)
	if ct == nil {
		return "Explain", lines
	}
	return "Explain — " + ct.Title, p.withTable(lines, p.table(*ct, held, wanted))
}

// heldLockWords explains a granted lock by what it is: a table lock with
// the table-level matrix (table is true); a tuple lock as the row queue's
// head; a transaction's own id; an advisory key. Which statement took it
// is said only when known (locks.TakenByWords).
func heldLockWords(snap *locks.Snapshot, l locks.Lock) (words string, table bool) {
	mode, isTableMode := locks.ParseTableMode(l.Mode)
	waits := ""
	if snap != nil {
		if e, ok := waitOf(snap, l.Pid); ok {
			waits = e.Holder
		}
	}
	if l.Mode == locks.SIReadMode {
		// A predicate lock: no conflict table, no queue (PostgreSQL docs,
		// 13.2.3 and 13.3.5: SIRead locks do not cause any blocking).
		what := map[string]string{
			"tuple":    "this row",
			"page":     "this page (an index page its search read, or a table page whose row locks were combined into one)",
			"relation": "all of it (a sequential scan, or its row and page locks combined into one)",
		}[l.Type]
		if what == "" {
			what = "it"
		}
		return fmt.Sprintf("%s holds SIReadLock on %s: a predicate lock of its SERIALIZABLE transaction, the server's record that it read %s. "+
			"It blocks no one and waits for no one; the server uses it to find read/write dependencies between serializable transactions, "+
			"and fails one of them with 40001 when those could make the result differ from every serial order. "+
			"It may be kept after %s's transaction ends, until the transactions that overlapped it end.",
			l.Session, l.Target(), what, l.Session), false
	}
	switch l.Type {
	case "relation":
		if isTableMode {
			query := ""
			if snap != nil {
				query = snap.QueryOf(l.Pid)
			}
			return fmt.Sprintf("%s holds %s on %s (%s). Requests in the marked row's X columns wait for it until %s's transaction ends.",
				l.Session, mode, l.Target(), locks.TakenByWords(mode, l.Relation, query), l.Session), true
		}
	case "tuple":
		row := strings.TrimSuffix(l.Target(), " (row queue)")
		w := fmt.Sprintf("%s holds the tuple lock on %s (pg_locks calls its mode %s; no table is locked by it): its place at the head of that row's queue. "+
			"The first session to wait for a locked row takes it, and keeps it while it waits for the row's locker to end; later sessions that want the row queue behind it, for this lock. "+
			"The row locks themselves live in the row header.", l.Session, row, l.Mode)
		if waits != "" {
			w += fmt.Sprintf(" %s waits now for %s.", l.Session, waits)
		}
		return w, false
	case "transactionid":
		if l.Subtransaction {
			return fmt.Sprintf("%s holds ExclusiveLock on the id of its subtransaction (begun by a SAVEPOINT): whoever needs a row it locked or changed after the savepoint asks for ShareLock on it, and goes on at %s's ROLLBACK TO SAVEPOINT or its transaction's end.", l.Session, l.Session), false
		}
		return fmt.Sprintf("%s holds ExclusiveLock on its own transaction id %d, as every transaction that writes does: whoever needs a row it locked or changed asks for ShareLock on it, and waits for %s's transaction to end.", l.Session, l.TransactionID, l.Session), false
	case "virtualxid":
		return fmt.Sprintf("%s holds ExclusiveLock on its own virtual transaction id %s, as every transaction does: CREATE INDEX CONCURRENTLY and the like wait for its transaction to end by asking for ShareLock on it.", l.Session, l.VirtualXID), false
	case "advisory":
		return fmt.Sprintf("%s holds %s on the %s: taken by pg_advisory_lock (ExclusiveLock) or pg_advisory_lock_shared (ShareLock), or their _xact_ forms. Requests in the marked row's X columns wait for it.",
			l.Session, l.Mode, l.Target()), isTableMode
	}
	return fmt.Sprintf("%s holds %s on %s.", l.Session, l.Mode, l.Target()), false
}

// multixactWords names a multixact: the row header holds one id for
// several lockers, each with its own sharing mode.
func multixactWords(snap *locks.Snapshot, r *locks.RowLock) string {
	if snap == nil {
		return ""
	}
	return locks.MultixactWords(snap.RowLocks, r.Relation, r.Ctid)
}

// View draws the pane with the lines Content gave for its width.
func (p *explainPane) View(title string, lines []string) []string {
	return p.draw(title, lines)
}

// Marks in a conflict table.
const (
	markConflict   = "X"
	markCompatible = "·"
	markHeldRow    = "▶"
)

// conflictLines draws a conflict table: rows are the mode held, columns the
// mode requested, headed by the modes' initials ("SUE" for SHARE UPDATE
// EXCLUSIVE); "X" where they conflict, "·" where not. The held row (when
// held is a row index) is marked "▶"; the requested column's header (when
// wanted is one) is bracketed, as is the deciding cell when both are. A
// legend follows; the verdict is the explanation's, above the table.
func conflictLines(ct locks.ConflictTable, held, wanted int, st styles) []string {
	n := len(ct.Modes)
	if held < 0 || held >= n {
		held = -1
	}
	if wanted < 0 || wanted >= n {
		wanted = -1
	}
	abbrevs := abbreviations(ct.Modes)
	labelW := len([]rune("held ↓  requested →"))
	for _, m := range ct.Modes {
		labelW = max(labelW, len([]rune(m))+2)
	}
	cellW := 3 // room for "[X]"
	for _, a := range abbrevs {
		cellW = max(cellW, len([]rune(a))+2) // room for "[SUE]"
	}
	header := []string{"held ↓  requested →"}
	for j, a := range abbrevs {
		if j == wanted {
			a = "[" + a + "]"
		}
		header = append(header, a)
	}
	rows := make([][]string, n)
	for i, mode := range ct.Modes {
		mark := "  "
		if i == held {
			mark = markHeldRow + " "
		}
		rows[i] = []string{mark + mode}
		for j := range n {
			cell := markCompatible
			if i < len(ct.Conflict) && j < len(ct.Conflict[i]) && ct.Conflict[i][j] {
				cell = markConflict
			}
			if i == held && j == wanted {
				cell = "[" + cell + "]"
			}
			rows[i] = append(rows[i], cell)
		}
	}
	tbl := table.New().Headers(header...).Rows(rows...).Wrap(false).
		BorderTop(false).BorderBottom(false).BorderLeft(false).BorderRight(false).
		BorderColumn(false).BorderHeader(false).
		StyleFunc(func(row, col int) lipgloss.Style {
			s := lipgloss.NewStyle()
			if col == 0 {
				s = s.Width(labelW)
			} else {
				// One blank before each cell, the cell centred in the rest.
				s = s.Width(cellW + 1).PaddingLeft(1).Align(lipgloss.Center)
			}
			if row == held && held >= 0 {
				s = s.Inherit(st.selected)
			}
			return s
		})
	lines := strings.Split(tbl.String(), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return append(lines, markConflict+" conflicts   "+markCompatible+" compatible   "+
		markHeldRow+" mode held   [ ] mode requested")
}

// abbreviations are the initials of each mode name, skipping the word
// "FOR" (so "FOR NO KEY UPDATE" becomes "NKU"); 1-based column numbers when
// initials would not be unique.
func abbreviations(modes []string) []string {
	out := make([]string, len(modes))
	seen := make(map[string]bool, len(modes))
	unique := true
	for i, m := range modes {
		var a strings.Builder
		for _, w := range strings.Fields(m) {
			if strings.EqualFold(w, "FOR") {
				continue
			}
			a.WriteString(strings.ToUpper(string([]rune(w)[0])))
		}
		out[i] = a.String()
		if out[i] == "" || seen[out[i]] {
			unique = false
		}
		seen[out[i]] = true
	}
	if !unique {
		for i := range out {
			out[i] = fmt.Sprint(i + 1)
		}
	}
	return out
}
