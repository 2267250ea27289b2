package load_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"lockstep/db/dbtest"
	"lockstep/ledger"
	"lockstep/load"
)

// workerEnv makes the test binary act as a chaos worker process, as the
// lockstep binary does with its hidden worker command.
const workerEnv = "LOCKSTEP_TEST_CHAOS_WORKER"

func init() {
	spec := os.Getenv(workerEnv)
	if spec == "" {
		return
	}
	var wp load.WorkerProcess
	if err := json.Unmarshal([]byte(spec), &wp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	err := load.RunWorkerProcess(ctx, wp, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestMain(m *testing.M) { dbtest.Main(m) }

func chaos(t *testing.T, strategy string, workers int, duration, every time.Duration) load.ChaosResult {
	t.Helper()
	s, err := ledger.Lookup(strategy)
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.Schema(t)
	cfg := load.ChaosConfig{DB: d, Ledger: dbtest.Ledger(t), Strategy: s, Workers: workers, Accounts: 10,
		Duration: duration, KillEvery: every,
		Command: func(runID, name string, seed uint64) *exec.Cmd {
			spec, _ := json.Marshal(load.WorkerProcess{Schema: d.Schema(), Strategy: strategy, Accounts: 10, RunID: runID, Name: name, Seed: seed})
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), workerEnv+"="+string(spec))
			return cmd
		}}
	res, err := load.Chaos(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// No killed worker leaves a backend behind.
	ctx := context.Background()
	conn, err := d.Connect(ctx, "lockstep/test-check")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", "lockstep/"+res.RunID+"/%").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d chaos backends left (%v)", n, err)
	}
	return res
}

func TestChaosBreaksTheAutocommitStrategy(t *testing.T) {
	t.Parallel()
	res := chaos(t, "none", 4, 3*time.Second, 200*time.Millisecond)
	if res.Books.OK() {
		t.Fatalf("none kept the books through %d kills (%d mid-transfer): %s", res.Kills, res.KillsMidTransfer, res.Books.Summary())
	}
	// 3 s at one kill every 200 ms: 15 kills, however slow the machine.
	if res.Kills != 15 || res.Committed == 0 {
		t.Fatalf("kills %d, committed %d", res.Kills, res.Committed)
	}
}

func TestChaosOrderedKeepsTheBooks(t *testing.T) {
	t.Parallel()
	res := chaos(t, "ordered", 4, 3*time.Second, 200*time.Millisecond)
	if res.Kills != 15 {
		t.Fatalf("%d kills, want 15", res.Kills)
	}
	if res.KillsInTransaction == 0 {
		t.Errorf("no kill landed inside a transaction (%d kills)", res.Kills)
	}
	if !res.Books.OK() || res.Committed == 0 {
		t.Fatalf("ordered, %d kills: committed %d, %s", res.Kills, res.Committed, res.Books.Summary())
	}
}

func TestChaosValidate(t *testing.T) {
	t.Parallel()
	base := load.ChaosConfig{Workers: 2, Accounts: 10, Duration: time.Second, KillEvery: 100 * time.Millisecond}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []func(*load.ChaosConfig){
		func(c *load.ChaosConfig) { c.Workers = 0 },
		func(c *load.ChaosConfig) { c.Duration = -time.Second },
		func(c *load.ChaosConfig) { c.KillEvery = 0 },
		func(c *load.ChaosConfig) { c.KillEvery = 2 * time.Second },
		func(c *load.ChaosConfig) { c.Accounts = 1 },
	} {
		cfg := base
		c(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

func TestBenchGivesSaneNumbers(t *testing.T) {
	t.Parallel()
	d := dbtest.Schema(t)
	for _, name := range []string{"ordered", "naive"} {
		s, _ := ledger.Lookup(name)
		r, err := load.Bench(context.Background(), load.BenchConfig{DB: d, Ledger: dbtest.Ledger(t), Strategy: s, Workers: 2, Accounts: 100, Duration: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if r.Throughput <= 0 || r.Committed == 0 || r.P50 <= 0 || r.P50 > r.P99 || r.Seconds < 1 {
			t.Errorf("%s: %+v", name, r)
		}
		if name == "ordered" && !r.BooksKept {
			t.Errorf("ordered broke the books: %s", r.Books)
		}
	}
}

// BenchmarkOrdered8 is the bench's target combination: ordered, 8 workers,
// 1,000 accounts; it reports transfers per second.
func BenchmarkOrdered8(b *testing.B) {
	d := dbtest.Schema(b)
	s, _ := ledger.Lookup("ordered")
	for b.Loop() {
		r, err := load.Bench(context.Background(), load.BenchConfig{DB: d, Ledger: dbtest.Ledger(b), Strategy: s, Workers: 8, Accounts: 1000, Duration: 3 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Throughput, "transfers/s")
	}
}
