package learn

import (
	"strings"
	"testing"
)

func TestBuiltinsParse(t *testing.T) {
	all, err := Builtins()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no built-in lessons")
	}
	for i, l := range all {
		if l.Number != i+1 || l.Title == "" || l.Questions() == 0 {
			t.Errorf("lesson %s: number %d, title %q, %d questions", l.Name, l.Number, l.Title, l.Questions())
		}
		for _, p := range l.Parts {
			for _, a := range p.Actions {
				if a.Say == "" && a.Kind != Bench && a.Kind != SQL {
					t.Errorf("%s:%d: %s %s has no narration", l.Name, a.Line, a.Kind, a.Session)
				}
			}
		}
	}
}

func TestParseLesson(t *testing.T) {
	src := `# a comment
lesson: Two sessions
minutes: 7
about: what it shows
intro: The first line,
  and its continuation.
run: strategy for-update, sessions 3, direction opposite
step T1 T2: both begin
step T3: T3 begins
  and the narration goes on.
  ask: What does T3 do?
  1. T3 goes on
  2. T3 waits for T1 and T2 (the note)
  3. deadlock, victim T2
  4. T3 fails with 40p01
  5. T3 holds FOR UPDATE on account 2
  expect: 2
  why: Because.
look: a question about now
  ask: Which lock?
  1. T1 holds ROW EXCLUSIVE on entries
  2. T1 asks for ACCESS EXCLUSIVE on accounts
sql T1: SELECT 1
  say: T1 types a statement.
run: scenario job-queue, fix skip-locked
step w1 w2: both take a job
retry victim: again
`
	l, err := Parse("t.lesson", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if l.Title != "Two sessions" || l.Minutes != 7 || l.Intro != "The first line, and its continuation." || len(l.Parts) != 2 {
		t.Fatalf("lesson: %+v", l)
	}
	p := l.Parts[0]
	if p.Run.Strategy != "for-update" || p.Run.Sessions != 3 || p.Run.Direction != "opposite" || len(p.Actions) != 5 {
		t.Fatalf("part 1: %+v, %d actions", p.Run, len(p.Actions))
	}
	a := p.Actions[2]
	if a.Session != "T3" || a.Say != "T3 begins and the narration goes on." || a.Question == nil {
		t.Fatalf("action: %+v", a)
	}
	q := a.Question
	if q.Expect != 2 || len(q.Options) != 5 || q.Why != "Because." {
		t.Fatalf("question: %+v", q)
	}
	want := []string{"T3 goes on", "T3 waits for T1, T2", "deadlock, victim T2", "T3 fails with 40P01", "T3 holds FOR UPDATE on account 2"}
	for i, o := range q.Options {
		if o.Claim.String() != want[i] {
			t.Errorf("option %d: %q, want %q", i+1, o.Claim, want[i])
		}
	}
	if c := p.Actions[3].Question.Options[1].Claim; c.Kind != AsksFor || c.Table != "accounts" || c.Row {
		t.Errorf("asks for: %+v", c)
	}
	if s := p.Actions[4]; s.Kind != SQL || s.SQL != "SELECT 1" || s.Say != "T1 types a statement." {
		t.Errorf("sql: %+v", s)
	}
	if r := l.Parts[1].Run; r.Scenario != "job-queue" || r.Fix != "skip-locked" {
		t.Errorf("part 2: %+v", r)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"", "empty"},
		{"run: strategy naive\n", `t:1: a lesson starts with "lesson: TITLE"`},
		{"lesson: x\n", `no "run:" line`},
		{"lesson: x\nrun: strategy nope\n", `t:2: unknown strategy "nope"`},
		{"lesson: x\nrun: strategy naive\nstep T3\n", "t:3: step T3: this part's sessions are T1, T2"},
		{"lesson: x\nrun: strategy naive\nstep T1\n  ask: q\n  1. T1 goes on\n", "t:4: a question needs two"},
		{"lesson: x\nrun: strategy naive\nstep T1\n  ask: q\n  1. T1 goes on\n  3. T1 waits\n", "t:6: option 3: the options are numbered"},
		{"lesson: x\nrun: strategy naive\nstep T1\n  ask: q\n  1. T1 flies\n", `t:5: option 1: "T1 flies" is no claim`},
		{"lesson: x\nrun: strategy naive\nstep T1\n  ask: q\n  1. T1 goes on\n  2. T9 waits\n", "option 2 names T9"},
		{"lesson: x\nrun: strategy naive\nstep T1 T2\n  ask: q\n", "t:4: ask: belongs under an action of its own"},
		{"lesson: x\nrun: strategy naive\nstep T1\n  ask: q\n  1. T1 goes on\n  2. T1 waits\n  expect: 3\n", "expect: 3, but the question has 2 options"},
		{"lesson: x\nrun: scenario job-queue, sessions 3\nstep T1\n", "a scenario has its own sessions"},
		{"lesson: x\nrun: scenario job-queue\nstep T1\n  ask: q\n  1. account 1 holds 1\n  2. T1 goes on\n", "about the ledger's books"},
		{"lesson: x\nrun: strategy naive\nstep T1\n  ask: q\n  1. T1 holds FOR BANANA on account 1\n  2. T1 goes on\n", "no row lock mode"},
		{"lesson: x\nrun: strategy naive\nexercise: nope\n", `exercise "nope"`},
		{"lesson: x\n\x00", "a NUL byte"},
		{"lesson: x\nrun: strategy naive\n  stray\n", "there is none to continue"},
	} {
		_, err := Parse("t", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one containing %q", c.src, err, c.want)
		}
	}
}

func TestClaimValues(t *testing.T) {
	for _, c := range []struct {
		got, want string
		same      bool
	}{
		{"100.00", "100", true}, {"90.00", "90.0", true}, {"-10.00", "-10", true}, {"100.00", "90.00", false},
		{"done", "done", true}, {"done", "queued", false}, {"0.00", "-0", true},
	} {
		if sameValue(c.got, c.want) != c.same {
			t.Errorf("sameValue(%q, %q) = %v", c.got, c.want, !c.same)
		}
	}
}
