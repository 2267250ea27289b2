package tui

import (
	"testing"
	"time"
)

// TestNoRedrawAtRest: the model asks for a tick only while a running clock
// is on screen, at the resolution it is drawn at. At rest with no
// transaction open it schedules none, whatever it draws; with T1's
// transaction age on screen it ticks every tenth of a second; behind the
// help, or in history (whose clocks stand still), it stops again. Ticks are
// counted as the model schedules them: no wall time is measured.
func TestNoRedrawAtRest(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	// tick delivers the tick in flight, after the frame drawn since the
	// last message, and says whether the model asked for another.
	tick := func() bool {
		t.Helper()
		d.screen()
		before := m.clk.scheduled
		_, cmd := m.Update(tickMsg{seq: m.clk.seq, at: time.Now()})
		if (cmd != nil) != (m.clk.scheduled > before) {
			t.Fatalf("a command (%v) without a tick counted (%d → %d), or the reverse", cmd != nil, before, m.clk.scheduled)
		}
		return cmd != nil
	}
	rest := func(what string) {
		t.Helper()
		before := m.clk.scheduled
		for range 20 {
			if tick() {
				t.Fatalf("%s: a tick scheduled with no running clock on screen:\n%s", what, d.screen())
			}
		}
		if m.clk.scheduled != before || m.clk.every != 0 {
			t.Fatalf("%s: %d ticks scheduled over 20 frames (clock resolution %s)", what, m.clk.scheduled-before, m.clk.every)
		}
	}
	rest("before any step")

	// With no clock running in the run, a key schedules nothing.
	before := m.clk.scheduled
	d.key("down", "up")
	if m.clk.scheduled != before {
		t.Fatalf("keys scheduled %d ticks with no clock running", m.clk.scheduled-before)
	}
	rest("after keys that start no clock")

	d.step("1", 0) // T1 opens a transaction: its age is drawn in tenths
	// While a clock runs, a message may put it on screen: the model looks
	// once, soon.
	for !m.clk.pending {
		d.key("down")
		if m.clk.scheduled == before {
			t.Fatal("a key with T1's transaction open scheduled no probe")
		}
	}
	for i := range 5 {
		if !tick() {
			t.Fatalf("frame %d: T1's transaction age is on screen and running, but no tick was scheduled:\n%s", i, d.screen())
		}
		if m.clk.every != 100*time.Millisecond {
			t.Fatalf("the clock drawn in tenths asks for a tick every %s", m.clk.every)
		}
	}
	// A tick that a sooner one replaced is dropped, not answered.
	if _, cmd := m.Update(tickMsg{seq: m.clk.seq - 1}); cmd != nil {
		t.Fatal("a stale tick scheduled another")
	}

	d.key("?") // the help covers the sessions: no clock drawn
	rest("behind the help")
	d.key("?")
	if !tick() {
		t.Fatal("the help closed, T1's age is back on screen, but no tick was scheduled")
	}

	d.key("h") // history: the frame shown stands still
	rest("in history")
}
