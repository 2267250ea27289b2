package learn

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/shopspring/decimal"

	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

// answerScript is a student's answer as one session's script: its
// statements rendered with the session's values (:from, :to, :amount,
// :worker) and what each \gset kept.
type answerScript struct {
	a    *Answer
	base map[string]string
	got  map[string]string
}

// newAnswerScript is the answer as session i runs it, with its values.
func newAnswerScript(a *Answer, vars map[string]string) *answerScript {
	return &answerScript{a: a, base: vars, got: map[string]string{}}
}

func (s *answerScript) Len() int { return len(s.a.Statements) }

// vars are the values a statement may use now.
func (s *answerScript) vars() map[string]string {
	v := maps.Clone(s.base)
	maps.Copy(v, s.got)
	return v
}

// SQL is statement i with every value known so far put in; a variable
// not set yet stays as it is written (:from_balance), as psql would send it.
func (s *answerScript) SQL(i int) string {
	sql, err := Render(s.a.Statements[i].SQL, s.vars())
	if err != nil {
		return s.a.Statements[i].SQL
	}
	return sql
}

// Missing says which variable statement i uses that has no value yet, or "".
func (s *answerScript) Missing(i int) error {
	_, err := Render(s.a.Statements[i].SQL, s.vars())
	return err
}

func (s *answerScript) Record(int, []any) error { return nil }

// RecordResults keeps a \gset statement's row as variables named after its
// columns, as psql does; no row, or more than one, is psql's error too.
func (s *answerScript) RecordResults(i int, res []sim.Result) error {
	st := s.a.Statements[i]
	if !st.Gset {
		return nil
	}
	var last *sim.Result
	for k := range res {
		if res[k].Columns != nil {
			last = &res[k]
		}
	}
	switch {
	case last == nil || len(last.Rows) == 0:
		return errors.New("no rows returned for \\gset")
	case len(last.Rows) > 1:
		return errors.New("more than one row returned for \\gset")
	}
	for c, col := range last.Columns {
		name := st.Prefix + col
		if last.Null != nil && last.Null[0] != nil && last.Null[0][c] {
			delete(s.got, name) // psql unsets a variable set to NULL
			continue
		}
		s.got[name] = last.Rows[0][c]
	}
	return nil
}

// ExerciseRun is how one run of an exercise is set up: the two sessions'
// values, and the SQL that prepares the data before each interleaving and
// reads what the invariant is checked against after it.
type ExerciseRun struct {
	// Name says which run it is: "same direction", "opposite directions".
	Name string
	// Vars are each session's values.
	Vars []map[string]string
	// Transfers are each session's transfer (the transfer exercise).
	Transfers []ledger.Transfer
}

// Runs are the exercise's runs: the transfer both ways, the job queue once.
func (e *Exercise) Runs() []ExerciseRun {
	if e.Name == "job-queue" {
		return []ExerciseRun{{Name: "two workers", Vars: []map[string]string{{"worker": "W1"}, {"worker": "W2"}}}}
	}
	t := func(from, to int64) ledger.Transfer {
		return ledger.Transfer{From: from, To: to, Amount: decimal.RequireFromString("10.00")}
	}
	vars := func(tr ledger.Transfer) map[string]string {
		return map[string]string{"from": fmt.Sprint(tr.From), "to": fmt.Sprint(tr.To), "amount": tr.Amount.StringFixed(2)}
	}
	same := []ledger.Transfer{t(1, 2), t(1, 2)}
	opposite := []ledger.Transfer{t(1, 2), t(2, 1)}
	return []ExerciseRun{
		{Name: "both 1 → 2", Vars: []map[string]string{vars(same[0]), vars(same[1])}, Transfers: same},
		{Name: "1 → 2 and 2 → 1", Vars: []map[string]string{vars(opposite[0]), vars(opposite[1])}, Transfers: opposite},
	}
}

// The SQL that resets the data before each interleaving and reads it after.
const (
	transferReset = "DELETE FROM entries; DELETE FROM transfers; UPDATE accounts SET balance = opening_balance"
	transferCheck = `SELECT a.id, a.balance::text, a.opening_balance::text, (a.opening_balance + coalesce(e.sum, 0))::text
  FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) AS sum FROM entries GROUP BY account_id) e ON e.account_id = a.id
  ORDER BY a.id;
SELECT t.id, count(e.id), coalesce(sum(e.amount), 0)::text
  FROM transfers t LEFT JOIN entries e ON e.transfer_id = t.id GROUP BY t.id ORDER BY t.id`
	jobsCreate = `CREATE TABLE ls_jobs (id int PRIMARY KEY, state text NOT NULL DEFAULT 'queued');
CREATE TABLE ls_done (job_id int NOT NULL, worker text NOT NULL)`
	jobsReset = `DELETE FROM ls_done; DELETE FROM ls_jobs; INSERT INTO ls_jobs (id) VALUES (1), (2), (3)`
	jobsCheck = `SELECT job_id, count(*), string_agg(worker, ',' ORDER BY worker) FROM ls_done GROUP BY job_id ORDER BY job_id;
SELECT id, state FROM ls_jobs ORDER BY id`
	jobsDrop = "DROP TABLE IF EXISTS ls_jobs, ls_done"
)

// spec is the exercise as a scenario: two sessions whose steps are the
// answer's statements, the data reset before each interleaving (setup)
// and read after it (teardown). The sessions' scripts are the answer's,
// rendered with their values (Config.Scripts).
func (e *Exercise) spec(a *Answer) *scenario.Spec {
	sp := &scenario.Spec{Setup: []string{transferReset}, Teardown: transferCheck}
	if e.Name == "job-queue" {
		sp.Setup, sp.Teardown = []string{jobsReset}, jobsCheck
	}
	for _, name := range e.Sessions {
		ss := &scenario.Session{Name: name}
		for i, st := range a.Statements {
			ss.Steps = append(ss.Steps, &scenario.Step{Name: fmt.Sprintf("%s_%d", strings.ToLower(name), i+1), SQL: st.SQL, Session: ss, Line: st.Line})
		}
		sp.Sessions = append(sp.Sessions, ss)
	}
	return sp
}

// setsTimer says whether an answer sets a timeout that can end a wait by
// itself: then a step sent to a waiting session is waited for, as the
// isolation tester waits, rather than skipped as an order that cannot be.
func (a *Answer) setsTimer() bool {
	for _, st := range a.Statements {
		q := strings.ToLower(st.SQL)
		if strings.Contains(q, "lock_timeout") || strings.Contains(q, "statement_timeout") {
			return true
		}
	}
	return false
}

// units groups an answer's statements as the grade interleaves them: a
// BEGIN takes no snapshot and no lock, so where it stands among the other
// session's statements changes nothing — it goes with the statement after
// it, and orders that differ only there are run once.
func (a *Answer) units() [][]int {
	var out [][]int
	var cur []int
	for i, st := range a.Statements {
		cur = append(cur, i)
		if isBegin(st.SQL) && i+1 < len(a.Statements) {
			continue
		}
		out = append(out, cur)
		cur = nil
	}
	return out
}

// isBegin says whether a statement only starts a transaction.
func isBegin(sql string) bool {
	f := strings.Fields(strings.ToUpper(sql))
	if len(f) == 0 || strings.Contains(sql, ";") {
		return false
	}
	return f[0] == "BEGIN" || (f[0] == "START" && len(f) > 1 && f[1] == "TRANSACTION")
}
