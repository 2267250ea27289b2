package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"

	"lockstep/locks"
	"lockstep/sim"
)

// fakeClass is a class as serve would hold it, fixed.
type fakeClass struct {
	students []ClassStudent
	screens  map[string][3]any
	watched  map[string]int
	pushed   []string
	said     []string
	current  string
	changed  chan struct{}
}

func (f *fakeClass) Students() []ClassStudent { return f.students }
func (f *fakeClass) Screen(name string) (string, int, int, bool) {
	s, ok := f.screens[name]
	if !ok {
		return "", 0, 0, false
	}
	return s[0].(string), s[1].(int), s[2].(int), true
}
func (f *fakeClass) Watch(name string, on bool) {
	if on {
		f.watched[name]++
	} else {
		f.watched[name]--
	}
}
func (f *fakeClass) Runs() []ClassRun {
	return []ClassRun{{"for-update", "transfers: SELECT … FOR UPDATE after the inserts"}, {"fk-deadlock", "the lecture's deadlock"},
		{"lost-update", "lost update (P4): both read a value, both write it"}}
}
func (f *fakeClass) Current() string { return f.current }
func (f *fakeClass) Push(run string) (int, error) {
	f.pushed = append(f.pushed, run)
	f.current = run
	return 2, nil
}
func (f *fakeClass) Broadcast(text string) int { f.said = append(f.said, text); return 2 }
func (f *fakeClass) Changed() <-chan struct{}  { return f.changed }
func (f *fakeClass) Describe() string {
	return "students: ssh -p 2222 NAME@localhost · class code k7pq-m3xt"
}

func newFakeClass() *fakeClass {
	at := time.Date(2026, 3, 2, 10, 31, 0, 0, time.UTC)
	screen := make([]string, 40)
	for i := range screen {
		screen[i] = fmt.Sprintf("line %02d of ada's screen %s", i+1, strings.Repeat("·", 100))
	}
	return &fakeClass{current: "for-update", watched: map[string]int{}, changed: make(chan struct{}),
		screens: map[string][3]any{"ada": {strings.Join(screen, "\n"), 120, 40}},
		students: []ClassStudent{
			{Name: "ada", Connected: true, Since: at, From: "10.0.0.5:51234",
				Run: Summary{Run: "for-update", State: RunDeadlock, Detail: "T1 → T2 → T1 stands: the server will break it", Done: 8, Of: 18}},
			{Name: "grace_hopper_the_admiral", Connected: true, Since: at.Add(time.Minute), From: "10.0.0.6:40000",
				Run: Summary{Run: "for-update", State: RunWaiting, Detail: "T1 waits for T2", Done: 8, Of: 18}},
			{Name: "linus", Connected: false, Since: at.Add(9 * time.Minute), From: "10.0.0.7:40000",
				Run:      Summary{Run: "lost-update", State: RunDone, Detail: "every session has finished", Done: 6, Of: 6},
				Finished: []string{"for-update", "lost-update"}},
			{Name: "barbara", Connected: false, Since: at.Add(12 * time.Minute), From: "10.0.0.8:40000",
				Run: Summary{Run: "ddl-queue-idle-timeout", State: RunStepping, Detail: "2 of 4 statements run", Done: 2, Of: 4}},
		}}
}

func tkey(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	}
	return tea.KeyPressMsg{Code: rune(s[0]), Text: s}
}

// teacherScreen renders the teacher's screen at w×h and fails on a pane
// that cut its text with no mark.
func teacherScreen(t *testing.T, m *teacherModel, w, h int) string {
	t.Helper()
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.look.silent = nil
	s := stripped(m.View().Content)
	noSilentCuts(t, m.look.silent, s)
	if n := strings.Count(s, "\n") + 1; n != h {
		t.Errorf("%d×%d: the screen has %d lines", w, h, n)
	}
	return s
}

