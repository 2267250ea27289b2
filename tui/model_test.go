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

func TestSessionKeys(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	d.key("right")
	if m.sessions.Selected() != 1 {
		t.Fatalf("right: selected %d", m.sessions.Selected())
	}
	d.key("right")
	if m.sessions.Selected() != 0 {
		t.Fatalf("right from the last session wraps to the first: selected %d", m.sessions.Selected())
	}
	d.key("left")
	if m.sessions.Selected() != 1 {
		t.Fatalf("left from the first session wraps to the last: selected %d", m.sessions.Selected())
	}
	d.key("left")
	d.step("space", 0) // T1 BEGIN
	d.step("enter", 0) // T1 INSERT transfer
	d.step("2", 1)     // T2 BEGIN
	if m.sessions.Selected() != 1 || m.live.sessions[0].Next != 2 || m.live.sessions[1].Next != 1 {
		t.Fatalf("after space, enter, 2: sel %d, next %d/%d", m.sessions.Selected(), m.live.sessions[0].Next, m.live.sessions[1].Next)
	}
	d.key("9") // no T9: ignored
	d.key("c") // T2 commits its empty transaction
	d.until("T2 committed", func() bool { return m.live.sessions[1].State == sim.Committed && d.quiet() })
	d.key("left", "x") // T1 rolls back
	d.until("T1 rolled back", func() bool { return m.live.sessions[0].State == sim.RolledBack && d.quiet() })
	if !strings.Contains(d.screen(), "↺ rolled back") || !strings.Contains(d.screen(), "✓ committed") {
		t.Errorf("badges missing:\n%s", d.screen())
	}
	d.key("space")
	if !strings.Contains(m.status, "transaction was ended by hand") || strings.Contains(m.status, "transfer") {
		t.Errorf("stepping a session whose transaction was rolled back by hand: status %q", m.status)
	}
	d.key("k")
	if !strings.Contains(m.status, "runs no statement: k cancels one that runs or waits") {
		t.Errorf("k with no statement running: status %q", m.status)
	}
	d.key("?")
	if !m.helpOpen || !strings.Contains(d.screen(), "step session N") {
		t.Errorf("? should show every key:\n%s", d.screen())
	}
	d.key("?")
	d.key("r")
	d.until("reset", func() bool {
		return m.live.sessions[0].State == sim.Idle && m.live.sessions[0].Next == 0 && d.quiet()
	})
	d.key("q")
	d.until("quit", func() bool { return d.quit })
	// What the program's exit does: no backend of the run is left.
	m.Close()
	ctx := context.Background()
	conn, err := dbtest.DB(t).Connect(ctx, db.AppName("test-check"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", db.RunID(m.runID).Like("")).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d backends of the run left after quitting (%v)", n, err)
	}
}

func TestTypedSQLKeys(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	d.key("right", "e")
	if m.mode != modeTyping {
		t.Fatal("e does not open the SQL input")
	}
	// The server's WARNING is not swallowed.
	for _, r := range "COMMIT" {
		d.key(string(r))
	}
	d.key("enter")
	d.until("the warning is logged", func() bool {
		for _, e := range m.log.entries {
			if e.text == "⚠ WARNING: there is no transaction in progress" {
				return d.quiet()
			}
		}
		return false
	})
	d.key("e")
	for _, r := range "BEGIN" {
		d.key(string(r))
	}
	d.key("enter")
	d.until("typed BEGIN ran", func() bool { return m.live.sessions[1].State == sim.InTransaction && d.quiet() })
	d.key("e")
	for _, r := range "SELECT * FROM accounts WHERE id = 1 FOR SHARE" {
		d.key(string(r))
	}
	d.key("enter")
	d.until("T2's row lock shows", func() bool {
		return d.quiet() && strings.Contains(d.screen(), "T2  row      accounts id=1          FOR SHARE")
	})
	d.key("e", "x", "esc")
	if m.mode != modeNormal || m.live.sessions[1].State != sim.InTransaction {
		t.Fatalf("esc should leave typing without running anything: mode %v state %v", m.mode, m.live.sessions[1].State)
	}
	// Select the row lock and read why it conflicts.
	for i := 0; i < len(m.sel.items) && (m.sel.cur < 0 || m.sel.items[m.sel.cur].row == nil); i++ {
		d.key("down")
	}
	if m.sel.cur < 0 || m.sel.items[m.sel.cur].row == nil {
		t.Fatalf("no row lock to select: %+v", m.sel.items)
	}
	if s := d.screen(); !strings.Contains(s, "T2 holds FOR SHARE on accounts id=1") || !strings.Contains(s, "▶ FOR SHARE") {
		t.Errorf("explain pane:\n%s", s)
	}
	d.key("up")
	if m.sel.cur < 0 {
		t.Fatal("up lost the selection")
	}
	if !strings.Contains(d.screen(), "Explain — ") {
		t.Errorf("a selection is explained:\n%s", d.screen())
	}
	d.key("esc")
	if m.sel.cur != -1 || !strings.Contains(d.screen(), "Why does a session wait?") {
		t.Errorf("esc should clear the selection and follow the waits again: %d\n%s", m.sel.cur, d.screen())
	}
}

