package tui

import (
	"fmt"
	"strings"
	"time"

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

// logPane is the run's log, newest last, each entry whole: wrapped under
// its time and session, never cut — a serialization failure or a lock
// timeout is read here. It follows the newest line until the user scrolls
// back; scrolled to the end, it follows again.
type logPane struct {
	box
	entries []logEntry
	dropped int // entries dropped from the front, past maxLog
	limit   int // show the entries written before this count (history); -1 for all
	full    bool
	lines   []string // the entries drawn at width
	drawnW  int
	dirty   bool // the entries, the width or the limit changed since lines were drawn
}

func newLogPane(l *look) *logPane {
	p := &logPane{box: box{look: l}, limit: -1}
	p.scroll.follow = true
	return p
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
		p.scroll.follow = true
	}
}

// Update scrolls the log by a key.
func (p *logPane) Update(msg tea.KeyPressMsg) tea.Cmd {
	p.refresh()
	if p.Scroll(msg) && p.scroll.AtEnd(len(p.lines), p.bodyH()) {
		p.scroll.follow = true // back at the newest line: follow it again
	}
	return nil
}

func (p *logPane) View() []string {
	p.refresh()
	title := "Log (pgup/pgdown scroll · L full screen)"
	if p.full {
		title = "Log (pgup/pgdown scroll · L back)"
	}
	return p.look.panel(title, p.scroll.View(p.lines, p.bodyH(), p.look.st), p.w, p.h, p.full || p.focused)
}

// refresh draws the entries at the pane's width, each wrapped under its
// time and session.
func (p *logPane) refresh() {
	w := p.w - 4
	if !p.dirty && w == p.drawnW {
		return
	}
	st, vol := p.look.st, p.look.vol
	entries := p.entries
	if p.limit >= 0 {
		entries = entries[:max(0, min(len(entries), p.limit-p.dropped))]
	}
	lines := p.lines[:0]
	for _, e := range entries {
		who := e.who // blank for the run's own lines: ready, deadlock, reset
		text := vol.Text(e.text)
		prefix := st.subtle.Render(vol.Time(e.at)) + " " + st.bold.Render(fmt.Sprintf("%-2s", who)) + " "
		indent := ansi.StringWidth(prefix)
		for i, l := range wrap(text, max(8, w-indent)) {
			if e.bad {
				l = st.bad.Render(l)
			}
			if i == 0 {
				l = prefix + l
			} else {
				l = strings.Repeat(" ", indent) + l
			}
			lines = append(lines, l)
		}
	}
	p.lines, p.drawnW, p.dirty = lines, w, false
}
