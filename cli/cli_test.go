package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/cli"
	"lockstep/db"
	"lockstep/dbtest"
)

func TestMain(m *testing.M) {
	// lockstep chaos re-executes its own binary as "worker": here, this one.
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(cli.ExitCode(err))
	}
	dbtest.Main(m)
}

var schemaSeq atomic.Int64

// lockstep runs the command line with args and returns stdout, stderr and the exit code.
func lockstep(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	// As main gives it: a context that remembers when it ends (db.Cleanup).
	err := cli.Execute(db.WithEndTime(context.Background()), args, &out, &errOut)
	return out.String(), errOut.String(), cli.ExitCode(err)
}

// withDB adds --dsn for the test database and a schema of the test's own.
func withDB(t *testing.T, args ...string) []string {
	t.Helper()
	schema := fmt.Sprintf("lockstep_cli%d_%d", os.Getpid(), schemaSeq.Add(1))
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dbtest.DSN(t))
		if err == nil {
			conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	return append(args, "--dsn", dbtest.DSN(t), "--schema", schema)
}

func TestBadInputIsOneLineAndExitCode2(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		args []string
		want string
	}{
		"unknown strategy":    {[]string{"run", "--strategy", "optimistic"}, `unknown strategy "optimistic"`},
		"no accounts":         {[]string{"reset", "--accounts", "0"}, "--accounts 0"},
		"negative balance":    {[]string{"reset", "--balance", "-5"}, "cannot be negative"},
		"not an amount":       {[]string{"reset", "--balance", "lots"}, "is not an amount"},
		"unknown flag":        {[]string{"--frob"}, "unknown flag: --frob"},
		"unknown command":     {[]string{"frobnicate"}, `unknown command "frobnicate"`},
		"too many":            {[]string{"run", "--sessions", "12"}, "--sessions 12: choose 2 to 9"},
		"bad order":           {[]string{"run", "--order", "T1,T5"}, `"T5" is not a session`},
		"bad direction":       {[]string{"run", "--direction", "up"}, `unknown --direction "up"`},
		"ring of 9":           {[]string{"run", "--direction", "ring", "--sessions", "9"}, "needs 9 accounts; the ledger has 2: add --accounts 9"},
		"bad theme":           {[]string{"--theme", "neon"}, `unknown theme "neon": use default or projector`},
		"bad schema":          {[]string{"reset", "--schema", "Robert'); DROP"}, "invalid --schema"},
		"unreachable":         {[]string{"reset", "--dsn", "postgres://bob:s3cretpw@127.0.0.1:1/x"}, "cannot reach PostgreSQL at 127.0.0.1:1"},
		"unparsable dsn":      {[]string{"reset", "--dsn", "postgres://bob:s3cretpw@host:port/x"}, "invalid --dsn"},
		"chaos no workers":    {[]string{"chaos", "--workers", "0"}, "--workers 0"},
		"chaos duration":      {[]string{"chaos", "--duration", "-1s"}, "--duration -1s: must be positive"},
		"chaos interval":      {[]string{"chaos", "--duration", "1s", "--kill-every", "5s"}, "longer than --duration"},
		"chaos strategy":      {[]string{"chaos", "--strategy", "yolo"}, `unknown strategy "yolo"`},
		"bench workers":       {[]string{"bench", "--workers", "0,2"}, "--workers"},
		"bench duration":      {[]string{"bench", "--duration", "0s"}, "--duration 0s: must be positive"},
		"bench rounds":        {[]string{"bench", "--vs-pgbench", "--rounds", "0"}, "--rounds 0: use 1 to 20 rounds"},
		"bench rounds alone":  {[]string{"bench", "--rounds", "5"}, "--rounds 5: rounds are of the comparison with pgbench; add --vs-pgbench"},
		"bench strategy":      {[]string{"bench", "--strategy", "ordered,yolo"}, `unknown strategy "yolo"`},
		"bench pipeline jobs": {[]string{"bench", "--workload", "job-queue", "--pipeline"}, "--workload job-queue: --pipeline is for transfers"},
		"spec no file":        {[]string{"spec", "nosuch"}, `no scenario or file "nosuch"`},
		"spec isolation":      {[]string{"spec", "write-skew", "--isolation", "chaos"}, `unknown isolation level "chaos"`},
		"spec malformed":      {[]string{"spec", "testdata/bad.spec"}, "testdata/bad.spec:3:13: undefined step \"b\" in permutation"},
		"spec coupled":        {[]string{"spec", "coupled"}, "coupled uses two databases (session T1@A): run it with lockstep run --scenario coupled"},
		"spec pool":           {[]string{"spec", "pool"}, "pool is not a spec"},
		"spec missing":        {[]string{"spec", "testdata/nosuch.spec"}, "no spec file testdata/nosuch.spec"},
		"spec directory":      {[]string{"spec", "testdata"}, "testdata is a directory; pass a spec file"},
		"spec endless":        {[]string{"spec", "/dev/zero"}, "/dev/zero is larger than 1 MB: a spec is a text file of a few kilobytes"},
		"replay endless":      {[]string{"replay", "/dev/zero"}, "/dev/zero: not a lockstep recording: its first line is no lockstep header"},
		"export endless":      {[]string{"export", "/dev/zero", "--markdown"}, "/dev/zero: not a lockstep recording: its first line is no lockstep header"},
		"spec runaway":        {[]string{"spec", "testdata/runaway.spec"}, "interleave in 12315686996104586105755778762527877375925475388598463020 ways (more than 10000); add permutation lines"},
		"spec permutation":    {[]string{"spec", "testdata/runaway.spec", "--permutation", "0"}, "interleave in"},
		"amount too big":      {[]string{"run", "--amount", "99999999999"}, "--amount 99999999999.00: NUMERIC(12,2) holds at most 9999999999.99"},
		"bench workload":      {[]string{"bench", "--workload", "queue"}, `--workload "queue": use transfers or job-queue`},
		"watch pid":           {[]string{"watch", "--pid", "12,x"}, `--pid "12,x": give backend pids separated by commas`},
		"watch poll":          {[]string{"watch", "--poll", "0s"}, "--poll 0s: at least 10ms"},
		"watch poll long":     {[]string{"watch", "--poll", "2h"}, "--poll 2h0m0s: at most 1m0s"},
		"run poll":            {[]string{"run", "--poll", "1ns"}, "--poll 1ns: at least 10ms (each look is a query on the server; the default is 200ms)"},
		"tui poll":            {[]string{"--poll", "1ns"}, "--poll 1ns: at least 10ms"},
		"class every":         {[]string{"class", "--every", "1ns"}, "--every 1ns: at least 10ms"},
		"export huge":         {[]string{"export", "../record/testdata/lecture-v1.jsonl", "--svg", "--width", "20000", "--height", "20000"}, "--width 20000 --height 20000: at most 500×200"},
		"export damaged gz":   {[]string{"export", "testdata/damaged.jsonl.gz", "--markdown"}, "the compressed file is damaged (flate: corrupt input"},
		"export cut gz":       {[]string{"export", "testdata/cut.jsonl.gz", "--markdown"}, "the compressed file ends before its first line does"},
		"bench all,bogus":     {[]string{"bench", "--strategy", "all,bogus"}, `unknown strategy "bogus"`},
		"replay no file":      {[]string{"replay"}, "usage: lockstep replay FILE (accepts 1 arg(s), received 0)"},
		"export two files":    {[]string{"export", "a", "b"}, "usage: lockstep export FILE (accepts 1 arg(s), received 2)"},
		"spec no arg":         {[]string{"spec"}, "usage: lockstep spec FILE|SCENARIO"},
		"reset argument":      {[]string{"reset", "extra"}, `lockstep reset takes no arguments, got "extra"`},
		"clean argument":      {[]string{"clean", "now"}, `lockstep clean takes no arguments, got "now"`},
		"completion extra":    {[]string{"completion", "bash", "extra"}, "lockstep completion bash takes no arguments"},
		"watch both":          {[]string{"watch", "--database", "x", "--all"}, "--database and --all: choose one"},
		"fix unknown":         {[]string{"run", "--scenario", "job-queue", "--fix", "bogus"}, "the fixes of job-queue are none, nowait, skip-locked"},
		"pool fix":            {[]string{"run", "--scenario", "pool", "--fix", "magic"}, `unknown pool fix "magic"`},
		"pool size":           {[]string{"run", "--scenario", "pool", "--pool-size", "1"}, "--pool-size 1: at least 2"},
		"resolve":             {[]string{"run", "--scenario", "coupled", "--resolve", "maybe"}, `--resolve "maybe": use commit or rollback`},
		"replay missing":      {[]string{"replay", "testdata/nosuch.jsonl"}, "no recording testdata/nosuch.jsonl: make one with --record"},
		"replay not one":      {[]string{"replay", "testdata/bad.spec"}, "testdata/bad.spec: not a lockstep recording"},
		"replay truncated":    {[]string{"replay", "testdata/truncated.jsonl"}, "the recording is truncated: line 3 ends mid-way"},
		"replay future":       {[]string{"replay", "testdata/future.jsonl"}, "from a newer lockstep: format version 9"},
		"export format":       {[]string{"export", "../record/testdata/lecture-v1.jsonl"}, "choose one format: --markdown, --dot, --mermaid, --svg or --cast"},
		"export at":           {[]string{"export", "../record/testdata/lecture-v1.jsonl", "--dot", "--at", "never"}, `--at "never": give start, end, deadlock or a moment from 1 to`},
		"export no tty":       {[]string{"replay", "../record/testdata/lecture-v1.jsonl"}, "replay opens the interface and needs a terminal"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := lockstep(t, c.args...)
			if code != cli.ExitBadInput {
				t.Errorf("exit code %d, want 2", code)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "lockstep: ") {
				t.Errorf("stderr is not one line: %q", errOut)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr %q does not say %q", errOut, c.want)
			}
			for _, bad := range []string{"s3cretpw", "goroutine", "panic"} {
				if strings.Contains(out+errOut, bad) {
					t.Errorf("output contains %q: %s%s", bad, out, errOut)
				}
			}
		})
	}
}