func TestStrategyAndSetupKeys(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	first := m.engID
	d.key("m")
	if m.mode != modeStrategy || !strings.Contains(d.screen(), "for-no-key-update") {
		t.Fatalf("m should open the strategy menu:\n%s", d.screen())
	}
	d.key("down", "enter")
	d.until("new engine", func() bool { return m.engID > first && m.eng != nil && !m.starting && d.quiet() })
	if m.eng.Config().Strategy.Name != "for-no-key-update" || !strings.Contains(d.screen(), "for-no-key-update —") {
		t.Fatalf("strategy now %s", m.eng.Config().Strategy.Name)
	}
	d.key("s")
	if m.mode != modeSetup {
		t.Fatal("s should open the set-up form")
	}
	d.key("right", "down", "right", "right", "enter") // 3 sessions, ring
	d.until("three sessions", func() bool { return m.eng != nil && len(m.live.sessions) == 3 && d.quiet() })
	if tr := m.live.sessions[2].Transfer; tr.From != 3 || tr.To != 1 {
		t.Errorf("ring: T3 moves %d → %d", tr.From, tr.To)
	}
	d.key("a")
	if !m.auto.on {
		t.Fatal("a should start autoplay")
	}
	d.key("+", "+", "+")
	if m.auto.speed != 0 {
		t.Errorf("speed index %d after +++", m.auto.speed)
	}
	// A ring of three deadlocks: autoplay pauses while it stands, so the
	// lesson can be read; a resumes.
	d.until("autoplay stops", func() bool { return !m.auto.on && d.quiet() })
	if !strings.Contains(m.status, "autoplay paused: a deadlock stands") || m.live.cycle == nil {
		t.Fatalf("after the ring's deadlock: status %q", m.status)
	}
	// Once the server breaks it, the status no longer says it stands.
	d.until("the server breaks the deadlock", func() bool { return victim(m) != "" && d.quiet() })
	if strings.Contains(m.status, "stands") || !strings.Contains(m.status, "the server has now broken") {
		t.Errorf("after the server broke the deadlock: status %q", m.status)
	}
	d.key("a")
	d.until("autoplay finishes", func() bool { return !m.auto.on && d.quiet() })
	for _, s := range m.live.sessions {
		if !s.Done() {
			t.Errorf("%s not done after autoplay: %v", s.Name, s.State)
		}
	}
	if m.live.books.books == nil || !m.live.books.books.OK() {
		t.Errorf("books after the ring under for-no-key-update: %+v", m.live.books.books)
	}
	d.key("-")
	if m.auto.speed != 1 {
		t.Errorf("speed index %d after -", m.auto.speed)
	}
	d.key("ctrl+c")
	d.until("quit", func() bool { return d.quit })
}

