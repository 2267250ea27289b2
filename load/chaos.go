package load

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/ledger"
)

// ChaosConfig sets up a chaos run.
type ChaosConfig struct {
	DB        *db.Database
	Ledger    *ledger.Ledger
	Strategy  *ledger.Strategy
	Workers   int
	Accounts  int
	Duration  time.Duration
	KillEvery time.Duration
	// Command builds the command line of worker name in run runID (the
	// lockstep binary re-executed as a worker). Its environment gets
	// DATABASE_URL for the same database.
	Command func(run db.RunID, name string, seed uint64) *exec.Cmd
	// Progress, if set, is called about four times a second.
	Progress func(Progress)
	// RunID names the run's backends; empty means a fresh one.
	RunID db.RunID
}

// Progress is a chaos run's state while it runs.
type Progress struct {
	Elapsed, Duration time.Duration
	Tally
	Kills, KillsInTransaction int
}

// ChaosResult is what a chaos run did and whether the books survived.
type ChaosResult struct {
	// RunID names the run's backends: lockstep/<RunID>/W1 ….
	RunID db.RunID
	Tally
	Kills              int
	KillsInTransaction int // the worker's backend had a transaction open when it was killed
	KillsMidTransfer   int // the worker had sent part of a transfer's statements
	Books              ledger.Books
}

// Validate reports a chaos set-up that cannot run.
func (c ChaosConfig) Validate() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("--workers %d: at least 1", c.Workers)
	case c.Workers > 64:
		return fmt.Errorf("--workers %d: at most 64", c.Workers)
	case c.Duration <= 0:
		return fmt.Errorf("--duration %s: must be positive", c.Duration)
	case c.KillEvery <= 0:
		return fmt.Errorf("--kill-every %s: must be positive", c.KillEvery)
	case c.KillEvery > c.Duration:
		return fmt.Errorf("--kill-every %s is longer than --duration %s: no worker would be killed", c.KillEvery, c.Duration)
	case c.Accounts < 2:
		return fmt.Errorf("--accounts %d: a transfer needs at least 2", c.Accounts)
	}
	return nil
}

// process is one worker process and what it last reported.
type process struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	tally   Tally
	midStep bool // it has reported a statement of a transfer not yet finished
	started bool // it has reported anything at all
	stderr  tailBuffer
}

// tailBuffer keeps the end of what a worker wrote to stderr, for errors.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2048 {
		t.buf = t.buf[len(t.buf)-2048:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// awaitStarted waits until every process has reported, or one has died.
func awaitStarted(ctx context.Context, ps []*process) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		waiting := 0
		for _, p := range ps {
			select {
			case <-p.done:
				// p.done is closed after Wait: ProcessState is set.
				why := p.stderr.String()
				if why == "" {
					why = p.cmd.ProcessState.String() // "signal: killed", say
				}
				return fmt.Errorf("worker %s exited at start: %s", p.name, why)
			default:
			}
			p.mu.Lock()
			if !p.started {
				waiting++
			}
			p.mu.Unlock()
		}
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d workers did not start within 30s", waiting)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (p *process) read(sc *bufio.Scanner) {
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		p.mu.Lock()
		p.started = true
		switch f[0] {
		case reportStatement:
			p.midStep = true
		case reportTransfer:
			if len(f) == 6 {
				n := make([]int, 5)
				for i := range n {
					n[i], _ = strconv.Atoi(f[i+1])
				}
				p.tally = Tally{Committed: n[0], Deadlocks: n[1], SerializationFailures: n[2], Retries: n[3], Failed: n[4]}
			}
			p.midStep = false
		}
		p.mu.Unlock()
	}
}

