package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"lockstep/locks"
)

// locksPane lists the locks the sessions hold and await, from pg_locks and
// pgrowlocks: first, for each wait, the lock asked for and the holder's
// lock that blocks it; then the rest, scrolled so that the selected one is
// in view.
type locksPane struct {
	look *look
	w, h int
	sel  *selection
	snap *locks.Snapshot
}

func (p *locksPane) SetSize(w, h int) { p.w, p.h = w, h }

// Show takes the frame whose locks the selection lists.
func (p *locksPane) Show(f *frame) { p.snap = f.snap }

func (p *locksPane) View() []string {
	st := p.look.st
	innerH, innerW := p.h-3, p.w-4
	var idx []int
	for i, it := range p.sel.items {
		if it.edge == nil {
			idx = append(idx, i)
		}
	}
	sessW := p.sessionWidth()
	header := st.subtle.Render(fmt.Sprintf(" %-*s %-8s %-22s %-17s %s", sessW, "", "type", "on", "mode", "status"))
	lines := []string{header}
	room := innerH - 1
	// A note on missing row locks is said in full, however many lines.
	var note []string
	if p.snap != nil && p.snap.RowLockNote != "" {
		wrapped := wrapAll([]string{p.snap.RowLockNote}, innerW)
		if room-len(wrapped) < 2 && len(idx) > 0 {
			// Too small a pane to say it all and still show the locks.
			wrapped = []string{ansi.Truncate(p.snap.RowLockNote, innerW, "…")}
		}
		for _, l := range wrapped {
			note = append(note, st.subtle.Render(l))
		}
		room -= len(note)
	}
	start := 0
	for k, i := range idx {
		if i == p.sel.cur && k >= room {
			start = k - room + 1
		}
	}
	for k := start; k < len(idx) && k < start+room; k++ {
		it := p.sel.items[idx[k]]
		line := p.line(it, sessW)
		switch {
		case idx[k] == p.sel.cur:
			line = st.selected.Render("▸" + line)
		case it.lock != nil && !it.lock.Granted:
			line = st.wait.Render(" " + line)
		case strings.Contains(line, "◀ blocks"):
			line = st.wait.Render(" " + line)
		case it.row != nil:
			line = st.accent.Render(" " + line)
		case it.lock != nil && it.lock.Type == "relation" && it.lock.RelKind != "r":
			line = st.subtle.Render(" " + line)
		default:
			line = " " + line
		}
		lines = append(lines, line)
	}
	if len(idx) == 0 {
		lines = append(lines, st.subtle.Render(" no locks: no session has a transaction open"))
	}
	if len(note) > 0 && len(note) < innerH {
		for len(lines) < innerH {
			lines = append(lines, "")
		}
		lines = append(lines[:innerH-len(note)], note...)
	}
	title := "Locks, those behind the waits first (pg_locks, pgrowlocks)"
	if p.snap != nil && p.snap.RowLockNote != "" {
		title = "Locks, those behind the waits first (pg_locks; rows: see below)"
	}
	if len(idx) > room {
		title += fmt.Sprintf(" — %d of %d, ↑/↓", min(room, len(idx)), len(idx))
	}
	return p.look.panel(title, lines, p.w, p.h, false)
}

// line is one lock: who, what kind, on what, mode, status.
func (p *locksPane) line(it item, sessW int) string {
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
		if who := p.blocks(func(e locks.Edge) bool {
			return e.HeldRow == nil && e.Held != nil && e.Held.Session == l.Session && e.Held.Mode == l.Mode && e.Held.Target() == l.Target()
		}); l.Granted && who != "" {
			status = "◀ blocks " + who
		}
		if !l.Granted {
			status = "WAITING"
			if e, ok := waitOf(p.snap, l.Pid); ok {
				status = "WAITING ← " + e.Holder
			}
		}
		return fmt.Sprintf(format, l.Session, kind, ansi.Truncate(target, 22, "…"), ansi.Truncate(l.ModeWords(), 17, "…"), status)
	case it.row != nil:
		r := it.row
		status := "row lock"
		if r.Inferred {
			status = "row lock, by its statements"
		}
		if who := p.blocks(func(e locks.Edge) bool {
			return e.HeldRow != nil && e.HeldRow.Session == r.Session && e.HeldRow.Account == r.Account && e.HeldRow.Mode == r.Mode
		}); who != "" {
			status = "◀ blocks " + who
		}
		return fmt.Sprintf(format, r.Session, "row", fmt.Sprintf("accounts id=%d", r.Account), r.Mode.String(), status)
	}
	return ""
}

// blocks names the waiters of the edges whose holder's lock held matches.
func (p *locksPane) blocks(held func(locks.Edge) bool) string {
	if p.snap == nil {
		return ""
	}
	var who []string
	for _, e := range p.snap.Graph.Edges {
		if held(e) {
			who = append(who, e.Waiter)
		}
	}
	return strings.Join(who, ", ")
}

// waitOf is the first wait-for edge out of the backend pid.
func waitOf(snap *locks.Snapshot, pid int32) (locks.Edge, bool) {
	if snap == nil {
		return locks.Edge{}, false
	}
	for _, e := range snap.Graph.Edges {
		if e.WaiterPid == pid {
			return e, true
		}
	}
	return locks.Edge{}, false
}

// sessionWidth is the width of the session column: T1, T1@A, or
// "prepared T1@B".
func (p *locksPane) sessionWidth() int {
	w := 3
	for _, it := range p.sel.items {
		switch {
		case it.lock != nil:
			w = max(w, len(it.lock.Session))
		case it.row != nil:
			w = max(w, len(it.row.Session))
		}
	}
	return w
}
