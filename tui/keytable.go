package tui

import (
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// action is one key of a screen, in one place: its binding (the keys and
// their help), what it does, and — when it can do nothing now — why not.
// The screen's handler, its footer and its help overlay all read the same
// table, so a key the footer offers always acts, and one that cannot says
// why when pressed (lazygit's controllers carry their disabled reason the
// same way).
type action struct {
	key.Binding
	run func(msg tea.KeyPressMsg) tea.Cmd
	// why, when set and not "", is why the key does nothing now.
	why func() string
	// bar ranks the key in the footer: 0 leaves it out, 1 first; ties keep
	// the table's order. The footer drops the lowest ranks first when the
	// width is short.
	bar int
	// group is the help overlay's heading the key is listed under.
	group string
	// long is what the help overlay says the key does, when the footer's
	// few words (the binding's help) are not enough.
	long string
}

// disabled is why the action does nothing now, or "".
func (a *action) disabled() string {
	if !a.Enabled() {
		return "not on this screen"
	}
	if a.why == nil {
		return ""
	}
	return a.why()
}

// actions is a screen's key table, in the order the help lists them.
type actions []*action

// handle runs the action bound to msg. A disabled one runs nothing and
// returns why; found is false when no action of the table has the key.
func (as actions) handle(msg tea.KeyPressMsg) (cmd tea.Cmd, why string, found bool) {
	for _, a := range as {
		if !a.Enabled() || !key.Matches(msg, a.Binding) {
			continue
		}
		if why := a.disabled(); why != "" {
			return nil, why, true
		}
		return a.run(msg), "", true
	}
	return nil, "", false
}

// bar is the footer's keys: those that act now, by rank.
func (as actions) bar() []*action {
	var out []*action
	for _, a := range as {
		if a.bar > 0 && a.Enabled() && a.disabled() == "" && a.Help().Key != "" {
			out = append(out, a)
		}
	}
	return out
}

// barOf lists bindings in a footer, each as important as the others: the
// keys of a menu, a form, a question.
func barOf(bs ...key.Binding) []*action {
	out := make([]*action, 0, len(bs))
	for _, b := range bs {
		if b.Enabled() && b.Help().Key != "" {
			out = append(out, &action{Binding: b, bar: 1})
		}
	}
	return out
}

// keyBar draws the footer's keys in one line of width w: as many of the
// ranked keys as fit, lowest ranks dropped first and a "…" saying so, and
// the tail — help and quit — always, last.
func keyBar(st styles, w int, ranked []*action, tail ...key.Binding) string {
	item := func(b key.Binding) string {
		h := b.Help()
		return st.key.Render(h.Key) + " " + st.subtle.Render(h.Desc)
	}
	sep := st.subtle.Render(" · ")
	var end []string
	for _, b := range tail {
		end = append(end, item(b))
	}
	endS := strings.Join(end, sep)
	room := w - ansi.StringWidth(endS)
	// Keep the best-ranked keys that fit, in the table's order.
	keep := make([]bool, len(ranked))
	order := make([]int, len(ranked))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return ranked[i].bar - ranked[j].bar })
	used, dropped := 0, false
	more := ansi.StringWidth(sep + "…")
	for k, i := range order {
		need := ansi.StringWidth(item(ranked[i].Binding)) + ansi.StringWidth(sep)
		// Room is kept for the "…" while keys remain that may not fit.
		reserve := 0
		if k < len(order)-1 {
			reserve = more
		}
		if used+need+reserve > room {
			// The keys ranked after it are less important: none jumps it.
			dropped = true
			break
		}
		keep[i], used = true, used+need
	}
	var parts []string
	for i, a := range ranked {
		if keep[i] {
			parts = append(parts, item(a.Binding))
		}
	}
	if dropped {
		parts = append(parts, st.subtle.Render("…"))
	}
	line := strings.Join(append(parts, endS), sep)
	if endS == "" {
		line = strings.Join(parts, sep)
	}
	return ansi.Truncate(line, w, "…")
}

// helpKey and quitKey end every footer.
var (
	helpKey = key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help"))
	quitKey = key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit"))
)
