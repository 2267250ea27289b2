package tui

import (
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
