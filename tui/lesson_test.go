package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/dbtest"
	"lockstep/learn"
	"lockstep/sim"
)

// lessonDriver opens lesson n of the course at width×height, its progress
// in a directory of the test's own.
func lessonDriver(t *testing.T, n, width, height int) (*driver, *learn.Progress) {
	t.Helper()
	return openLesson(t, n, width, height, 50*time.Millisecond)
}

// lessonDriverB is lesson 1 at 120×40 for a benchmark, polling as the
// interface does by default.
func lessonDriverB(b *testing.B) (*driver, *learn.Progress) {
	return openLesson(b, 1, 120, 40, sim.DefaultPoll)
}

func openLesson(tb testing.TB, n, width, height int, poll time.Duration) (*driver, *learn.Progress) {
	all, err := learn.Builtins()
	if err != nil {
		tb.Fatal(err)
	}
	p, _, err := learn.LoadProgress(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	d := dbtest.Schema(tb)
	lo := &LessonOptions{Lesson: all[n-1], Env: learn.Env{DB: d, Ledger: dbtest.Ledger(tb), Poll: poll},
		Progress: p, Of: len(all),
		Next: func(l *learn.Lesson) *learn.Lesson {
			if l.Number < len(all) {
				return all[l.Number]
			}
			return nil
		}}
	m := New(context.Background(), Options{DB: d, Server: "test PostgreSQL", Volatile: masked{}, Lesson: lo})
	tb.Cleanup(m.Close)
	dr := newTestDriver(tb, m)
	dr.send(tea.WindowSizeMsg{Width: width, Height: height})
	dr.run(m.Init())
	dr.until("the lesson's first part is ready", func() bool { return m.lesson.ready && dr.quiet() })
	return dr, p
}

// settled says the lesson's last action has settled and the screen shows it.
func (d *driver) lessonSettled() bool {
	ll := d.m.lesson
	return ll.judge == nil && !ll.busy && (ll.ready || ll.pos == len(ll.flat)) && d.quiet()
}

// lessonNext takes the lesson's next action with space, or — when it
// asks a question — answers it with answer (from 1), and waits until it
// has settled.
func (d *driver) lessonNext(answer int) {
	d.t.Helper()
	ll := d.m.lesson
	pos := ll.pos
	at := ll.flat[pos]
	if at.Part != ll.part {
		d.key("space")
		d.until("the next part starts", func() bool { return d.m.lesson.ready && d.m.lesson.part == at.Part && d.lessonSettled() })
	}
	if at.Action.Question != nil {
		d.until("the question is asked", func() bool { return d.m.lesson.asking })
		d.key(fmt.Sprint(answer))
	} else {
		d.key("space")
	}
	d.until("the step settles", func() bool { return d.m.lesson.pos > pos && d.lessonSettled() })
}

func TestLessonInTheInterface(t *testing.T) {
	d, p := lessonDriver(t, 1, 120, 40)
	m := d.m
	if s := d.screen(); !strings.Contains(s, "Lesson 1 of 12 · The lost update") || !strings.Contains(s, "Two clerks each move 10.00") {
		t.Fatalf("the lesson's start:\n%s", s)
	}
	// A key that steps by hand says why not.
	d.key("c")
	if !strings.Contains(m.status, "the lesson steps the sessions") {
		t.Errorf("c in a lesson: %q", m.status)
	}
	// To the first question: what T1's SELECT reads.
	for m.lesson.flat[m.lesson.pos].Action.Question == nil {
		d.lessonNext(0)
	}
	s := d.screen()
	if !strings.Contains(s, "What does T1's SELECT read?") || !strings.Contains(s, "1 T1 reads 100.00") || !strings.Contains(s, "1–3 answer") {
		t.Fatalf("the question as a prompt:\n%s", s)
	}
	d.key("space")
	if !strings.Contains(m.status, "answer first: 1–3") {
		t.Errorf("space before an answer: %q", m.status)
	}
	d.key("5")
	if !strings.Contains(m.status, "the question has 3 options") {
		t.Errorf("5 of 3 options: %q", m.status)
	}
	d.lessonNext(1) // right: T1 reads 100.00
	s = d.screen()
	if !strings.Contains(s, "✓ Right: T1 reads 100.00.") || !strings.Contains(s, "returning balance = 100.00") || !strings.Contains(s, "Why: Nothing has changed") {
		t.Fatalf("a right answer marked, with what the server did and why:\n%s", s)
	}
	d.lessonNext(2) // wrong: T2 reads 100.00, not 90.00
	s = d.screen()
	if !strings.Contains(s, "✗ Not so: you said 2 (T2 reads 90.00); the server: T2 reads 100.00.") {
		t.Fatalf("a wrong answer marked:\n%s", s)
	}
	lp := p.Lessons[m.lesson.l.Key()]
	if right, asked := lp.Score(); right != 1 || asked != 2 {
		t.Fatalf("progress: %d/%d right", right, asked)
	}
	// The progress is on disk: a new process reads it back.
	back, _, err := learn.LoadProgress(p.Path()[:len(p.Path())-len("/learn.json")])
	if err != nil {
		t.Fatal(err)
	}
	if right, asked := back.Lessons[m.lesson.l.Key()].Score(); right != 1 || asked != 2 {
		t.Fatalf("progress read back: %d/%d", right, asked)
	}
	// ← goes back through the lesson's steps, → forward, esc to now.
	d.key("left")
	if s := d.screen(); m.lesson.hist < 0 || !strings.Contains(s, "back at step") || !strings.Contains(s, "◀ this step: T1 reads alice's balance") {
		t.Fatalf("← in a lesson:\n%s", s)
	}
	d.key("left", "left")
	d.key("right")
	d.key("esc")
	if m.lesson.hist >= 0 || m.mode != modeNormal {
		t.Fatal("esc did not return to now")
	}
	// The rest of the lesson, every answer the server's.
	for m.lesson.pos < len(m.lesson.flat) {
		at := m.lesson.flat[m.lesson.pos]
		answer := 1
		if q := at.Action.Question; q != nil {
			answer = q.Expect
		}
		d.lessonNext(answer)
	}
	if s := d.screen(); !strings.Contains(s, "✓ Lesson done. 5 of 6 questions right the first time. Next: n starts the next") || !strings.Contains(oneLine(s), "n starts the next lesson") {
		t.Fatalf("the lesson's end:\n%s", s)
	}
	if !p.Lessons[m.lesson.l.Key()].Done {
		t.Fatal("the lesson is not marked done")
	}
	d.key("n")
	d.until("lesson 2 starts", func() bool { return m.lesson.l.Number == 2 && m.lesson.ready && d.quiet() })
	if s := d.screen(); !strings.Contains(s, "Lesson 2 of 12") {
		t.Fatalf("n:\n%s", s)
	}
}

// TestLessonScreens takes lesson 3 to its deadlock at each size, and
// checks at every step that the narration and the question are whole and
// nothing is cut without a mark.
func TestLessonScreens(t *testing.T) {
	for _, size := range [][2]int{{120, 40}, {100, 30}, {80, 24}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			d, _ := lessonDriver(t, 3, size[0], size[1])
			m := d.m
			for m.lesson.pos < len(m.lesson.flat) {
				at := m.lesson.flat[m.lesson.pos]
				m.look.silent = nil
				s := d.screen()
				if q := at.Action.Question; q != nil && at.Part == m.lesson.part {
					d.until("the question is asked", func() bool { return m.lesson.asking })
					s = d.screen()
					for _, want := range append([]string{q.Text}, optionTexts(q)...) {
						if !strings.Contains(oneLine(s), want) {
							t.Fatalf("step %d: %q is not on screen whole:\n%s", m.lesson.pos+1, want, s)
						}
					}
				}
				if len(m.look.silent) > 0 {
					t.Fatalf("step %d: panes cut without a mark: %v\n%s", m.lesson.pos+1, m.look.silent, s)
				}
				if got := len(strings.Split(s, "\n")); got != size[1] {
					t.Fatalf("step %d: %d lines on a screen of %d:\n%s", m.lesson.pos+1, got, size[1], s)
				}
				answer := 1
				if q := at.Action.Question; q != nil {
					answer = q.Expect
				}
				d.lessonNext(answer)
			}
			if s := d.screen(); !strings.Contains(s, "Lesson done") {
				t.Fatalf("the end:\n%s", s)
			}
		})
	}
}

