package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/shopspring/decimal"

	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/scenario"
	"lockstep/sim"
)

// lastLine is the screen's last line: the footer's keys.
func lastLine(screen string) string {
	lines := strings.Split(screen, "\n")
	return lines[len(lines)-1]
}

// TestFooterEndsWithHelpAndQuit: wherever the keys are the screen's own —
// live, in history, in a replay — the footer ends with ? help · q quit,
// at every size: what it leaves out to fit is marked with "…".
func TestFooterEndsWithHelpAndQuit(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	d.step("1", 0)
	check := func(where string, screen func() string, resize func(w, h int)) {
		t.Helper()
		for _, size := range sizes {
			resize(size[0], size[1])
			if last := lastLine(screen()); !strings.HasSuffix(last, "? help · q quit") {
				t.Errorf("%s at %dx%d: the footer reads %q", where, size[0], size[1], last)
			}
		}
	}
	resize := func(w, h int) { d.send(tea.WindowSizeMsg{Width: w, Height: h}) }
	check("live", d.screen, resize)
	d.key("h")
	check("history", d.screen, resize)
	m := lectureReplay(t, 120, 40)
	check("replay", func() string { return stripped(m.View().Content) }, func(w, h int) { m.Update(tea.WindowSizeMsg{Width: w, Height: h}) })
}

// TestHelpOverlay: ? lists every key of the mode, fits 80×24, scrolls, and
// says why a key cannot act now.
func TestHelpOverlay(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	d.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	d.key("?")
	first := d.screen()
	if n := strings.Count(first, "\n") + 1; n != 24 {
		t.Fatalf("the help takes %d lines at 80×24:\n%s", n, first)
	}
	if !strings.Contains(first, "Keys — stepping the sessions") || !strings.Contains(first, "more lines") {
		t.Fatalf("the help at 80×24 should open at its top and mark what is below:\n%s", first)
	}
	seen := first
	for range 20 {
		d.key("pgdown")
		seen += d.screen()
	}
	for _, a := range d.m.table {
		if k := a.Help().Key; k != "" && !strings.Contains(seen, k) {
			t.Errorf("key %q is not in the help", k)
		}
	}
	for _, want := range []string{"p picks among a scenario's permutations; this run has none", "f cycles a scenario's fixes", "? or esc closes this list"} {
		if !strings.Contains(strings.Join(strings.Fields(seen), " "), want) {
			t.Errorf("the help should say %q:\n%s", want, d.screen())
		}
	}
	d.key("esc")
	if d.m.helpOpen || strings.Contains(d.screen(), "Keys — stepping") {
		t.Errorf("esc should close the help:\n%s", d.screen())
	}
	// A key that cannot act says why, and does nothing.
	d.key("p")
	if !strings.Contains(d.m.status, "this run has none") {
		t.Errorf("p in a run without permutations: status %q", d.m.status)
	}
}

// TestFixKeyInEveryFamily: f switches every built-in scenario with fixes
// to its next fix, not only the two-database ones.
func TestFixKeyInEveryFamily(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"ddl-queue", "job-queue"} {
		sc, err := scenario.LoadBuiltin(name, "")
		if err != nil {
			t.Fatal(err)
		}
		opts := testOptions(t, "for-update")
		opts.Transfers = opts.Config
		opts.Config = sim.Config{Scenario: sc, ScenarioName: name, Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond}
		m := New(context.Background(), opts)
		t.Cleanup(m.Close)
		d := newTestDriver(t, m)
		d.start(120, 40)
		d.key("f")
		want := scenario.FixFamily(name)[1]
		d.until("the next fix runs", func() bool { return m.eng != nil && !m.starting && d.quiet() && m.cfg.ScenarioName == want })
		if !strings.Contains(d.screen(), "scenario "+want) {
			t.Errorf("after f in %s the header should name %s:\n%s", name, want, d.screen())
		}
	}
}

