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
// deadlock as it stood, and → to the server's verdict on it.
func TestReplayStepsBackToTheDeadlock(t *testing.T) {
	t.Parallel()
	m := lectureReplay(t, 120, 40)
	if m.tl.pos != 0 || !strings.Contains(stripped(m.View().Content), "REPLAY 1/") {
		t.Fatalf("the replay opens at its start:\n%s", stripped(m.View().Content))
	}
	press(m, "end", "D")
	if f := m.shown(); f.kind != sim.DeadlockFormed {
		t.Fatalf("D from the end: moment %d is %v %q", m.tl.pos+1, f.kind, f.what)
	}
	if s := stripped(m.View().Content); !strings.Contains(s, "DEADLOCK") || !strings.Contains(s, "FOR UPDATE") {
		t.Errorf("the deadlock as it stood:\n%s", s)
	}
	for m.shown().kind != sim.Error && m.tl.pos < m.tl.last() {
		press(m, "right")
	}
	if f := m.shown(); f.code != "40P01" || !strings.Contains(stripped(m.View().Content), "Deadlock broken") {
		t.Errorf("→ from the deadlock: moment %d is %v %q:\n%s", m.tl.pos+1, f.kind, f.what, stripped(m.View().Content))
	}
}

// TestRecordedScreens compares, at the three sizes, the screens of the
// moments whose look on a live run depends on a race — whether a poll saw
// the deadlock stand before the server broke it — as recordings hold them:
// the lecture's deadlock and a ring of nine, standing and broken. No pane
// may cut its text without a mark.
func TestRecordedScreens(t *testing.T) {
	t.Parallel()
	for _, rec := range []struct{ name, file string }{
		{"lecture", "../record/testdata/lecture-v1.jsonl"},
		{"ring", "../record/testdata/ring-v1.jsonl.gz"},
	} {
		r, err := record.Open(rec.file)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewReplay(context.Background(), r, ReplayOptions{Volatile: masked{}, At: "deadlock"})
		if err != nil {
			t.Fatal(err)
		}
		standing := m.tl.pos
		if f := m.shown(); f.kind != sim.DeadlockFormed || f.cycle == nil {
			t.Fatalf("%s: the recording's first deadlock moment is %v %q, not the cycle standing", rec.name, f.kind, f.what)
		}
		broken := standing
		for m.tl.Go(broken + 1); m.tl.pos > broken && !(m.shown().kind == sim.Error && m.shown().code == "40P01"); m.tl.Go(broken + 1) {
			broken = m.tl.pos
		}
		if m.tl.pos == broken {
			t.Fatalf("%s: no 40P01 after the standing deadlock", rec.name)
		}
		broken = m.tl.pos
		for _, moment := range []struct {
			name string
			at   int
		}{{"standing", standing}, {"broken", broken}} {
			for _, size := range sizes {
				m.tl.Go(moment.at)
				m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
				m.look.silent = nil
				screen := stripped(m.View().Content)
				silent := m.look.silent
				t.Run(fmt.Sprintf("%s-%s/%dx%d", rec.name, moment.name, size[0], size[1]), func(t *testing.T) {
					noSilentCuts(t, silent, screen)
					golden.RequireEqual(t, []byte(screen))
				})
			}
		}
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