func TestEngineEvents(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	m := d.m
	for range 4 {
		d.step("1", 0)
		d.step("2", 1)
	}
	d.step("1", 0) // T1 waits for T2's KEY SHARE
	if m.live.sessions[0].State != sim.Waiting || !strings.Contains(d.screen(), "⏳ waits for T2") {
		t.Fatalf("T1 should wait:\n%s", d.screen())
	}
	d.key("2") // T2 closes the cycle; T2 (deadlock_timeout 1s) is the victim
	d.until("the deadlock was seen", func() bool { return m.live.cycle != nil || victim(m) != "" })
	d.until("the victim", func() bool {
		return victim(m) == "T2" && d.quiet() && m.live.sessions[0].State == sim.InTransaction
	})
	if s := d.screen(); !strings.Contains(s, "T2 was the victim") || !strings.Contains(s, "(T1)") {
		t.Errorf("after the deadlock:\n%s", s)
	}
	var sawCycleLine, sawAuto bool
	for _, l := range m.log.entries {
		sawCycleLine = sawCycleLine || strings.Contains(l.text, "deadlock: T1 → T2 → T1")
		sawAuto = sawAuto || strings.HasPrefix(l.text, "↺ ROLLBACK")
	}
	if !sawCycleLine || !sawAuto {
		t.Errorf("log lacks the cycle (%v) or the automatic rollback (%v)", sawCycleLine, sawAuto)
	}
	// A stale reply is dropped.
	old := m.gen
	d.send(eventsMsg{id: m.engID, events: []sim.Event{{Kind: sim.BooksRead, Gen: old - 1, Books: &sim.Balances{Err: context.Canceled}}}})
	if m.live.books.problem != "" {
		t.Error("a reply from an older generation was applied")
	}
	d.send(eventsMsg{id: m.engID - 1, events: []sim.Event{{Kind: sim.ResetDone, Gen: 99}}})
	if m.gen != old {
		t.Error("events from a replaced engine were applied")
	}
	// A lost connection shows in the session and the log; the rest goes on.
	if err := m.eng.Terminate(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	d.key("1")
	// pg_terminate_backend: the server sends FATAL 57P01 and ends the
	// session; the column and the explanation say so — once the loss's own
	// event is in (the session's state can come first).
	d.until("T1 lost, and shown so", func() bool {
		scr := d.screen()
		return m.live.sessions[0].State == sim.Failed && d.quiet() &&
			strings.Contains(scr, "✗ session ended by the server") && strings.Contains(scr, "The server ended T1's session")
	})
	d.key("r")
	d.until("reset reconnects", func() bool { return m.live.sessions[0].State == sim.Idle && m.gen > old && d.quiet() })
}

func TestResizeNeverPanics(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "atomic")
	for _, size := range [][2]int{{60, 15}, {1, 1}, {0, 0}, {79, 24}, {80, 23}, {100, 30}, {80, 24}, {300, 100}, {120, 40}} {
		d.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		s := d.screen()
		small := size[0] < minWidth || size[1] < minHeight
		if small && size[0] > 0 && size[1] > 0 {
			// One sentence, wrapped to the width.
			if !strings.Contains(strings.ReplaceAll(s, "\n", " "), "please enlarge") && size[0] > 1 {
				t.Errorf("%v: want a line asking for a larger terminal, got %q", size, s)
			}
			for _, l := range strings.Split(s, "\n") {
				if w := len([]rune(l)); w > size[0] {
					t.Errorf("%v: a line %d wide: %q", size, w, l)
				}
			}
		}
		if !small {
			lines := strings.Split(s, "\n")
			if len(lines) > size[1] {
				t.Errorf("%v: %d lines", size, len(lines))
			}
			for _, l := range lines {
				if w := len([]rune(l)); w > size[0] {
					t.Errorf("%v: a line %d wide: %q", size, w, l)
					break
				}
			}
		}
	}
}

