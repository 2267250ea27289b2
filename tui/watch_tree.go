package tui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"lockstep/locks"
)

// watchTreePane draws the tree of waits: each root blocker with its state
// and statement, each waiter under what it waits for, with how long it has
// waited; the selected node marked and kept in view, what is above and
// below it counted.
type watchTreePane struct {
	box
	m        *watchModel
	sel, top int // selected node and the first drawn, in the tree's walk order
	// moved is set once the user selects a node: until then the selection
	// follows the first waiter, so the screen says why without a key.
	moved bool
}

// nodes is the tree shown, in walk order, with each node's depth.
func (p *watchTreePane) nodes() ([]locks.TreeNode, []int) {
	var ns []locks.TreeNode
	var ds []int
	p.m.shownTree().Walk(func(n *locks.TreeNode, d int) {
		ns = append(ns, *n)
		ds = append(ds, d)
	})
	return ns, ds
}

func (p *watchTreePane) selected() (locks.TreeNode, bool) {
	ns, _ := p.nodes()
	if p.sel < len(ns) {
		return ns[p.sel], true
	}
	return locks.TreeNode{}, false
}

func (p *watchTreePane) move(d int) {
	ns, _ := p.nodes()
	p.sel = max(0, min(len(ns)-1, p.sel+d))
	p.moved = true
}

// page moves the selection a page, or to the first or last node.
func (p *watchTreePane) page(msg tea.KeyPressMsg) {
	ns, _ := p.nodes()
	step := max(1, p.bodyH()/3)
	switch msg.String() {
	case "pgup":
		p.sel -= step
	case "pgdown":
		p.sel += step
	case "home":
		p.sel = 0
	case "end":
		p.sel = len(ns) - 1
	}
	p.sel = max(0, min(len(ns)-1, p.sel))
	p.moved = true
}

// follow keeps the selection where the lesson is until the user moves it:
// the first waiter, or — while a deadlock stands — the first of its
// sessions, so that the why pane explains the deadlock.
func (p *watchTreePane) follow() {
	ns, ds := p.nodes()
	if !p.moved && p.m.viewing == nil {
		p.sel = 0
		for i, d := range ds {
			if d > 0 {
				p.sel = i
				break
			}
		}
		for i, n := range ns {
			if p.m.cycleOf(n) != nil {
				p.sel = i
				break
			}
		}
	}
	p.sel = max(0, min(len(ns)-1, p.sel))
}

func (p *watchTreePane) View() []string {
	st := p.look.st
	title := "Who waits for whom (roots block, the indented wait)"
	if v := p.m.viewing; v != nil {
		title = "The tree at " + v.Time.Format("15:04:05") + " (history; esc: live)"
	}
	inner, h := p.w-4, p.h
	ns, ds := p.nodes()
	var lines []string
	t := p.m.shownTree()
	for _, c := range t.Cycles {
		lines = append(lines, wrapAll([]string{st.cycle.Render("⟳ DEADLOCK " + c)}, inner)...)
	}
	for _, c := range t.SoftCycles {
		lines = append(lines, wrapAll([]string{st.warn.Render("⟲ a cycle through a queue, not a deadlock: "+c) +
			st.subtle.Render(" ("+locks.SoftCycleWhy+")")}, inner)...)
	}
	if len(ns) == 0 {
		msg := "No session waits."
		if l := p.m.look; l != nil && l.IdleInTransaction > 0 {
			msg += " Sessions idle in a transaction hold their locks until they end: the next to ask for one of those waits."
		}
		lines = append(lines, wrapAll([]string{st.subtle.Render(msg)}, inner)...)
		return p.draw(title, lines)
	}
	// Keep the selected node in sight: draw from top, moved to show sel.
	// Counted up from the selected node, so a frame draws what fits, not
	// the whole tree; a line is kept for "more above" and "more below".
	sel := min(p.sel, len(ns)-1)
	if sel < p.top {
		p.top = sel
	}
	avail := h - 3 - len(lines)
	if sel < len(ns)-1 {
		avail--
	}
	used := 0
	for i := sel; i >= p.top; i-- {
		used += len(p.nodeLines(ns[i], ds[i], inner, false))
		above := 0
		if i > 0 {
			above = 1
		}
		if used+above > avail && i < sel {
			p.top = i + 1
			break
		}
	}
	if p.top > 0 {
		lines = append(lines, st.subtle.Render(fmt.Sprintf("↑ %d more above", p.top)))
	}
	// The nodes that fit whole — the selected one always — and a line
	// saying how many more there are below.
	last := p.top
	for ; last < len(ns); last++ {
		nl := p.nodeLines(ns[last], ds[last], inner, last == p.sel)
		room := h - 3
		if last < len(ns)-1 {
			room--
		}
		if last > sel && len(lines)+len(nl) > room {
			break
		}
		lines = append(lines, nl...)
	}
	if more := len(ns) - last; more > 0 {
		lines = append(lines, st.subtle.Render(fmt.Sprintf("↓ %d more below (↑/↓ moves)", more)))
	}
	if t.Omitted > 0 {
		lines = append(lines, st.subtle.Render(fmt.Sprintf("(%d more waits of sessions drawn already are not drawn again)", t.Omitted)))
	}
	return p.draw(title, lines)
}

