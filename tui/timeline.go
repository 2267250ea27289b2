package tui

import (
	"fmt"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// timeline walks a run's moments: the live run's history (h), a recorded
// run's replay and a recorded watch's looks. One player for all of them:
// the moment shown, stepping and jumping by hand, and — in a replay —
// playing at the recorded pace, at a chosen speed.
type timeline struct {
	// n is how many moments there are; at is moment i's time.
	n  func() int
	at func(i int) time.Time
	// pos is the moment shown.
	pos     int
	playing bool
	seq     int // the beat in flight; older beats are dropped
	speed   int // index into replaySpeeds
}

var replaySpeeds = []float64{0.25, 0.5, 1, 2, 4, 8}

func newTimeline(n func() int, at func(i int) time.Time) *timeline {
	return &timeline{n: n, at: at, speed: 2}
}

// timelineTickMsg is a playing timeline's beat.
type timelineTickMsg struct {
	tl  *timeline
	seq int
}

func (t *timeline) last() int { return max(0, t.n()-1) }

// Go shows moment i (clamped); a move by hand pauses playing.
func (t *timeline) Go(i int) {
	t.pos = max(0, min(t.last(), i))
	t.Pause()
}

// Move shows the moment d along.
func (t *timeline) Move(d int) { t.Go(t.pos + d) }

// Dropped keeps the moment shown when the n oldest moments went.
func (t *timeline) Dropped(n int) { t.pos = max(0, t.pos-n) }

// Jump shows the nearest moment in direction dir (+1 or -1) that matches;
// it says whether there was one.
func (t *timeline) Jump(match func(i int) bool, dir int) bool {
	for i := t.pos + dir; i >= 0 && i < t.n(); i += dir {
		if match(i) {
			t.Go(i)
			return true
		}
	}
	return false
}

// Pause stops playing; a beat in flight is dropped.
func (t *timeline) Pause() {
	t.playing = false
	t.seq++
}

// Toggle plays or pauses; played at the last moment, it starts over.
func (t *timeline) Toggle() tea.Cmd {
	if t.playing {
		t.Pause()
		return nil
	}
	if t.pos >= t.last() {
		t.pos = 0
	}
	t.playing = true
	return t.beat()
}

// Faster and Slower change the speed it plays at.
func (t *timeline) Faster() { t.speed = min(len(replaySpeeds)-1, t.speed+1) }
func (t *timeline) Slower() { t.speed = max(0, t.speed-1) }

// beat waits, at the chosen speed, as long as the run did between the
// moment shown and the next.
func (t *timeline) beat() tea.Cmd {
	t.seq++
	if t.pos+1 >= t.n() {
		t.playing = false
		return nil
	}
	gap := t.at(t.pos + 1).Sub(t.at(t.pos))
	gap = time.Duration(float64(gap) / replaySpeeds[t.speed])
	gap = min(max(gap, 40*time.Millisecond), 3*time.Second)
	seq := t.seq
	return tea.Tick(gap, func(time.Time) tea.Msg { return timelineTickMsg{tl: t, seq: seq} })
}

// Tick takes a beat: while playing, the next moment. ended says the
// timeline played to its last moment.
func (t *timeline) Tick(msg timelineTickMsg) (cmd tea.Cmd, ended bool) {
	if msg.tl != t || !t.playing || msg.seq != t.seq {
		return nil, false
	}
	t.pos = min(t.last(), t.pos+1)
	cmd = t.beat()
	return cmd, !t.playing
}

// Banner is where the timeline is, and how it plays: "12/20 ⏸ ×1".
func (t *timeline) Banner() string {
	state := "⏸"
	if t.playing {
		state = "▶"
	}
	return fmt.Sprintf("%d/%d %s ×%g", t.pos+1, t.n(), state, replaySpeeds[t.speed])
}

// timelineKeys are the keys that move through a timeline; Play and Speed
// only where it plays (a replay).
type timelineKeys struct {
	Play, Back, Forward, First, Last, Speed key.Binding
}

func newTimelineKeys() timelineKeys {
	return timelineKeys{
		Play:    key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "play")),
		Back:    key.NewBinding(key.WithKeys("left"), key.WithHelp("←/→", "moment")),
		Forward: key.NewBinding(key.WithKeys("right")),
		First:   key.NewBinding(key.WithKeys("home"), key.WithHelp("home/end", "first/last")),
		Last:    key.NewBinding(key.WithKeys("end")),
		Speed:   key.NewBinding(key.WithKeys("+", "-"), key.WithHelp("+/-", "speed")),
	}
}

// Update moves the timeline by a key; handled is false for keys that are
// not the timeline's.
func (t *timeline) Update(msg tea.KeyPressMsg, k timelineKeys) (cmd tea.Cmd, handled bool) {
	switch {
	case key.Matches(msg, k.Play):
		return t.Toggle(), true
	case key.Matches(msg, k.Back):
		t.Move(-1)
	case key.Matches(msg, k.Forward):
		t.Move(+1)
	case key.Matches(msg, k.First):
		t.Go(0)
	case key.Matches(msg, k.Last):
		t.Go(t.last())
	case key.Matches(msg, k.Speed):
		if msg.String() == "+" {
			t.Faster()
		} else {
			t.Slower()
		}
	default:
		return nil, false
	}
	return nil, true
}
