// Package learn is lockstep's course: lessons a student takes alone —
// predict what the next statement will do, see the real server do it, be
// told why — and exercises graded on the real server.
//
// A lesson is a plain-text file a teacher writes and reviews in a pull
// request (the format is below and in README's "Learn"). It runs one of the
// existing transfer strategies or built-in scenarios, in one or more parts;
// each action — step a session, commit, roll back, retry, type SQL — has a
// line of narration, and a question may stand before it. A question's
// options are claims about what the server will do ("T2 waits for T1",
// "deadlock", "T2 fails with 40001", "account 1 holds 90.00", "T1 holds FOR
// UPDATE on account 1"); the answer is checked against what the server then
// does, never against a key in the file. The file may say which option it
// expects: that only makes the lesson's own check (lockstep learn
// --check-lesson) fail when the server disagrees, so a lesson that teaches
// something false fails CI.
//
// The format, line by line (a line whose first non-blank character is '#'
// is a comment; blank lines are ignored):
//
//	lesson: TITLE                     first, once
//	minutes: N                        how long it takes, 1 to 60
//	about: ONE LINE                   what it shows, for the list
//	intro: TEXT                       shown before the first step; indented lines continue it
//	run: strategy NAME[, OPTION…]     starts a part: a transfer strategy, or
//	run: scenario NAME[, OPTION…]     a built-in scenario; options: sessions N,
//	                                  direction same|opposite|ring, accounts N,
//	                                  amount 10.00, transfers T1 1->2 T2 2->1,
//	                                  fix NAME, isolation LEVEL
//	step T1 [T2 …][: NARRATION]       run each session's next statement
//	commit T1[: NARRATION]            COMMIT (rollback T1: ROLLBACK)
//	retry T1[: NARRATION]             start the session's transfer again, as an
//	                                  application's retry loop does
//
// An action or a claim may name a session "victim" — the session the server
// last failed with a deadlock or a serialization failure — or "survivor",
// the other one: which session the server fails can depend on the pace.
//
//	sql T1: SQL                       run SQL typed into the session
//	look[: NARRATION]                 run nothing: a question about the screen now
//	bench A, B, workers N[, accounts N][, seconds N]
//	                                  measure strategies A and B side by side
//	exercise: NAME                    the lesson ends with an exercise (transfer,
//	                                  job-queue); indented lines say what to do
//
// Indented lines under an action belong to it:
//
//	say: TEXT                         narration (for sql and bench, or a long one)
//	ask: QUESTION                     asked before the action runs
//	1. CLAIM [(NOTE)]                 two to five options, numbered from 1
//	expect: N                         the option the author expects (checked)
//	why: TEXT                         the author's explanation, after the answer
//
// and any other indented line continues the text above it.
package learn

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"lockstep/sim"
)

// Lesson is one parsed lesson file.
type Lesson struct {
	// Name is the built-in lesson's file name without its extension
	// ("01-lost-update"), or a file's path.
	Name string
	// Number is a built-in lesson's place in the course, from 1; 0 for a file.
	Number  int
	Title   string
	Minutes int
	About   string
	Intro   string
	Parts   []*Part
	// Exercise, when set, is the exercise the lesson ends with.
	Exercise *ExerciseRef
	// Dir is the directory a lesson file was read from ("" for a built-in).
	Dir string
}

// Part is one run of a lesson: a strategy or a scenario, and what is done
// in it.
type Part struct {
	Run     Run
	Actions []*Action
	Line    int
	// Make, when set, builds the part's run instead of Run: a grade's
	// counterexample, whose sessions run a student's answer.
	Make func(env Env) (sim.Config, error)
	// Summary says what a part made so runs, for the header.
	Summary string
}

// Run says what a part runs, as the command line's flags would.
type Run struct {
	Strategy  string // a transfer strategy, or
	Scenario  string // a built-in scenario
	Fix       string // the scenario's fix, if any
	Isolation string // the scenario's isolation level, if it takes one
	Sessions  int
	Direction string
	Accounts  int
	Amount    string
	// Transfers give each session its own transfer: "T1 1->2".
	Transfers []TransferSpec
}

// TransferSpec is one session's transfer, as a lesson writes it.
type TransferSpec struct {
	Session  string
	From, To int64
}

// ActionKind is what an action does.
type ActionKind int

// The actions of a lesson.
const (
	Step     ActionKind = iota // the session's next script statement
	Commit                     // COMMIT in the session
	Rollback                   // ROLLBACK in the session
	Retry                      // the session's transfer from the start, as a retry loop
	SQL                        // SQL typed into the session
	Look                       // nothing runs: a question about the state now
	Bench                      // a short benchmark of strategies side by side
)

var actionNames = [...]string{"step", "commit", "rollback", "retry", "sql", "look", "bench"}

func (k ActionKind) String() string {
	if k < 0 || int(k) >= len(actionNames) {
		return fmt.Sprintf("ActionKind(%d)", int(k))
	}
	return actionNames[k]
}

