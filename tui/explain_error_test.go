package tui

import (
	"strings"
	"testing"
	"time"

	"lockstep/sim"
)

// A 40001 under SERIALIZABLE is explained from what the engine saw: the
// role the DETAIL gives the cancelled transaction, the statements of both
// transactions, which of them read what the other wrote — and an order-free
// cycle only when the statements show dependencies both ways. A
// transaction that read and wrote nothing the failed one touched is not
// named. Under REPEATABLE READ the same SQLSTATE is the first updater
// winning, with the transaction that wrote the row.
func TestSerializationFailureExplained(t *testing.T) {
	t.Parallel()
	age := func(d time.Duration) string { return d.String() }
	skew := &sim.Failure{Kind: sim.FailSerializable, Session: "T2", SQL: "COMMIT;",
		Err: sim.ServerMessage{Severity: "ERROR", SQLState: "40001", Message: "could not serialize access due to read/write dependencies among transactions",
			Detail: "Reason code: Canceled on identification as a pivot, during commit attempt.", Hint: "The transaction might succeed if retried."},
		Own: []string{"SELECT count(*) AS on_call FROM anomaly WHERE on_call;", "UPDATE anomaly SET on_call = false WHERE id = 2;", "COMMIT;"},
		Overlapping: []sim.TxSeen{
			{Session: "T1", Committed: true, Statements: []string{"SELECT count(*) AS on_call FROM anomaly WHERE on_call;", "UPDATE anomaly SET on_call = false WHERE id = 1;", "COMMIT;"}},
			{Session: "T3", Open: true, Statements: []string{"SELECT 1 FROM other"}},
		}}
	lines, avoid := failureMeaning(skew, age)
	text := strings.Join(lines, " ")
	for _, want := range []string{
		"Its DETAIL names T2 the pivot", "found it at T2's COMMIT",
		"T2's transaction ran read anomaly (SELECT count(*) AS on_call FROM anomaly WHERE on_call), then read and wrote anomaly (UPDATE anomaly SET on_call = false WHERE id = 2), then COMMIT, which failed",
		"T1's transaction (committed while T2's was open)",
		"T2 read anomaly, which T1 wrote; and T1 read anomaly, which T2 wrote",
		"no serial order gives these results", "the server cancelled T2's",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the explanation lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "T3") {
		t.Errorf("T3 read and wrote nothing T2 touched, yet is named:\n%s", text)
	}
	if !strings.Contains(avoid, "retry T2's whole transaction") {
		t.Errorf("avoid: %s", avoid)
	}

	// One way only: T1 read what T2 wrote, T2 read nothing T1 wrote. No
	// cycle is claimed from the statements; the DETAIL's words stand.
	oneWay := *skew
	oneWay.Overlapping = []sim.TxSeen{{Session: "T1", Open: true, Statements: []string{"SELECT count(*) FROM anomaly"}}}
	lines, _ = failureMeaning(&oneWay, age)
	text = strings.Join(lines, " ")
	if !strings.Contains(text, "T1 read anomaly, which T2 wrote") || strings.Contains(text, "no serial order") || !strings.Contains(text, "still open") {
		t.Errorf("one dependency, T1 still open:\n%s", text)
	}

	// Under REPEATABLE READ: the first updater wins, named with its write.
	lost := &sim.Failure{Kind: sim.FailFirstUpdaterWins, Session: "T2", SQL: "UPDATE anomaly SET value = 11 WHERE id = 1;",
		Err:         sim.ServerMessage{Severity: "ERROR", SQLState: "40001", Message: "could not serialize access due to concurrent update"},
		Committed:   []string{"T1", "T3"},
		Own:         []string{"INSERT INTO seen SELECT 't2', value FROM anomaly WHERE id = 1;", "UPDATE anomaly SET value = 11 WHERE id = 1;"},
		Overlapping: []sim.TxSeen{{Session: "T1", Committed: true, Statements: []string{"UPDATE anomaly SET value = 11 WHERE id = 1;", "COMMIT;"}}, {Session: "T3", Committed: true, Statements: []string{"SELECT 1"}}}}
	lines, _ = failureMeaning(lost, age)
	text = strings.Join(lines, " ")
	if !strings.Contains(text, "the first updater wins") || !strings.Contains(text, "T1 (UPDATE anomaly SET value = 11 WHERE id = 1), which committed while T2's transaction was open") ||
		strings.Contains(text, "T3") || strings.Contains(text, "read/write dependenc") {
		t.Errorf("first updater wins:\n%s", text)
	}
}

// A 55P03 from lock_timeout does not claim the wait queued nobody behind
// it: in the timeouts scenario T3 can queue behind T2's request while T2
// waits, before T2's lock_timeout runs out ("failed fast instead of
// queueing the others behind it" was false then). What is true either way:
// the request leaves the queue once the timeout runs out.
func TestLockTimeoutAvoidIsTrueWithAQueue(t *testing.T) {
	t.Parallel()
	f := &sim.Failure{Kind: sim.FailLockTimeout, Session: "T2", SQL: "TRUNCATE ls_t;", Ran: 500 * time.Millisecond, LockTimeout: 500 * time.Millisecond,
		Err: sim.ServerMessage{Severity: "ERROR", SQLState: "55P03", Message: "canceling statement due to lock timeout"}}
	_, avoid := failureMeaning(f, func(d time.Duration) string { return d.String() })
	if strings.Contains(avoid, "instead of queueing the others") || !strings.Contains(avoid, "left the lock's queue") {
		t.Errorf("avoid: %s", avoid)
	}
}
