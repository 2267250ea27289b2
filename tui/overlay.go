package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// helpOverlay lists every key of the screen it was opened on — what each
// does and, for one that can do nothing now, why — over the whole screen,
// scrolling where the terminal is short. ? or esc closes it.
type helpOverlay struct {
	look   *look
	title  string
	table  actions
	scroll scroller
	h      int
}

func (o *helpOverlay) open(title string, table actions) {
	o.title, o.table, o.scroll = title, table, scroller{}
}

// close says whether a key closes the overlay; any other scrolls it.
func (o *helpOverlay) Update(msg tea.KeyPressMsg) (closed bool) {
	switch msg.String() {
	case "?", "esc", "q":
		return true
	}
	o.scroll.Update(msg, o.h-3)
	return false
}

// lines are the overlay's body at width w: each group's keys, aligned.
func (o *helpOverlay) lines(w int) []string {
	st := o.look.st
	keyW := 0
	for _, a := range o.table {
		keyW = max(keyW, ansi.StringWidth(a.Help().Key))
	}
	keyW = min(keyW, 16)
	var out []string
	group := ""
	for _, a := range o.table {
		h := a.Help()
		if h.Key == "" || !a.Enabled() {
			continue
		}
		if a.group != group {
			group = a.group
			if len(out) > 0 {
				out = append(out, "")
			}
			out = append(out, st.panelTitle.Render(group))
		}
		desc := h.Desc
		if a.long != "" {
			desc = a.long
		}
		if why := a.disabled(); why != "" {
			desc += st.warn.Render(" — not now: " + why)
		}
		first := fmt.Sprintf("  %-*s ", keyW, h.Key)
		indent := strings.Repeat(" ", ansi.StringWidth(first))
		for i, l := range wrapAll([]string{desc}, max(10, w-len(indent))) {
			if i == 0 {
				out = append(out, st.key.Render(first)+l)
			} else {
				out = append(out, indent+l)
			}
		}
	}
	return append(out, "", st.subtle.Render("? or esc closes this list · ↑/↓ pgup/pgdown scroll it"))
}

// View is the overlay, w×h.
func (o *helpOverlay) View(w, h int) []string {
	o.h = h
	body := o.scroll.View(o.lines(w-4), h-3, o.look.st)
	return o.look.panel(o.title, body, w, h, true)
}

// holders are what hold a screen's keys for a while, in front of its key
// table: the help overlay while it is open, then a question until it is
// answered. Every screen embeds them and routes its keys through hold.
type holders struct {
	help     helpOverlay
	helpOpen bool
	ask      *prompt
}

// hold gives msg to the help overlay or the question, when one is open
// (held: the key was theirs); an answered question leaves its status.
func (h *holders) hold(msg tea.KeyPressMsg, status *string) (cmd tea.Cmd, held bool) {
	switch {
	case h.helpOpen:
		if h.help.Update(msg) {
			h.helpOpen = false
		}
		return nil, true
	case h.ask != nil:
		p := h.ask
		h.ask = nil
		cmd, *status = p.Answer(msg)
		return cmd, true
	}
	return nil, false
}

// openHelp lists table's keys, under title, over the screen.
func (h *holders) openHelp(title string, table actions) {
	h.help.open(title, table)
	h.helpOpen = true
}

// twoKeys takes an alt+key that is really esc and then the key — typed
// quickly, or over SSH, they arrive as one — as the two keys it is; ok is
// false for any other key.
func twoKeys(msg tea.KeyPressMsg, handle func(tea.KeyPressMsg) tea.Cmd) (cmd tea.Cmd, ok bool) {
	if msg.Mod&tea.ModAlt == 0 || msg.Mod&tea.ModCtrl != 0 {
		return nil, false
	}
	esc := handle(tea.KeyPressMsg{Code: tea.KeyEscape})
	msg.Mod &^= tea.ModAlt
	return tea.Batch(esc, handle(msg)), true
}

// prompt is a yes/no question that holds the keys until it is answered:
// y (or the key that asked, again) does it; any other key does not.
type prompt struct {
	// warn, when set, is said above the question, as a warning.
	warn     string
	question string
	// also are keys that answer yes besides y (q for "quit?").
	also []string
	yes  func() tea.Cmd
	// no is the status after the answer no.
	no string
}

// promptBar and typingBar are the footer's keys while a question, or the
// input line, holds the keys.
var (
	promptBar = barOf(
		key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "yes")),
		key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("any other key", "no")))
	typingBar = barOf(
		key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "run it")),
		key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")))
)

// Answer takes the key that answers; it returns what yes does, or the no
// status.
func (p *prompt) Answer(msg tea.KeyPressMsg) (cmd tea.Cmd, status string) {
	s := msg.String()
	if s == "y" {
		return p.yes(), ""
	}
	for _, k := range p.also {
		if s == k {
			return p.yes(), ""
		}
	}
	return nil, p.no
}

// View is the question, whole, wrapped to w, under its warning.
func (p *prompt) View(st styles, w int) []string {
	var lines []string
	if p.warn != "" {
		lines = append(lines, st.bad.Render(p.warn))
	}
	return wrapAll(append(lines, st.banner.Render(" ? ")+" "+st.bold.Render(p.question)), w)
}
