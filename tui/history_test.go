package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/scenario"
	"lockstep/sim"
)

// lectureToDeadlock steps the lecture until the server breaks the deadlock.
func lectureToDeadlock(t *testing.T, d *driver) {
	t.Helper()
	for range 4 {
		d.step("1", 0)
		d.step("2", 1)
	}
	d.step("1", 0)
	d.key("2")
	d.until("the victim", func() bool { return victim(d.m) == "T2" && d.quiet() })
}

// TestHistoryKeys goes back through the run: ← to the cycle as it stood,
// home and end, the live run going on underneath, esc back to it.
func TestHistoryKeys(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	d.key("left") // nothing happened yet: the key moves the selection only
	lectureToDeadlock(t, d)
	d.key("h")
	last := len(m.hist.frames) - 1
	if m.mode != modeHistory || m.tl.pos != last {
		t.Fatalf("h: mode %v at %d of %d", m.mode, m.tl.pos, len(m.hist.frames))
	}
	for m.shown().cycle == nil && m.tl.pos > 0 {
		d.key("left")
	}
	f := m.shown()
	if f.cycle == nil || f.cycle.String() != "T1 → T2 → T1" {
		t.Fatalf("no moment with the cycle standing; at %d: %q", m.tl.pos, f.what)
	}
	s := d.screen()
	for _, want := range []string{"HISTORY", "⚠ DEADLOCK", "T1 ──▶ T2 ──▶ T1", "⏳ WAITING", "◀ blocks T1", "◀ blocks T2", "esc live"} {
		if !strings.Contains(s, want) {
			t.Errorf("the cycle in history lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "T2 was the victim") {
		t.Errorf("the moment before the break shows the break:\n%s", s)
	}
	// The log shows what had been written then, no more.
	if strings.Contains(s, "deadlock detected") {
		t.Errorf("the log in history shows a later line:\n%s", s)
	}
	at := m.tl.pos
	d.key("home")
	if m.tl.pos != 0 {
		t.Errorf("home: at %d", m.tl.pos)
	}
	d.key("left")
	if m.tl.pos != 0 {
		t.Errorf("left at the first moment: at %d", m.tl.pos)
	}
	d.key("end")
	if m.tl.pos != len(m.hist.frames)-1 {
		t.Errorf("end: at %d of %d", m.tl.pos, len(m.hist.frames))
	}
	d.key("right")
	if m.tl.pos != len(m.hist.frames)-1 {
		t.Errorf("right at the last moment: at %d of %d", m.tl.pos, len(m.hist.frames))
	}
	// Step keys do nothing in history: the past is read, not changed.
	next := m.live.sessions[0].Next
	d.key("home")
	for range at {
		d.key("right")
	}
	d.key("1", "space")
	if m.live.sessions[0].Next != next || m.live.sessions[0].State == sim.Running {
		t.Errorf("a step key in history stepped T1")
	}
	if m.tl.pos != at || m.shown().cycle == nil {
		t.Errorf("→ from the first moment %d times: at %d, want %d", at, m.tl.pos, at)
	}
	// Esc and h typed fast arrive as alt+h: back to live, then into
	// history again.
	d.send(tea.KeyPressMsg{Code: 'h', Text: "h", Mod: tea.ModAlt})
	if m.mode != modeHistory || m.tl.pos != len(m.hist.frames)-1 {
		t.Errorf("esc+h: mode %v at %d of %d", m.mode, m.tl.pos, len(m.hist.frames))
	}
	d.key("esc")
	if m.mode != modeNormal || m.shown() != &m.live || strings.Contains(d.screen(), "HISTORY") {
		t.Errorf("esc should return to the live screen:\n%s", d.screen())
	}
	// The run goes on; a reset starts a new history.
	d.step("1", 0)
	before := len(m.hist.frames)
	d.key("r")
	d.until("reset", func() bool { return m.live.sessions[0].Next == 0 && d.quiet() })
	if len(m.hist.frames) >= before {
		t.Errorf("history kept %d frames through the reset (had %d)", len(m.hist.frames), before)
	}
}

// TestResults shows what statements returned: a scripted SELECT's value in
// its column, and a scenario's outcome.
func TestResults(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	for range 5 {
		d.step("1", 0)
	}
	if s := d.screen(); !strings.Contains(s, "✓ SELECT balance FROM accounts WHERE id = 1 FOR UPDATE") || !strings.Contains(s, "→ balance = 100.00") {
		t.Errorf("T1's SELECT … FOR UPDATE should show the balance it read:\n%s", s)
	}

	sc, err := scenario.LoadBuiltin("write-skew", "read committed")
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, "for-update")
	opts.Config = sim.Config{Scenario: sc, ScenarioName: "write-skew", Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond}
	opts.Order, _ = sc.SessionOrder(1)
	opts.ScenarioExpected = scenario.Expected("write-skew", "read committed")
	m := New(context.Background(), opts)
	t.Cleanup(m.Close)
	d = newTestDriver(t, m)
	d.start(120, 40)
	d.key("a")
	d.until("autoplay finishes", func() bool { return !m.auto.on && d.quiet() })
	s := d.screen()
	if want := "PostgreSQL's documented outcome at READ COMMITTED: anomaly: both doctors go off call"; !strings.Contains(rightPanes(s), want) {
		t.Errorf("the outcome pane lacks %q:\n%s", want, s)
	}
	for _, want := range []string{"✓ t1r: SELECT … FROM anomaly WHERE", "on_call; → on_call = 2", "anomaly: SELECT NOT EXISTS", "→ anomaly = t",
		"Outcome"} {
		if !strings.Contains(s, want) {
			t.Errorf("write skew under read committed: screen lacks %q:\n%s", want, s)
		}
	}
}

// TestStaleScreen: when the observer loses the server, the screen says so
// at once and its clocks stop; it is live again once the observer is back.
func TestStaleScreen(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	d.step("1", 0) // T1 holds a transaction: its age counts
	ctx := context.Background()
	conn, err := dbtest.DB(t).Connect(ctx, db.AppName("test-killer"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
		db.RunID(m.runID).AppName("observer")); err != nil {
		t.Fatal(err)
	}
	d.until("the observer is lost", func() bool { return m.live.lost })
	s := d.screen()
	if !strings.Contains(s, "NOT LIVE") || !strings.Contains(s, "the observer lost the server") {
		t.Errorf("a lost observer is not shown:\n%s", s)
	}
	frozen := m.now
	d.send(tickMsg{seq: m.clk.seq, at: time.Now().Add(time.Hour)})
	if !m.now.Equal(frozen) {
		t.Errorf("the clock moved on a screen that is not live: %v → %v", frozen, m.now)
	}
	// The observer reconnects on its next beat.
	d.until("live again", func() bool { return !m.live.lost && d.quiet() })
	if s := d.screen(); strings.Contains(s, "NOT LIVE") {
		t.Errorf("still marked not live after the observer came back:\n%s", s)
	}
	var logged bool
	for _, e := range m.log.entries {
		logged = logged || strings.Contains(e.text, "the observer lost the server")
	}
	if !logged {
		t.Error("the log does not say the observer was lost")
	}
}

// TestQuitConfirmation: q while a session holds a transaction asks; any
// other key stays, y or a second q quits.
func TestQuitConfirmation(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	d.step("1", 0)
	d.key("q")
	if d.quit || m.ask == nil || !strings.Contains(d.screen(), "T1 holds a transaction: quit and roll back?") {
		t.Fatalf("q with T1 in a transaction should ask:\n%s", d.screen())
	}
	if !strings.Contains(d.screen(), "y or q quits") || !strings.Contains(d.screen(), "y yes") {
		t.Errorf("the footer should give the answers:\n%s", d.screen())
	}
	d.key("n")
	if d.quit || m.mode != modeNormal || m.status != "" {
		t.Fatalf("n should stay: quit %v, mode %v, status %q", d.quit, m.mode, m.status)
	}
	d.key("q", "q")
	d.until("quit", func() bool { return d.quit })
}

// TestEscThenDigit: esc and a digit typed fast arrive as alt+digit; the
// step must not be lost.
func TestEscThenDigit(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	d.send(tea.KeyPressMsg{Code: '2', Text: "2", Mod: tea.ModAlt})
	d.until("T2 stepped", func() bool { return d.m.live.sessions[1].Next == 1 && d.quiet() })
}

// TestFooterFollowsMode: the footer lists the keys of what has them.
func TestFooterFollowsMode(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	footer := func() string {
		lines := strings.Split(d.screen(), "\n")
		return lines[len(lines)-1]
	}
	for _, c := range []struct {
		open, close string
		want        string
	}{
		{"", "", "space step ·"},
		{"m", "esc", "enter switch"},
		{"s", "esc", "enter new run"},
		{"e", "esc", "enter run"},
		{"h", "esc", "←/→ moment"},
	} {
		if c.open != "" {
			d.key(c.open)
		}
		f := footer()
		if !strings.Contains(f, c.want) || (c.open != "" && strings.Contains(f, "space step ·")) {
			t.Errorf("after %q the footer reads %q; want %q", c.open, f, c.want)
		}
		if c.close != "" {
			d.key(c.close)
		}
	}
}
