package tui

import (
	"fmt"

	"lockstep/locks"
)

// watchHistoryPane lists past long waits and deadlocks, newest last; with
// the focus, ↑/↓ choose an entry, which the why pane shows in full and
// enter shows the tree of.
type watchHistoryPane struct {
	box
	m   *watchModel
	sel int
	// moved is set once the user chose an entry.
	moved bool
}

func (p *watchHistoryPane) move(d int) {
	p.sel = max(0, min(len(p.m.history)-1, p.sel+d))
	p.moved = true
}

func (p *watchHistoryPane) clamp() { p.sel = max(0, min(len(p.m.history)-1, p.sel)) }

func (p *watchHistoryPane) View() []string {
	st := p.look.st
	hist := p.m.history
	title := "History: waits over the threshold, deadlocks"
	if len(hist) == 0 {
		return p.draw(title, []string{st.subtle.Render("nothing yet")})
	}
	chosen := p.m.explained == watchHistory
	lines := make([]string, 0, len(hist))
	for i, ev := range hist {
		mark := "  "
		if i == p.sel && chosen {
			mark = st.selected.Render("▶") + " "
		}
		what := ev.What
		switch ev.Kind {
		case "wait":
			now := "waited"
			if !ev.Ended {
				now = "waiting"
			}
			what = fmt.Sprintf("%s %s: %s", now, locks.Age(ev.Lasted), ev.What)
		case "deadlock":
			what = st.cycle.Render("⟳ " + ev.What)
			if ev.Verdict != "" {
				what += st.subtle.Render(" — " + ev.Verdict)
			}
		case "server":
			what = st.bad.Render("✗ " + ev.What)
		}
		lines = append(lines, fit(mark+st.subtle.Render(ev.Time.Format("15:04:05"))+" "+what, p.w-4))
	}
	// The newest entries, unless the user is choosing one.
	if chosen {
		p.scroll.follow = false
		p.scroll.Show(p.sel, len(lines), p.bodyH())
	} else {
		p.scroll.follow = true
	}
	return p.draw(title, lines)
}
