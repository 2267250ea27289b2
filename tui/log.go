package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// logEntry is one line of the log pane.
type logEntry struct {
	at   time.Time
	who  string
	text string
	bad  bool
}

// maxLog is how many lines the log keeps.
const maxLog = 2000

// logPane is the run's log, newest last. It follows the newest line until
// pgup scrolls back (a bubbles viewport); pgdown returns. Given the whole
// screen (L) its lines wrap instead of being cut.
type logPane struct {
	look    *look
	w, h    int
	entries []logEntry
	dropped int // entries dropped from the front, past maxLog
	limit   int // show the entries written before this count (history); -1 for all
	full    bool
	vp      viewport.Model
	dirty   bool // the entries, the width or the limit changed since the content was set
	follow  bool // the newest line stays in view: the user has not scrolled back
}

func newLogPane(l *look) *logPane {
	vp := viewport.New()
	// Only the page keys: ↑/↓ select locks, space steps a session.
	vp.KeyMap = viewport.KeyMap{
		PageUp:   key.NewBinding(key.WithKeys("pgup")),
		PageDown: key.NewBinding(key.WithKeys("pgdown")),
	}
	vp.MouseWheelEnabled = false
	return &logPane{look: l, vp: vp, follow: true, limit: -1}
}

func (p *logPane) SetSize(w, h int) {
	if w != p.w {
		p.dirty = true
	}
	p.w, p.h = w, h
	p.vp.SetWidth(max(0, w-4))
	p.vp.SetHeight(max(0, h-3))
	if p.follow {
		p.vp.GotoBottom()
	}
}

// Add appends a line.
func (p *logPane) Add(e logEntry) {
	p.entries = append(p.entries, e)
	if len(p.entries) > maxLog {
		p.dropped += len(p.entries) - maxLog
		p.entries = p.entries[len(p.entries)-maxLog:]
	}
	p.dirty = true
}

// Written is how many lines have been written in all.
func (p *logPane) Written() int { return p.dropped + len(p.entries) }

// Show limits the log to the lines written before count (history mode),
// or shows them all (count -1); full gives it the whole screen.
func (p *logPane) Show(count int, full bool) {
	if count != p.limit || full != p.full {
		p.limit, p.full, p.dirty = count, full, true
		p.follow = true
	}
}

// Update scrolls the log with its page keys.
func (p *logPane) Update(msg tea.Msg) tea.Cmd {
	if p.dirty {
		p.refresh()
	}
	var cmd tea.Cmd
	p.vp, cmd = p.vp.Update(msg)
	p.follow = p.vp.AtBottom()
	return cmd
}

func (p *logPane) View() []string {
	if p.dirty {
		p.refresh()
	}
	title := "Log (pgup/pgdown scroll · L full screen)"
	if p.full {
		title = "Log (pgup/pgdown scroll · L back)"
	}
	return p.look.panel(title, strings.Split(p.vp.View(), "\n"), p.w, p.h, p.full)
}

// refresh sets the viewport's content from the entries, each cut (or, on
// the whole screen, wrapped) to the pane's width, and follows the newest
// line unless scrolled back.
func (p *logPane) refresh() {
	st, vol := p.look.st, p.look.vol
	entries := p.entries
	if p.limit >= 0 {
		entries = entries[:max(0, min(len(entries), p.limit-p.dropped))]
	}
	w := p.w - 4
	var lines []string
	for _, e := range entries {
		who := e.who // blank for the run's own lines: ready, deadlock, reset
		text := vol.Text(e.text)
		if e.bad {
			text = st.bad.Render(text)
		}
		prefix := st.subtle.Render(vol.Time(e.at)) + " " + st.bold.Render(fmt.Sprintf("%-2s", who)) + " "
		if !p.full {
			lines = append(lines, fit(prefix+text, w))
			continue
		}
		indent := ansi.StringWidth(prefix)
		for i, l := range strings.Split(ansi.Wrap(text, max(8, w-indent), ""), "\n") {
			if i == 0 {
				l = prefix + l
			} else {
				l = strings.Repeat(" ", indent) + l
			}
			lines = append(lines, l)
		}
	}
	p.vp.SetContentLines(lines)
	if p.follow {
		p.vp.GotoBottom()
	}
	p.dirty = false
}