// TestScenarioInTheInterface loads a built-in scenario: its sessions step
// its steps, autoplay plays its permutation, and the strategy menu leads
// back to the transfers.
func TestScenarioInTheInterface(t *testing.T) {
	t.Parallel()
	sc, err := scenario.LoadBuiltin("lost-update", "repeatable read")
	if err != nil {
		t.Fatal(err)
	}
	order, err := sc.SessionOrder(1)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, "for-update")
	transfers := opts.Config
	opts.Transfers = transfers
	opts.Config = sim.Config{Scenario: sc, ScenarioName: "lost-update", Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond}
	opts.Order = order
	opts.ScenarioSummary = "lost update"
	m := New(context.Background(), opts)
	t.Cleanup(m.Close)
	d := newTestDriver(t, m)
	d.start(120, 40)
	if s := d.screen(); !strings.Contains(s, "scenario lost-update") || !strings.Contains(s, "T1  session t1") || !strings.Contains(s, "this scenario states no outcome") {
		t.Fatalf("scenario screen:\n%s", s)
	}
	d.key("a")
	d.until("autoplay finishes", func() bool { return !m.auto.on && d.quiet() })
	var failed bool
	for _, l := range m.log.entries {
		failed = failed || strings.Contains(l.text, "could not serialize access due to concurrent update")
	}
	if !failed {
		t.Errorf("REPEATABLE READ should stop the lost update with a serialization failure; log: %+v", m.log.entries)
	}
	d.key("p")
	if m.auto.perm != 1 || !strings.Contains(m.status, "permutation 1 of 1: t1r t2r t1w t2w t1c t2c anomaly") {
		t.Errorf("p with one permutation: perm %d, status %q", m.auto.perm, m.status)
	}
	d.key("s")
	if m.mode != modeNormal || !strings.Contains(m.status, "set-up form is for the transfer strategies") {
		t.Errorf("s in a scenario: mode %v, status %q", m.mode, m.status)
	}
	d.key("m", "enter")
	d.until("back to transfers", func() bool { return m.eng != nil && !m.starting && m.cfg.Scenario == nil && d.quiet() })
	if m.cfg.Strategy.Name != "none" || len(m.live.sessions) != 2 {
		t.Errorf("after the menu: %s with %d sessions", m.cfg.Strategy.Name, len(m.live.sessions))
	}
}