// Chaos resets the ledger, runs worker processes doing random transfers,
// kills one with SIGKILL every KillEvery — inside an open transaction
// whenever one is — and starts another in its place, then stops them all
// and checks the books. It always makes Duration/KillEvery kills.
func Chaos(ctx context.Context, cfg ChaosConfig) (ChaosResult, error) {
	var res ChaosResult
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	runID := cfg.RunID
	if runID == "" {
		runID = db.NewRunID()
	}
	res.RunID = runID
	ctl, err := freshLedger(ctx, cfg.DB, cfg.Ledger, runID.AppName("control"), cfg.Accounts)
	if err != nil {
		return res, err
	}
	defer db.CloseConn(ctx, ctl)
	var (
		all   []*process
		alive []*process
		seq   int
	)
	start := func() error {
		seq++
		p := &process{name: fmt.Sprintf("W%d", seq), done: make(chan struct{})}
		p.cmd = cfg.Command(runID, p.name, uint64(seq))
		p.cmd.Env = append(p.cmd.Environ(), cfg.DB.ChildEnv()...)
		p.cmd.SysProcAttr = workerAttr()
		p.cmd.Stderr = &p.stderr
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := p.cmd.Start(); err != nil {
			return fmt.Errorf("starting worker %s: %w", p.name, err)
		}
		go func() {
			p.read(bufio.NewScanner(out))
			_ = p.cmd.Wait()
			close(p.done)
		}()
		all = append(all, p)
		alive = append(alive, p)
		return nil
	}
	defer func() {
		// Whatever happened, no worker outlives the run.
		for _, p := range alive {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		cctx, cancel := db.Cleanup(ctx)
		defer cancel()
		_ = cfg.DB.EndBackends(cctx, runID.Like("W"))
	}()
	for range cfg.Workers {
		if err := start(); err != nil {
			return res, err
		}
	}
	// The clock starts once every worker runs: a kill before then would
	// find nothing to break.
	if err := awaitStarted(ctx, all); err != nil {
		return res, err
	}
	t0 := time.Now()
	deadline := t0.Add(cfg.Duration)
	nextKill := t0.Add(cfg.KillEvery)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	sum := func() Tally {
		var t Tally
		for _, p := range all {
			p.mu.Lock()
			t.add(p.tally)
			p.mu.Unlock()
		}
		return t
	}
	// A run of Duration makes Duration/KillEvery kills. On a slow machine
	// (starting a worker process can take longer than KillEvery) the kills
	// fall behind the clock; the run then lasts until the last one is done
	// rather than cutting the count short.
	planned := int(cfg.Duration / cfg.KillEvery)
	for {
		due := res.Kills < planned
		if !due && !time.Now().Before(deadline) {
			break
		}
		wake := deadline
		if due {
			wake = nextKill
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
			if cfg.Progress != nil {
				cfg.Progress(Progress{Elapsed: time.Since(t0), Duration: cfg.Duration, Tally: sum(), Kills: res.Kills, KillsInTransaction: res.KillsInTransaction})
			}
			continue
		case <-time.After(max(time.Until(wake), 0)):
		}
		if !due {
			continue
		}
		victim, inTx := pickVictim(ctx, ctl, runID, alive)
		victim.mu.Lock()
		mid := victim.midStep
		victim.mu.Unlock()
		_ = victim.cmd.Process.Kill()
		<-victim.done
		res.Kills++
		if inTx {
			res.KillsInTransaction++
		}
		if mid {
			res.KillsMidTransfer++
		}
		alive = slicesDelete(alive, victim)
		if err := start(); err != nil {
			return res, err
		}
		nextKill = nextKill.Add(cfg.KillEvery)
	}
	// The end: workers stop at SIGTERM (their transaction in flight rolls back).
	for _, p := range alive {
		_ = stopWorker(p.cmd.Process)
	}
	for _, p := range alive {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	alive = nil
	if err := cfg.DB.EndBackends(ctx, runID.Like("W")); err != nil {
		return res, err
	}
	res.Tally = sum()
	if res.Books, err = ledger.CheckBooks(ctx, ctl); err != nil {
		return res, err
	}
	// A worker killed partway through an autocommit transfer left it
	// partly committed: balances that disagree with complete entries are
	// its updates never made, not lost ones (its updates add, they do not
	// overwrite).
	res.Books.UnderWay = cfg.Strategy != nil && !cfg.Strategy.Transactional && res.KillsMidTransfer > 0
	ctl.Close(ctx)
	return res, cfg.DB.EndBackends(ctx, runID.Like(""))
}

func slicesDelete(ps []*process, p *process) []*process {
	out := ps[:0]
	for _, q := range ps {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

// pickVictim chooses a worker to kill: one whose backend has a transaction
// open, as the server says, if any does within a few looks; else one that
// is part-way through a transfer; else any.
func pickVictim(ctx context.Context, ctl *pgx.Conn, runID db.RunID, alive []*process) (*process, bool) {
	byName := map[string]*process{}
	for _, p := range alive {
		byName[p.name] = p
	}
	for range 20 {
		rows, err := ctl.Query(ctx, `SELECT application_name FROM pg_stat_activity
			WHERE application_name LIKE $1 AND xact_start IS NOT NULL`, runID.Like("W"))
		if err != nil {
			break
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			break
		}
		var inTx []*process
		for _, n := range names {
			name, _ := runID.Name(n)
			if p, ok := byName[name]; ok {
				inTx = append(inTx, p)
			}
		}
		if len(inTx) > 0 {
			return inTx[rand.IntN(len(inTx))], true
		}
		time.Sleep(2 * time.Millisecond)
	}
	var started []*process
	for _, p := range alive {
		p.mu.Lock()
		mid, ran := p.midStep, p.started
		p.mu.Unlock()
		if mid {
			return p, false
		}
		if ran {
			started = append(started, p)
		}
	}
	if len(started) > 0 {
		return started[rand.IntN(len(started))], false
	}
	// A worker still starting up has nothing to break; on a busy machine
	// the replacements may all be starting. Wait a little for one.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range alive {
			p.mu.Lock()
			ran := p.started
			p.mu.Unlock()
			if ran {
				return p, false
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return alive[rand.IntN(len(alive))], false
}
