package learn_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/learn"
)

// A backend outside the grade that holds a lock the answer's sessions need
// — as autovacuum does for a moment, on a shared server, when it truncates
// a table or extends its visibility map — is no wait of the interleaving:
// the grade waits it out and passes a correct answer. It once failed one,
// "T1 waits for pid N (not a session of this run) for ever".
//
// The outside backend holds an advisory lock that the answer's sessions
// take shared (never against each other), and lets it go only once the
// grade's observer has polled 20 times with a session waiting for it: a
// grader that counts such a wait as the interleaving's gives up on the
// second poll, while the lock is still held.
func TestGradeWaitsOutABackendOutsideTheRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := env(t)
	h := fnv.New32a()
	h.Write([]byte(e.DB.Schema()))
	key := int64(h.Sum32())
	ex, _ := learn.LookupExercise("transfer")
	answer := strings.Replace(ex.Correct, "BEGIN;\n", fmt.Sprintf("BEGIN;\nSELECT pg_advisory_xact_lock_shared(%d);\n", key), 1)
	a, err := learn.ParseAnswer("answer.sql", []byte(answer))
	if err != nil {
		t.Fatal(err)
	}

	outside, err := e.DB.Connect(ctx, "lockstep-test/outside")
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close(context.Background())
	var pid int32
	if err := outside.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := outside.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := outside.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	watcher, err := e.DB.Connect(ctx, "lockstep-test/watcher")
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(context.Background())

	// waited is the session the server said waits for the outside backend.
	waited := make(chan string, 1)
	released := make(chan error, 1)
	var polled int // the observer's polls seen before the release
	gctx, stop := context.WithCancel(ctx)
	go func() {
		var session, last string
		polls := 0
		defer func() {
			polled = polls
			_, err := outside.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			released <- err
		}()
		for gctx.Err() == nil && polls < 20 {
			if session == "" {
				err := watcher.QueryRow(gctx, `SELECT application_name FROM pg_stat_activity
					WHERE $1 = ANY(pg_blocking_pids(pid)) AND application_name LIKE 'lockstep/%/T_'`, pid).Scan(&session)
				if err == nil {
					waited <- session
				}
			} else {
				// The grade's observer: a new query_start is a new poll.
				observer := session[:strings.LastIndex(session, "/")] + "/observer"
				var start string
				err := watcher.QueryRow(gctx, "SELECT query_start::text FROM pg_stat_activity WHERE application_name = $1", observer).Scan(&start)
				if errors.Is(err, pgx.ErrNoRows) {
					return // the run is over
				}
				if err == nil && start != last {
					polls, last = polls+1, start
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	g, err := learn.GradeAnswer(ctx, e, ex, a, learn.GradeOptions{Max: 2})
	stop()
	if rerr := <-released; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-waited:
		t.Logf("%s waited for pid %d, outside the run", s, pid)
	default:
		t.Fatal("no session of the grade waited for the outside backend: the test did not make the condition it is about")
	}
	if g.Passed && polled < 20 {
		t.Fatalf("the outside backend let go after %d of the observer's polls, not 20: the wait was not held through the grader's look", polled)
	}
	if !g.Passed || g.Counterexample != nil || g.Problem != "" {
		text := ""
		if g.Counterexample != nil {
			text = g.Counterexample.Text()
		}
		t.Fatalf("a correct transfer, with a backend outside the run holding a lock for a while: %s\n%s", g.Summary(), text)
	}
}
