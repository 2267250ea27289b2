package tui

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/locks"
	"lockstep/record"
)

// Moments are a recording's moments as the replay shows them — one per
// event that changed the screen — for the exports: a moment's screen,
// its lock snapshot, its time.
type Moments struct {
	m     *Model
	start time.Time
}

// NewMoments builds the recording's moments, as NewReplay does.
func NewMoments(rec *record.Recording, opts ReplayOptions) (*Moments, error) {
	m, err := NewReplay(context.Background(), rec, opts)
	if err != nil {
		return nil, err
	}
	return &Moments{m: m, start: rec.Header.Started}, nil
}

// Len is how many moments there are.
func (ms *Moments) Len() int { return len(ms.m.hist.frames) }

// Resolve finds a moment by what --at says: start, end (or last), deadlock,
// or its number counting from 1.
func (ms *Moments) Resolve(at string) (int, error) {
	if at == "last" {
		at = "end"
	}
	if err := ms.m.replayOpen(at); err != nil {
		return 0, err
	}
	return ms.m.histPos, nil
}

// At is moment i's time since the recording began.
func (ms *Moments) At(i int) time.Duration { return ms.m.hist.frames[i].at.Sub(ms.start) }

// What is the event that made moment i, in the log's words.
func (ms *Moments) What(i int) string { return ms.m.hist.frames[i].what }

// Snapshot is the lock snapshot moment i shows, nil before the first poll.
func (ms *Moments) Snapshot(i int) *locks.Snapshot { return ms.m.hist.frames[i].snap }

// Screen is the interface's screen at moment i, w×h, with its colours.
func (ms *Moments) Screen(i, w, h int) string {
	ms.m.histPos = i
	ms.m.sel.Clear()
	ms.m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return ms.m.View().Content
}
