package learn

import (
	"slices"
	"strings"
)

// Exercise is a task a student answers with SQL, graded on the server:
// every interleaving of two sessions running the answer, then (for the
// transfer) a chaos run with the books checked.
type Exercise struct {
	Name string
	// Task says in a sentence what the answer must do.
	Task string
	// Sessions are the two sessions' names (T1, T2).
	Sessions []string
	// Start is the answer file a student begins from: a wrong answer to
	// fix, with what the exercise is about in its comments.
	Start string
	// Correct is an answer that passes (the tests' and the benchmark's).
	Correct string
}

// Exercises are the course's exercises, by name.
var Exercises = map[string]*Exercise{
	"transfer": {
		Name:     "transfer",
		Task:     "write the transfer so that it never loses money and never deadlocks",
		Sessions: []string{"T1", "T2"},
		Start: `-- lockstep learn, the transfer exercise: write the transfer so that it never
-- loses money and never deadlocks.
--
-- It moves :amount (10.00) from account :from to account :to. lockstep learn
-- --check transfer runs it in two sessions at once, both moving money 1 -> 2 and
-- then in opposite directions (1 -> 2 and 2 -> 1), in every order their
-- statements can interleave; then a chaos monkey kills workers running it.
-- The books are kept when every balance is its opening balance plus its entries
-- and every transfer has two entries summing to zero.
--
-- The ledger: accounts(id, owner, balance, opening_balance),
-- transfers(id, from_account_id, to_account_id, amount),
-- entries(id, transfer_id, account_id, amount).
-- As in psql, \gset keeps a row's values for the statements after it:
--   SELECT balance AS b FROM accounts WHERE id = :from \gset
-- then :b is the balance read. currval('transfers_id_seq') is the id of the
-- transfer this session inserted last.
--
-- This first answer is the naive read-modify-write. Grade it, see how it
-- loses money, and fix it.

BEGIN;
INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (:from, :to, :amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :from, -:amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :to, :amount);
SELECT balance AS from_balance FROM accounts WHERE id = :from \gset
UPDATE accounts SET balance = :from_balance - :amount WHERE id = :from;
SELECT balance AS to_balance FROM accounts WHERE id = :to \gset
UPDATE accounts SET balance = :to_balance + :amount WHERE id = :to;
COMMIT;
`,
		Correct: `BEGIN;
INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (:from, :to, :amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :from, -:amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :to, :amount);
UPDATE accounts SET balance = balance + CASE WHEN id = :from THEN -:amount ELSE :amount END WHERE id = LEAST(:from, :to);
UPDATE accounts SET balance = balance + CASE WHEN id = :from THEN -:amount ELSE :amount END WHERE id = GREATEST(:from, :to);
COMMIT;
`,
	},
	"job-queue": {
		Name:     "job-queue",
		Task:     "write how a worker takes the next job, so that the queue never blocks and no job is done twice",
		Sessions: []string{"T1", "T2"}, // workers W1 and W2 (:worker)
		Start: `-- lockstep learn, the job-queue exercise: write how a worker takes the next
-- job, so that two workers never wait for each other and no job is done twice.
--
-- ls_jobs(id, state) holds jobs 1, 2 and 3, state 'queued'. A worker takes one
-- job, marks it 'done', and records it in ls_done(job_id, worker); :worker is
-- its name ('W1', 'W2'). lockstep learn --check job-queue runs two workers at
-- once in every order their statements can interleave: neither may ever wait
-- for the other, and each must do a job of its own.
-- As in psql, \gset keeps a row's values for the statements after it.
--
-- This first answer takes the oldest queued job FOR UPDATE. Grade it, see the
-- second worker wait, and fix it.

BEGIN;
SELECT id AS job FROM ls_jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE \gset
UPDATE ls_jobs SET state = 'done' WHERE id = :job;
INSERT INTO ls_done (job_id, worker) VALUES (:job, :'worker');
COMMIT;
`,
		Correct: `BEGIN;
SELECT id AS job FROM ls_jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED \gset
UPDATE ls_jobs SET state = 'done' WHERE id = :job;
INSERT INTO ls_done (job_id, worker) VALUES (:job, :'worker');
COMMIT;
`,
	},
}

// ExerciseNames lists the exercises.
func ExerciseNames() []string {
	var names []string
	for n := range Exercises {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// LookupExercise finds an exercise by name.
func LookupExercise(name string) (*Exercise, bool) {
	e, ok := Exercises[strings.TrimSpace(name)]
	return e, ok
}