// TestTeacherScreens draws the class view, a watched student's screen and
// the push list at the three sizes: every student's name, run and state
// are on the class view whole (a long name wraps the state under it), a
// screen taller and wider than the teacher's is marked where it is cut,
// and the keys the teacher presses while watching are refused as the
// student's.
func TestTeacherScreens(t *testing.T) {
	for _, size := range sizes {
		w, h := size[0], size[1]
		t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
			f := newFakeClass()
			m := NewTeacher(context.Background(), TeacherOptions{Class: f}).(*teacherModel)
			s := teacherScreen(t, m, w, h)
			for _, want := range []string{"ada", "grace_hopper_the_admiral", "linus", "barbara", "⟳ deadlock", "⏳ waiting", "✓ done",
				"↺ rolled back", "○ left 10:40", "class code k7pq-m3xt", "enter watch"} {
				if !strings.Contains(s, want) {
					t.Errorf("the class view lacks %q:\n%s", want, s)
				}
			}
			golden.RequireEqual(t, []byte(s))

			m.Update(tkey("enter"))
			s = teacherScreen(t, m, w, h)
			if f.watched["ada"] != 1 || !strings.Contains(s, "watching ada") || !strings.Contains(s, "line 01 of ada's screen") {
				t.Errorf("enter does not watch ada (watched %v):\n%s", f.watched, s)
			}
			if h < 44 && !strings.Contains(s, "more lines") {
				t.Errorf("a 40-line screen in %d lines is cut without a mark:\n%s", h, s)
			}
			if w < 120 && (!strings.Contains(s, "·…\n") || !strings.Contains(s, "wider than yours")) {
				t.Errorf("a 120-wide screen in %d columns is cut without a mark:\n%s", w, s)
			}
			m.Update(tkey("1"))
			if s = teacherScreen(t, m, w, h); !strings.Contains(s, "read-only") {
				t.Errorf("a key while watching is not refused as the student's:\n%s", s)
			}
			m.Update(tkey("esc"))
			if f.watched["ada"] != 0 {
				t.Errorf("esc does not stop watching: %v", f.watched)
			}
			// Esc and enter in one packet arrive as alt+enter: back, then
			// watch again.
			m.Update(tea.KeyPressMsg{Code: tea.KeyEnter, Mod: tea.ModAlt})
			if f.watched["ada"] != 1 {
				t.Errorf("alt+enter (esc, enter) does not watch again: %v", f.watched)
			}
			m.Update(tkey("esc"))

			m.Update(tkey("p"))
			s = teacherScreen(t, m, w, h)
			if !strings.Contains(s, "Push a run") || !strings.Contains(s, "lost-update") {
				t.Errorf("p does not list the runs:\n%s", s)
			}
			m.Update(tkey("down"))
			m.Update(tkey("enter"))
			if s = teacherScreen(t, m, w, h); !strings.Contains(s, "Start fk-deadlock for every student") {
				t.Errorf("the push does not ask first:\n%s", s)
			}
			m.Update(tkey("y"))
			if len(f.pushed) != 1 || f.pushed[0] != "fk-deadlock" {
				t.Errorf("pushed %v", f.pushed)
			}
			m.Update(tkey("b"))
			for _, r := range "look at the locks" {
				m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
			}
			m.Update(tkey("enter"))
			if len(f.said) != 1 || f.said[0] != "look at the locks" {
				t.Errorf("broadcast %v", f.said)
			}
		})
	}
}

