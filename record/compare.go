package record

import (
	"fmt"
	"strings"

	"lockstep/sim"
)

// Outcome is what became of one statement a session sent: whether the
// server made it wait and for whom, and how it ended.
type Outcome struct {
	Session string
	SQL     string
	Waited  bool
	For     []string // whom it waited for first
	// Result is the command tag ("UPDATE 1"), "error SQLSTATE: message",
	// "connection lost", or "" when it never ended.
	Result string
}

func (o Outcome) String() string {
	s := o.Result
	if s == "" {
		s = "did not end"
	}
	if o.Waited {
		s = "waited for " + strings.Join(o.For, ", ") + ", then " + s
	}
	return s
}

// Plan is the statements the sessions were sent, in order, for
// sim.PlaySteps: the users' and the scheduler's, not those the engine sent
// itself (the ROLLBACK after a failed statement, which it sends again).
func Plan(events []sim.Event) []sim.PlannedStep {
	var out []sim.PlannedStep
	for _, ev := range events {
		if ev.Kind == sim.Started && !ev.Auto {
			out = append(out, sim.PlannedStep{Index: ev.Index, SQL: ev.SQL})
		}
	}
	return out
}

// Outcomes are the outcomes of the statements Plan lists, in its order.
func Outcomes(events []sim.Event) []Outcome {
	var out []Outcome
	open := map[int]int{} // session index → its statement in flight, in out
	for _, ev := range events {
		if ev.Auto {
			continue
		}
		switch ev.Kind {
		case sim.Started:
			open[ev.Index] = len(out)
			out = append(out, Outcome{Session: ev.Session, SQL: ev.SQL})
		case sim.WaitingForLock:
			if i, ok := open[ev.Index]; ok && !out[i].Waited {
				out[i].Waited, out[i].For = true, ev.BlockedBy
			}
		case sim.Completed, sim.Error, sim.ConnectionLost:
			i, ok := open[ev.Index]
			if !ok {
				continue
			}
			delete(open, ev.Index)
			switch ev.Kind {
			case sim.Completed:
				out[i].Result = ev.Tag
			case sim.Error:
				out[i].Result = fmt.Sprintf("error %s: %s", ev.Err.SQLState, ev.Err.Message)
			default:
				out[i].Result = "connection lost"
			}
		}
	}
	return out
}

// Diff lists where the live run's outcomes differ from the recorded ones:
// a wait that came or went, another blocker, another result or error.
// Errors compare by SQLSTATE, not by their message's numbers.
func Diff(recorded, live []Outcome) []string {
	var out []string
	for i := range max(len(recorded), len(live)) {
		switch {
		case i >= len(live):
			out = append(out, fmt.Sprintf("statement %d, %s %s: recorded: %s; now: never sent", i+1, recorded[i].Session, oneLine(recorded[i].SQL), recorded[i]))
			continue
		case i >= len(recorded):
			out = append(out, fmt.Sprintf("statement %d, %s %s: not in the recording; now: %s", i+1, live[i].Session, oneLine(live[i].SQL), live[i]))
			continue
		}
		r, l := recorded[i], live[i]
		if r.Waited != l.Waited || strings.Join(r.For, ",") != strings.Join(l.For, ",") || resultKey(r.Result) != resultKey(l.Result) {
			out = append(out, fmt.Sprintf("statement %d, %s %s: recorded: %s; now: %s", i+1, r.Session, oneLine(l.SQL), r, l))
		}
	}
	return out
}

// resultKey is what a result compares by: a tag whole, an error by its SQLSTATE.
func resultKey(r string) string {
	if code, ok := strings.CutPrefix(r, "error "); ok {
		return "error " + strings.SplitN(code, ":", 2)[0]
	}
	return r
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
