package learn

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/load"
)

// benchAnswer is a correct transfer of eight statements: the size the
// grader's target names. Its lock comes first, so the orders that can
// happen are those the row lock allows.
const benchAnswer = `BEGIN;
INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (:from, :to, :amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :from, -:amount);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (currval('transfers_id_seq'), :to, :amount);
SELECT id FROM accounts WHERE id IN (:from, :to) ORDER BY id FOR NO KEY UPDATE;
UPDATE accounts SET balance = balance - :amount WHERE id = :from;
UPDATE accounts SET balance = balance + :amount WHERE id = :to;
COMMIT;
`

// isolationtester is PostgreSQL's own, where the server package puts it.
const isolationtester = "/usr/lib/postgresql/15/lib/pgxs/src/test/isolation/isolationtester"

// BenchmarkGrade grades a correct two-session transfer of eight
// statements — every interleaving in both directions, then a chaos run —
// and, in the same rounds, alternating, runs PostgreSQL's isolationtester
// on the same permutations written as a spec (same server, same setup and
// teardown blocks). It reports the grade's whole time, its interleavings'
// time, and the ratio of the interleavings to the tester's (the median of
// the rounds' ratios).
//
//	go test ./learn -run '^$' -bench Grade -benchtime 3x
func BenchmarkGrade(b *testing.B) {
	if _, err := os.Stat(isolationtester); err != nil {
		b.Skipf("no isolationtester at %s (the postgresql server package has it)", isolationtester)
	}
	env := Env{DB: dbtest.Schema(b), Ledger: dbtest.Ledger(b), Poll: 200 * time.Millisecond}
	ex := Exercises["transfer"]
	a, err := ParseAnswer("bench.sql", []byte(benchAnswer))
	if err != nil {
		b.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	answer := b.TempDir() + "/bench.sql"
	if err := os.WriteFile(answer, []byte(benchAnswer), 0o600); err != nil {
		b.Fatal(err)
	}
	// The chaos run's workers are this test binary, re-executed as
	// lockstep's worker (TestMain runs it so).
	chaos := func(ctx context.Context, d *db.Database) (load.ChaosResult, error) {
		const accounts = 10
		cfg := load.ChaosConfig{DB: d, Ledger: env.Ledger, Workers: 4, Accounts: accounts, Duration: 3 * time.Second, KillEvery: 250 * time.Millisecond}
		cfg.Command = func(runID db.RunID, name string, seed uint64) *exec.Cmd {
			return exec.Command(exe, "worker", "--dsn", dbtest.DSN(b), "--schema", d.Schema(), "--answer", answer,
				"--accounts", strconv.Itoa(accounts), "--run", string(runID), "--name", name, "--seed", strconv.FormatUint(seed, 10))
		}
		return load.Chaos(ctx, cfg)
	}
	ctx := context.Background()
	var ratios []float64
	var whole, ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		// The grade, with a chaos run (goroutine workers here: the test
		// binary is no lockstep to re-execute).
		start := time.Now()
		g, err := GradeAnswer(ctx, env, ex, a, GradeOptions{Chaos: chaos})
		if err != nil {
			b.Fatal(err)
		}
		whole += time.Since(start)
		if !g.Passed {
			b.Fatalf("the bench's answer fails: %s", g.Summary())
		}
		t0 := time.Now()
		if err := runTester(ctx, dbtest.DSN(b), env, ex, a, g); err != nil {
			b.Fatal(err)
		}
		tester := time.Since(t0)
		ours += g.Interleaving
		theirs += tester
		ratios = append(ratios, g.Interleaving.Seconds()/tester.Seconds())
		if i == 0 {
			b.Logf("%s", g.Summary())
		}
	}
	slices.Sort(ratios)
	b.ReportMetric(whole.Seconds()/float64(b.N), "s/grade")
	b.ReportMetric(ours.Seconds()/float64(b.N), "s/interleavings")
	b.ReportMetric(theirs.Seconds()/float64(b.N), "s/isolationtester")
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
	b.Logf("interleavings / isolationtester, each round: %.2f", ratios)
}

// runTester runs isolationtester on the grade's permutations, one spec a
// run of the exercise, written with the answer's statements as the run's
// sessions send them.
func runTester(ctx context.Context, dsn string, env Env, ex *Exercise, a *Answer, g *Grade) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("options", "-c search_path="+env.DB.Schema())
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // libpq reads + as itself
	for k, run := range ex.Runs() {
		spec, err := testerSpec(ex, a, run, g.Runs[k].Orders)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, isolationtester, u.String())
		cmd.Stdin = strings.NewReader(spec)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("isolationtester: %v\n%s", err, tail(out.String()))
		}
		if strings.Contains(out.String(), "failed") {
			return fmt.Errorf("isolationtester: %s", tail(out.String()))
		}
	}
	return nil
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// testerSpec is a run of the exercise as an isolation-tester spec: the
// grade's setup and teardown blocks, each session's statements as steps
// with its values in, and the orders as permutation lines.
func testerSpec(ex *Exercise, a *Answer, run ExerciseRun, orders [][]int) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "setup { %s }\nteardown { %s }\n", transferReset, strings.ReplaceAll(transferCheck, "\n", " "))
	for s, name := range ex.Sessions {
		fmt.Fprintf(&b, "session %s\n", strings.ToLower(name))
		for i, st := range a.Statements {
			sql, err := Render(st.SQL, run.Vars[s])
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "step %s_%d { %s }\n", strings.ToLower(name), i+1, sql)
		}
	}
	units := a.units()
	for _, order := range orders {
		next := make([]int, len(ex.Sessions))
		var steps []string
		for _, s := range order {
			for _, i := range units[next[s]] {
				steps = append(steps, fmt.Sprintf("%s_%d", strings.ToLower(ex.Sessions[s]), i+1))
			}
			next[s]++
		}
		fmt.Fprintf(&b, "permutation %s\n", strings.Join(steps, " "))
	}
	return b.String(), nil
}
