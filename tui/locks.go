package tui

import (
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"lockstep/locks"
)

// locksPane lists the locks the sessions hold and await, from pg_locks and
// pgrowlocks: first, for each wait, the lock asked for and the holder's
// lock that blocks it; then the rest, scrolled so that the selected one is
// in view.
type locksPane struct {
	box
	sel  *selection
	snap *locks.Snapshot
}

// Show takes the frame whose locks the selection lists.
func (p *locksPane) Show(f *frame) { p.snap = f.snap }

func (p *locksPane) View() []string {
	st := p.look.st
	innerW := p.w - 4
	var idx []int
	for i, it := range p.sel.items {
		if it.edge == nil {
			idx = append(idx, i)
		}
	}
	sessW := p.sessionWidth()
	header := st.subtle.Render(fmt.Sprintf(" %-*s %-8s %-22s %-17s %s", sessW, "", "type", "on", "mode", "status"))
	// A note on missing row locks is said in full, under the locks, however
	// many lines — unless the pane is too small to show any lock then.
	var note []string
	if p.snap != nil && p.snap.RowLockNote != "" {
		for _, l := range wrapAll([]string{p.snap.RowLockNote}, innerW) {
			note = append(note, st.subtle.Render(l))
		}
		if p.bodyH()-1-len(note) < 3 && len(idx) > 0 {
			note = []string{st.subtle.Render(ansi.Truncate(p.snap.RowLockNote, innerW, "…"))}
		}
	}
	var lines []string
	sel := -1
	for k, i := range idx {
		it := p.sel.items[i]
		line := p.line(it, sessW)
		switch {
		case i == p.sel.cur:
			line, sel = st.selected.Render("▸"+line), k
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
		// An open transaction always holds its own virtual transaction id,
		// which the pane does not list: "no session holds one" would be false.
		// Said of the last poll, which a step just taken may have outdated
		// (a BEGIN's transaction shown open before the next poll comes).
		none := " no locks at the last poll: no session held or awaited one"
		if p.snap != nil && slices.ContainsFunc(p.snap.Locks, func(l locks.Lock) bool { return l.Type == "virtualxid" && l.Session != "" }) {
			none = " no locks at the last poll but each open transaction's own id (virtualxid, not listed)"
		}
		lines = append(lines, st.subtle.Render(none))
	}
	room := max(0, p.bodyH()-1-len(note))
	heads := []string{header}
	if room == 1 && len(lines) > 1 {
		// Room for the header and a mark only: the first lock — the wait's
		// request — says more than the columns' names (a deadlock at 80×24
		// with autoplay's line under it showed "↓ 24 more lines" alone).
		heads, room = nil, 2
	}
	if sel >= 0 {
		p.scroll.Show(sel, len(lines), room)
	}
	body := append(heads, p.scroll.View(lines, room, st)...)
	switch {
	case room == 0 && len(idx) > 0:
		// No room under the header: say how many there are instead.
		body = []string{st.subtle.Render(moreLines("↓", len(idx)))}
	case room == 0:
		body = lines
	}
	if len(note) > 0 {
		for len(body) < p.bodyH()-len(note) {
			body = append(body, "")
		}
		body = append(body, note...)
	}
	title := "Locks, those behind the waits first (pg_locks, pgrowlocks)"
	if p.snap != nil && p.snap.RowLockNote != "" {
		title = "Locks, those behind the waits first (pg_locks; rows: see below)"
	}
	return p.look.panel(title, body, p.w, p.h, p.focused)
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
		case "advisory":
			// The kind says advisory already: the column keeps room for
			// the account, which told the keys apart ("advisory key →
			// accoun…" twice, for T1's key 1 and key 2).
			target = strings.TrimPrefix(target, "advisory ")
		case "virtualxid":
			kind, target = "vxid", l.VirtualXID
			if l.TxOwner != "" {
				target = l.TxOwner + "'s " + l.VirtualXID
			}
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
			return e.HeldRow != nil && e.HeldRow.Session == r.Session && e.HeldRow.Mode == r.Mode && e.HeldRow.SameRow(*r)
		}); who != "" {
			status = "◀ blocks " + who
		}
		return fmt.Sprintf(format, r.Session, "row", r.Target(), r.Mode.String(), status)
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
