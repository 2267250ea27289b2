package ledger_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"lockstep/ledger"
)

// answers feeds a Flight the answers a server would give, statement by
// statement, and records what it sent.
type answers struct {
	t    *testing.T
	f    *ledger.Flight
	sent []string
}

func (a *answers) give(row []any, err error, txStatus byte) ledger.Step {
	a.t.Helper()
	a.sent = append(a.sent, a.f.SQL())
	return a.f.Answer(row, err, txStatus)
}

// succeed answers every statement of an ordered transfer of 1.50 from
// account 1 to account 2 as the server would, from the first to COMMIT.
func (a *answers) succeed() ledger.Step {
	a.t.Helper()
	var step ledger.Step
	for _, ans := range []struct {
		row []any
		tx  byte
	}{
		{nil, 'T'},             // BEGIN
		{[]any{"41"}, 'T'},     // INSERT INTO transfers … RETURNING id
		{nil, 'T'},             // entry
		{nil, 'T'},             // entry
		{[]any{"98.50"}, 'T'},  // UPDATE account 1
		{[]any{"101.50"}, 'T'}, // UPDATE account 2
		{nil, 'I'},             // COMMIT
	} {
		if step != ledger.Send {
			a.t.Fatalf("the flight ended early, after %v", a.sent)
		}
		step = a.give(ans.row, nil, ans.tx)
	}
	return step
}

func flight(t *testing.T, strategy string, p ledger.RetryPolicy) *answers {
	t.Helper()
	s, err := ledger.Lookup(strategy)
	if err != nil {
		t.Fatal(err)
	}
	tr := ledger.Transfer{From: 1, To: 2, Amount: decimal.RequireFromString("1.50")}
	return &answers{t: t, f: ledger.NewFlight(s, tr, "lockstep", p)}
}

func TestFlightCommits(t *testing.T) {
	a := flight(t, "ordered", ledger.RetryPolicy{})
	if step := a.succeed(); step != ledger.Over {
		t.Fatalf("after COMMIT: step %v, want Over", step)
	}
	res, err := a.f.Result()
	if err != nil {
		t.Fatal(err)
	}
	if res.TransferID != 41 || res.FromBalance.String() != "98.5" || res.ToBalance.String() != "101.5" || res.Attempts != 1 || res.Retries() != 0 {
		t.Errorf("result %+v", res)
	}
	if a.sent[0] != "BEGIN" || !strings.Contains(a.sent[2], "VALUES (41, 1, -1.50)") || a.sent[6] != "COMMIT" {
		t.Errorf("sent %q", a.sent)
	}
}

func TestFlightRollsBackAndRetriesADeadlock(t *testing.T) {
	a := flight(t, "ordered", ledger.RetryPolicy{})
	deadlock := &pgconn.PgError{Code: pgerrcode.DeadlockDetected, Message: "deadlock detected"}
	a.give(nil, nil, 'T')              // BEGIN
	a.give([]any{"41"}, nil, 'T')      // the transfer
	step := a.give(nil, deadlock, 'E') // its first entry fails
	if step != ledger.Send || a.f.Statement() != -1 || a.f.SQL() != "ROLLBACK" {
		t.Fatalf("after the deadlock: step %v, next %q, want ROLLBACK", step, a.f.SQL())
	}
	if step := a.give(nil, nil, 'I'); step != ledger.Backoff {
		t.Fatalf("after ROLLBACK: step %v, want Backoff", step)
	}
	if w := a.f.Wait(); w < 0 || w > 100_000_000 {
		t.Errorf("backoff %v, want between 0 and the 100ms cap", w)
	}
	if res, _ := a.f.Result(); res.Attempts != 1 || res.Deadlocks != 1 {
		t.Errorf("during the backoff: %+v; the retry counts only once it runs", res)
	}
	// The retry starts from BEGIN, without the id read by the failed attempt.
	if a.f.Statement() != 0 || a.f.SQL() != "BEGIN" {
		t.Fatalf("retry starts with %q", a.f.SQL())
	}
	a.sent = nil
	if step := a.succeed(); step != ledger.Over {
		t.Fatalf("retry: step %v", step)
	}
	res, err := a.f.Result()
	if err != nil || res.Attempts != 2 || res.Retries() != 1 || res.Deadlocks != 1 {
		t.Errorf("after the retry: %+v, %v", res, err)
	}
}

