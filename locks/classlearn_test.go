package locks_test

import (
	"context"
	"testing"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/locks"
)

// A teacher sees each student's lesson, step and score from the name of
// the connection a lesson keeps.
func TestLearners(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Schema(t)
	run := db.NewRunID()
	c, err := d.Connect(ctx, locks.LearnerName(string(run), 3, 9, 16, 4, 5))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	w, err := d.Connect(ctx, db.AppName("test-class"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	all, err := locks.Learners(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	var mine *locks.Learner
	for i := range all {
		if all[i].Run == string(run) {
			mine = &all[i]
		}
	}
	if mine == nil || mine.Lesson != 3 || mine.Step != 9 || mine.Steps != 16 || mine.Right != 4 || mine.Asked != 5 || mine.User == "" {
		t.Fatalf("learners: %+v", all)
	}
	// The name changes as the student goes on.
	if _, err := c.Exec(ctx, "SELECT set_config('application_name', $1, false)", locks.LearnerName(string(run), 3, 10, 16, 5, 6)); err != nil {
		t.Fatal(err)
	}
	all, _ = locks.Learners(ctx, w)
	for _, l := range all {
		if l.Run == string(run) && (l.Step != 10 || l.Right != 5) {
			t.Fatalf("after a step: %+v", l)
		}
	}
}
