package tui

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"lockstep/ledger"
	"lockstep/sim"
)

// The three sizes every screen is checked at: the classroom's, the
// laptop's, the smallest lockstep runs in.
var sizes = [][2]int{{120, 40}, {100, 30}, {80, 24}}

// recorder wraps the model to keep the last screen it drew and whether the
// model was settled then; teatest's output is a stream of changed cells.
type recorder struct {
	*Model
	w      *watch
	screen *atomic.Value // screenState
}

type screenState struct {
	text          string
	quiet         bool
	width, height int
	// progress is each session's next statement and state, e.g.
	// "T1 2 in transaction|T2 1 idle".
	progress string
	// silent are the panes that cut their text with no mark in this frame.
	silent []string
}

func (r recorder) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	r.w.see(r.Model, msg)
	_, cmd := r.Model.Update(msg)
	return r, cmd
}

func (r recorder) View() tea.View {
	r.Model.look.silent = nil
	v := r.Model.View()
	silent := r.Model.look.silent
	var progress []string
	for _, s := range r.Model.live.sessions {
		progress = append(progress, fmt.Sprintf("%s %d %s", s.Name, s.Next, s.State))
	}
	r.screen.Store(screenState{text: stripped(v.Content), quiet: r.w.quiet(r.Model), width: r.Model.width, height: r.Model.height,
		progress: strings.Join(progress, "|"), silent: silent})
	return v
}

// waitScreen waits until the settled screen satisfies ok (a guard, not a timing assertion).
func waitScreen(t *testing.T, screen *atomic.Value, what string, ok func(screenState) bool) string {
	t.Helper()
	return waitState(t, screen, what, ok).text
}

// waitState is waitScreen's whole state.
func waitState(t *testing.T, screen *atomic.Value, what string, ok func(screenState) bool) screenState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if st, loaded := screen.Load().(screenState); loaded && st.quiet && ok(st) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, _ := screen.Load().(screenState)
	t.Fatalf("the screen never settled with %s; last (%s):\n%s", what, st.progress, st.text)
	return st
}

// noSilentCuts fails the test when a pane of the screen cut its text
// without a mark saying more is there.
func noSilentCuts(t *testing.T, silent []string, screen string) {
	t.Helper()
	if len(silent) > 0 {
		t.Errorf("panes cut their text with no mark: %q\n%s", silent, screen)
	}
}

// goldenAtSizes compares the screen with state's golden files at the three
// sizes, resizing the program between them and back to 120×40.
func goldenAtSizes(t *testing.T, tm *teatest.TestModel, screen *atomic.Value, state string, ok func(string) bool) {
	t.Helper()
	for _, size := range sizes {
		tm.Send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		st := waitState(t, screen, fmt.Sprintf("%s at %dx%d", state, size[0], size[1]), func(st screenState) bool {
			return st.width == size[0] && st.height == size[1] && ok(st.text)
		})
		t.Run(fmt.Sprintf("%s/%dx%d", state, size[0], size[1]), func(t *testing.T) {
			noSilentCuts(t, st.silent, st.text)
			golden.RequireEqual(t, st.text)
		})
	}
	tm.Send(tea.WindowSizeMsg{Width: 120, Height: 40})
}

