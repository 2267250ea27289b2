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
		"Its DETAIL names T2 the pivot", "the server marked T2 to be cancelled, which it did at T2's COMMIT",
		"T2's transaction ran read anomaly (SELECT count(*) AS on_call FROM anomaly WHERE on_call), then read and wrote anomaly (UPDATE anomaly SET on_call = false WHERE id = 2), then COMMIT, which failed",
		"T1's transaction (committed while T2's was open)",
		"T2 read anomaly, which T1 wrote; and T1 read anomaly, which T2 wrote",
		"no serial order of T1 and T2 gives these results", "it cancelled T2's",
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

	if strings.Contains(text, "found it at T2's COMMIT") {
		t.Errorf("'during commit attempt' is the server cancelling a transaction another's check had marked, not finding the pattern at its COMMIT:\n%s", text)
	}

	// "During conflict out checking": T1 was marked when another's read
	// completed the pattern (seen: transfers ring of three, T3 read the
	// row T1 had changed), and cancelled at T1's next read.
	marked := *skew
	marked.Err.Detail = "Reason code: Canceled on identification as a pivot, during conflict out checking."
	lines, _ = failureMeaning(&marked, age)
	text = strings.Join(lines, " ")
	if strings.Contains(text, "found it as T2 read") || !strings.Contains(text, "the server marked T2 to be cancelled, which it did as T2 next read (this statement)") {
		t.Errorf("during conflict out checking:\n%s", text)
	}
	marked.Err.Detail = "Reason code: Canceled on identification as a pivot, during write."
	lines, _ = failureMeaning(&marked, age)
	if text = strings.Join(lines, " "); !strings.Contains(text, "the server found it as T2 wrote") {
		t.Errorf("during write is found by the writer's own check:\n%s", text)
	}

	// A ring of three transfers (seen by hand, serializable, --sessions 3
	// --direction ring): T2 read accounts 2 and 3 and T1 wrote account 1,
	// so T2 read nothing T1 wrote; the pattern ran T3 → T1 → T2. The tables
	// meet both ways, the rows do not: no flat "no serial order" of T1 and
	// T2 (T1 then T2 gives these results).
	ring := &sim.Failure{Kind: sim.FailSerializable, Session: "T1", SQL: "SELECT balance FROM accounts WHERE id = 2",
		Err: sim.ServerMessage{Severity: "ERROR", SQLState: "40001", Message: "could not serialize access due to read/write dependencies among transactions",
			Detail: "Reason code: Canceled on identification as a pivot, during conflict out checking."},
		Own: []string{"SELECT balance FROM accounts WHERE id = 1", "UPDATE accounts SET balance = 90.00 WHERE id = 1 RETURNING balance", "SELECT balance FROM accounts WHERE id = 2"},
		Overlapping: []sim.TxSeen{
			{Session: "T2", Committed: true, Statements: []string{"SELECT balance FROM accounts WHERE id = 2", "UPDATE accounts SET balance = 90.00 WHERE id = 2 RETURNING balance",
				"SELECT balance FROM accounts WHERE id = 3", "UPDATE accounts SET balance = 110.00 WHERE id = 3 RETURNING balance", "COMMIT"}},
			{Session: "T3", Open: true, Statements: []string{"SELECT balance FROM accounts WHERE id = 3", "UPDATE accounts SET balance = 100.00 WHERE id = 3 RETURNING balance", "SELECT balance FROM accounts WHERE id = 1"}},
		}}
	lines, _ = failureMeaning(ring, age)
	text = strings.Join(lines, " ")
	if strings.Contains(text, "each read missed the other's write, so no serial order gives these results") ||
		!strings.Contains(text, "If the rows meet as the tables do") || !strings.Contains(text, "may run through more than two transactions") {
		t.Errorf("a ring of three: T1 and T2 meet by table, not by row, and no cycle of the two may be claimed:\n%s", text)
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

// In anti-dependency each read misses the other's INSERT: SELECT … FOR
// UPDATE locks only rows that exist and would not make the second wait, so
// the advice to use it (said for every 40001 of SERIALIZABLE) is not given
// there; for write skew (UPDATEs of rows the reads found) it still is.
func TestSerializableAdviceForAPhantom(t *testing.T) {
	t.Parallel()
	age := func(d time.Duration) string { return d.String() }
	phantom := &sim.Failure{Kind: sim.FailSerializable, Session: "T2", SQL: "COMMIT;",
		Err: sim.ServerMessage{Severity: "ERROR", SQLState: "40001", Message: "could not serialize access due to read/write dependencies among transactions",
			Detail: "Reason code: Canceled on identification as a pivot, during commit attempt."},
		Own: []string{"SELECT count(*) AS in_1 FROM anomaly WHERE grp = 1;", "INSERT INTO anomaly VALUES (4, 2);", "COMMIT;"},
		Overlapping: []sim.TxSeen{{Session: "T1", Committed: true,
			Statements: []string{"SELECT count(*) AS in_2 FROM anomaly WHERE grp = 2;", "INSERT INTO anomaly VALUES (3, 1);", "COMMIT;"}}}}
	_, avoid := failureMeaning(phantom, age)
	if strings.Contains(avoid, "lock the rows the decision reads") || !strings.Contains(avoid, "SELECT … FOR UPDATE would not do: it locks only rows that exist") ||
		!strings.Contains(avoid, "INSERT INTO anomaly VALUES (3, 1)") || !strings.Contains(avoid, "retry T2's whole transaction") {
		t.Errorf("anti-dependency's advice: %s", avoid)
	}
	skew := *phantom
	skew.Own = []string{"SELECT count(*) AS on_call FROM anomaly WHERE on_call;", "UPDATE anomaly SET on_call = false WHERE id = 2;", "COMMIT;"}
	skew.Overlapping = []sim.TxSeen{{Session: "T1", Committed: true, Statements: []string{"SELECT count(*) AS on_call FROM anomaly WHERE on_call;", "UPDATE anomaly SET on_call = false WHERE id = 1;", "COMMIT;"}}}
	if _, avoid := failureMeaning(&skew, age); !strings.Contains(avoid, "lock the rows the decision reads (SELECT … FOR UPDATE)") {
		t.Errorf("write skew's advice: %s", avoid)
	}
}

// A session the server ended is marked in the Sessions pane, which below
// 110 columns has a line per session, not a column: the explanation said
// "Its column says so".
func TestEndedSessionPointsAtTheSessionsPane(t *testing.T) {
	t.Parallel()
	age := func(d time.Duration) string { return d.String() }
	for _, k := range []sim.FailureKind{sim.FailIdleTimeout, sim.FailTerminated} {
		m, _ := failureMeaning(&sim.Failure{Kind: k, Session: "T1"}, age)
		if got := strings.Join(m, " "); strings.Contains(got, "Its column") || !strings.Contains(got, "The Sessions pane marks it ended") {
			t.Errorf("%s: %q", k, got)
		}
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

// A cancelled autocommit statement had no transaction: the advice is to
// retry the statement, not to roll back a transaction; inside one it is.
func TestCancelAdviceFitsTheTransaction(t *testing.T) {
	t.Parallel()
	age := func(d time.Duration) string { return d.String() }
	f := &sim.Failure{Kind: sim.FailCanceled, Session: "T3", SQL: "TRUNCATE ls_t;",
		Err: sim.ServerMessage{Severity: "ERROR", SQLState: "57014", Message: "canceling statement due to user request"}}
	if _, avoid := failureMeaning(f, age); strings.Contains(avoid, "transaction") || !strings.Contains(avoid, "retry the statement") {
		t.Errorf("autocommit: %s", avoid)
	}
	f.TxAborted = true
	if _, avoid := failureMeaning(f, age); !strings.Contains(avoid, "roll back and retry the transaction") {
		t.Errorf("in a transaction: %s", avoid)
	}
}