// Action is one thing a lesson does, with its narration and the question
// asked before it.
type Action struct {
	Kind ActionKind
	// Session names the session acted on: T1, a scenario's own name for it
	// (w1), or "victim" for Retry.
	Session  string
	SQL      string
	Bench    *BenchSpec
	Say      string
	Question *Question
	Line     int
}

// Victim names, in an action or a claim, whichever session the server last
// failed with a deadlock or a serialization failure; Survivor the other
// session of that deadlock (or of a two-session part). A lesson names them
// so, since which one the server fails may depend on the pace.
const (
	Victim   = "victim"
	Survivor = "survivor"
)

// BenchSpec is a short benchmark inside a lesson.
type BenchSpec struct {
	Strategies []string
	Workers    int
	Accounts   int
	Seconds    int
}

// Question is asked before its action runs; its options are claims the
// server's behaviour decides.
type Question struct {
	Text    string
	Options []Option
	// Expect is the option the author expects, from 1; 0 when the file
	// does not say. Only the lesson's check reads it.
	Expect int
	Why    string
	Line   int
}

// Option is one answer: a claim about what the action will do, and a note
// shown beside it.
type Option struct {
	Text  string // as written
	Claim Claim
}

// ExerciseRef is the exercise a lesson ends with.
type ExerciseRef struct {
	Name string
	Text string
	Line int
}

// Steps counts the lesson's actions.
func (l *Lesson) Steps() int {
	n := 0
	for _, p := range l.Parts {
		n += len(p.Actions)
	}
	return n
}

// Questions counts the lesson's questions.
func (l *Lesson) Questions() int {
	n := 0
	for _, p := range l.Parts {
		for _, a := range p.Actions {
			if a.Question != nil {
				n++
			}
		}
	}
	return n
}

// Key names the lesson in the student's progress: the built-in's name, or
// the file's absolute path.
func (l *Lesson) Key() string {
	if l.Number > 0 {
		return l.Name
	}
	if abs, err := filepath.Abs(l.Name); err == nil {
		return "file:" + abs
	}
	return "file:" + l.Name
}

//go:embed lessons/*.lesson
var builtinFS embed.FS

// Builtins are the course's lessons, in order.
func Builtins() ([]*Lesson, error) {
	entries, err := fs.ReadDir(builtinFS, "lessons")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	out := make([]*Lesson, 0, len(names))
	for i, n := range names {
		src, err := builtinFS.ReadFile(path.Join("lessons", n))
		if err != nil {
			return nil, err
		}
		l, err := Parse(n, src)
		if err != nil {
			return nil, fmt.Errorf("built-in lesson %w", err)
		}
		l.Name, l.Number = strings.TrimSuffix(n, ".lesson"), i+1
		out = append(out, l)
	}
	return out, nil
}

// BuiltinSources are the built-in lesson files' texts, by file name: the
// fuzz test's seeds.
func BuiltinSources() map[string][]byte {
	out := map[string][]byte{}
	entries, _ := fs.ReadDir(builtinFS, "lessons")
	for _, e := range entries {
		if b, err := builtinFS.ReadFile(path.Join("lessons", e.Name())); err == nil {
			out[e.Name()] = b
		}
	}
	return out
}

// MaxFileSize bounds a lesson file: a lesson is a few kilobytes.
const MaxFileSize = 1 << 20

// Load finds a lesson by what the command line says: a built-in's number
// (1–12) or name, or a file.
func Load(arg string) (*Lesson, error) {
	all, err := Builtins()
	if err != nil {
		return nil, err
	}
	if n, err := strconv.Atoi(arg); err == nil {
		if n < 1 || n > len(all) {
			return nil, fmt.Errorf("no lesson %d: the course has lessons 1 to %d (lockstep learn lists them)", n, len(all))
		}
		return all[n-1], nil
	}
	for _, l := range all {
		if _, short, _ := strings.Cut(l.Name, "-"); l.Name == arg || short == arg {
			return l, nil
		}
	}
	return LoadFile(arg)
}

// LoadFile reads and checks a lesson file.
func LoadFile(name string) (*Lesson, error) {
	f, err := os.Open(name)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("no lesson %q: give a lesson's number (lockstep learn lists them) or a lesson file", name)
		}
		return nil, fmt.Errorf("reading lesson %s: %w", name, err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading lesson %s: %w", name, err)
	}
	if len(src) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; a lesson file is a few kilobytes", name, MaxFileSize)
	}
	l, err := Parse(name, src)
	if err != nil {
		return nil, err
	}
	l.Name, l.Dir = name, filepath.Dir(name)
	return l, nil
}

// At is one action of a lesson in order: its part, its place in the part,
// and its question's number in the lesson (from 0; -1 when it asks none).
type At struct {
	Part, Index int
	Action      *Action
	Question    int
}

// Flat lists the lesson's actions in order, across its parts.
func (l *Lesson) Flat() []At {
	var out []At
	q := 0
	for pi, p := range l.Parts {
		for ai, a := range p.Actions {
			at := At{Part: pi, Index: ai, Action: a, Question: -1}
			if a.Question != nil {
				at.Question = q
				q++
			}
			out = append(out, at)
		}
	}
	return out
}
