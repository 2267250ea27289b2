package tui

import (
	"fmt"
	"strings"

	"charm.land/lipgloss/v2"
	"charm.land/lipgloss/v2/table"

	"lockstep/locks"
)

// explainPane says why the selected wait or lock conflicts, with the
// deciding cell of PostgreSQL's documented conflict table marked.
type explainPane struct {
	look *look
	w, h int
	sel  *selection
	snap *locks.Snapshot
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

func (p *explainPane) SetSize(w, h int) { p.w, p.h = w, h }

// SetSnapshot takes the poll whose edges explain an awaited lock.
func (p *explainPane) SetSnapshot(s *locks.Snapshot) { p.snap = s }

// Content is the pane's title and its lines wrapped to w cells: the layout
// asks for them first, since the pane grows to show a whole table.
func (p *explainPane) Content(w int) (string, []string) {
	st := p.look.st
	it, ok := p.sel.Selected()
	if !ok {
		return "Explain", wrapAll([]string{st.subtle.Render("↑/↓ selects a wait or a lock; this pane says why it conflicts, from PostgreSQL's conflict tables.")}, w)
	}
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
		if e, ok := waitOf(p.snap, it.lock.Pid); ok {
			useEdge(e)
		}
	case it.lock != nil:
		l := it.lock
		if mode, ok := locks.ParseTableMode(l.Mode); ok {
			text = append(text, fmt.Sprintf("%s holds %s on %s (taken by %s). Requests in the marked row's X columns wait for it.",
				l.Session, mode, l.Target(), mode.TakenBy()))
			t := locks.TableLevelConflicts()
			ct, held = &t, int(mode)
		} else {
			text = append(text, fmt.Sprintf("%s holds %s on %s.", l.Session, l.Mode, l.Target()))
		}
	case it.row != nil:
		r := it.row
		text = append(text, fmt.Sprintf("%s holds %s on accounts id=%d (taken by %s). Row locks live in the row header, not in pg_locks.",
			r.Session, r.Mode, r.Account, r.Mode.TakenBy()))
		t := locks.RowLevelConflicts()
		ct, held = &t, int(r.Mode)
	}
	lines := wrapAll(text, w)
	if ct == nil {
		return "Explain", lines
	}
	return "Explain — " + ct.Title, append(lines, p.table(*ct, held, wanted)...)
}

// View draws the pane with the lines Content gave for its width.
func (p *explainPane) View(title string, lines []string) []string {
	return p.look.panel(title, lines, p.w, p.h, false)
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