// TestFocusZoomScroll: tab gives a pane the focus, z gives it the whole
// screen (the explanation at 80×24 then shows the conflict table it had no
// room for), esc takes it back; L zooms the log; history reaches the
// standing deadlock with h and one key.
func TestFocusZoomScroll(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	for range 4 {
		d.step("1", 0)
		d.step("2", 1)
	}
	d.step("1", 0)
	d.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	if s := d.screen(); !strings.Contains(s, "z: the conflict table") || strings.Contains(s, "▶ FOR KEY SHARE") {
		t.Fatalf("at 80×24 the table should be named, not shown:\n%s", s)
	}
	d.key("tab", "tab")
	if m.focus != paneExplain {
		t.Fatalf("tab tab: focus on %v", m.focus)
	}
	d.key("z")
	zoomed := d.screen()
	if !m.zoomed || !strings.Contains(zoomed, "▶ FOR KEY SHARE") || strings.Contains(zoomed, "Locks, those behind") {
		t.Errorf("z should give the explanation the screen, its table whole:\n%s", zoomed)
	}
	if last := lastLine(zoomed); !strings.HasSuffix(last, "esc/z unzoom · ? help · q quit") {
		t.Errorf("a zoomed screen's footer should say how to leave it: %q", last)
	}
	d.key("esc")
	if m.zoomed || m.focus != paneExplain {
		t.Errorf("esc should leave the zoom and keep the focus: zoomed %v, focus %v", m.zoomed, m.focus)
	}
	d.key("esc")
	if m.focus != noPane {
		t.Errorf("a second esc should take the focus away: %v", m.focus)
	}
	d.key("L")
	if s := d.screen(); !m.zoomed || m.focus != paneLog || !strings.Contains(s, "Log (pgup/pgdown scroll · L back)") {
		t.Errorf("L should zoom the log:\n%s", s)
	}
	d.key("L")
	d.send(tea.WindowSizeMsg{Width: 120, Height: 40})
	d.key("2")
	d.until("the victim", func() bool { return victim(m) == "T2" && d.quiet() })
	d.key("h", "d")
	if f := m.shown(); f.kind != sim.DeadlockFormed || f.cycle == nil {
		t.Fatalf("h d should reach the standing deadlock: moment %d is %v %q (%s)", m.tl.pos+1, f.kind, f.what, m.status)
	}
	if s := d.screen(); !strings.Contains(s, "⚠ DEADLOCK") {
		t.Errorf("the deadlock as it stood:\n%s", s)
	}
}

// typeSQL types sql into the selected session and waits until it has
// ended or waits.
func typeSQL(d *driver, i int, sql string) {
	d.t.Helper()
	settled := d.m.live.sessions[i].Settled
	d.key("e")
	for _, r := range sql {
		d.key(string(r))
	}
	d.key("enter")
	d.until("the typed statement settles", func() bool {
		s := d.m.live.sessions[i]
		// The session's count and the statement's own event come apart:
		// the screen is read only once the frame has the statement's end.
		ts := d.m.live.typed[s.Name]
		return (s.Settled > settled || s.State == sim.Waiting) && len(ts) > 0 && ts[len(ts)-1].state != typedRunning && d.quiet()
	})
}

// TestTypedStatementsAreSteps: what a student types shows in the session's
// column as a step — its state, its result, its error whole — and stays
// while its transaction may hold the locks it took; an error does not
// linger after the transaction ends.
func TestTypedStatementsAreSteps(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	typeSQL(d, 0, "BEGIN ISOLATION LEVEL READ COMMITTED")
	typeSQL(d, 0, "UPDATE accounts SET balance = balance WHERE id = 1")
	d.key("right")
	typeSQL(d, 1, "UPDATE accounts SET balance = balance WHERE id = 1")
	if m.live.sessions[1].State != sim.Waiting {
		t.Fatalf("T2's typed UPDATE should wait for T1's: %v", m.live.sessions[1].State)
	}
	s := d.screen()
	for _, want := range []string{"⌨ BEGIN ISOLATION LEVEL READ COMMITTED", "⌨ UPDATE accounts SET balance = balance WHERE id = 1",
		"⏳ UPDATE accounts SET balance = balance WHERE id = 1"} {
		if !strings.Contains(s, want) {
			t.Errorf("while T2 waits, the columns lack %q:\n%s", want, s)
		}
	}
	// An error aborts T1's transaction: the server releases its locks at
	// once (T2 goes on), though the session must still say ROLLBACK.
	d.key("left")
	typeSQL(d, 0, "SELECT 1/0")
	d.until("T2 goes on", func() bool { return m.live.sessions[1].State != sim.Waiting && d.quiet() })
	s = d.screen()
	for _, want := range []string{"⌨ BEGIN ISOLATION LEVEL READ COMMITTED", "✗ SELECT 1/0", "✗ 22012 division by zero", "✗ aborted transaction"} {
		if !strings.Contains(s, want) {
			t.Errorf("after T1's error, the columns lack %q:\n%s", want, s)
		}
	}
	typeSQL(d, 0, "ROLLBACK")
	s = d.screen()
	if strings.Contains(s, "22012") || strings.Contains(s, "⌨ BEGIN") || !strings.Contains(s, "⌨ ROLLBACK") {
		t.Errorf("after ROLLBACK, T1's column should show the ROLLBACK alone of what was typed:\n%s", s)
	}
}

