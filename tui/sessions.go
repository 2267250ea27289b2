package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"lockstep/locks"
	"lockstep/sim"
)

// minColumn is the narrowest a session's column gets; fewer columns show,
// and the rest scroll, below it.
const minColumn = 38

// sessionsPane shows one column per session: its transfer or scenario
// name, its state, its script with the statement in flight, and what it
// waits for. The selected session is the one the step keys act on.
type sessionsPane struct {
	look     *look
	w, h     int
	sessions []sim.SessionInfo
	snap     *locks.Snapshot
	now      time.Time
	sel      int
}

func (p *sessionsPane) SetSize(w, h int) { p.w, p.h = w, h }

// SetSessions takes the engine's sessions; the selection stays in range.
func (p *sessionsPane) SetSessions(s []sim.SessionInfo) {
	p.sessions = s
	if p.sel >= len(s) {
		p.sel = 0
	}
}

// Selected is the index of the session the step keys act on.
func (p *sessionsPane) Selected() int { return p.sel }

// Select makes session i the selected one.
func (p *sessionsPane) Select(i int) {
	if i >= 0 && i < len(p.sessions) {
		p.sel = i
	}
}

// Move selects the session d columns along, wrapping around.
func (p *sessionsPane) Move(d int) {
	if n := len(p.sessions); n > 0 {
		p.sel = (p.sel + d%n + n) % n
	}
}

// Height is what the columns need: title, state, the longest script, and a
// line for what the session waits for.
func (p *sessionsPane) Height() int {
	longest := 0
	for _, s := range p.sessions {
		longest = max(longest, len(s.Statements))
	}
	return longest + 6
}

func (p *sessionsPane) View() []string {
	n := len(p.sessions)
	if n == 0 {
		return p.look.panel("Sessions", nil, p.w, p.h, false)
	}
	innerW := p.w - 4
	fit1 := max(1, min(n, innerW/minColumn))
	first := 0
	if p.sel >= fit1 {
		first = p.sel - fit1 + 1
	}
	colW := innerW / fit1
	innerH := p.h - 3
	body := make([]string, innerH)
	for i := first; i < first+fit1 && i < n; i++ {
		lines := p.column(p.sessions[i], colW-2, innerH)
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
	return p.look.panel(title, body, p.w, p.h, false)
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

func (p *sessionsPane) column(s sim.SessionInfo, w, h int) []string {
	st, vol := p.look.st, p.look.vol
	title := fmt.Sprintf("%s  %s from %d to %d", s.Name, s.Transfer.Amount.StringFixed(2), s.Transfer.From, s.Transfer.To)
	if s.Label != "" {
		title = fmt.Sprintf("%s  session %s", s.Name, s.Label)
	}
	if s.Index == p.sel {
		title = st.selected.Render("▸ " + title)
	} else {
		title = st.bold.Render("  " + title)
	}
	age := ""
	if p.snap != nil {
		if b, ok := p.snap.Backend(s.Name); ok && b.XactStart != nil {
			age = " · tx " + vol.Age(p.now.Sub(*b.XactStart))
		}
	}
	lines := []string{title, p.badge(s.State) + st.subtle.Render(" · pid "+vol.Pid(s.Pid)+age)}
	body, focus := p.script(s, w)
	var tail string
	switch {
	case s.State == sim.Waiting && len(s.BlockedBy) > 0:
		tail = st.wait.Render("⏳ waits for " + strings.Join(s.BlockedBy, ", "))
	case s.LastErr != nil:
		tail = st.bad.Render(fmt.Sprintf("✗ %s %s", s.LastErr.SQLState, s.LastErr.Message))
	case s.Current != "" && s.CurrentStep < 0:
		tail = st.run.Render("… " + oneLine(s.Current))
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

// script is the session's statements, each marked done, failed, in flight
// or next; the active one is wrapped whole, the others cut in the middle.
// focus is the line the active statement starts on.
func (p *sessionsPane) script(s sim.SessionInfo, w int) (body []string, focus int) {
	st := p.look.st
	for i, sql := range s.Statements {
		var mark string
		style := st.subtle
		active := false
		switch {
		case s.CurrentStep == i && s.State == sim.Waiting:
			mark, style, active = "⏳ ", st.wait, true
		case s.CurrentStep == i:
			mark, style, active = "… ", st.run, true
		case s.ErrAt == i:
			mark, style, active = "✗ ", st.bad, true
		case i < s.Next:
			mark, style = "✓ ", st.ok
		case i == s.Next && !s.Finished:
			mark, style, active = "▶ ", st.accent, true
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
			body = append(body, st.ok.Render("✓ ")+st.subtle.Render(short))
		} else {
			body = append(body, style.Render(mark+short))
		}
	}
	return body, focus
}
