package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"lockstep/db"
)

// recheckEvery is how often the monitor re-reads the pools' statistics
// between phase changes. It is no timeout: exhaustion is still decided by
// the statistics and the phases alone; the tick only makes sure a change
// that happens inside a pool, with no task changing phase, is seen.
const recheckEvery = 100 * time.Millisecond

// Result is how a run ended.
type Result struct {
	// RunID names the run's connections lockstep/<RunID>/pool.
	RunID db.RunID
	// Exhausted is true when the pool was exhausted and the run was ended.
	Exhausted bool
	// Completed counts tasks that committed in both databases; RolledBack
	// those rolled back when the run was ended.
	Completed, RolledBack int
	// Tasks is every task's final state.
	Tasks []TaskState
	// Final is every pool's statistics once the last task had ended, before
	// the pools were closed.
	Final []PoolState
}

// run is one Run's shared state.
type run struct {
	cfg     Config
	pools   []*connPool
	byDB    [2]*connPool // the pool that serves each database
	report  func(Event)
	updates chan update
	cancel  context.CancelFunc
	// ended is closed once the run's context is cancelled (exhaustion, a
	// task's failure, the caller): every acquire still in flight then is
	// cancelled, and no task waits for a connection any more.
	ended <-chan struct{}

	barrier *barrier
	turn    chan struct{}       // UpFront: held while a task takes its two connections
	sem     *semaphore.Weighted // Semaphore: P-1 permits

	// Owned by the monitor goroutine until it returns.
	states    []TaskState
	lastPools []PoolState
	exhausted atomic.Bool
}

// update is a task's new state, sent to the monitor.
type update struct {
	task  int
	state TaskState
}

// Run plays the scenario: cfg.TaskCount() tasks at once, each writing its
// transfer to A and to B through the pool(s) of cfg.Fix. report, when not
// nil, gets every event, from one goroutine at a time; the tasks wait while
// it runs. When the pool is exhausted Run reports it, cancels the waiting
// acquires, rolls every transaction back and returns a Result with
// Exhausted set and a nil error. On every return the pools are closed and no
// backend named lockstep/<RunID>/pool is left on either server.
func Run(ctx context.Context, cfg Config, report func(Event)) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.RunID == "" {
		cfg.RunID = db.NewRunID()
	}
	res.RunID = cfg.RunID
	app := AppName(cfg.RunID)
	defer func() {
		// A closed connection's backend leaves pg_stat_activity a moment
		// after its client hangs up; EndBackends waits for that.
		for _, d := range []*db.Database{cfg.A, cfg.B} {
			cctx, cancel := db.Cleanup(ctx)
			if e := d.EndBackends(cctx, app); e != nil {
				err = errors.Join(err, e)
			}
			cancel()
		}
	}()
	if err := checkLedger(ctx, cfg.A, "A", app, cfg.Accounts()); err != nil {
		return res, err
	}
	if err := checkLedger(ctx, cfg.B, "B", app, cfg.Accounts()); err != nil {
		return res, err
	}

	r := &run{cfg: cfg, report: report, updates: make(chan update)}
	defer func() {
		for _, p := range r.pools {
			p.pool.Close()
		}
	}()
	if err := r.openPools(ctx, app); err != nil {
		return res, err
	}
	n := cfg.TaskCount()
	r.barrier = newBarrier(barrierSize(cfg))
	r.turn = make(chan struct{}, 1)
	r.sem = semaphore.NewWeighted(int64(cfg.Size - 1))
	r.states = make([]TaskState, n)
	for i := range r.states {
		r.states[i].Name = taskName(i)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.cancel, r.ended = cancel, runCtx.Done()
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		r.monitor()
	}()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = r.task(runCtx, i) })
	}
	wg.Wait()
	close(r.updates)
	<-monitorDone

	res.Exhausted = r.exhausted.Load()
	res.Tasks = r.states
	for _, s := range r.states {
		switch s.Phase {
		case PhaseCommitted:
			res.Completed++
		case PhaseRolledBack:
			res.RolledBack++
		}
	}
	r.settle()
	res.Final = r.poolStates()
	r.emit(Event{Kind: KindFinished, Pools: res.Final, Tasks: slices.Clone(r.states)})
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("pool scenario ended early: %w", context.Cause(ctx))
	}
	return res, nil
}

// openPools makes one pool serving both databases, or with PerDatabase one
// pool for each.
func (r *run) openPools(ctx context.Context, app string) error {
	if r.cfg.Fix == PerDatabase {
		for _, t := range []target{targetA, targetB} {
			var dbs [2]*db.Database
			dbs[t] = [2]*db.Database{r.cfg.A, r.cfg.B}[t]
			p, err := newConnPool(ctx, t.String(), r.cfg.Size, dbs, app)
			if err != nil {
				return err
			}
			r.pools = append(r.pools, p)
			r.byDB[t] = p
		}
		return nil
	}
	p, err := newConnPool(ctx, "shared", r.cfg.Size, [2]*db.Database{r.cfg.A, r.cfg.B}, app)
	if err != nil {
		return err
	}
	r.pools = []*connPool{p}
	r.byDB = [2]*connPool{p, p}
	return nil
}

// barrierSize is how many tasks the barrier after the write in A waits for:
// exactly as many as can get there holding their connections at the same
// time, so that the barrier itself can never be what hangs.
func barrierSize(cfg Config) int {
	n := cfg.TaskCount()
	switch cfg.Fix {
	case UpFront:
		// Each task gets there holding its pair; the task taking its pair
		// (holding the turn) waits only while P/2 pairs are out, and their
		// holders are the ones the barrier waits for.
		return max(1, min(n, cfg.Size/2))
	case Semaphore:
		// Only permit holders take connections: P-1 of them, each getting
		// its connection for A from a pool of P.
		return min(n, cfg.Size-1)
	}
	// None and PerDatabase: every task that can hold a connection for A
	// (P of them) gets there. With None that is what exhausts the pool.
	return min(n, cfg.Size)
}

