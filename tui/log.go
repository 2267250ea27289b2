package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
)

// logEntry is one line of the log pane.
type logEntry struct {
	at   time.Time
	who  string
	text string
	bad  bool
}

// maxLog is how many lines the log keeps.
const maxLog = 500

// logPane is the run's log, newest last. It follows the newest line until
// pgup scrolls back (a bubbles viewport); pgdown returns.
type logPane struct {
	look    *look
	w, h    int
	entries []logEntry
	vp      viewport.Model
	dirty   bool // the entries or the width changed since the content was set
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
	return &logPane{look: l, vp: vp, follow: true}
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
func (p *logPane) Add(at time.Time, who, text string, bad bool) {
	p.entries = append(p.entries, logEntry{at: at, who: who, text: text, bad: bad})
	if len(p.entries) > maxLog {
		p.entries = p.entries[len(p.entries)-maxLog:]
	}
	p.dirty = true
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
	return p.look.panel("Log", strings.Split(p.vp.View(), "\n"), p.w, p.h, false)
}

// refresh sets the viewport's content from the entries, each cut to the
// pane's width, and follows the newest line unless scrolled back.
func (p *logPane) refresh() {
	st, vol := p.look.st, p.look.vol
	lines := make([]string, len(p.entries))
	for i, e := range p.entries {
		who := e.who
		if who == "" {
			who = "··"
		}
		text := vol.Text(e.text)
		if e.bad {
			text = st.bad.Render(text)
		}
		lines[i] = fit(st.subtle.Render(vol.Time(e.at))+" "+st.bold.Render(fmt.Sprintf("%-2s", who))+" "+text, p.w-4)
	}
	p.vp.SetContentLines(lines)
	if p.follow {
		p.vp.GotoBottom()
	}
	p.dirty = false
}