// TestTabBarVerdictNeverCutToItsOpposite: at 80×24 and 100×30 the tab bar
// has no room for a broken ledger's whole verdict; it says what is wrong in
// brief ("a lost update …"), never "BROKEN: total 200.00 = 20…", whose
// totals read as kept.
func TestTabBarVerdictNeverCutToItsOpposite(t *testing.T) {
	t.Parallel()
	m := lectureReplay(t, 80, 24)
	m.shown().books = booksState{read: true, books: &ledger.Books{
		Opening: decimal.NewFromInt(200), Total: decimal.NewFromInt(200),
		Drift: []ledger.Drift{{Account: 1, Balance: decimal.NewFromInt(90), Expected: decimal.NewFromInt(80)}},
	}}
	for _, size := range [][2]int{{80, 24}, {100, 30}} {
		m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		var bar string
		for _, l := range strings.Split(stripped(m.View().Content), "\n") {
			if strings.Contains(l, "Accounts") && strings.Contains(l, "books") {
				bar = l
			}
		}
		if !strings.HasSuffix(strings.TrimRight(bar, " "), "✗ books BROKEN: a lost update …") {
			t.Errorf("at %dx%d the tab bar reads %q", size[0], size[1], bar)
		}
	}
}

// longAges shows ages and pids at their widest, as a run that has gone on a
// while does.
type longAges struct{ masked }

func (longAges) Pid(int32) string         { return "12345" }
func (longAges) Age(time.Duration) string { return "12.3s" }

// TestStateLineNeverCutsTheAge: three sessions at 120×40 leave a column too
// narrow for "● in transaction · pid 12345 · tx 12.3s"; the pid gives its
// place to a mark, and the age stays whole — "tx 1…" read as one second.
func TestStateLineNeverCutsTheAge(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, "for-update")
	opts.Volatile = longAges{}
	opts.Config.Sessions = 3
	m := New(context.Background(), opts)
	t.Cleanup(m.Close)
	d := newTestDriver(t, m)
	d.start(120, 40)
	d.step("1", 0)
	s := d.screen()
	if strings.Contains(s, "tx 1…") || !strings.Contains(s, "● in transaction · … · tx 12.3s") {
		t.Errorf("T1's state line, three sessions at 120×40:\n%s", s)
	}
}

// TestShortLocksPaneShowsTheWait: with room for two lines under its title
// (80×24, a deadlock, autoplay's line under it), the Locks pane shows the
// wait's request and a mark, not the columns' names and a mark.
func TestShortLocksPaneShowsTheWait(t *testing.T) {
	t.Parallel()
	m := lectureReplay(t, 80, 24)
	press(m, "end", "D")
	m.View()
	m.locks.SetSize(80, 5)
	body := stripped(strings.Join(m.locks.View(), "\n"))
	if !strings.Contains(body, "WAITING ← T") || !strings.Contains(body, "more lines") {
		t.Errorf("the Locks pane with two lines' room:\n%s", body)
	}
}

// TestQueueLineOrdersOnlyAQueue: two sessions waiting for ShareLock on
// T1's transaction are in no order (T1's end grants both), so the graph
// draws no "T1 holds ▸ T2 ▸ T3"; a request behind another's is a queue.
func TestQueueLineOrdersOnlyAQueue(t *testing.T) {
	t.Parallel()
	hard := locks.Queue{Target: "T1's transaction", Holders: []locks.QueueEntry{{Session: "T1"}},
		Waiters: []locks.QueueEntry{{Session: "T2", WaitsFor: []string{"T1"}}, {Session: "T3", WaitsFor: []string{"T1"}}}}
	if line, _ := queueLine(hard); line != "T1's transaction: T1 holds; T2, T3 wait, none behind another" {
		t.Errorf("two waiters for T1's end: %q", line)
	}
	queued := locks.Queue{Target: "ls_orders", Holders: []locks.QueueEntry{{Session: "T1"}},
		Waiters: []locks.QueueEntry{{Session: "T2", WaitsFor: []string{"T1"}}, {Session: "T3", Behind: []string{"T2"}, Soft: true}}}
	if line, _ := queueLine(queued); line != "queue on ls_orders: T1 holds ▸ T2 ▸ T3 (behind T2's request)" {
		t.Errorf("a queue: %q", line)
	}
}
