package tui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"lockstep/locks"
	"lockstep/record"
)

// watchReplay is a recorded watch (lockstep watch --record, or the watch a
// chaos run records of its workers) as the watch view's source: each look
// in turn, the history as it stood at that look.
type watchReplay struct {
	looks    []*locks.Look
	notes    []string // the run's last printed line at each look (chaos: its progress)
	pos      int
	playing  bool
	seq      int
	header   record.Header
	runNotes []string
}

// NewWatchReplay is the watch view over a recorded watch.
func NewWatchReplay(ctx context.Context, rec *record.Recording, theme string) (tea.Model, error) {
	r := &watchReplay{header: rec.Header, runNotes: rec.Header.Run.Notes}
	note := ""
	for _, l := range rec.Lines {
		if l.Note != "" {
			note = l.Note
		}
		if l.Look != nil {
			r.looks = append(r.looks, l.Look)
			r.notes = append(r.notes, note)
		}
	}
	if len(r.looks) == 0 {
		return nil, errors.New("the recording holds no look: the watch ended before its first")
	}
	m := newWatchModel(ctx, WatchOptions{Watch: r, Poll: rec.Header.Run.Poll, Server: rec.Header.Server,
		Filter: rec.Header.Run.Summary, Theme: theme, Clock: func() time.Time { return r.looks[r.pos].Taken }})
	m.rp = r
	return m, nil
}

// Poll is the look shown: a replay looks nowhere.
func (r *watchReplay) Poll(context.Context) (*locks.Look, error) { return r.looks[r.pos], nil }

// History is every entry the looks so far added, as each was added.
func (r *watchReplay) History() []locks.WatchEvent {
	var h []locks.WatchEvent
	for _, l := range r.looks[:r.pos+1] {
		h = locks.MergeHistory(h, l.New...)
	}
	return h
}

func (r *watchReplay) Notes() []string                { return r.runNotes }
func (r *watchReplay) ReadOnly() bool                 { return true }
func (r *watchReplay) Role() string                   { return "" }
func (r *watchReplay) DeadlockTimeout() time.Duration { return r.header.Run.DeadlockTimeout }
func (r *watchReplay) Signal(context.Context, int32, bool) error {
	return errors.New("a replay signals nothing: the sessions are long gone")
}

func (r *watchReplay) note() string { return r.notes[r.pos] }

func (r *watchReplay) banner(st styles) string {
	state := "⏸"
	if r.playing {
		state = "▶"
	}
	return st.banner.Render(fmt.Sprintf(" REPLAY %d/%d %s ", r.pos+1, len(r.looks), state))
}

type watchReplayTickMsg struct{ seq int }

var watchReplayKeys = []key.Binding{
	key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "play/pause")),
	key.NewBinding(key.WithKeys("left", "right"), key.WithHelp("←/→", "look back/forward")),
	key.NewBinding(key.WithKeys("d", "D"), key.WithHelp("d/D", "next/previous deadlock")),
	key.NewBinding(key.WithKeys("home", "end"), key.WithHelp("home/end", "first/last")),
}

// replayKey moves through the looks; ok is false for keys the view's own
// handling takes (selection, history, quit).
func (m *watchModel) replayKey(msg tea.KeyPressMsg) (tea.Cmd, bool) {
	r := m.rp
	to := r.pos
	switch msg.String() {
	case "space":
		r.playing = !r.playing
		if r.playing {
			if r.pos == len(r.looks)-1 {
				r.pos = 0
			}
			return m.replayShow(), true
		}
		return nil, true
	case "left":
		to--
	case "right":
		to++
	case "home":
		to = 0
	case "end":
		to = len(r.looks) - 1
	case "d", "D":
		dir := 1
		if msg.String() == "D" {
			dir = -1
		}
		for i := r.pos + dir; i >= 0 && i < len(r.looks); i += dir {
			if len(r.looks[i].Tree.Cycles) > 0 {
				to = i
				break
			}
		}
		if to == r.pos {
			m.status = "no deadlock that way"
			return nil, true
		}
	case "k", "T":
		m.status = "a replay signals nothing: the sessions are long gone"
		return nil, true
	default:
		return nil, false
	}
	r.pos = max(0, min(len(r.looks)-1, to))
	r.playing = false
	return m.replayShow(), true
}

// replayShow shows the look at the replay's position and, while playing,
// waits as long as the watch did before the next.
func (m *watchModel) replayShow() tea.Cmd {
	r := m.rp
	r.seq++
	m.look, m.history, m.viewing = r.looks[r.pos], r.History(), nil
	m.clampSel()
	if !r.playing {
		return nil
	}
	if r.pos+1 >= len(r.looks) {
		r.playing = false
		m.status = "the end of the recording"
		return nil
	}
	gap := min(max(r.looks[r.pos+1].Taken.Sub(r.looks[r.pos].Taken), 40*time.Millisecond), 3*time.Second)
	seq := r.seq
	return tea.Tick(gap, func(time.Time) tea.Msg { return watchReplayTickMsg{seq} })
}
