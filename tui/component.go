package tui

// pane is what every part of a screen is (soft-serve's component, pug's
// panes): it draws itself, as lines, at exactly the size it is given, and
// draws through a box (panel.go), so that it never cuts its text without a
// mark. The screens — the stepping view, the watch, the pool view — lay
// their panes out and join their lines; a pane knows nothing of the others.
type pane interface {
	SetSize(w, h int)
	View() []string
}