func optionTexts(q *learn.Question) []string {
	var out []string
	for _, o := range q.Options {
		out = append(out, o.Text)
	}
	return out
}

// TestLessonWithholdsTheAnswer: a scenario's summary says what the server
// will do; while a question of its part is still to be answered, neither
// the header nor the part's line shows it. Once answered, it may.
func TestLessonWithholdsTheAnswer(t *testing.T) {
	d, _ := lessonDriver(t, 10, 120, 40)
	m := d.m
	const summary = "the second worker gets 55P03 at once"
	for {
		at := m.lesson.flat[m.lesson.pos]
		if at.Part == 1 && at.Action.Question != nil {
			break
		}
		d.lessonNext(1)
		if m.lesson.part == 1 && !strings.Contains(m.opts.ScenarioSummary, summary) {
			t.Fatalf("part 2 runs another scenario: %q", m.opts.ScenarioSummary)
		}
	}
	d.until("the question is asked", func() bool { return m.lesson.asking })
	if s := d.screen(); strings.Contains(s, summary) || !strings.Contains(s, "What happens to worker 2's SELECT") {
		t.Fatalf("the question with its answer given away:\n%s", s)
	}
	d.key("3")
	d.until("the answer settles", func() bool { return !m.lesson.asking && m.lesson.pos > 0 && d.lessonSettled() })
	if s := d.screen(); !strings.Contains(s, summary) {
		t.Errorf("the part's last question answered, its summary should be back:\n%s", s)
	}
}

// TestLessonLineOfSeveralSteps: a line that steps several sessions ("step
// T1 T2: Each session opens its transaction.") is not marked done when
// only its first statement has run.
func TestLessonLineOfSeveralSteps(t *testing.T) {
	d, _ := lessonDriver(t, 1, 120, 40)
	m := d.m
	const say = "Each session opens its transaction."
	for m.lesson.flat[m.lesson.pos].Action.Say != say {
		d.lessonNext(1)
	}
	d.lessonNext(1)
	s := d.screen()
	if strings.Contains(s, "✓ "+say) || !strings.Contains(s, "T1's part ran; T2's is next: "+say) {
		t.Fatalf("the line's first statement ran, the sentence is not done:\n%s", s)
	}
	d.lessonNext(1)
	if s := d.screen(); !strings.Contains(s, "✓ "+say) {
		t.Errorf("the line's last statement ran, its sentence is done:\n%s", s)
	}
}