// TestCoupledInTheInterface steps the coupled scenario into its distributed
// deadlock, then switches with f to the interrupted two-phase commit and
// finishes its prepared transaction with C.
func TestCoupledInTheInterface(t *testing.T) {
	t.Parallel()
	d := coupledDeadlock(t, 130, 42)
	m := d.m
	s := d.screen()
	if !strings.Contains(s, "DISTRIBUTED DEADLOCK") || !strings.Contains(s, "No server sees this cycle") || !strings.Contains(s, "T1@B ⇢ T1@A") {
		t.Fatalf("distributed deadlock screen:\n%s", s)
	}
	d.key("2")
	if !strings.Contains(m.status, "still waiting on its other connection") {
		t.Errorf("stepping T1@B while T1@A waits: status %q", m.status)
	}
	// x cannot end a standing distributed deadlock: T1@B's application
	// waits on T1@A (and x on a waiter finds its statement running). The
	// explanation said "k cancels a statement, x rolls back".
	m.status = ""
	d.key("x")
	if !strings.Contains(m.status, "still waiting on its other connection") {
		t.Errorf("x on T1@B while T1@A waits: status %q", m.status)
	}
	if s := d.screen(); strings.Contains(s, "x rolls back") || !strings.Contains(s, "k cancels a waiting connection's statement; x cannot act") {
		t.Errorf("what ends a distributed deadlock:\n%s", s)
	}
	// The footer lists the keys that act now: not c or x for T1@B.
	if lines := strings.Split(strings.TrimRight(d.screen(), "\n"), "\n"); strings.Contains(lines[len(lines)-1], "x rollback") || strings.Contains(lines[len(lines)-1], "c commit") {
		t.Errorf("the footer offers c/x while T1@B's application waits: %s", lines[len(lines)-1])
	}
	for _, name := range []string{"coupled-ordered", "coupled-lock-timeout", "coupled-2pc", "coupled-2pc-interrupted"} {
		d.key("f")
		d.until(name, func() bool { return m.cfg.ScenarioName == name && m.eng != nil && !m.starting && d.quiet() })
	}
	d.key("a")
	d.until("T2@B waits for the prepared transaction", func() bool {
		return d.quiet() && len(m.live.sessions) == 3 && m.live.sessions[2].State == sim.Waiting
	})
	if s := d.screen(); !strings.Contains(s, "prepared T1@B") || !strings.Contains(s, "in B") {
		t.Fatalf("interrupted 2PC screen:\n%s", s)
	}
	d.key("C") // autoplay is still on: it waits for T2@B
	d.until("autoplay finishes", func() bool {
		return !m.auto.on && d.quiet() && m.live.books.byDatabase != nil && m.live.sessions[2].State == sim.Committed
	})
	if s := d.screen(); !strings.Contains(s, "the databases agree") {
		t.Errorf("after COMMIT PREPARED:\n%s", s)
	}
	// The log says COMMIT PREPARED went out before the waiter it released
	// went on (a sweep saw "T2@B ✓ SELECT …" above "✓ ROLLBACK PREPARED …":
	// the waiter's answer came back before the statement's own).
	sent, went := -1, -1
	for i, l := range m.log.entries {
		switch {
		case sent < 0 && strings.HasPrefix(l.text, "… COMMIT PREPARED prepared T1@B in database B"):
			sent = i
		case went < 0 && l.who == "T2@B" && strings.HasPrefix(l.text, "✓ SELECT"):
			went = i
		}
	}
	if sent < 0 || went < 0 || sent > went {
		t.Errorf("COMMIT PREPARED logged at %d, T2@B going on at %d; want it sent first: %+v", sent, went, m.log.entries)
	}
}

// TestRunSwitchesNeverOverlap presses m enter m enter before the first
// engine is up: each start waits for the one before it to close, so no
// start is refused as "another run uses the schema", exactly one run
// claims the schema once the screen settles, and none after Close.
func TestRunSwitchesNeverOverlap(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, "for-update")
	m := New(context.Background(), opts)
	d := newTestDriver(t, m)
	d.send(tea.WindowSizeMsg{Width: 120, Height: 40})
	d.run(m.Init())
	d.key("m", "enter", "m", "down", "enter", "m", "enter")
	last := m.engID
	d.until("the last run is up", func() bool { return m.engID == last && m.eng != nil && !m.starting && d.quiet() })
	if m.fatal != "" {
		t.Fatalf("a switch failed: %s", m.fatal)
	}
	if got := m.eng.Config().Strategy.Name; got != "for-no-key-update" {
		t.Errorf("the last run's strategy is %s, not the last chosen (for-no-key-update)", got)
	}
	if n := schemaClaims(t, opts.DB, 1); n != 1 {
		t.Errorf("%d runs claim the schema once the switches settled; want 1", n)
	}
	m.Close()
	if n := schemaClaims(t, opts.DB, 0); n != 0 {
		t.Errorf("%d runs still claim the schema after Close", n)
	}
}

// schemaClaims counts the backends holding a run's claim on d's schema,
// once the count is want or 10 s have passed.
func schemaClaims(t *testing.T, d *db.Database, want int) int {
	t.Helper()
	ctx := t.Context()
	conn, err := d.Connect(ctx, db.AppName("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	// A closed connection's backend lingers a moment with its locks: the
	// count that matters is the one that settles.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// A run claims on two connections (control, observer): count runs.
		err := conn.QueryRow(ctx, `SELECT count(DISTINCT split_part(a.application_name, '/', 2)) FROM pg_locks l
			JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.classid = hashtext($1)::oid AND l.objid = 0 AND l.objsubid = 2 AND l.granted`, d.Schema()).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == want || time.Now().After(deadline) {
			return n
		}
	}
}
