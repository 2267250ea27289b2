package tui

import (
	"fmt"
	"sort"
	"strings"

	"lockstep/locks"
)

// graphPane draws the wait-for graph: sessions as nodes joined by arrows,
// waiter ──▶ holder, each chain and each cycle on a line of its own (a ring
// of nine reads at a glance), then every edge with the lock it is about —
// the holder first, so that it is never what gets cut.
type graphPane struct {
	box
	sel *selection
	f   *frame
	// selLine is the line of the selected edge in the last Lines, -1 for none.
	selLine int
}

// Show takes the frame to draw.
func (p *graphPane) Show(f *frame) { p.f = f }

// Lines are the pane's body at width w.
func (p *graphPane) Lines(w int) []string {
	st := p.look.st
	p.selLine = -1
	var edges []*locks.Edge
	for i := range p.sel.items {
		if e := p.sel.items[i].edge; e != nil {
			edges = append(edges, e)
		}
	}
	if len(edges) == 0 {
		if p.f.broken != nil && p.f.broken.cycle != nil {
			return wrapAll([]string{st.bad.Render("✗ broken: " + cycleDrawing(p.f.broken.cycle) + " — " + p.f.broken.victim + " was the victim")}, w)
		}
		return []string{st.subtle.Render("no session waits")}
	}
	var lines []string
	inCycle := map[string]bool{}
	if p.f.snap != nil {
		for _, c := range p.f.snap.Graph.Cycles {
			label := "⚠ deadlock  "
			if c.Distributed {
				label = "⚠ distributed deadlock  "
			}
			lines = append(lines, wrapAll([]string{st.cycle.Render(label + cycleDrawing(&c))}, w)...)
			for _, e := range c.Edges {
				inCycle[e.Waiter+"→"+e.Holder] = true
			}
		}
	}
	// A chain of one wait says no more than its edge below; longer ones, and
	// a session waiting for several, are drawn.
	for _, chain := range chains(edges, inCycle) {
		if strings.Count(chain, "──▶")+strings.Count(chain, ",") > 1 {
			lines = append(lines, wrapAll([]string{st.wait.Render(chain)}, w)...)
		}
	}
	// A lock's queue, when more than one waits there or one waits only
	// behind another's request: the order, or that there is none, is the
	// lesson then.
	for _, line := range p.f.queues {
		lines = append(lines, wrapAll([]string{st.wait.Render(line)}, w)...)
	}
	if len(lines) > 0 {
		lines = append(lines, "")
	}
	for _, e := range edges {
		if sel, ok := p.sel.Selected(); ok && sel.edge == e {
			p.selLine = len(lines)
		}
		lines = append(lines, p.edgeLines(e, inCycle[e.Waiter+"→"+e.Holder], w)...)
	}
	return lines
}

// edgeLines is one edge: "T1 ──▶ T2  ShareLock on T2's transaction",
// wrapped under its label, marked when selected or in a cycle.
func (p *graphPane) edgeLines(e *locks.Edge, inCycle bool, w int) []string {
	st := p.look.st
	arrow := " ──▶ "
	if e.Application {
		arrow = " ⇢ "
	}
	head := e.Waiter + arrow + e.Holder
	mark, style := "  ", st.wait
	if inCycle {
		mark, style = "↻ ", st.cycle
	}
	if sel, ok := p.sel.Selected(); ok && sel.edge == e {
		mark, style = "▸ ", st.selected
	}
	label := e.Label()
	if held := heldWords(*e); held != "" {
		label += "; " + e.Holder + " holds " + held
	}
	indent := strings.Repeat(" ", len([]rune(mark))+2)
	body := wrap(label, max(8, w-len(indent)))
	out := []string{style.Render(mark + head)}
	for _, l := range body {
		out = append(out, st.subtle.Render(indent+l))
	}
	return out
}

func (p *graphPane) View() []string {
	title := "Wait-for graph (waiter ──▶ holder)"
	lines := p.Lines(p.w - 4)
	if p.selLine >= 0 {
		p.scroll.Show(p.selLine, len(lines), p.bodyH())
	}
	return p.draw(title, lines)
}

// queueLine draws a lock's queue in one line, holders first, then the
// waiters in the order the server queued them, a soft block marked:
// "queue on ls_orders: T1 holds ▸ T2 ▸ T3 (behind T2's request)". Waiters
// none of which waits for another or is behind its request are in no
// order — the holders' end grants them all (two ShareLocks on one
// transaction) — and are drawn so: "T1's transaction: T1 holds; T2, T3
// wait, none behind another".
func queueLine(q locks.Queue) (string, bool) {
	soft := false
	for _, w := range q.Waiters {
		soft = soft || len(w.Behind) > 0
	}
	if len(q.Waiters) < 2 && !soft {
		return "", false
	}
	var holders []string
	for _, h := range q.Holders {
		holders = append(holders, h.Session)
	}
	if !q.InOrder() {
		var waiters []string
		for _, w := range q.Waiters {
			waiters = append(waiters, w.Session)
		}
		held := ""
		if len(holders) > 0 {
			held = strings.Join(holders, ", ") + " holds; "
		}
		return q.Target + ": " + held + strings.Join(waiters, ", ") + " wait, none behind another", true
	}
	parts := []string{"queue on " + q.Target + ": " + strings.Join(holders, ", ") + " holds"}
	for _, w := range q.Waiters {
		part := w.Session
		if len(w.Behind) > 0 {
			part += " (behind " + strings.Join(w.Behind, ", ") + "'s request)"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " ▸ "), true
}

// cycleDrawing is a cycle as its sessions: "T1 ──▶ T2 ──▶ T1".
func cycleDrawing(c *locks.Cycle) string {
	return strings.Join(append(append([]string(nil), c.Sessions...), c.Sessions[0]), " ──▶ ")
}

// chains are the waits outside every cycle as paths from a waiter nobody
// waits for to a holder that waits for nobody: "T3 ──▶ T2 ──▶ T1"; a
// session waiting for several lists them: "T3 ──▶ T1, T2".
func chains(edges []*locks.Edge, inCycle map[string]bool) []string {
	out := map[string][]string{}
	waitedOn := map[string]bool{}
	var waiters []string
	for _, e := range edges {
		if inCycle[e.Waiter+"→"+e.Holder] {
			continue
		}
		if _, ok := out[e.Waiter]; !ok {
			waiters = append(waiters, e.Waiter)
		}
		out[e.Waiter] = append(out[e.Waiter], e.Holder)
		waitedOn[e.Holder] = true
	}
	sort.Strings(waiters)
	var lines []string
	for _, start := range waiters {
		if waitedOn[start] {
			continue // drawn inside the chain of whoever waits for it
		}
		var b strings.Builder
		b.WriteString(start)
		seen := map[string]bool{start: true}
		for n := start; len(out[n]) > 0; {
			holders := out[n]
			fmt.Fprintf(&b, " ──▶ %s", strings.Join(holders, ", "))
			next := holders[0]
			if len(holders) > 1 || seen[next] {
				break
			}
			seen[next], n = true, next
		}
		lines = append(lines, b.String())
	}
	if len(lines) == 0 && len(waiters) > 0 {
		// Every waiter is waited on: they wait in a ring the cycles list.
		for _, w := range waiters {
			lines = append(lines, w+" ──▶ "+strings.Join(out[w], ", "))
		}
	}
	return lines
}