// nodeLines draws one node: a root's who, state and statement; a waiter's
// relation to its parent, how long it has waited, its lock, and its
// statement, wrapped — never cut.
func (p *watchTreePane) nodeLines(n locks.TreeNode, depth, w int, selected bool) []string {
	st := p.look.st
	indent := strings.Repeat("   ", max(0, depth-1))
	mark := "  "
	if selected {
		mark = st.selected.Render("▶") + " "
	}
	var first string
	var sql []string
	if depth == 0 {
		first = mark + p.rootHeader(n)
		sql = p.look.wrapSQL("", n.Statement(), w-4, false)
		indent = "  "
	} else {
		rel := st.wait.Render(n.Relation())
		if n.Soft {
			rel = st.warn.Render(n.Relation())
		}
		first = mark + indent + "└─ " + st.bold.Render(n.Session) + " " + rel
		if age := p.waited(n); age != "" {
			first += st.wait.Render(" " + age)
		}
		if n.AlsoBehind > 0 {
			first += st.subtle.Render(n.Also())
		}
		if n.Lock != "" {
			first += st.subtle.Render(" · wants ") + n.Lock
		}
		indent += "     "
		if !n.Again {
			sql = p.look.wrapSQL("", n.Statement(), w-ansi.StringWidth(indent), false)
		}
	}
	out := hanging(first, w, indent+"   ")
	for _, l := range sql {
		out = append(out, indent+st.script.Render(l))
	}
	return out
}

// waited is how long a waiter has waited, as the server says (its lock's
// waitstart), counted to now or to the moment of the history shown.
func (p *watchTreePane) waited(n locks.TreeNode) string {
	if n.Edge == nil || n.Edge.Lock == nil || n.Edge.Lock.WaitStart == nil {
		return ""
	}
	return "⏳ " + locks.Age(p.at().Sub(*n.Edge.Lock.WaitStart))
}

// at is the time ages count to: now, or the history entry's moment.
func (p *watchTreePane) at() time.Time {
	if v := p.m.viewing; v != nil {
		return v.TreeAt
	}
	return p.m.now()
}

// hanging wraps s to w cells, its continuation lines indented.
func hanging(s string, w int, indent string) []string {
	lines := wrapAll([]string{s}, w)
	if len(lines) < 2 {
		return lines
	}
	rest := wrapAll([]string{strings.Join(lines[1:], " ")}, w-ansi.StringWidth(indent))
	for i := range rest {
		rest[i] = indent + rest[i]
	}
	return append(lines[:1], rest...)
}

// rootHeader is a root blocker's line: who, as whom, in what state, for how long.
func (p *watchTreePane) rootHeader(n locks.TreeNode) string {
	st := p.look.st
	s := st.bold.Render(n.Session)
	if n.User != "" {
		s += st.subtle.Render(" · user " + n.User)
	}
	state := n.State
	if state == "" && n.Query == locks.HiddenQuery {
		state = "state hidden"
	}
	if state != "" {
		styled := st.run.Render(state)
		if strings.HasPrefix(state, "idle in transaction") {
			styled = st.bad.Render("⚠ " + state)
		}
		s += " · " + styled
	}
	if n.XactStart != nil {
		s += st.subtle.Render(" · transaction open " + locks.Age(p.at().Sub(*n.XactStart)))
	}
	return s
}
