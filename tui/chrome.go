package tui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// The chrome every screen shares — the stepping view, the watch, the pool
// view: a header of two lines (what runs, then its state) and a footer (a
// question, or the status, then the keys). Each line is cut to the width
// with a mark, never silently.

// headerLines is a screen's header: "lockstep  <what> — <summary>", then
// the state line.
func headerLines(st styles, w int, what, summary, state string) string {
	line1 := st.title.Render("lockstep") + "  " + st.accent.Render(what)
	if summary != "" {
		line1 += st.subtle.Render(" — " + summary)
	}
	return ansi.Truncate(line1, w, "…") + "\n" + ansi.Truncate(state, w, "…")
}

// footerLines is a screen's footer: the question that holds the keys, or
// the status, then the line of keys.
func footerLines(st styles, w int, ask *prompt, status, keys string) string {
	var lines []string
	switch {
	case ask != nil:
		lines = append(lines, ask.View(st, w)...)
	case status != "":
		lines = append(lines, statusLines(st, status, w)...)
	}
	return strings.Join(append(lines, keys), "\n")
}

// statusLines is the status, whole in two lines at most, else marked cut.
func statusLines(st styles, status string, w int) []string {
	lines := wrapAll([]string{"▲ " + status}, w)
	if len(lines) > 2 {
		lines = lines[:2]
		lines[1] = ansi.Truncate(lines[1], w-1, "") + "…"
	}
	for i := range lines {
		lines[i] = st.warn.Render(lines[i])
	}
	return lines
}
