package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"

	"lockstep/record"
	"lockstep/sim"
)

func lectureReplay(t *testing.T, w, h int) *Model {
	t.Helper()
	rec, err := record.Open("../record/testdata/lecture-v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewReplay(context.Background(), rec, ReplayOptions{Volatile: masked{}})
	if err != nil {
		t.Fatal(err)
	}
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

// From the end of the recorded lecture, one key — D — steps back to the
// deadlock as it stood, and → to the server's verdict on it; every pane
// shows the run as it was then (golden), with no database.
func TestReplayStepsBackToTheDeadlock(t *testing.T) {
	t.Parallel()
	for _, size := range [][2]int{{120, 40}, {80, 24}} {
		m := lectureReplay(t, size[0], size[1])
		if m.tl.pos != 0 || !strings.Contains(stripped(m.View().Content), "REPLAY 1/") {
			t.Fatalf("the replay opens at its start:\n%s", stripped(m.View().Content))
		}
		press(m, "end", "D")
		if f := m.shown(); f.kind != sim.DeadlockFormed {
			t.Fatalf("D from the end: moment %d is %v %q", m.tl.pos+1, f.kind, f.what)
		}
		m.look.silent = nil
		screen := stripped(m.View().Content)
		noSilentCuts(t, m.look.silent, screen)
		at := m.tl.pos
		for m.shown().kind != sim.Error && m.tl.pos < m.tl.last() {
			press(m, "right")
		}
		if f := m.shown(); f.code != "40P01" || !strings.Contains(stripped(m.View().Content), "Deadlock broken") {
			t.Errorf("→ from the deadlock: moment %d is %v %q:\n%s", m.tl.pos+1, f.kind, f.what, stripped(m.View().Content))
		}
		m.tl.Go(at)
		if !strings.Contains(screen, "DEADLOCK") || !strings.Contains(screen, "FOR UPDATE") {
			t.Errorf("the deadlock as it stood:\n%s", screen)
		}
		t.Run(fmt.Sprintf("deadlock/%dx%d", size[0], size[1]), func(t *testing.T) { golden.RequireEqual(t, []byte(screen)) })
	}
}

// Space plays the recording: each beat shows the next moment, until the end.
func TestReplayPlays(t *testing.T) {
	t.Parallel()
	m := lectureReplay(t, 120, 40)
	cmd := press(m, "space")
	if cmd == nil || !m.tl.playing {
		t.Fatal("space did not start playing")
	}
	for range len(m.hist.frames) + 2 {
		m.Update(timelineTickMsg{tl: m.tl, seq: m.tl.seq})
	}
	if m.tl.pos != len(m.hist.frames)-1 || m.tl.playing || !strings.Contains(m.status, "end of the recording") {
		t.Errorf("after playing: moment %d of %d, playing %v, %q", m.tl.pos+1, len(m.hist.frames), m.tl.playing, m.status)
	}
	// A stale beat (from before a pause) moves nothing.
	press(m, "home")
	m.Update(timelineTickMsg{tl: m.tl, seq: m.tl.seq - 1})
	if m.tl.pos != 0 {
		t.Errorf("a stale beat moved the replay to %d", m.tl.pos+1)
	}
	press(m, "w")
	if m.shown().kind != sim.WaitingForLock {
		t.Errorf("w: moment %d is %q", m.tl.pos+1, m.shown().what)
	}
}
