package learn

import (
	"testing"
	"time"

	"lockstep/sim"
)

// A session already waiting when an action began, whose wait is reported
// again during it (its words changed; a poll under load saw it anew), and
// which then goes on, did not begin to wait in that action: "T2 goes on"
// holds (TestLessonsAtHumanPace failed so under load). A wait for a new
// holder is a wait begun in the action.
func TestJudgeAWaitReportedAgainDidNotBeginNow(t *testing.T) {
	for _, tc := range []struct {
		again  []string
		goesOn bool
	}{{[]string{"T1"}, true}, {[]string{"T3"}, false}} {
		now := time.Now()
		sessions := []sim.SessionInfo{
			{Name: "T1", Index: 0, State: sim.InTransaction},
			{Name: "T2", Index: 1, State: sim.Waiting, BlockedBy: []string{"T1"}},
		}
		j := NewJudge("T1", 0, sessions, false, nil, now)
		j.Feed(sim.Event{Kind: sim.WaitingForLock, Session: "T2", Index: 1, BlockedBy: tc.again, Time: now}, sessions)
		j.Feed(sim.Event{Kind: sim.Completed, Session: "T1", Index: 0, SQL: "COMMIT", Time: now}, sessions)
		j.Feed(sim.Event{Kind: sim.Completed, Session: "T2", Index: 1, SQL: "INSERT INTO transfers VALUES (1)", Time: now}, sessions)
		if got := j.Observation().Holds(Claim{Kind: GoesOn, Session: "T2"}); got != tc.goesOn {
			t.Errorf("T2 waiting for T1, reported again waiting for %v, then done: \"T2 goes on\" holds %v, want %v", tc.again, got, tc.goesOn)
		}
	}
}
