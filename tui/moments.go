package tui

import (
	"context"
	"fmt"
	"strconv"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/locks"
	"lockstep/record"
)

// Moments are a recording's moments as the replay shows them, for the
// exports: a moment's screen, its lock snapshot, its time. A run's moments
// are the events that changed the screen; a watch's are its looks.
type Moments struct {
	m     *Model      // a run's replay
	w     *watchModel // a watch's replay
	start time.Time
}

// NewMoments builds the recording's moments, as the replay does.
func NewMoments(rec *record.Recording, opts ReplayOptions) (*Moments, error) {
	ms := &Moments{start: rec.Header.Started}
	if IsWatchRecording(rec) {
		wm, err := NewWatchReplay(context.Background(), rec, opts.Theme)
		if err != nil {
			return nil, err
		}
		ms.w = wm.(*watchModel)
		ms.w.Update(ms.w.poll()())
		return ms, nil
	}
	m, err := NewReplay(context.Background(), rec, opts)
	if err != nil {
		return nil, err
	}
	ms.m = m
	return ms, nil
}

// IsWatchRecording says whether the recording is of a watch (lockstep watch,
// or the watch a chaos run keeps of its workers), which the watch view replays.
func IsWatchRecording(rec *record.Recording) bool {
	return rec.Header.Command == "watch" || rec.Header.Command == "chaos"
}

// Len is how many moments there are.
func (ms *Moments) Len() int {
	if ms.w != nil {
		return len(ms.w.rp.looks)
	}
	return len(ms.m.hist.frames)
}

// Resolve finds a moment by what --at says: start, end (or last), deadlock,
// or its number counting from 1.
func (ms *Moments) Resolve(at string) (int, error) {
	if at == "last" {
		at = "end"
	}
	if ms.m != nil {
		if err := ms.m.replayOpen(at); err != nil {
			return 0, err
		}
		return ms.m.tl.pos, nil
	}
	looks := ms.w.rp.looks
	switch at {
	case "", "start":
		return 0, nil
	case "end":
		return len(looks) - 1, nil
	case "deadlock":
		for i, l := range looks {
			if len(l.Tree.Cycles) > 0 {
				return i, nil
			}
		}
		return 0, fmt.Errorf("--at deadlock: the recording has no deadlock")
	}
	n, err := strconv.Atoi(at)
	if err != nil || n < 1 || n > len(looks) {
		return 0, fmt.Errorf("--at %q: give start, end, deadlock or a moment from 1 to %d", at, len(looks))
	}
	return n - 1, nil
}

// At is moment i's time since the recording began.
func (ms *Moments) At(i int) time.Duration {
	if ms.w != nil {
		return ms.w.rp.looks[i].Taken.Sub(ms.start)
	}
	return ms.m.hist.frames[i].at.Sub(ms.start)
}

// What is what happened at moment i, in the log's words.
func (ms *Moments) What(i int) string {
	if ms.w != nil {
		if c := ms.w.rp.looks[i].Tree.Cycles; len(c) > 0 {
			return "deadlock: " + c[0]
		}
		return fmt.Sprintf("look %d", i+1)
	}
	return ms.m.hist.frames[i].what
}

// Snapshot is the lock snapshot moment i shows, nil before the first poll.
func (ms *Moments) Snapshot(i int) *locks.Snapshot {
	if ms.w != nil {
		return ms.w.rp.looks[i].Snapshot
	}
	return ms.m.hist.frames[i].snap
}

// Screen is the interface's screen at moment i, w×h, with its colours.
func (ms *Moments) Screen(i, w, h int) string {
	if ms.w != nil {
		ms.w.rp.tl.Go(i)
		ms.w.rp.show(ms.w)
		ms.w.Update(tea.WindowSizeMsg{Width: w, Height: h})
		return ms.w.View().Content
	}
	ms.m.tl.Go(i)
	ms.m.sel.Clear()
	ms.m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return ms.m.View().Content
}
