package tui

import (
	"slices"
	"testing"
	"time"

	"lockstep/sim"
)

// BenchmarkLessonStep takes lesson 1 in the interface, key by key, and
// measures each step from its key (space, or the answer's digit) to the
// screen that shows its result: the statement on the server, the poll and
// the balances after it, the judging, the frame drawn. It reports that
// time less the server's own — each statement's duration as the engine
// measured it — at the median and at the worst step.
//
//	go test ./tui -run '^$' -bench LessonStep -benchtime 3x
func BenchmarkLessonStep(b *testing.B) {
	var over, total []time.Duration
	for i := 0; i < b.N; i++ {
		d, _ := lessonDriverB(b)
		m := d.m
		for m.lesson.pos < len(m.lesson.flat) {
			at := m.lesson.flat[m.lesson.pos]
			if at.Part != m.lesson.part {
				d.key("space")
				d.until("the next part", func() bool { return m.lesson.ready && m.lesson.part == at.Part && d.lessonSettled() })
			}
			if q := at.Action.Question; q != nil {
				d.until("the question", func() bool { return m.lesson.asking })
			}
			pos := m.lesson.pos
			var server time.Duration
			start := time.Now()
			key := "space"
			if q := at.Action.Question; q != nil {
				key = string(rune('0' + q.Expect))
			}
			d.key(key)
			// Until the lesson has judged the step (the driver's quiet(),
			// which waits for one more poll, is not the student's wait).
			for !(m.lesson.pos > pos && m.lesson.judge == nil && !m.lesson.busy) {
				msg := <-d.msgs
				if em, ok := msg.(eventsMsg); ok {
					for _, ev := range em.events {
						if ev.Kind == sim.Completed || ev.Kind == sim.Error {
							server += ev.Duration
						}
					}
				}
				d.send(msg)
			}
			_ = m.View()
			took := time.Since(start)
			d.until("the screen is quiet", d.lessonSettled)
			total = append(total, took)
			over = append(over, took-server)
			if took-server > 100*time.Millisecond {
				b.Logf("step %d (%s %s, line %d): %s, the server's %s", pos+1, at.Action.Kind, at.Action.Session, at.Action.Line, took, server)
			}
		}
	}
	slices.Sort(over)
	slices.Sort(total)
	b.ReportMetric(float64(over[len(over)/2].Microseconds())/1000, "ms-over-server/p50")
	b.ReportMetric(float64(over[len(over)-1].Microseconds())/1000, "ms-over-server/max")
	b.ReportMetric(float64(total[len(total)/2].Microseconds())/1000, "ms/step-p50")
}