func TestStrategiesListsTen(t *testing.T) {
	t.Parallel()
	out, _, code := lockstep(t, "strategies")
	if code != 0 || strings.Count(out, "\n") != 10 || !strings.Contains(out, "for-no-key-update") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestResetCommand(t *testing.T) {
	t.Parallel()
	args := withDB(t, "reset", "--accounts", "3", "--balance", "50")
	out, errOut, code := lockstep(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"alice", "bob", "carol", "50.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A big ledger prints its first accounts and a count, not every line.
	out, errOut, code = lockstep(t, withDB(t, "reset", "--accounts", "1000")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if lines := strings.Count(out, "\n"); lines > 20 || !strings.Contains(out, "… and 988 more accounts (1000 in all, 100000.00 in total)") {
		t.Errorf("%d lines:\n%s", lines, out)
	}
	// A schema lockstep did not make is refused.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := args[len(args)-1] + "_mine"
	conn.Exec(ctx, "CREATE SCHEMA "+schema)
	defer conn.Exec(ctx, "DROP SCHEMA "+schema)
	_, errOut, code = lockstep(t, "reset", "--dsn", dbtest.DSN(t), "--schema", schema)
	if code != cli.ExitBadInput || !strings.Contains(errOut, "schema "+schema+" exists and lockstep did not create it") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestRunTranscriptShowsTheLecturesDeadlock(t *testing.T) {
	t.Parallel()
	out, errOut, code := lockstep(t, withDB(t, "run", "--strategy", "for-update")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"step T1: BEGIN\nstep T2: BEGIN\n",
		"step T2: SELECT balance FROM accounts WHERE id = 1 FOR UPDATE <waiting ...>\n",
		"holds FOR KEY SHARE on accounts id=1 (a mode taken by e.g. a foreign-key check or SELECT … FOR KEY SHARE), which conflicts with FOR UPDATE",
		"-- deadlock: T1 → T2 → T1",
		"ERROR:  deadlock detected (SQLSTATE 40P01)\nDETAIL:  Process ",
		"<... completed>",
		"balances: 1 alice 90.00 · 2 bob 110.00\ntotal 200.00 = 200.00 ok\nwaits 2 · deadlocks 1 · serialization failures 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
}

func TestRunJSON(t *testing.T) {
	t.Parallel()
	out, errOut, code := lockstep(t, withDB(t, "run", "--strategy", "naive", "--json")...)
	// naive loses an update: the books end broken, and run says so as chaos does.
	if code != cli.ExitFailure || !strings.Contains(errOut, "the books are broken under strategy naive") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines[:len(lines)-1] {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		for _, k := range []string{"session", "sql", "event", "sqlstate", "blocked_by", "elapsed_ms"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("event lacks %q: %s", k, l)
			}
		}
	}
	var sum struct {
		Balances              map[string]string `json:"balances"`
		InvariantOK           bool              `json:"invariant_ok"`
		LostUpdate            bool              `json:"lost_update"`
		Waits                 int               `json:"waits"`
		Deadlocks             int               `json:"deadlocks"`
		SerializationFailures *int              `json:"serialization_failures"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.InvariantOK || !sum.LostUpdate || sum.Balances["1"] != "90.00" || sum.Waits < 1 || sum.SerializationFailures == nil {
		t.Fatalf("summary %+v", sum)
	}
}

func TestDBCommandServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		var errOut bytes.Buffer
		// The environment may carry DATABASE_URL; db ignores it.
		err := cli.Execute(ctx, []string{"db"}, pw, &errOut)
		pw.Close()
		done <- errors.Join(err, errors.New(errOut.String()))
	}()
	sc := bufio.NewScanner(pr)
	var url string
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "postgres://") {
			url = sc.Text()
			break
		}
	}
	if url == "" {
		t.Fatalf("no URL line: %v", <-done)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM lockstep.accounts").Scan(&n)
	conn.Close(ctx)
	if err != nil || n != 2 {
		t.Fatalf("accounts: %d, %v", n, err)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case err := <-done:
		if ee := new(cli.ExitError); errors.As(err, &ee) {
			t.Fatalf("db returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("db did not stop")
	}
	dir := strings.TrimPrefix(url[strings.Index(url, "host=")+5:], "")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there: %v", dir, err)
	}
}

func TestChaosExitCodes(t *testing.T) {
	t.Parallel()
	out, errOut, code := lockstep(t, withDB(t, "chaos", "--strategy", "none", "--workers", "3", "--duration", "3s", "--kill-every", "250ms")...)
	if code != cli.ExitFailure || !strings.Contains(errOut, "the books are broken under strategy none") {
		t.Fatalf("none: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = lockstep(t, withDB(t, "chaos", "--strategy", "ordered", "--workers", "3", "--duration", "3s", "--kill-every", "250ms", "--json")...)
	if code != 0 {
		t.Fatalf("ordered: exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kills", "kills_in_transaction", "committed", "deadlocks", "serialization_failures", "retries", "invariant_ok"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary lacks %q: %s", k, lines[len(lines)-1])
		}
	}
	// 3 s at one kill every 250 ms: 12 kills, however slow the machine.
	if sum["invariant_ok"] != true || sum["kills"] != float64(12) {
		t.Errorf("summary %v", sum)
	}
}

// withTwoDBs is withDB for a two-database command: the schema is dropped
// in lockstep_b too.
func withTwoDBs(t *testing.T, args ...string) []string {
	t.Helper()
	args = withDB(t, args...)
	schema := args[len(args)-1]
	t.Cleanup(func() {
		ctx := context.Background()
		first, err := dbtest.DB(t).WithSchema(schema)
		if err != nil {
			t.Error(err)
			return
		}
		second, err := db.OpenSecond(ctx, first, "")
		if err != nil {
			t.Error(err)
			return
		}
		conn, err := second.Connect(ctx, db.AppName("test-cleanup"))
		if err == nil {
			conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	return args
}

func TestRunCoupledReportsTheDistributedDeadlock(t *testing.T) {
	t.Parallel()
	out, errOut, code := lockstep(t, withTwoDBs(t, "run", "--scenario", "coupled", "--json")...)
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var summary struct {
		Distributed int  `json:"distributed_deadlocks"`
		Deadlocks   int  `json:"deadlocks"`
		InSync      bool `json:"in_sync"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil {
		t.Fatal(err)
	}
	if summary.Distributed < 1 || summary.Deadlocks != 0 || !summary.InSync {
		t.Errorf("summary %+v: want a distributed deadlock, no 40P01, the databases in sync after the rollback", summary)
	}
	if !strings.Contains(out, "distributed deadlock detected by lockstep: T1@A → T2@A → T2@B → T1@B → T1@A") {
		t.Errorf("no detection line in:\n%s", out)
	}
	// What the server sees of a holder goes on from the explanation's
	// last sentence (it was glued on as "not before.; the server sees").
	if strings.Contains(out, ".;") || !strings.Contains(out, "not before; the server sees") {
		t.Errorf("the server's view of the holder is not its own sentence:\n%s", out)
	}
	// --dsn2 naming the first database is refused.
	args := withDB(t, "run", "--scenario", "coupled")
	_, errOut, code = lockstep(t, append(args, "--dsn2", dbtest.DSN(t))...)
	if code != cli.ExitBadInput || !strings.Contains(errOut, "--dsn2 names the same database") {
		t.Errorf("--dsn2 = --dsn: exit %d, %q", code, errOut)
	}
	_, errOut, code = lockstep(t, append(args, "--dsn2", "postgres://bob:s3cretpw@host:port/x")...)
	if code != cli.ExitBadInput || !strings.Contains(errOut, "invalid --dsn2") || strings.Contains(errOut, "s3cretpw") {
		t.Errorf("unparsable --dsn2: exit %d, %q", code, errOut)
	}
}

func TestRunPoolExhaustsAndTheFixesComplete(t *testing.T) {
	t.Parallel()
	out, errOut, code := lockstep(t, withTwoDBs(t, "run", "--scenario", "pool", "--pool-size", "3")...)
	if code != cli.ExitOK || !strings.Contains(out, "3/3 in use, 0 idle, 3 waiting acquirers — exhausted") {
		t.Fatalf("exit %d (%s):\n%s", code, errOut, out)
	}
	for _, fix := range []string{"up-front", "pool-per-database", "semaphore"} {
		out, errOut, code := lockstep(t, withTwoDBs(t, "run", "--scenario", "pool", "--pool-size", "3", "--fix", fix, "--json")...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var summary struct {
			Exhausted bool `json:"exhausted"`
			Completed int  `json:"completed"`
		}
		if code != cli.ExitOK || json.Unmarshal([]byte(lines[len(lines)-1]), &summary) != nil || summary.Exhausted || summary.Completed != 3 {
			t.Errorf("--fix %s: exit %d (%s), summary %+v", fix, code, errOut, summary)
		}
	}
}

// TestBenchVsPgbench runs the comparison for real: pgbench ships with the
// PostgreSQL server package these tests already need.
func TestBenchVsPgbench(t *testing.T) {
	t.Parallel()
	out, errOut, code := lockstep(t, withDB(t, "bench", "--strategy", "ordered", "--workers", "2", "--accounts", "10", "--duration", "1s", "--vs-pgbench", "--rounds", "3", "--json")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var sum struct {
		Ratio   float64 `json:"ratio_vs_pgbench"`
		Pgbench []struct {
			Workers    int       `json:"workers"`
			Accounts   int       `json:"accounts"`
			PgbenchTPS float64   `json:"pgbench_transfers_per_s"`
			Lockstep   float64   `json:"lockstep_transfers_per_s"`
			Rounds     []float64 `json:"round_ratios"`
			Ratio      float64   `json:"ratio"`
			Threads    int       `json:"client_threads"`
			Prepared   float64   `json:"pgbench_prepared_transfers_per_s"`
			RatioPrep  float64   `json:"ratio_prepared"`
			RoundsPrep []float64 `json:"round_ratios_prepared"`
		} `json:"pgbench"`
		RatioPrep float64 `json:"ratio_vs_pgbench_prepared"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Pgbench) != 1 {
		t.Fatalf("want one comparison: %s", lines[len(lines)-1])
	}
	c := sum.Pgbench[0]
	// A round in which pgbench completed no transaction (a loaded machine)
	// is left out, and stderr says which.
	left := strings.Count(errOut, "completed no transaction")
	if c.Workers != 2 || c.Accounts != 10 || c.PgbenchTPS <= 0 || c.Lockstep <= 0 || len(c.Rounds)+len(c.RoundsPrep)+left != 6 || c.Threads < 1 || c.Threads > 2 {
		t.Fatalf("comparison %+v; %d rounds left out:\n%s", c, left, errOut)
	}
	// The ratio is the middle round's.
	if c.Ratio != medianOf(c.Rounds) || sum.Ratio != c.Ratio {
		t.Errorf("ratio %v, ratio_vs_pgbench %v, want the median of %v", c.Ratio, sum.Ratio, c.Rounds)
	}
	// pgbench -M prepared ran the same script in the same rounds.
	if c.Prepared <= 0 || len(c.RoundsPrep) == 0 {
		t.Fatalf("no comparison with pgbench -M prepared: %+v", c)
	}
	if c.RatioPrep != medianOf(c.RoundsPrep) || sum.RatioPrep != c.RatioPrep {
		t.Errorf("ratio_prepared %v, ratio_vs_pgbench_prepared %v, want the median of %v", c.RatioPrep, sum.RatioPrep, c.RoundsPrep)
	}
}

func medianOf(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

// clean removes what lockstep made — the run's marked schema — and nothing
// it did not: a schema of the same user without lockstep's mark stays.
func TestCleanRemovesOnlyWhatLockstepMade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	args := withDB(t, "reset")
	if _, errOut, code := lockstep(t, args...); code != 0 {
		t.Fatalf("reset: exit %d: %s", code, errOut)
	}
	schema := args[len(args)-1]
	foreign := schema + "_theirs"
	conn, err := pgx.Connect(ctx, dbtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+foreign); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+foreign)
	cleanArgs := append([]string{"clean"}, args[1:]...)
	if _, errOut, code := lockstep(t, cleanArgs...); code != cli.ExitBadInput || !strings.Contains(errOut, "pass --yes") {
		t.Fatalf("clean without --yes, not on a terminal: exit %d: %s", code, errOut)
	}
	out, errOut, code := lockstep(t, append(cleanArgs, "--yes")...)
	if code != 0 || !strings.Contains(out, "removed schema "+schema+"\n") || strings.Contains(out, foreign) {
		t.Fatalf("clean --yes: exit %d: %s%s", code, out, errOut)
	}
	var left []string
	rows, err := conn.Query(ctx, "SELECT nspname FROM pg_namespace WHERE nspname IN ($1, $2) ORDER BY 1", schema, foreign)
	if err != nil {
		t.Fatal(err)
	}
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(left) != 1 || left[0] != foreign {
		t.Fatalf("after clean: %v left (%v); want only %s", left, err, foreign)
	}
	if out, _, code := lockstep(t, append(cleanArgs, "--yes")...); code != 0 || !strings.Contains(out, "nothing to remove") {
		t.Fatalf("a second clean: exit %d: %s", code, out)
	}
}

// run drops the schema it made at the end, and says so, unless --keep.
func TestRunDropsItsSchemaUnlessKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exists := func(schema string) bool {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, keep := range []bool{false, true} {
		args := withDB(t, "run", "--strategy", "ordered")
		if keep {
			args = append(args, "--keep")
		}
		schema := args[len(args)-1]
		if keep {
			schema = args[len(args)-2]
		}
		_, errOut, code := lockstep(t, args...)
		if code != 0 {
			t.Fatalf("run (keep %v): exit %d: %s", keep, code, errOut)
		}
		said := strings.Contains(errOut, "dropped schema "+schema)
		if exists(schema) != keep || said == keep {
			t.Errorf("run (keep %v): schema %s exists %v; stderr %q", keep, schema, exists(schema), errOut)
		}
	}
}

// watch --once --json reports an application's waits as a tree: the root
// blocker idle in its transaction, the waiter under it with its lock.
func TestWatchOnceJSON(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app := fmt.Sprintf("cliwatch%d_%d", os.Getpid(), schemaSeq.Add(1))
	conn := func(n string) *pgx.Conn {
		cfg, err := pgx.ParseConfig(dbtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["application_name"] = app + "_" + n
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, b := conn("a"), conn("b")
	if _, err := a.Exec(ctx, "CREATE TABLE "+app+" (id int PRIMARY KEY, v int); INSERT INTO "+app+" VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := conn("cleanup")
		c.Exec(context.Background(), "DROP TABLE IF EXISTS "+app)
	})
	if _, err := a.Exec(ctx, "BEGIN; DELETE FROM "+app+" WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.Exec(ctx, "UPDATE "+app+" SET v = 2 WHERE id = 1"); done <- err }()
	type node struct {
		Session string
		Edge    *int
		Waiters []node
	}
	var got struct {
		Watched  int
		Sessions []struct{ Name, State, Query string }
		Edges    []struct {
			Waiter, Holder, Lock, Why string
			Soft                      bool
		}
		Tree []node
	}
	// Until b is seen waiting: the watch is headless and looks once per call.
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, errOut, code := lockstep(t, "watch", "--dsn", dbtest.DSN(t), "--app", app+"_%", "--once", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		if len(got.Tree) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if got.Watched != 2 || len(got.Tree) != 1 || len(got.Sessions) != 2 || len(got.Edges) != 1 {
		t.Fatalf("%+v", got)
	}
	// Recorded, the look becomes a handout.
	file := filepath.Join(t.TempDir(), "watch.jsonl")
	if _, errOut, code := lockstep(t, "watch", "--dsn", dbtest.DSN(t), "--app", app+"_%", "--once", "--record", file); code != 0 {
		t.Fatalf("watch --record: exit %d: %s", code, errOut)
	}
	if md, errOut, code := lockstep(t, "export", file, "--markdown"); code != 0 || !strings.Contains(md, "## Who waited for whom") ||
		!strings.Contains(md, app+"_b") {
		t.Errorf("export of a recorded watch: exit %d %s\n%s", code, errOut, md)
	}
	// The tree is by reference: the root names its session, the waiter the
	// edge that puts it there.
	root, sessions := got.Tree[0], map[string]int{}
	for i, s := range got.Sessions {
		sessions[s.Name] = i
	}
	ra := got.Sessions[sessions[root.Session]]
	if !strings.HasPrefix(root.Session, app+"_a ") || ra.State != "idle in transaction" || !strings.Contains(ra.Query, "DELETE FROM") ||
		len(root.Waiters) != 1 || root.Waiters[0].Edge == nil || *root.Waiters[0].Edge != 0 {
		t.Fatalf("%+v", got)
	}
	e := got.Edges[0]
	if !strings.HasPrefix(e.Waiter, app+"_b ") || e.Holder != root.Session || e.Soft ||
		!strings.Contains(e.Lock, "ShareLock on "+root.Session+"'s transaction") ||
		!strings.Contains(e.Why, "holds a lock on the row at (0,1) in public."+app+" that conflicts with FOR NO KEY UPDATE") {
		t.Errorf("%+v", got)
	}
	if _, err := a.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A run recorded headless replays on the same server with no difference;
// with the strategy's SQL changed in the file, the replay says where the
// server now behaves differently (exit 1). The exports read it.
func TestRecordReplayLiveAndExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "lecture.jsonl")
	// The scenario gives s1 a 60 s deadlock check and s2 one of 500 ms, so
	// the victim is s2 at any pace: with the same check everywhere, the
	// victim is whichever session's check finds the cycle first, which a
	// loaded machine decides (the lecture's victim changed under CI's load).
	_, errOut, code := lockstep(t, withDB(t, "run", "--scenario", "opposite-deadlock", "--record", file)...)
	if code != 0 || !strings.Contains(errOut, "recorded ") || !strings.Contains(errOut, "lockstep replay "+file) {
		t.Fatalf("run --record: exit %d: %s", code, errOut)
	}
	// Played again, the statements go in the recorded order: a session's
	// end still unread no longer passes for the end of the next statement
	// sent to it (T3's SELECT went before T1's COMMIT).
	out, errOut, code := lockstep(t, withDB(t, "replay", file, "--live")...)
	if code != 0 || !strings.Contains(out, "the server behaves as recorded") {
		t.Fatalf("replay --live: exit %d\n%s%s", code, out, errOut)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(dir, "changed.jsonl")
	if err := os.WriteFile(changed, bytes.ReplaceAll(data, []byte("UPDATE ls_acct SET balance = balance + 10 WHERE id = 1"), []byte("SELECT 1")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = lockstep(t, withDB(t, "replay", changed, "--live")...)
	if code != cli.ExitFailure || !strings.Contains(out, "behaves differently") ||
		!strings.Contains(out, "recorded: waited for T1, then error 40P01: deadlock detected; now: SELECT 1") {
		t.Errorf("replay --live of changed SQL: exit %d\n%s", code, out)
	}
	for format, want := range map[string]string{"--markdown": "## At the end", "--mermaid": "flowchart LR", "--dot": "digraph waits", "--svg": "</svg>", "--cast": `"version":2`} {
		out, errOut, code := lockstep(t, "export", file, format, "--at", "deadlock")
		if format == "--markdown" || format == "--cast" {
			out, errOut, code = lockstep(t, "export", file, format)
		}
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("export %s: exit %d, %s\n%.300s", format, code, errOut, out)
		}
	}
}

// TestHelpNamesFlagsAsTyped: the help capitalises each usage's first word;
// none may be a flag's name, which would then read as one that does not
// exist (--Scenario).
func TestHelpNamesFlagsAsTyped(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][]string{{"--help"}, {"run", "--help"}, {"chaos", "--help"}, {"bench", "--help"}, {"watch", "--help"}, {"spec", "--help"}} {
		out, _, _ := lockstep(t, cmd...)
		if bad := regexp.MustCompile(`--[A-Z][a-z]`).FindString(out); bad != "" {
			t.Errorf("lockstep %s names a flag %q, which does not exist:\n%s", strings.Join(cmd, " "), bad, out)
		}
	}
}

// clean finishes: it rolls back lockstep's own prepared transaction of a
// run that has ended — which holds a lock on the schema — before it drops
// the schema; a lock that is not lockstep's to end (a session idle in its
// transaction) makes it give up within its bound, naming the session,
// not hang.
func TestCleanRollsBackOrphansFirstAndNeverHangs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.TwoPhase(t)
	dsn := dbtest.DSN(t)
	if srv := d.Server(); srv != nil && d != dbtest.DB(t) {
		dsn = srv.URL(d.Name())
	}
	schema := fmt.Sprintf("lockstep_cli%d_%d", os.Getpid(), schemaSeq.Add(1))
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), dsn); err == nil {
			c.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	args := []string{"--dsn", dsn, "--schema", schema}
	if _, errOut, code := lockstep(t, append([]string{"reset"}, args...)...); code != 0 {
		t.Fatalf("reset: %s", errOut)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	gid := fmt.Sprintf("lockstep/%06x/T1@A", os.Getpid()&0xffffff)
	if _, err := conn.Exec(ctx, "BEGIN; UPDATE "+schema+".accounts SET balance = balance WHERE id = 1; PREPARE TRANSACTION '"+gid+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "ROLLBACK PREPARED '"+gid+"'") })
	// A run on the schema now fails naming the prepared transaction and
	// what ends it, not with a bare 55P03.
	if _, errOut, code := lockstep(t, append([]string{"run"}, args...)...); code == 0 ||
		!strings.Contains(errOut, "prepared transaction "+gid+" holds one on schema "+schema+"; lockstep clean rolls back") {
		t.Errorf("a run under the orphan: exit %d: %s", code, errOut)
	}
	start := time.Now()
	out, errOut, code := lockstep(t, append([]string{"clean", "--yes"}, args...)...)
	rolled := strings.Index(out, "removed prepared transaction "+gid)
	dropped := strings.Index(out, "removed schema "+schema)
	if code != 0 || rolled < 0 || dropped < rolled {
		t.Fatalf("clean: exit %d after %s:\n%s%s", code, time.Since(start), out, errOut)
	}

	// A lock held by a session that is not lockstep's: clean gives up on
	// the schema in bounded time and says who holds it.
	if _, errOut, code := lockstep(t, append([]string{"reset"}, args...)...); code != 0 {
		t.Fatalf("reset: %s", errOut)
	}
	if _, err := conn.Exec(ctx, "BEGIN; SELECT FROM "+schema+".accounts LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	out, _, code = lockstep(t, append([]string{"clean", "--yes"}, args...)...)
	if code != cli.ExitFailure || !strings.Contains(out, "kept schema "+schema+": dropping schema "+schema+" gave up waiting for a lock: pid ") ||
		!strings.Contains(out, "idle in transaction") || time.Since(start) > 30*time.Second {
		t.Errorf("clean under a user's lock: exit %d after %s:\n%s", code, time.Since(start), out)
	}
	conn.Exec(ctx, "ROLLBACK")
}

// TestSpecSetupFailsAsTheTesterSays: a spec whose setup fails prints what
// the isolation tester prints, each part on the tester's stream — the rows
// of the blocks before on standard output, the error as libpq words it on
// standard error — and nothing more; the exit code is the tester's, 1.
func TestSpecSetupFailsAsTheTesterSays(t *testing.T) {
	t.Parallel()
	combined, err := os.ReadFile("../isolation/testdata/ls-setup-fails.out")
	if err != nil {
		t.Fatal(err)
	}
	wantErr, err := os.ReadFile("../isolation/testdata/ls-setup-fails.stderr")
	if err != nil {
		t.Fatal(err)
	}
	wantOut, ok := strings.CutSuffix(string(combined), string(wantErr))
	if !ok {
		t.Fatal("the tester's standard error is not the end of its output")
	}
	out, errOut, code := lockstep(t, withDB(t, "spec", "../isolation/testdata/ls-setup-fails.spec")...)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if out != wantOut {
		t.Errorf("standard output:\n--- want (the tester's)\n%s--- got\n%s", wantOut, out)
	}
	if errOut != string(wantErr) {
		t.Errorf("standard error:\n--- want (the tester's)\n%s--- got\n%s", wantErr, errOut)
	}
}

// A waiter a step released is printed as completed before the next step:
// savepoint's T2 goes on at T1's ROLLBACK TO SAVEPOINT, while T1's
// transaction stays open, and the transcript must not show it going on at
// T1's COMMIT (as it did when the next step raced T2's completion).
func TestRunTranscriptPrintsReleasedWaiterAtItsRelease(t *testing.T) {
	t.Parallel()
	out, errOut, code := lockstep(t, withDB(t, "run", "--scenario", "savepoint")...)
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	undo := strings.Index(out, "step T1: ROLLBACK TO SAVEPOINT s;")
	t2 := strings.Index(out, "step T2: <... completed>")
	commit := strings.Index(out, "step T1: COMMIT;")
	t3 := strings.Index(out, "step T3: <... completed>")
	if undo < 0 || t2 < undo || commit < t2 || t3 < commit {
		t.Errorf("want ROLLBACK TO, T2 completed, COMMIT, T3 completed, in that order:\n%s", out)
	}
}
