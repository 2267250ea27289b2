package tui

import (
	"strings"
	"testing"
	"time"

	"lockstep/locks"
	"lockstep/sim"
)

// TestCheckDue: autoplay holds a step while a waiter's deadlock check is
// due before the check of the session it would step (autoplayCheck after
// that one's wait begins): such a check would break a cycle the step closes
// as it forms. A check already run, or due later, holds nothing.
func TestCheckDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	waiter := func(waited, deadlockTimeout time.Duration) []sim.SessionInfo {
		start := now.Add(-waited)
		return []sim.SessionInfo{
			{Name: "T1", State: sim.Waiting, DeadlockTimeout: deadlockTimeout,
				Waits: []locks.Edge{{Waiter: "T1", Holder: "T2", Lock: &locks.Lock{WaitStart: &start}}}},
			{Name: "T2", State: sim.InTransaction, DeadlockTimeout: time.Second},
		}
	}
	for _, c := range []struct {
		name            string
		waited, timeout time.Duration
		hold            bool
	}{
		{"check still to run", 300 * time.Millisecond, time.Second, true},
		{"check just ran", time.Second + 50*time.Millisecond, time.Second, true},
		{"check ran", 2 * time.Second, time.Second, false},
		{"check due long after the stepped one's", time.Second, time.Minute, false},
		{"no deadlock_timeout read", time.Second, 0, false},
	} {
		if got := checkDue(waiter(c.waited, c.timeout), now); got != c.hold {
			t.Errorf("%s: hold %v, want %v", c.name, got, c.hold)
		}
	}
}

// TestWhyVictim: the broken deadlock names whose check ran before the cycle
// closed, whose found it and whose were still to come — and says no more
// than the general rule when the server's victim is not the one the check
// times foretold.
func TestWhyVictim(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	// T1 waits from 0 s (check at 1 s), T2 from 0.5 s (check at 1.5 s),
	// T3 closes the cycle at 2 s (check at 4 s), T4 waits from 1.8 s with
	// a check at 61.8 s.
	c := &locks.Cycle{Sessions: []string{"T1", "T2", "T3", "T4"}, LikelyVictim: "T3",
		Edges: []locks.Edge{
			{Waiter: "T1", Holder: "T2", Lock: &locks.Lock{WaitStart: at(0)}},
			{Waiter: "T2", Holder: "T3", Lock: &locks.Lock{WaitStart: at(500 * time.Millisecond)}},
			{Waiter: "T3", Holder: "T4", Lock: &locks.Lock{WaitStart: at(2 * time.Second)}},
			{Waiter: "T4", Holder: "T1", Lock: &locks.Lock{WaitStart: at(1800 * time.Millisecond)}},
		},
		Checks: []locks.DeadlockCheck{
			{Waiter: "T1", At: *at(time.Second), Timeout: time.Second},
			{Waiter: "T2", At: *at(1500 * time.Millisecond), Timeout: time.Second},
			{Waiter: "T3", At: *at(4 * time.Second), Timeout: 2 * time.Second},
			{Waiter: "T4", At: *at(61800 * time.Millisecond), Timeout: time.Minute},
		}}
	p := &explainPane{box: box{look: &look{vol: asIs{}}}}
	got := p.whyVictim(&brokenDeadlock{cycle: c, victim: "T3"})
	for _, want := range []string{
		"The checks of T1 and T2 ran, each 1s into its wait, before T3's wait closed the cycle, and found none.",
		"T3's ran 2s into its wait: the first check after the cycle closed.",
		"T4's would have come later.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("why T3:\n%s\nwant %q", got, want)
		}
	}
	if got := p.whyVictim(&brokenDeadlock{cycle: c, victim: "T4"}); strings.Contains(got, "ran before") || !strings.Contains(got, "was T4's") {
		t.Errorf("a victim the check times did not foretell gets the general rule only:\n%s", got)
	}
}
