package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/learn"
	"lockstep/locks"
)

// stateDir gives the test a state directory of its own.
func stateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_STATE_HOME", dir)
	return filepath.Join(dir, "lockstep")
}

func TestLearnListsTheCourseAndResets(t *testing.T) {
	dir := stateDir(t)
	out, errOut, code := lockstep(t, "learn")
	if code != 0 || !strings.Contains(out, "12 lessons") || !strings.Contains(out, " 1   The lost update") ||
		!strings.Contains(out, "lockstep learn 1 starts the next lesson") {
		t.Fatalf("learn: exit %d\n%s%s", code, out, errOut)
	}
	// A damaged progress file: one line, set aside, the list still shown.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "learn.json"), []byte("{{{"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = lockstep(t, "learn")
	if code != 0 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "was damaged") || !strings.Contains(out, "12 lessons") {
		t.Fatalf("damaged progress: exit %d\n%s%s", code, out, errOut)
	}
	// Progress survives: a lesson done is listed done.
	p, _, err := learn.LoadProgress(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := learn.Builtins()
	lp := p.Lesson(all[0])
	lp.Done = true
	lp.Answered("0-x", true)
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	out, _, _ = lockstep(t, "learn")
	if !strings.Contains(out, " 1 ✓ The lost update") || !strings.Contains(out, "1/1 right first time") || !strings.Contains(out, "lockstep learn 2 starts") {
		t.Fatalf("after lesson 1:\n%s", out)
	}
	out, _, code = lockstep(t, "learn", "--reset")
	if code != 0 || !strings.Contains(out, "cleared your progress") {
		t.Fatalf("reset: %d %s", code, out)
	}
	out, _, _ = lockstep(t, "learn")
	if strings.Contains(out, "✓") {
		t.Fatalf("after reset:\n%s", out)
	}
	if _, errOut, code := lockstep(t, "learn", "99"); code != 2 || !strings.Contains(errOut, "no lesson 99") {
		t.Fatalf("learn 99: %d %s", code, errOut)
	}
	if _, errOut, code := lockstep(t, "learn", "--check", "--edit"); code != 2 || !strings.Contains(errOut, "choose one of") {
		t.Fatalf("two modes: %d %s", code, errOut)
	}
}

// A lesson that teaches something the server does not do fails its check.
func TestLearnCheckLesson(t *testing.T) {
	stateDir(t)
	dir := t.TempDir()
	good := `lesson: A wait
run: strategy atomic
step T1 T2 T1 T2 T1 T2 T1 T2: both begin and record their transfers
step T1: T1 takes from alice
step T2: T2 takes from alice
  ask: What does T2 do?
  1. T2 goes on
  2. T2 waits for T1
  expect: 2
`
	bad := strings.Replace(good, "expect: 2", "expect: 1", 1)
	for name, src := range map[string]string{"good.lesson": good, "bad.lesson": bad} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := lockstep(t, withDB(t, "learn", "--check-lesson", filepath.Join(dir, "good.lesson"), "--pace", "both")...)
	if code != 0 || strings.Count(out, "✓") != 2 {
		t.Fatalf("good lesson: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = lockstep(t, withDB(t, "learn", "--check-lesson", filepath.Join(dir, "bad.lesson"))...)
	if code != 1 || !strings.Contains(out, "line 6") || !strings.Contains(out, "the lesson expects option 1 (T2 goes on); the server made option 2 true (T2 waits for T1)") {
		t.Fatalf("bad lesson: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := lockstep(t, "learn", "--check-lesson", "1", "--pace", "slow"); code != 2 || !strings.Contains(errOut, "--pace") {
		t.Fatalf("--pace slow: %d %s", code, errOut)
	}
}

// The grader accepts a correct transfer through the interleavings and a
// chaos run of worker processes running it, and prints the counterexample
// of a wrong one.
func TestLearnCheckGrades(t *testing.T) {
	stateDir(t)
	ex, _ := learn.LookupExercise("transfer")
	answer := filepath.Join(t.TempDir(), "transfer.sql")
	if err := os.WriteFile(answer, []byte(ex.Correct), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := lockstep(t, withDB(t, "learn", "--check", "transfer", "--answer", answer, "--chaos", "1s")...)
	if code != 0 || !strings.Contains(out, "passes:") || !strings.Contains(out, "books kept") {
		t.Fatalf("the correct transfer: exit %d\n%s%s", code, out, errOut)
	}
	// The saved answer starts as the naive one, and fails.
	out, errOut, code = lockstep(t, withDB(t, "learn", "--check", "transfer")...)
	if code != 1 || !strings.Contains(out, "the first interleaving that broke") || !strings.Contains(out, "lockstep learn --replay transfer") {
		t.Fatalf("the naive transfer: exit %d\n%s%s", code, out, errOut)
	}
	// A pass stays a pass: the list marks the exercise done.
	out, _, _ = lockstep(t, "learn")
	if !strings.Contains(out, "exercise transfer ✓") {
		t.Fatalf("the list after a pass:\n%s", out)
	}
}

func TestLearnExport(t *testing.T) {
	stateDir(t)
	path := filepath.Join(t.TempDir(), "lesson10.md")
	_, errOut, code := lockstep(t, withDB(t, "learn", "--export", "10", "-o", path, "--width", "80", "--height", "24")...)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{"# Lesson 10: The job queue and SKIP LOCKED", "## Part 3: scenario job-queue, fix skip-locked",
		"**Question 2.** What happens to worker 2's SELECT?", "**The server:** 2 — w2 waits for w1.", "```text", "## Exercise: job-queue"} {
		if !strings.Contains(md, want) {
			t.Errorf("the handout lacks %q", want)
		}
	}
}

// lockstep class shows each student's lesson and score.
func TestClassShowsLessons(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Schema(t)
	id := string(db.NewRunID())
	c, err := d.Connect(ctx, locks.LearnerName(id, 4, 7, 20, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	out, errOut, code := lockstep(t, withDB(t, "class", "--once")...)
	if code != 0 || !strings.Contains(out, "lessons (lockstep learn)") || !strings.Contains(out, "lesson 4") || strings.Contains(out, "run "+id) ||
		!strings.Contains(out, "step 7 of 20  2/3 right first time") {
		t.Fatalf("class: exit %d\n%s%s", code, out, errOut)
	}
}

// TestLearnCheckMissingAnswer: an answer that cannot be read is one line,
// exit 2, before any server starts or any grading is announced.
func TestLearnCheckMissingAnswer(t *testing.T) {
	stateDir(t)
	missing := filepath.Join(t.TempDir(), "nowhere.sql")
	out, errOut, code := lockstep(t, "learn", "--check", "transfer", "--answer", missing)
	if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "reading your answer") {
		t.Fatalf("a missing answer: exit %d\n%s%s", code, out, errOut)
	}
}
