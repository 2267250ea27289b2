package learn_test

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"lockstep/cli"
	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/learn"
)

func TestMain(m *testing.M) {
	// A grade's chaos run re-executes this binary as lockstep's worker.
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(cli.ExitCode(err))
	}
	dbtest.Main(m) // a fuzzing process starts no server
}

func env(t *testing.T) learn.Env {
	t.Helper()
	d := dbtest.Schema(t)
	e := learn.Env{DB: d, Ledger: dbtest.Ledger(t), Poll: 200 * time.Millisecond}
	e.Second = func(ctx context.Context) (*db.Database, error) { return dbtest.Second(t, d, nil), nil }
	return e
}

// checkLesson plays a built-in lesson at a pace and fails on every
// question the server does not answer as the lesson says.
func checkLesson(t *testing.T, l *learn.Lesson, pace learn.Pace) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := learn.Play(ctx, l, env(t), pace, nil)
	if err != nil {
		t.Fatalf("lesson %s at %s: %v", l.Name, pace, err)
	}
	for _, p := range r.Problems() {
		t.Errorf("lesson %s at %s: %s", l.Name, pace, p)
	}
	if testing.Verbose() {
		for _, p := range r.Played {
			if p.Verdict != nil {
				t.Logf("%s line %d: %s → %v", l.Name, p.Action.Line, p.Action.Question.Text, p.Verdict.True)
				for _, h := range p.Verdict.Happened {
					t.Logf("    %s", h)
				}
			}
		}
	}
}

func TestLessonsAtMachinePace(t *testing.T) {
	all, err := learn.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	only := os.Getenv("LESSON")
	for _, l := range all {
		if only != "" && !strings.Contains(l.Name, only) {
			continue
		}
		t.Run(l.Name, func(t *testing.T) { checkLesson(t, l, learn.MachinePace) })
	}
}

func TestLessonsAtHumanPace(t *testing.T) {
	if testing.Short() {
		t.Skip("human pace waits for the server's timers")
	}
	all, err := learn.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	only := os.Getenv("LESSON")
	for _, l := range all {
		if only != "" && !strings.Contains(l.Name, only) {
			continue
		}
		t.Run(l.Name, func(t *testing.T) { checkLesson(t, l, learn.HumanPace) })
	}
}