func TestFlightGivesUp(t *testing.T) {
	a := flight(t, "ordered", ledger.RetryPolicy{MaxAttempts: 2})
	serialization := &pgconn.PgError{Code: pgerrcode.SerializationFailure}
	for attempt := 1; attempt <= 2; attempt++ {
		a.give(nil, nil, 'T')
		a.give(nil, serialization, 'E')
		step := a.give(nil, nil, 'I') // ROLLBACK
		if attempt == 1 && step != ledger.Backoff || attempt == 2 && step != ledger.Over {
			t.Fatalf("attempt %d: step %v", attempt, step)
		}
	}
	res, err := a.f.Result()
	if err == nil || !strings.Contains(err.Error(), "giving up after 2 attempts") || res.SerializationFailures != 2 {
		t.Errorf("%+v, %v", res, err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.SerializationFailure {
		t.Errorf("the error does not wrap the 40001: %v", err)
	}
}

func TestFlightDoesNotRetryOtherErrors(t *testing.T) {
	// Another SQLSTATE ends the transfer after its ROLLBACK.
	a := flight(t, "ordered", ledger.RetryPolicy{})
	a.give(nil, nil, 'T')
	a.give(nil, &pgconn.PgError{Code: "23503"}, 'E')
	if step := a.give(nil, nil, 'I'); step != ledger.Over {
		t.Fatalf("step %v, want Over", step)
	}
	if _, err := a.f.Result(); err == nil || !strings.Contains(err.Error(), "statement 2 (INSERT INTO transfers") {
		t.Errorf("error %v", err)
	}
	// The autocommit strategy is never retried, nor rolled back: its
	// earlier statements have committed.
	a = flight(t, "none", ledger.RetryPolicy{})
	if step := a.give(nil, &pgconn.PgError{Code: pgerrcode.DeadlockDetected}, 'I'); step != ledger.Over {
		t.Fatalf("none: step %v, want Over", step)
	}
	if res, err := a.f.Result(); err == nil || res.Deadlocks != 0 || res.Attempts != 1 {
		t.Errorf("none: %+v, %v", res, err)
	}
}

// batches walks a flight as a pipelining driver does: it sends the next
// statement and every one Ahead lets go with it, then answers them in
// order from answer (by statement index), and returns the batches sent.
func batches(t *testing.T, strategy string, answer func(i int) ([]any, byte)) [][]int {
	t.Helper()
	a := flight(t, strategy, ledger.RetryPolicy{})
	var out [][]int
	for step := ledger.Send; step == ledger.Send; {
		batch := []int{a.f.Statement()}
		for k := 1; ; k++ {
			if _, _, ok := a.f.Ahead(k, nil); !ok {
				break
			}
			batch = append(batch, batch[0]+k)
		}
		out = append(out, batch)
		for _, i := range batch {
			row, tx := answer(i)
			if step = a.f.Answer(row, nil, tx); step != ledger.Send {
				break
			}
		}
	}
	if _, err := a.f.Result(); err != nil {
		t.Fatalf("%s: %v", strategy, err)
	}
	return out
}

// TestFlightAhead checks which statements may go ahead of the answers of
// those before them: none outside a transaction, never COMMIT, and never a
// statement needing a value one of them reads.
func TestFlightAhead(t *testing.T) {
	ordered := func(i int) ([]any, byte) {
		switch i {
		case 1:
			return []any{"41"}, 'T'
		case 4, 5:
			return []any{"100.00"}, 'T'
		case 6:
			return nil, 'I'
		}
		return nil, 'T'
	}
	// BEGIN and the transfer; the entries (the transfer's id read) and the
	// updates; COMMIT.
	if got := fmt.Sprint(batches(t, "ordered", ordered)); got != "[[0 1] [2 3 4 5] [6]]" {
		t.Errorf("ordered goes in batches %s", got)
	}
	naive := func(i int) ([]any, byte) {
		switch i {
		case 1:
			return []any{"41"}, 'T'
		case 4, 5, 6, 7:
			return []any{"100.00"}, 'T'
		case 8:
			return nil, 'I'
		}
		return nil, 'T'
	}
	// Each update waits for the balance its SELECT reads.
	if got := fmt.Sprint(batches(t, "naive", naive)); got != "[[0 1] [2 3 4] [5 6] [7] [8]]" {
		t.Errorf("naive goes in batches %s", got)
	}
	none := func(i int) ([]any, byte) {
		switch i {
		case 0:
			return []any{"41"}, 'I'
		case 3, 4:
			return []any{"100.00"}, 'I'
		}
		return nil, 'I'
	}
	// Autocommit: each statement commits alone, so none goes ahead.
	if got := fmt.Sprint(batches(t, "none", none)); got != "[[0] [1] [2] [3] [4]]" {
		t.Errorf("none goes in batches %s", got)
	}
	// The ROLLBACK ending a failed attempt goes alone.
	a := flight(t, "ordered", ledger.RetryPolicy{})
	a.give(nil, nil, 'T')
	a.give(nil, errors.New("no"), 'E')
	if a.f.Statement() != -1 {
		t.Fatalf("after an error: statement %d, want the ROLLBACK", a.f.Statement())
	}
	if _, _, ok := a.f.Ahead(1, nil); ok {
		t.Error("a statement goes ahead of the ROLLBACK")
	}
}
