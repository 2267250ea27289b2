package serve

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"lockstep/tui"
)

// TestTryThisFirst is README's "Try this first", done by a student over
// SSH: the keys 1 2 1 2 1 2 1 2 1 leave T1 waiting, with the screen saying
// why; 2 closes a deadlock the server breaks, T2 its victim; h and d step
// back to the deadlock as it stood; m picks for-no-key-update; q asks, y
// rolls back and quits — and the student's role has no backend left.
func TestTryThisFirst(t *testing.T) {
	ts := startServe(t, nil)
	name := uniq("ada")
	c := ts.student(name, 120, 40)
	c.waitFor("for-update", "▶ BEGIN", "you are "+name)
	for i, k := range strings.Fields("1 2 1 2 1 2 1 2 1") {
		ts.step(c, name, k, i+1)
	}
	s := c.waitFor("WAITING", "Why T1 waits for T2", "◀ blocks T1")
	for _, want := range []string{"accounts id=1", "FOR KEY SHARE", "held ↓  requested →"} {
		if !strings.Contains(s, want) {
			t.Errorf("the waiting screen lacks %q:\n%s", want, s)
		}
	}
	// At a human pace: T1 has waited longer than deadlock_timeout (200 ms
	// on the test server), so its own deadlock check has run, found no
	// cycle, and T2's finds the one 2 closes.
	c.waitUntil("T1 waiting a second", func(s string) bool {
		m := waitedRE.FindStringSubmatch(s)
		return m != nil && m[1] >= "1"
	})
	c.press("2")
	c.waitFor("Deadlock broken: T2 was the victim", "40P01")
	ts.waitRun(name, "the deadlock, broken", func(s tui.ClassStudent) bool { return s.Run.State == tui.RunDeadlock })
	c.press("h", "d")
	s = c.waitFor("HISTORY")
	if !strings.Contains(s, "deadlock") {
		t.Errorf("h d does not show the deadlock as it stood:\n%s", s)
	}
	c.press("esc")
	c.waitUntil("the live screen", func(s string) bool { return !strings.Contains(s, "HISTORY") })
	c.press("m")
	c.waitFor("for-no-key-update")
	c.press("down", "enter")
	c.waitFor("lockstep  for-no-key-update")
	ts.waitRun(name, "for-no-key-update", func(s tui.ClassStudent) bool {
		return s.Run.Run == "for-no-key-update" && s.Run.Settled
	})
	ts.step(c, name, "1", 1)
	c.press("q")
	c.waitFor("quit and roll back?")
	c.press("y")
	c.waitEnd()
	if out := c.output(); !strings.Contains(out, "your transactions rolled back") {
		t.Errorf("the student was not told their transactions rolled back: %q", out)
	}
	waitBackends(t, adminConn(t), roleName(name), 3*time.Second)
}

// waitedRE reads how long a session has waited, in whole seconds.
var waitedRE = regexp.MustCompile(`WAITING (\d+)\.\ds`)
