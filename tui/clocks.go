package tui

import (
	"time"

	tea "charm.land/bubbletea/v2"
)

// The screen's clocks — how long a session has waited, the age of its
// transaction, a deadlock's countdown — are the only things on it that
// change by themselves. The model redraws for them only while one is drawn
// and running, as often as the resolution it is drawn at changes (tenths of
// a second under a minute, whole seconds above): at rest with no clock on
// screen it schedules no tick at all, and an idle interface costs what a
// bare Bubble Tea program costs.

// clockProbe is how soon after a message that is not a tick the model looks
// at the frame it drew, while a clock runs in the live run: the message may
// have put it on screen.
const clockProbe = 100 * time.Millisecond

// lessonBeat is how often a lesson's action in flight checks its deadline.
const lessonBeat = 250 * time.Millisecond

// tickMsg refreshes the clocks; seq drops a tick that a sooner one replaced.
type tickMsg struct {
	seq int
	at  time.Time
}

// clocks is the model's one tick in flight, and what the last frame drew.
type clocks struct {
	seq     int
	pending bool
	at      time.Time // when the pending tick is due
	// every is how often the last frame drawn changes by the clock alone: the
	// finest resolution of a running clock drawn in it, 0 when none was.
	every time.Duration
	// scheduled counts the ticks asked for: a test's measure of redraws at rest.
	scheduled int
}

// clockSpy is the Volatile the panes draw through: it passes every value
// on, and notes the resolution of each age drawn while the clocks run.
type clockSpy struct {
	Volatile
	running bool
	finest  time.Duration
}

// Age notes how soon the age drawn changes.
func (s *clockSpy) Age(d time.Duration) string {
	if s.running && d > 0 {
		res := 100 * time.Millisecond // roundAge: tenths of a second
		if d >= time.Minute {
			res = time.Second
		}
		if s.finest == 0 || res < s.finest {
			s.finest = res
		}
	}
	return s.Volatile.Age(d)
}

// spyClocks starts a frame: the clocks run when it is the live screen.
func (m *Model) spyClocks() *clockSpy {
	spy, ok := m.look.vol.(*clockSpy)
	if !ok {
		spy = &clockSpy{Volatile: m.look.vol}
		m.look.vol = spy
	}
	spy.running = m.rp == nil && m.mode != modeHistory && !m.live.lost
	spy.finest = 0
	return spy
}

// clockCmd is the tick the model needs after msg, nil when the one in
// flight comes soon enough or nothing on screen changes by itself.
func (m *Model) clockCmd(msg tea.Msg) tea.Cmd {
	if m.rp != nil {
		return nil // a replay's clock is the recording's
	}
	_, isTick := msg.(tickMsg)
	now := m.clock()
	var want time.Duration
	switch {
	case isTick:
		want = m.clk.every
	case m.clocksRun():
		want = clockProbe
	}
	if m.noticeText != "" && now.Before(m.noticeUntil) {
		want = soonest(want, m.noticeUntil.Sub(now)) // the notice leaves the footer
	}
	if ll := m.lesson; ll != nil && ll.judge != nil && !ll.judge.Done() {
		want = soonest(want, lessonBeat) // the action's deadline
	}
	if want == 0 || (m.clk.pending && !m.clk.at.After(now.Add(want))) {
		return nil
	}
	m.clk.seq++
	m.clk.pending, m.clk.at = true, now.Add(want)
	m.clk.scheduled++
	seq, ctx := m.clk.seq, m.ctx
	return func() tea.Msg {
		// Not tea.Tick: a tick of up to a minute (a notice's) ends with
		// the interface, not after it.
		t := time.NewTimer(want)
		defer t.Stop()
		select {
		case at := <-t.C:
			return tickMsg{seq: seq, at: at}
		case <-ctx.Done():
			return nil
		}
	}
}

// clocksRun says whether the live run has a clock that runs, drawn or not:
// a session waiting, a transaction open, a deadlock's countdown.
func (m *Model) clocksRun() bool {
	f := &m.live
	if f.lost {
		return false
	}
	if f.cycle != nil && f.cycle.BreakAt != nil {
		return true
	}
	for _, s := range f.sessions {
		if _, ok := f.waitSince[s.Name]; ok {
			return true
		}
	}
	if f.snap != nil {
		for _, b := range f.snap.Backends {
			if b.XactStart != nil {
				return true
			}
		}
	}
	return false
}

// soonest is the shorter of two waits, 0 meaning none.
func soonest(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}
