package transcript

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/locks"
	"lockstep/sim"
)

// The transcripts are views of events; these feed them events as the
// engine would send them (the command-line tests run them on a server).

func TestTextPrintsAWaitItsEndAndTheDeadlockVictim(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	tr := NewText(&out)
	tr.sessions = []sim.SessionInfo{{Name: "T1", Pid: 19229}, {Name: "T2", Pid: 19230}}
	why := "T2 wants ShareLock on T1's transaction, i.e. waits for it to end"
	for _, ev := range []sim.Event{
		{Kind: sim.Completed, Session: "T1", SQL: "SELECT id, note FROM t",
			Results: []sim.Result{{Tag: "SELECT 2", Columns: []string{"id", "note"}, Rows: [][]string{{"1", "a"}, {"2", ""}},
				Null: [][]bool{nil, {false, true}}}}},
		{Kind: sim.WaitingForLock, Session: "T2", SQL: "UPDATE t SET note = 'b'", Waits: []locks.Edge{{Why: why}}},
		{Kind: sim.Error, Session: "T2", SQL: "UPDATE t SET note = 'b'", Err: &sim.ServerMessage{
			SQLState: pgerrcode.DeadlockDetected, Message: "deadlock detected",
			Detail: "Process 19230 waits for ShareLock on transaction 727; blocked by process 19229."}},
		{Kind: sim.Skipped, Session: "T2", Why: "its statement failed with 40P01 (deadlock detected) and its transaction was rolled back: its script stops there"},
	} {
		tr.Event(ev)
	}
	want := `step T1: SELECT id, note FROM t
id|note
--+----
 1|a   
 2|NULL
(2 rows)

step T2: UPDATE t SET note = 'b' <waiting ...>
  -- ` + why + `
step T2: <... completed>
ERROR:  deadlock detected (SQLSTATE 40P01)
DETAIL:  Process 19230 waits for ShareLock on transaction 727; blocked by process 19229.
  -- process 19230 is T2, process 19229 is T1
  -- the server broke the deadlock: T2 was chosen as the victim
  -- T2 skipped in --order: its statement failed with 40P01 (deadlock detected) and its transaction was rolled back: its script stops there
`
	if got := out.String(); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}

func TestJSONCarriesLockstepsDecisionsAsNotes(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	tr := NewJSON(&out)
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	tr.Event(sim.Event{Kind: sim.Polled})
	tr.Event(sim.Event{Kind: sim.Notice, Session: "T1"})
	tr.Event(sim.Event{Kind: sim.Stalled, Stall: sim.WaitsOnPrepared})
	tr.Event(sim.Event{Kind: sim.Resolved, Commit: true, Prepared: &sim.Prepared{Database: "B", GID: "lockstep/ab12cd/T1@B", Xid: 812, At: at}})
	tr.Event(sim.Event{Kind: sim.Skipped, Session: "T2", Why: "its statement failed with 40P01 (deadlock detected) and its transaction is aborted, open until a ROLLBACK: its script stops there"})
	tr.End(sim.Outcome{Tally: sim.Tally{Waits: 2, Resolved: 1}})
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("want three notes and a summary (no poll, no notice), got:\n%s", out.String())
	}
	if lines[0]["event"] != "lockstep" || !strings.Contains(lines[0]["message"].(string), "waits for a prepared transaction") {
		t.Errorf("first note: %v", lines[0])
	}
	if msg := lines[1]["message"].(string); !strings.Contains(msg, "lockstep/ab12cd/T1@B (transaction 812, prepared 09:00:00.000); lockstep runs COMMIT PREPARED") {
		t.Errorf("second note: %q", msg)
	}
	if msg, _ := lines[2]["message"].(string); lines[2]["event"] != "lockstep" || lines[2]["session"] != "T2" ||
		msg != "T2 skipped in --order: its statement failed with 40P01 (deadlock detected) and its transaction is aborted, open until a ROLLBACK: its script stops there" {
		t.Errorf("the skip's note: %v", lines[2])
	}
	if lines[3]["summary"] != true || lines[3]["waits"] != float64(2) {
		t.Errorf("summary: %v", lines[3])
	}
}

// A statement that found nothing says so in JSON: its columns and an empty
// rows array.
func TestJSONEmptyResultHasColumnsAndRows(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	NewJSON(&out).Event(sim.Event{Kind: sim.Completed, Session: "T1", SQL: "SELECT 1 AS x WHERE false",
		Results: []sim.Result{{Tag: "SELECT 0", Columns: []string{"x"}, Rows: [][]string{}}}})
	if s := out.String(); !strings.Contains(s, `"columns":["x"],"rows":[]`) {
		t.Fatalf("JSON of an empty result: %s", s)
	}
	out.Reset()
	NewJSON(&out).Event(sim.Event{Kind: sim.Completed, Session: "T1", SQL: "BEGIN", Results: []sim.Result{{Tag: "BEGIN"}}})
	if s := out.String(); strings.Contains(s, `"rows"`) || strings.Contains(s, `"columns"`) {
		t.Fatalf("JSON of a statement without a result set: %s", s)
	}
}
