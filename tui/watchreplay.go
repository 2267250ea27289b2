package tui

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/locks"
	"lockstep/record"
)

// watchReplay is a recorded watch (lockstep watch --record, or the watch a
// chaos run keeps of its workers) as the watch view's source: each look in
// turn, the history as it stood at that look, walked by the timeline
// every replay uses.
type watchReplay struct {
	looks    []*locks.Look
	notes    []string // the run's last printed line at each look (chaos: its progress)
	tl       *timeline
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
	r.tl = newTimeline(func() int { return len(r.looks) }, func(i int) time.Time { return r.looks[i].Taken })
	m := newWatchModel(ctx, WatchOptions{Watch: r, Poll: rec.Header.Run.Poll, Server: rec.Header.Server,
		Filter: rec.Header.Run.Summary, Theme: theme, Clock: func() time.Time { return r.looks[r.tl.pos].Taken }})
	m.rp = r
	m.table = m.newTable() // a replay's keys
	return m, nil
}

// Poll is the look shown: a replay looks nowhere.
func (r *watchReplay) Poll(context.Context) (*locks.Look, error) { return r.looks[r.tl.pos], nil }

// History is every entry the looks so far added, as each was added.
func (r *watchReplay) History() []locks.WatchEvent {
	var h []locks.WatchEvent
	for _, l := range r.looks[:r.tl.pos+1] {
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

func (r *watchReplay) note() string { return r.notes[r.tl.pos] }

func (r *watchReplay) banner(st styles) string {
	return st.banner.Render(fmt.Sprintf(" REPLAY %s ", r.tl.Banner()))
}

// show puts the look at the timeline's position on the view.
func (r *watchReplay) show(m *watchModel) {
	m.look, m.history, m.viewing = r.looks[r.tl.pos], r.History(), nil
	m.tree.follow()
	m.hist.clamp()
}

// jumpDeadlock shows the next (or previous) look with a deadlock standing.
func (r *watchReplay) jumpDeadlock(m *watchModel, back bool) {
	dir := 1
	if back {
		dir = -1
	}
	if !r.tl.Jump(func(i int) bool { return len(r.looks[i].Tree.Cycles) > 0 }, dir) {
		m.status = "no deadlock that way"
		return
	}
	r.show(m)
}
