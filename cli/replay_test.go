package cli_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"lockstep/record"
	"lockstep/sim"
	"lockstep/tui"
)

// A recording of lockstep run plays back true, as one made in the
// interface: every moment has a poll and a read of the balances begun after
// its last change — the balances before the COMMIT until the COMMIT, those
// it made after it — and the run's last moment (the last COMMIT) shows the
// locks gone, not the locks of the moment before. export --svg draws the
// same screens.
func TestRunRecordingPlaysBackTrue(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "naive.jsonl")
	_, errOut, code := lockstep(t, withDB(t, "run", "--strategy", "naive", "--direction", "opposite", "--record", file)...)
	if code != 0 {
		t.Fatalf("run --record: exit %d: %s", code, errOut)
	}
	rec, err := record.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	end := rec.Outcome()
	if len(end.Accounts) != 2 {
		t.Fatalf("the recording's outcome has %d accounts", len(end.Accounts))
	}
	ms, err := tui.NewMoments(rec, tui.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := ms.Len() - 1
	committed := -1 // the first moment after a COMMIT
	for i := 0; i <= last; i++ {
		screen := ansi.Strip(ms.Screen(i, 120, 40))
		if ms.Snapshot(i) == nil {
			t.Errorf("moment %d (%s) has no lock snapshot", i+1, ms.What(i))
		}
		for _, bad := range []string{"reading the balances", "balances not recorded"} {
			if strings.Contains(screen, bad) {
				t.Errorf("moment %d (%s) says %q:\n%s", i+1, ms.What(i), bad, screen)
			}
		}
		if committed < 0 && strings.Contains(ms.What(i), "COMMIT") {
			committed = i
		}
		// Before the first COMMIT the ledger holds its opening balances.
		if want := "100.00"; committed < 0 && !strings.Contains(screen, "alice       "+want) {
			t.Errorf("moment %d (%s), before any COMMIT, does not show alice's %s:\n%s", i+1, ms.What(i), want, screen)
		}
	}
	if committed < 0 {
		t.Fatal("no COMMIT in the recording")
	}
	screen := ansi.Strip(ms.Screen(last, 120, 40))
	want := fmt.Sprintf("%-7s %10s", "alice", end.Accounts[0].Balance.StringFixed(2))
	if !strings.Contains(screen, want) || !strings.Contains(screen, "no locks at the last poll: no session held or awaited one") {
		t.Errorf("the last moment (%s) does not show the balances the run ended with (%q) and no locks:\n%s", ms.What(last), want, screen)
	}
	for _, s := range ms.Snapshot(last).Backends {
		if len(ms.Snapshot(last).LocksOf(s.Session)) > 0 {
			t.Errorf("the last moment's snapshot still has %s's locks", s.Session)
		}
	}
	// The same moments, as export --svg draws them.
	svg, errOut, code := lockstep(t, "export", file, "--svg", "--at", "end")
	if code != 0 || !strings.Contains(svg, ">1 "+want) || !strings.Contains(svg, "no locks at the last poll: no session held") {
		t.Errorf("export --svg --at end: exit %d %s\n%.2000s", code, errOut, svg)
	}
	var tally sim.Tally
	for _, ev := range rec.Events() {
		tally.Add(ev)
	}
	if tally.Deadlocks != 1 {
		t.Errorf("naive, opposite: %d deadlocks recorded, want 1", tally.Deadlocks)
	}
}
