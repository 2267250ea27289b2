package transcript

import (
	"fmt"
	"io"

	"lockstep/locks"
)

// Learners adds to the class's view each student taking a lesson of
// lockstep learn: login, lesson, how far, how many right the first time.
func Learners(w io.Writer, learners []locks.Learner) {
	if len(learners) == 0 {
		return
	}
	fmt.Fprintf(w, "lessons (lockstep learn): %d students\n", len(learners))
	for _, l := range learners {
		lesson := fmt.Sprintf("lesson %d", l.Lesson)
		if l.Lesson == 0 {
			lesson = "a lesson file"
		}
		score := "no question answered yet"
		if l.Asked > 0 {
			score = fmt.Sprintf("%d/%d right first time", l.Right, l.Asked)
		}
		fmt.Fprintf(w, "  %-12s %-10s %-14s step %d of %d  %s\n", l.User, l.Database, lesson, l.Step, l.Steps, score)
	}
}
