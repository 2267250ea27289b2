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
)

// recorder wraps the model to keep the last screen it drew and whether the
// model was settled then; teatest's output is a stream of changed cells.
type recorder struct {
	*Model
	w      *watch
	screen *atomic.Value // screenState
}

type screenState struct {
	text     string
	quiet    bool
	progress string // each session's next statement and state, e.g. "T1 2 in transaction|T2 1 idle"
}

func (r recorder) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	r.w.see(r.Model, msg)
	_, cmd := r.Model.Update(msg)
	return r, cmd
}

func (r recorder) View() tea.View {
	v := r.Model.View()
	var progress []string
	for _, s := range r.Model.sessions.sessions {
		progress = append(progress, fmt.Sprintf("%s %d %s", s.Name, s.Next, s.State))
	}
	r.screen.Store(screenState{text: stripped(v.Content), quiet: r.w.quiet(r.Model), progress: strings.Join(progress, "|")})
	return v
}

// waitScreen waits until the settled screen satisfies ok (a guard, not a timing assertion).
func waitScreen(t *testing.T, screen *atomic.Value, what string, ok func(screenState) bool) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if st, loaded := screen.Load().(screenState); loaded && st.quiet && ok(st) {
			return st.text
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, _ := screen.Load().(screenState)
	t.Fatalf("the screen never settled with %s; last (%s):\n%s", what, st.progress, st.text)
	return ""
}

// TestScreens drives the lecture through the keys on the real server and
// compares the whole 120×40 screen in three states with golden files
// (go test ./tui -run TestScreens -update rewrites them). Pids, transaction
// ids, times and the run id are masked.
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
	idle := waitScreen(t, screen, "the idle screen", func(st screenState) bool {
		return st.progress == "T1 0 idle|T2 0 idle" && strings.Contains(st.text, "ready") && strings.Contains(st.text, "✓ total 200.00")
	})
	t.Run("idle", func(t *testing.T) { golden.RequireEqual(t, idle) })

	// T2 waits for T1: T1 holds FOR UPDATE on account 1 when T2's
	// foreign-key check asks for KEY SHARE on it.
	play("1 2 1 1 1 1",
		"T1 1 in transaction|T2 0 idle",
		"T1 1 in transaction|T2 1 in transaction",
		"T1 2 in transaction|T2 1 in transaction",
		"T1 3 in transaction|T2 1 in transaction",
		"T1 4 in transaction|T2 1 in transaction",
		"T1 5 in transaction|T2 1 in transaction")
	play("2", "T1 5 in transaction|T2 1 waiting")
	waiting := waitScreen(t, screen, "T2 waiting", func(st screenState) bool {
		return strings.Contains(lastLogLine(st.text), "T2 ⏳ waits for T1") && strings.Contains(st.text, "T2 ──ShareLock on T1's transaction──▶ T1")
	})
	t.Run("waiting", func(t *testing.T) { golden.RequireEqual(t, waiting) })

	// Reset, then the lecture's order; T2 closes the cycle and, with the
	// shorter deadlock_timeout, is the victim.
	tm.Send(keyMsg("r"))
	waitScreen(t, screen, "the reset", func(st screenState) bool {
		return st.progress == "T1 0 idle|T2 0 idle" && strings.Contains(st.text, "reset: sessions rolled back")
	})
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
	tm.Send(keyMsg("2"))
	after := waitScreen(t, screen, "the deadlock broken", func(st screenState) bool {
		return st.progress == "T1 5 in transaction|T2 4 rolled back" && strings.Contains(st.text, "T2 was the victim") &&
			strings.Contains(lastLogLine(st.text), "T1 ✓ SELECT bal")
	})
	t.Run("deadlock", func(t *testing.T) { golden.RequireEqual(t, after) })

	tm.Send(keyMsg("q"))
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// lastLogLine is the newest line of the log pane (masked times mark it).
func lastLogLine(screen string) string {
	last := ""
	for _, l := range strings.Split(screen, "\n") {
		if i := strings.Index(l, "--:--:--.---"); i >= 0 {
			last = l[i:]
		}
	}
	return last
}
