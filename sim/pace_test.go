package sim_test

import (
	"context"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/sim"
)

// humanGap is a student's pause between two keys, as far as the server's
// timers go: longer than the longest timer a scenario sets (timeouts' idle
// timeout, 1.5 s), so every timer that a step starts runs out before the
// next step. (The 5 s would only make the test slower: nothing in
// the scenario happens between 2 s and 5 s after a step.)
const humanGap = 2 * time.Second

// TestTimeoutsAtAnyPace plays the timeouts scenario at machine pace and
// stepped by hand, a pause after every step, and checks that both teach the
// same lesson: 55P03 for the lock_timeout, 57014 for the statement_timeout,
// the holder's session ended by the server (FATAL 25P03) before the reader
// it held goes on, the holder standing as ended with its FATAL kept, and
// the server listing neither its backend nor its locks.
func TestTimeoutsAtAnyPace(t *testing.T) {
	t.Parallel()
	order := []int{0, 1, 2, 3, 0} // h_lock l_try s_try a_read h_idle
	for _, pace := range []string{"machine", "human"} {
		t.Run(pace, func(t *testing.T) {
			t.Parallel()
			eng := scenarioEngine(t, "timeouts")
			ctx := context.Background()
			holderPid := eng.Sessions()[0].Pid
			var events []sim.Event
			keep := func(ev sim.Event) {
				if ev.Kind != sim.Polled {
					events = append(events, ev)
				}
			}
			if pace == "machine" {
				if err := eng.Play(ctx, sim.NewScheduler(order), keep); err != nil {
					t.Fatal(err)
				}
			} else {
				for _, i := range order {
					if err := eng.Step(i); err != nil {
						t.Fatal(err)
					}
					name := eng.SessionName(i)
					drain(t, eng, keep, func(ev sim.Event) bool {
						return ev.Session == name && (ev.Kind == sim.WaitingForLock || ev.Kind == sim.Completed || ev.Kind == sim.Error)
					})
					pause := time.After(humanGap)
					drain(t, eng, keep, func(sim.Event) bool {
						select {
						case <-pause:
							return true
						default:
							return false
						}
					})
				}
				drain(t, eng, keep, func(sim.Event) bool {
					for _, s := range eng.Sessions() {
						if s.State.Busy() {
							return false
						}
					}
					return true
				})
			}
			checkTimeoutsLesson(t, events)
			s := eng.Sessions()[0]
			if s.State != sim.Failed || s.Ended == nil || s.Ended.SQLState != "25P03" || s.Ended.Severity != "FATAL" {
				t.Errorf("the holder after its session ended: %v, ended by %+v", s.State, s.Ended)
			}
			conn, err := dbtest.DB(t).Connect(ctx, db.AppName("test-pace"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var backends, held int
			if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid = $1), (SELECT count(*) FROM pg_locks WHERE pid = $1)",
				holderPid).Scan(&backends, &held); err != nil {
				t.Fatal(err)
			}
			if backends != 0 || held != 0 {
				t.Errorf("the ended holder (pid %d): %d backends, %d locks on the server", holderPid, backends, held)
			}
		})
	}
}

// drain passes events to keep until, one after another, until says so
// (asked again on every poll).
func drain(t *testing.T, eng *sim.Engine, keep func(sim.Event), until func(sim.Event) bool) {
	t.Helper()
	guard := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-eng.Events():
			if !ok {
				t.Fatal("events closed")
			}
			keep(ev)
			if until(ev) {
				return
			}
		case <-guard:
			t.Fatal("nothing came in 30 s")
		}
	}
}

// checkTimeoutsLesson checks the timeouts scenario's events for its lesson.
func checkTimeoutsLesson(t *testing.T, events []sim.Event) {
	t.Helper()
	at := func(match func(sim.Event) bool) int {
		for i, ev := range events {
			if match(ev) {
				return i
			}
		}
		return -1
	}
	failed := func(name, code string) func(sim.Event) bool {
		return func(ev sim.Event) bool { return ev.Session == name && ev.Kind == sim.Error && ev.Err.SQLState == code }
	}
	lockTimeout, stmtTimeout := at(failed("T2", "55P03")), at(failed("T3", "57014"))
	ended := at(func(ev sim.Event) bool {
		return ev.Session == "T1" && ev.Kind == sim.ConnectionLost && ev.Err != nil && ev.Err.SQLState == "25P03"
	})
	read := at(func(ev sim.Event) bool {
		r := ev.LastRows()
		return ev.Session == "T4" && ev.Kind == sim.Completed && r != nil && len(r.Rows) == 1 && r.Rows[0][0] == "0"
	})
	waited := at(func(ev sim.Event) bool { return ev.Session == "T4" && ev.Kind == sim.WaitingForLock })
	if lockTimeout < 0 || stmtTimeout < 0 || ended < 0 || read < 0 || waited < 0 || ended > read || waited > ended {
		for _, ev := range events {
			t.Logf("%s %s %q %+v %v", ev.Session, ev.Kind, ev.SQL, ev.Err, ev.Cause)
		}
		t.Fatalf("55P03 at %d, 57014 at %d, T4 waits at %d, T1 ended (25P03) at %d, T4 reads at %d", lockTimeout, stmtTimeout, waited, ended, read)
	}
}
