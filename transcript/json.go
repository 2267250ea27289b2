package transcript

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"lockstep/ledger"
	"lockstep/sim"
)

// JSON prints one JSON object per event and a summary object last.
type JSON struct {
	enc   *json.Encoder
	start time.Time
}

// NewJSON is a JSON transcript written to w; elapsed times count from now.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w), start: time.Now()} }

type jsonEvent struct {
	Session    string     `json:"session"`
	SQL        string     `json:"sql"`
	Event      string     `json:"event"`
	Step       int        `json:"step"`
	Auto       bool       `json:"auto,omitempty"`
	SQLState   string     `json:"sqlstate"`
	Message    string     `json:"message,omitempty"`
	Detail     string     `json:"detail,omitempty"`
	Hint       string     `json:"hint,omitempty"`
	BlockedBy  []string   `json:"blocked_by"`
	Why        []string   `json:"why,omitempty"`
	Tag        string     `json:"tag,omitempty"`
	Columns    []string   `json:"columns,omitempty"`
	Rows       [][]string `json:"rows,omitzero"`
	ElapsedMS  float64    `json:"elapsed_ms"`
	DurationMS float64    `json:"duration_ms,omitempty"`
	Cycle      string     `json:"cycle,omitempty"`
}

// Begin prints nothing: every event carries what it is about.
func (j *JSON) Begin(*sim.Engine, string, string) {}

// Event prints a statement's events and lockstep's notes; polls, notices,
// blocks and balance reads stay out of the transcript.
func (j *JSON) Event(ev sim.Event) {
	switch ev.Kind {
	case sim.Stalled, sim.Resolved:
		for _, line := range noteLines(ev) {
			_ = j.enc.Encode(map[string]any{"event": "lockstep", "message": line, "elapsed_ms": ms(time.Since(j.start))})
		}
		return
	case sim.Skipped:
		// A step of the stored order that never ran is lockstep's decision
		// too, and says why (the text transcript's "-- T2 skipped").
		_ = j.enc.Encode(map[string]any{"event": "lockstep", "session": ev.Session, "message": skipLine(ev), "elapsed_ms": ms(time.Since(j.start))})
		return
	case sim.Started, sim.WaitingForLock, sim.Completed, sim.Error, sim.ConnectionLost, sim.DeadlockFormed, sim.ResetDone:
	default:
		return
	}
	out := jsonEvent{Session: ev.Session, SQL: ev.SQL, Event: ev.Kind.String(), Step: ev.Step, Auto: ev.Auto,
		BlockedBy: ev.BlockedBy, Tag: ev.Tag, ElapsedMS: ms(ev.Time.Sub(j.start)), DurationMS: ms(ev.Duration)}
	if r := ev.LastRows(); r != nil {
		out.Columns, out.Rows = r.Columns, nullsAsWords(*r)
	}
	if out.BlockedBy == nil {
		out.BlockedBy = []string{}
	}
	if ev.Err != nil {
		out.SQLState, out.Message, out.Detail, out.Hint = ev.Err.SQLState, ev.Err.Message, ev.Err.Detail, ev.Err.Hint
	}
	if ev.Kind == sim.ConnectionLost {
		out.Message = ev.Cause.Error()
	}
	for _, e := range ev.Waits {
		out.Why = append(out.Why, e.Why)
	}
	if ev.Cycle != nil {
		out.Cycle = ev.Cycle.String()
	}
	_ = j.enc.Encode(out)
}

func balanceMap(accounts []ledger.Account) map[string]string {
	out := map[string]string{}
	for _, a := range accounts {
		out[fmt.Sprint(a.ID)] = a.Balance.StringFixed(2)
	}
	return out
}

// End prints the summary object.
func (j *JSON) End(o sim.Outcome) {
	t := o.Tally
	out := map[string]any{
		"summary":                true,
		"waits":                  t.Waits,
		"deadlocks":              t.Deadlocks,
		"serialization_failures": t.SerializationFailures,
		"errors":                 t.Errors,
		"queue_waits":            t.QueueWaits,
		"errors_by_sqlstate":     t.BySQLState,
	}
	if t.BySQLState == nil {
		out["errors_by_sqlstate"] = map[string]int{}
	}
	switch {
	case o.ByDatabase != nil:
		out["balances"] = map[string]any{"A": balanceMap(o.ByDatabase["A"]), "B": balanceMap(o.ByDatabase["B"])}
		out["in_sync"] = sim.InSync(o.ByDatabase)
		out["distributed_deadlocks"] = t.Distributed
		out["lock_timeouts"] = t.LockTimeouts
		out["prepared_resolved"] = t.Resolved
	case o.Books != nil:
		out["balances"] = balanceMap(o.Accounts)
		out["invariant_ok"] = o.Books.OK()
		out["books"] = o.Books.Summary()
		out["lost_update"] = o.Books.LostUpdate()
	}
	_ = j.enc.Encode(out)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