// monitor receives the tasks' updates, reports them with the pools' state,
// and decides after each one, and on every tick, whether the pool is
// exhausted. It returns when the updates channel is closed.
func (r *run) monitor() {
	tick := time.NewTicker(recheckEvery)
	defer tick.Stop()
	for {
		select {
		case u, ok := <-r.updates:
			if !ok {
				return
			}
			r.states[u.task] = u.state
			kind := KindPhase
			switch u.state.Phase {
			case PhaseCommitted, PhaseRolledBack:
				kind = KindTaskDone
			case PhaseFailed:
				kind = KindTaskError
			}
			r.lastPools = r.poolStates()
			r.emit(Event{Kind: kind, Task: u.state.Name, Pools: r.lastPools, Tasks: slices.Clone(r.states), Err: u.state.Err})
			r.check(r.lastPools)
		case <-tick.C:
			pools := r.poolStates()
			if !slices.Equal(pools, r.lastPools) {
				r.lastPools = pools
				r.emit(Event{Kind: KindPool, Pools: pools, Tasks: slices.Clone(r.states)})
			}
			r.check(pools)
		}
	}
}

// check ends the run, once, when the pools and phases show exhaustion.
func (r *run) check(pools []PoolState) {
	if r.exhausted.Load() || !exhausted(r.serves(), pools, r.states) {
		return
	}
	r.exhausted.Store(true)
	r.emit(Event{Kind: KindExhausted, Pools: pools, Tasks: slices.Clone(r.states)})
	// Cancelling the run's context makes every waiting Acquire return (and
	// pgxpool count it in CanceledAcquireCount); each task then rolls back
	// and releases what it holds.
	r.cancel()
}

func (r *run) serves() [][2]bool {
	s := make([][2]bool, len(r.pools))
	for i, p := range r.pools {
		s[i] = [2]bool{p.serves(targetA), p.serves(targetB)}
	}
	return s
}

// poolStates reads every pool's statistics, with the waiting acquirers
// derived from the tasks' phases (pgxpool does not count them).
// settle waits, a little at most, until every pool has taken back the
// connections the tasks released: pgxpool gives back a connection it must
// destroy (one left busy or in a transaction) in the background, so a pool
// may count it in use a moment after its task has ended.
func (r *run) settle() {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		busy := false
		for _, p := range r.pools {
			busy = busy || p.pool.Stat().AcquiredConns() > 0
		}
		if !busy {
			return
		}
	}
}

func (r *run) poolStates() []PoolState {
	_, waiting := tally(r.serves(), r.states)
	select {
	case <-r.ended:
		// The acquires were cancelled: a task whose rollback is not yet
		// reported still shows its waiting phase, but waits no longer (a
		// pool would hand it the idle connection it now counts).
		clear(waiting)
	default:
	}
	out := make([]PoolState, len(r.pools))
	for i, p := range r.pools {
		out[i] = p.state(waiting[i])
	}
	return out
}

// tally counts, for each pool (by the databases it serves), the connections
// the tasks say they hold from it and the tasks waiting to acquire from it.
func tally(serves [][2]bool, tasks []TaskState) (held []int32, waiting []int) {
	held, waiting = make([]int32, len(serves)), make([]int, len(serves))
	for _, s := range tasks {
		for j, sv := range serves {
			if s.HoldsA && sv[targetA] {
				held[j]++
			}
			if s.HoldsB && sv[targetB] {
				held[j]++
			}
			if (s.Phase == PhaseWaitA && sv[targetA]) || (s.Phase == PhaseWaitB && sv[targetB]) {
				waiting[j]++
			}
		}
	}
	return held, waiting
}

// exhausted decides, from the pools' own statistics and the tasks' phases,
// that no task can ever make progress: every unfinished task is waiting to
// acquire a connection, and every pool someone waits on has all its
// connections in use (none idle, none being made) and every one of them
// held by a task — that is, by a waiting task, which gives nothing back
// before its own acquire succeeds. InUse equal to what the tasks hold also
// rules out a connection in flight: one being destroyed because it was open
// to the other database, or one acquired whose task has not said so yet.
func exhausted(serves [][2]bool, pools []PoolState, tasks []TaskState) bool {
	unfinished := 0
	for _, s := range tasks {
		if s.Phase.Done() {
			continue
		}
		unfinished++
		if !s.Phase.waitsForConn() {
			return false
		}
	}
	if unfinished == 0 {
		return false
	}
	held, waiting := tally(serves, tasks)
	for j, p := range pools {
		if waiting[j] == 0 {
			continue
		}
		if p.InUse != p.Max || p.Idle != 0 || p.Constructing != 0 || held[j] != p.InUse {
			return false
		}
	}
	return true
}

func (r *run) emit(e Event) {
	if r.report == nil {
		return
	}
	e.Time = time.Now()
	r.report(e)
}

func taskName(i int) string { return fmt.Sprintf("T%d", i+1) }

// barrier holds tasks until need of them have arrived; after that it is
// open for good.
type barrier struct {
	mu   sync.Mutex
	need int
	open chan struct{}
}

func newBarrier(need int) *barrier {
	b := &barrier{need: need, open: make(chan struct{})}
	if need <= 0 {
		close(b.open)
	}
	return b
}

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.need--
	if b.need == 0 {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
