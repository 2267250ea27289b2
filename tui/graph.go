package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"lockstep/locks"
)

// graphPane draws the wait-for graph, waiter ──lock──▶ holder, with the
// deadlock while it stands and how it will end, then how it ended.
type graphPane struct {
	look     *look
	w, h     int
	sel      *selection
	now      time.Time
	deadlock time.Duration // the server's deadlock_timeout
	// the latest deadlock: the cycle while it stands, then its victim and
	// the server's DETAIL, each process named with its session
	cycle        *locks.Cycle
	victim       string
	victimDetail string
}

func (p *graphPane) SetSize(w, h int) { p.w, p.h = w, h }

// Formed shows a cycle that has just closed.
func (p *graphPane) Formed(c *locks.Cycle) { p.cycle, p.victim, p.victimDetail = c, "", "" }

// Broken shows how the server broke the deadlock: its victim and DETAIL.
func (p *graphPane) Broken(victim, detail string) {
	p.cycle, p.victim, p.victimDetail = nil, victim, detail
}

// Forget clears the deadlock (a new run).
func (p *graphPane) Forget() { p.cycle, p.victim, p.victimDetail = nil, "", "" }

// SetSnapshot drops a cycle the server no longer shows, unless its victim
// is being shown.
func (p *graphPane) SetSnapshot(s *locks.Snapshot) {
	if p.cycle != nil && len(s.Graph.Cycles) == 0 && p.victim == "" {
		p.cycle = nil
	}
}

func (p *graphPane) View() []string {
	st, vol := p.look.st, p.look.vol
	innerW := p.w - 4
	var lines []string
	inCycle := map[string]bool{}
	if c := p.cycle; c != nil {
		for _, e := range c.Edges {
			inCycle[e.Waiter+"→"+e.Holder] = true
		}
		lines = append(lines, p.cycleLines(c)...)
	}
	if p.victim != "" {
		lines = append(lines, st.bad.Render("✗ deadlock broken: "+p.victim+" was the victim"))
		for _, l := range strings.Split(ansi.Wrap(oneLine(vol.Text(p.victimDetail)), innerW, ""), "\n") {
			lines = append(lines, st.subtle.Render(l))
		}
	}
	for i, it := range p.sel.items {
		if it.edge == nil {
			continue
		}
		e := it.edge
		text := fmt.Sprintf("%s ──%s──▶ %s", e.Waiter, e.Label(), e.Holder)
		style := st.wait
		if inCycle[e.Waiter+"→"+e.Holder] {
			style, text = st.cycle, "↻ "+text
		}
		if i == p.sel.cur {
			style, text = st.selected, "▸"+text
		}
		lines = append(lines, style.Render(text))
	}
	if len(lines) == 0 {
		lines = append(lines, st.subtle.Render("no session waits"))
	}
	return p.look.panel("Wait-for graph (waiter ──lock──▶ holder)", lines, p.w, p.h, false)
}

// cycleLines are the deadlock banner and when and how it will end.
func (p *graphPane) cycleLines(c *locks.Cycle) []string {
	st, vol := p.look.st, p.look.vol
	title := " ⚠ DEADLOCK "
	when := fmt.Sprintf("the server breaks it after deadlock_timeout (%s)", vol.DeadlockTimeout(p.deadlock))
	if c.Distributed {
		title = " ⚠ DISTRIBUTED DEADLOCK "
		when = "no server sees it: it never ends by itself (k cancels, x rolls back)"
	}
	switch {
	case c.BreakAt != nil && c.Distributed:
		when = fmt.Sprintf("no server sees it; %s's lock_timeout (%s) ends it in %s", c.LikelyVictim, c.LockTimeout, vol.Age(c.BreakAt.Sub(p.now)))
	case c.BreakAt != nil && c.LikelyVictim != "":
		when = "broken in " + vol.Age(c.BreakAt.Sub(p.now)) + " · likely victim " + c.LikelyVictim
	case c.BreakAt != nil:
		when = "the server breaks it in " + vol.Age(c.BreakAt.Sub(p.now))
	}
	return []string{st.banner.Render(title) + " " + st.cycle.Render(c.String()), st.cycle.Render("↻ " + when)}
}