// TestSummaryStates: where a run stands, as the class view shows it, from
// the frame the interface shows — and a deadlock the server broke before a
// poll saw it stand (no cycle) is still a deadlock, whose victim is named.
func TestSummaryStates(t *testing.T) {
	m := New(context.Background(), Options{})
	if s := m.Summary(); s.State != RunStarting {
		t.Errorf("a model whose run has not started: %+v", s)
	}
	m.starting = false
	session := func(name string, state sim.State, next, of int) sim.SessionInfo {
		return sim.SessionInfo{Name: name, State: state, Next: next, Statements: make([]string, of)}
	}
	m.live.sessions = []sim.SessionInfo{session("T1", sim.InTransaction, 2, 9), session("T2", sim.Idle, 0, 9)}
	if s := m.Summary(); s.State != RunStepping || s.Done != 2 || s.Of != 18 || !s.Settled {
		t.Errorf("stepping: %+v", s)
	}
	w := session("T1", sim.Waiting, 4, 9)
	w.BlockedBy = []string{"T2"}
	m.live.sessions[0] = w
	if s := m.Summary(); s.State != RunWaiting || s.Detail != "T1 waits for T2" {
		t.Errorf("waiting: %+v", s)
	}
	m.live.cycle = &locks.Cycle{Sessions: []string{"T1", "T2"}}
	if s := m.Summary(); s.State != RunDeadlock || !strings.Contains(s.Detail, "T1 → T2 → T1 stands") {
		t.Errorf("a standing deadlock: %+v", s)
	}
	m.live.cycle, m.live.broken = nil, &brokenDeadlock{victim: "T2"}
	if s := m.Summary(); s.State != RunDeadlock || s.Detail != "the server broke a deadlock: T2 rolled back" {
		t.Errorf("a deadlock broken before a poll saw it: %+v", s)
	}
	// A scenario's victim stays in its aborted transaction: it did not
	// roll back.
	m.live.sessions = []sim.SessionInfo{session("T1", sim.InTransaction, 8, 9), session("T2", sim.Aborted, 3, 9)}
	if s := m.Summary(); s.Detail != "the server broke a deadlock: T2 was the victim: its transaction is aborted, open until a ROLLBACK" {
		t.Errorf("a scenario's deadlock broken: %+v", s)
	}
	m.live.broken = nil
	m.live.sessions = []sim.SessionInfo{session("T1", sim.Committed, 9, 9), session("T2", sim.Aborted, 3, 9)}
	m.live.sessions[1].LastErr, m.live.sessions[1].ErrAt = &sim.ServerMessage{SQLState: "40P01"}, 2
	m.live.sessions[1].Finished = true
	if s := m.Summary(); s.State != RunDone || s.Detail != "every session's script is over; T2's transaction is aborted (40P01) and still open, until a ROLLBACK" {
		t.Errorf("done with an aborted transaction open: %+v", s)
	}
	m.live.sessions = []sim.SessionInfo{session("T1", sim.Committed, 9, 9), session("T2", sim.RolledBack, 9, 9)}
	if s := m.Summary(); s.State != RunDone || s.Detail != "every session has finished" {
		t.Errorf("done: %+v", s)
	}
	// The deadlock's victim finished too, rolled back: done says so.
	m.live.sessions[1].LastErr = &sim.ServerMessage{SQLState: "40P01"}
	if s := m.Summary(); s.State != RunDone || !strings.Contains(s.Detail, "rolled back after an error: T2 (40P01)") {
		t.Errorf("done with a victim: %+v", s)
	}
	m.live.sessions[0].State = sim.Running
	if s := m.Summary(); s.Settled {
		t.Errorf("a statement in flight is not settled: %+v", s)
	}
	m.fatal = "permission denied for database x"
	if s := m.Summary(); s.State != RunFailed || s.Detail != m.fatal {
		t.Errorf("failed: %+v", s)
	}
}

// TestTeacherLeftStudentDetail: the selected student who left mid-run is
// said to be rolled back in the pane below too, not still stepping.
func TestTeacherLeftStudentDetail(t *testing.T) {
	m := NewTeacher(context.Background(), TeacherOptions{Class: newFakeClass()}).(*teacherModel)
	teacherScreen(t, m, 120, 40)
	for range 3 {
		m.Update(tkey("down"))
	}
	s := teacherScreen(t, m, 120, 40)
	if !strings.Contains(s, "barbara · enter watches") || !strings.Contains(s, "ddl-queue-idle-timeout: ↺ rolled back when they left; it was ▶ stepping") {
		t.Errorf("the detail of a student who left mid-run:\n%s", s)
	}
}

// TestAutoplayEndSaysWhatIsOpen: autoplay played to the end of
// opposite-deadlock leaves its victim T2 in its aborted transaction (the
// scenario, like the isolation tester, keeps it open): the status must not
// say every session has finished, and the summary must not say T2 rolled
// back.
func TestAutoplayEndSaysWhatIsOpen(t *testing.T) {
	t.Parallel()
	opts := scenarioStand("opposite-deadlock")(t)
	opts.Config.Poll = 50 * time.Millisecond
	m := New(context.Background(), opts)
	t.Cleanup(m.Close)
	d := newTestDriver(t, m)
	d.start(100, 30)
	d.key("+", "+", "+", "a")
	d.until("autoplay stops", func() bool { return !m.auto.on && d.quiet() })
	if strings.Contains(m.status, "autoplay paused") {
		// On the deadlock: once the server has broken it, a resumes.
		d.until("the server breaks the deadlock", func() bool { return victim(m) != "" && d.quiet() })
		d.key("a")
		d.until("autoplay ends", func() bool { return !m.auto.on && d.quiet() })
	}
	if m.live.sessions[1].State != sim.Aborted {
		t.Fatalf("T2 is %s after autoplay, want its aborted transaction", m.live.sessions[1].State)
	}
	want := "autoplay: every session's script is over; T2's transaction is aborted (40P01) and still open, until a ROLLBACK"
	if m.status != want {
		t.Errorf("status %q, want %q", m.status, want)
	}
	if s := m.Summary(); s.State != RunDone || s.Detail != strings.TrimPrefix(want, "autoplay: ") {
		t.Errorf("summary %+v", s)
	}
}