// TestScreens drives the lecture through the keys on the real server and
// compares the whole screen, at each size, with golden files (go test ./tui
// -run TestScreens -update rewrites them): idle; the first wait, with no key
// pressed but the steps' — the waiting statement whole, the blocker's FOR
// KEY SHARE row, the explanation; the deadlock as it stood before the
// server broke it, stepped back to in history; and after the break, the
// victim and the server's DETAIL. Pids, transaction ids, times and the run
// id are masked.
func TestScreens(t *testing.T) {
	m := New(context.Background(), testOptions(t, "for-update"))
	defer m.Close()
	screen := &atomic.Value{}
	tm := teatest.NewTestModel(t, recorder{Model: m, w: &watch{}, screen: screen}, teatest.WithInitialTermSize(120, 40))
	// play sends each key once the previous step has settled: the server
	// has finished the statement or says it waits.
	play := func(keys string, want ...string) {
		t.Helper()
		for i, k := range strings.Split(keys, " ") {
			tm.Send(keyMsg(k))
			waitScreen(t, screen, want[i], func(st screenState) bool { return st.progress == want[i] })
		}
	}
	waitScreen(t, screen, "the idle screen", func(st screenState) bool {
		return st.progress == "T1 0 idle|T2 0 idle" && strings.Contains(st.text, "ready") && strings.Contains(st.text, "✓ books kept")
	})
	goldenAtSizes(t, tm, screen, "idle", func(s string) bool { return strings.Contains(s, "No session waits") })

	// T1 waits for T2: T2's foreign-key check took FOR KEY SHARE on
	// account 1, and T1 asks for FOR UPDATE.
	play("1 2 1 2 1 2 1 2 1",
		"T1 1 in transaction|T2 0 idle",
		"T1 1 in transaction|T2 1 in transaction",
		"T1 2 in transaction|T2 1 in transaction",
		"T1 2 in transaction|T2 2 in transaction",
		"T1 3 in transaction|T2 2 in transaction",
		"T1 3 in transaction|T2 3 in transaction",
		"T1 4 in transaction|T2 3 in transaction",
		"T1 4 in transaction|T2 4 in transaction",
		"T1 4 waiting|T2 4 in transaction")
	goldenAtSizes(t, tm, screen, "first-wait", func(s string) bool {
		return strings.Contains(s, "Why T1 waits for T2") && strings.Contains(s, "FOR KEY SHARE     ◀ blocks T1") &&
			strings.Contains(s, "SELECT balance FROM accounts WHERE id = 1 FOR UPDATE")
	})

	// T2 closes the cycle; with the shorter deadlock_timeout it is the victim.
	tm.Send(keyMsg("2"))
	waitScreen(t, screen, "the deadlock broken", func(st screenState) bool {
		return st.progress == "T1 5 in transaction|T2 4 rolled back" && strings.Contains(st.text, "T2 was the victim")
	})
	// Whether a poll saw the cycle stand before the server broke it is a
	// race: this moment's golden screens come from a recording
	// (TestRecordedScreens); here, what the server did.
	s := waitScreen(t, screen, "the verdict", func(st screenState) bool { return strings.Contains(st.text, "DETAIL: Process N (T2)") })
	if !strings.Contains(leftPanes(s), "T2's statement failed with 40P01 (deadlock detected) and its transaction was rolled back") {
		t.Errorf("the broken deadlock:\n%s", s)
	}

	// Back in history to the moment the cycle closed.
	tm.Send(keyMsg("h"))
	at := historyAt(t, screen, func(int) bool { return true })
	for !strings.Contains(headerOf(screen.Load().(screenState).text), "⚠ deadlock: T1 → T2 → T1") && at > 1 {
		tm.Send(keyMsg("left"))
		at = historyAt(t, screen, func(n int) bool { return n == at-1 })
	}
	waitScreen(t, screen, "the deadlock in history", func(st screenState) bool {
		s := st.text
		return strings.Contains(s, "HISTORY") && strings.Contains(s, "⚠ deadlock: T1 → T2 → T1") && strings.Contains(leftPanes(s), "likely victim T2")
	})
	tm.Send(keyMsg("esc"))
	tm.Send(keyMsg("q"))
	waitScreen(t, screen, "the quit question", func(st screenState) bool { return strings.Contains(st.text, "quit and roll back?") })
	tm.Send(keyMsg("y"))
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// driverGoldens compares the driver's model's screen at the three sizes.
func driverGoldens(t *testing.T, d *driver, state string) {
	t.Helper()
	for _, size := range sizes {
		d.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		d.m.look.silent = nil
		text := d.screen()
		silent := d.m.look.silent
		t.Run(fmt.Sprintf("%s/%dx%d", state, size[0], size[1]), func(t *testing.T) {
			noSilentCuts(t, silent, text)
			golden.RequireEqual(t, text)
		})
	}
	d.send(tea.WindowSizeMsg{Width: 120, Height: 40})
}

// TestRingScreens steps nine sessions into a ring of waits under the atomic
// strategy; T9, with the shortest deadlock_timeout, closes the ring and is
// the victim. The ring as it stood (in history) and after the break.
func TestRingScreens(t *testing.T) {
	opts := testOptions(t, "atomic")
	opts.Config.Sessions, opts.Config.Direction = 9, sim.Ring
	opts.Config.Setup = ledger.Setup{Accounts: 9, Balance: ledger.DefaultSetup().Balance}
	opts.Config.Init = map[string][]string{}
	for i := 1; i <= 8; i++ {
		opts.Config.Init[fmt.Sprintf("T%d", i)] = []string{"SET deadlock_timeout = '1min'"}
	}
	// 1 s, the server's default: time for the observer to see the ring
	// stand before T9's check breaks it.
	opts.Config.Init["T9"] = []string{"SET deadlock_timeout = '1s'"}
	m := New(context.Background(), opts)
	t.Cleanup(m.Close)
	d := newTestDriver(t, m)
	d.start(120, 40)
	// BEGIN, the transfer, two entries, the from account: all go through.
	for range 5 {
		for i := range 9 {
			d.step(fmt.Sprint(i+1), i)
		}
	}
	// Each asks for the next one's account; T9 asks for T1's.
	for i := range 9 {
		d.step(fmt.Sprint(i+1), i)
	}
	d.until("T9 is the victim", func() bool { return victim(m) == "T9" && d.quiet() })
	if s := d.screen(); !strings.Contains(s, "T9 was the victim") {
		t.Errorf("the broken ring:\n%s", s)
	}
	d.key("h")
	for !strings.HasPrefix(m.shown().what, "⚠ deadlock") && m.tl.pos > 0 {
		d.key("left")
	}
	s := d.screen()
	for i := 1; i <= 9; i++ {
		// Every edge of the ring, with its holder's lock.
		edge := fmt.Sprintf("• T%d ──▶ T%d: T%d holds FOR NO KEY UPDATE on accounts id=%d", i, i%9+1, i%9+1, i%9+1)
		if !strings.Contains(s, edge) {
			t.Errorf("the ring in history lacks %q:\n%s", edge, s)
		}
	}
	if !strings.Contains(headerOf(s), "⚠ deadlock: T1 → T2 → T3 → T4 → T5 → T6 → T7 → T8 → T9 → T1") || !strings.Contains(leftPanes(s), "likely victim T9") {
		t.Fatalf("the ring in history:\n%s", s)
	}
	// At 100×30 every session of the nine keeps its line.
	d.send(tea.WindowSizeMsg{Width: 100, Height: 30})
	s = d.screen()
	for i := 1; i <= 9; i++ {
		if !strings.Contains(s, fmt.Sprintf("T%d    ⏳ waits for T%d", i, i%9+1)) {
			t.Errorf("at 100×30 T%d has no line of its own:\n%s", i, s)
		}
	}
}

// TestTypedSelectScreens types a SELECT in T1: its rows show in T1's column.
func TestTypedSelectScreens(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "for-update")
	d.key("e")
	for _, r := range "SELECT id, owner, balance FROM accounts ORDER BY id" {
		d.key(string(r))
	}
	d.key("enter")
	d.until("the rows", func() bool { return strings.Contains(d.screen(), "→ 2 rows") && d.quiet() })
	if s := d.screen(); !strings.Contains(s, "1 | alice | 100.00") || !strings.Contains(s, "2 | bob | 100.00") {
		t.Fatalf("typed SELECT's rows:\n%s", s)
	}
	driverGoldens(t, d, "typed-select")
}

