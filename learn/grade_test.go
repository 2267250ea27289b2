package learn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"lockstep/learn"
)

// grade grades an answer to an exercise, with no chaos run.
func grade(t *testing.T, exercise, answer string) *learn.Grade {
	t.Helper()
	ex, ok := learn.LookupExercise(exercise)
	if !ok {
		t.Fatalf("no exercise %s", exercise)
	}
	a, err := learn.ParseAnswer("answer.sql", []byte(answer))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	g, err := learn.GradeAnswer(ctx, env(t), ex, a, learn.GradeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGradeAcceptsACorrectTransfer(t *testing.T) {
	ex, _ := learn.LookupExercise("transfer")
	g := grade(t, "transfer", ex.Correct)
	if !g.Passed || g.Counterexample != nil || g.Problem != "" {
		t.Fatalf("the correct transfer: %s", g.Summary())
	}
	if len(g.Runs) != 2 || g.Runs[0].Interleavings < 2 || g.Runs[1].Interleavings < 2 {
		t.Fatalf("runs: %+v", g.Runs)
	}
	t.Logf("%s (%s)", g.Summary(), g.Interleaving)
}

func TestGradeRejectsTheNaiveReadModifyWrite(t *testing.T) {
	ex, _ := learn.LookupExercise("transfer")
	g := grade(t, "transfer", ex.Start)
	c := g.Counterexample
	if g.Passed || c == nil {
		t.Fatalf("the naive transfer passed: %s", g.Summary())
	}
	if !strings.Contains(c.What, "money went missing") && !strings.Contains(c.What, "created") && !strings.Contains(c.What, "entries say") {
		t.Fatalf("the counterexample is no lost update: %s", c.What)
	}
	// T2 read before T1 committed its write: the second write is stale.
	if !hasOutcome(c, "from_balance = 100.00") {
		t.Errorf("the counterexample shows no stale read:\n%s", c.Text())
	}
	t.Log(c.Text())
}

func TestGradeRejectsForUpdateInOppositeOrders(t *testing.T) {
	g := grade(t, "transfer", `BEGIN;
SELECT balance AS from_balance FROM accounts WHERE id = :from FOR UPDATE \gset
SELECT balance AS to_balance FROM accounts WHERE id = :to FOR UPDATE \gset
UPDATE accounts SET balance = :from_balance - :amount WHERE id = :from;
UPDATE accounts SET balance = :to_balance + :amount WHERE id = :to;
INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (:from, :to, :amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :from, -:amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :to, :amount);
COMMIT;
`)
	c := g.Counterexample
	if g.Passed || c == nil {
		t.Fatalf("FOR UPDATE in opposite orders passed: %s", g.Summary())
	}
	if !strings.Contains(c.What, "deadlock") || c.Run.Name != "1 → 2 and 2 → 1" {
		t.Fatalf("the counterexample is no deadlock of opposite transfers: %s: %s", c.Run.Name, c.What)
	}
	if len(g.Runs) != 2 || g.Runs[0].Interleavings < 2 {
		t.Errorf("the same direction should pass first: %+v", g.Runs)
	}
	t.Log(c.Text())
}

func TestGradeRejectsATransactionlessTransfer(t *testing.T) {
	g := grade(t, "transfer", `
INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (:from, :to, :amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :from, -:amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :to, :amount);
UPDATE accounts SET balance = balance - :amount WHERE id = :from;
UPDATE accounts SET balance = balance + :amount WHERE id = :to;
`)
	c := g.Counterexample
	if g.Passed || c == nil {
		t.Fatalf("the transfer without a transaction passed: %s", g.Summary())
	}
	if !strings.Contains(c.What, "committed on its own") || !strings.Contains(c.What, "a crash there") {
		t.Fatalf("the counterexample is not a crash between statements: %s", c.What)
	}
	t.Log(c.Text())
}

func TestGradeJobQueue(t *testing.T) {
	ex, _ := learn.LookupExercise("job-queue")
	g := grade(t, "job-queue", ex.Start)
	if g.Passed || g.Counterexample == nil || !strings.Contains(g.Counterexample.What, "the queue blocks") {
		t.Fatalf("FOR UPDATE: %s", g.Summary())
	}
	g = grade(t, "job-queue", ex.Correct)
	if !g.Passed {
		t.Fatalf("SKIP LOCKED: %s", g.Summary())
	}
	g = grade(t, "job-queue", strings.Replace(ex.Correct, "SKIP LOCKED", "NOWAIT", 1))
	if g.Passed || g.Counterexample == nil || !strings.Contains(g.Counterexample.What, "55P03") {
		t.Fatalf("NOWAIT: %s", g.Summary())
	}
}

func TestGradeProblems(t *testing.T) {
	g := grade(t, "transfer", "BEGIN;\nUPDATE accounts SET balance = :nope WHERE id = :from;\nCOMMIT;\n")
	if g.Passed || g.Counterexample == nil || !strings.Contains(g.Counterexample.What, ":nope") {
		t.Fatalf("an unset variable: %s", g.Summary())
	}
	g = grade(t, "transfer", "BEGIN;\nUPDATE accounts SET balance = balance - :amount WHERE id = :from;\n")
	if g.Passed || g.Counterexample == nil || !strings.Contains(g.Counterexample.What, "COMMIT") {
		t.Fatalf("no commit: %s", g.Summary())
	}
}

func hasOutcome(c *learn.Counterexample, s string) bool {
	for _, st := range c.Steps {
		if strings.Contains(st.Outcome, s) {
			return true
		}
	}
	return false
}