// TestCoupledScreens steps the coupled scenario into its distributed
// deadlock: every edge, the application's included, with its holder.
func TestCoupledScreens(t *testing.T) {
	t.Parallel()
	d := coupledDeadlock(t, 120, 40)
	if s := d.screen(); !strings.Contains(s, "T1@A ──▶ T2@A ──▶ T2@B ──▶ T1@B ──▶ T1@A") {
		t.Fatalf("the cycle through both databases:\n%s", s)
	}
	driverGoldens(t, d, "coupled")
}

// historyAt waits until the screen shows a moment of history whose number
// ok accepts, and returns it.
func historyAt(t *testing.T, screen *atomic.Value, ok func(int) bool) int {
	t.Helper()
	n := 0
	waitScreen(t, screen, "a moment of history", func(st screenState) bool {
		i := strings.Index(st.text, "HISTORY ")
		if i < 0 {
			return false
		}
		_, err := fmt.Sscanf(st.text[i:], "HISTORY %d/", &n)
		return err == nil && ok(n)
	})
	return n
}

// headerOf is the screen's second line: in history, the moment shown.
func headerOf(screen string) string {
	lines := strings.SplitN(screen, "\n", 3)
	if len(lines) < 2 {
		return ""
	}
	return lines[1]
}

// leftPanes is the text of the screen's left-hand panes, their lines joined
// with single spaces: words the pane wrapped read as one sentence again.
func leftPanes(screen string) string { return paneText(screen, 1) }

// rightPanes is the same for the panes on the right of the grid layout.
func rightPanes(screen string) string { return paneText(screen, 3) }

// paneText joins the words of field col of the screen's lines split at "│".
func paneText(screen string, col int) string {
	var words []string
	for _, l := range strings.Split(screen, "\n") {
		if parts := strings.Split(l, "│"); len(parts) > col+1 {
			words = append(words, strings.Fields(parts[col])...)
		}
	}
	return strings.Join(words, " ")
}
