// Package isolation is PostgreSQL's isolation tester (src/test/isolation)
// on lockstep's engine: it plays a scenario's permutations on the engine's
// sessions and prints what happens in the tester's output format
// (expected/*.out), so the two can be diffed.
//
// It is a view over sim.Engine, as the transcript and the interface are:
// the engine's sessions run the steps, its observer says when a step waits —
// only when the server says so — and this package decides, by the tester's
// rules, in which order completions are printed. What differs from the
// other views is only that order: the tester reports a step done or waiting
// before it launches the next, reports earlier waiting steps that have
// finished after it, in the order they began to wait, and honours the
// permutation's blocker annotations. The sessions stay connected from one
// permutation to the next, as the tester's do; each permutation runs the
// scenario's teardown and setup blocks again.
package isolation

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

// Runner runs a scenario's permutations on real sessions and prints what
// happens in the format of PostgreSQL's isolation tester.
type Runner struct {
	DB  *db.Database
	Out io.Writer
	// Err takes what the tester writes to its standard error (unused step
	// names); nil means Out.
	Err io.Writer
	// RunID names the sessions lockstep/<RunID>/T1 …; empty means a random one.
	RunID db.RunID
	// AppName, when set, names the sessions AppName/SESSION in
	// application_name instead, as the tester does with PGAPPNAME.
	AppName string
	// Schema, when set, is where the spec's tables go: it is created (marked
	// as lockstep's) and is every connection's search_path, so that specs
	// run by several users of one server do not collide. Empty keeps the
	// server's own search_path, as the tester does.
	Schema string
	// StuckAfter is how long every running step may wait, as the server
	// says, with no deadlock the server could break, before the runner
	// declares the permutation stuck and cancels a step; zero means 2s.
	StuckAfter time.Duration
	// Tap, when set, is given every event the engine sends, with the engine
	// (a recording keeps them).
	Tap func(eng *sim.Engine, ev sim.Event)

	// concluded, set by a test, is told of each step reported still
	// waiting without the tester's pause (player.waitsSettled).
	concluded func(step string, retry bool)
}

// ErrSetupFailed is returned when a setup block fails; the output says why.
var ErrSetupFailed = errors.New("setup failed")

// ErrStuck is returned when a permutation cannot finish.
var ErrStuck = errors.New("failed to complete permutation due to mutually-blocking steps")

// MaxInterleavings bounds the permutations a spec without permutation
// lines may ask for: beyond it the run is refused before it starts.
const MaxInterleavings = 10000

// ErrTooManyPermutations refuses a spec whose interleavings are too many to
// run; the error says how many and what to do instead.
var ErrTooManyPermutations = errors.New("too many permutations")

// Plan is the permutations a run of s plays, made one at a time as they
// are played: the spec's own, or every interleaving when it lists none;
// only permutation k (1-based) when k > 0. It refuses a k out of range and
// a spec whose interleavings are too many to run.
func Plan(s *scenario.Spec, k int) (iter.Seq[scenario.Permutation], error) {
	switch n := s.CountPermutations(); {
	case k > 0:
		perm, err := s.Permutation(k)
		if err != nil {
			return nil, fmt.Errorf("--permutation %d: %w", k, err)
		}
		return slices.Values([]scenario.Permutation{perm}), nil
	case k < 0:
		return nil, fmt.Errorf("--permutation %d: counted from 1", k)
	case n.Cmp(big.NewInt(MaxInterleavings)) > 0:
		return nil, fmt.Errorf("%w: the spec lists no permutations, and its sessions' steps interleave in %s ways "+
			"(more than %d); add permutation lines for the orders you want, or run one with --permutation K",
			ErrTooManyPermutations, n, MaxInterleavings)
	}
	return s.RunPermutations(), nil
}

// Run prints the header and runs the permutations Plan gives.
func (r *Runner) Run(ctx context.Context, s *scenario.Spec, k int) (err error) {
	perms, err := Plan(s, k)
	if err != nil {
		return err
	}
	p := &player{r: r, spec: s, out: bufio.NewWriterSize(r.Out, 32<<10), index: map[*scenario.Session]int{}, onDemand: r.Tap == nil}
	for i, ss := range s.Sessions {
		p.index[ss] = i
	}
	defer func() {
		if ferr := p.out.Flush(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("writing the output: %w", ferr))
		}
	}()
	p.reportUnused()
	fmt.Fprintf(p.out, "Parsed test spec with %d sessions\n", len(s.Sessions))
	defer p.stopHelper()
	defer func() {
		if p.eng == nil {
			return
		}
		cctx, cancel := db.Cleanup(ctx)
		defer cancel()
		if cerr := p.eng.Close(cctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
		dropEmptySchemas(cctx, p.eng)
	}()
	first := true
	for perm := range perms {
		var names []string
		for _, ps := range perm.Steps {
			names = append(names, ps.Step.Name)
		}
		fmt.Fprintf(p.out, "\nstarting permutation: %s\n", strings.Join(names, " "))
		if err := p.setUp(ctx, first); err != nil {
			return err
		}
		first = false
		if err := p.play(ctx, perm); err != nil {
			return err
		}
		if err := p.await(ctx, p.eng.Teardown); err != nil {
			var be *sim.BlockError
			if !errors.As(err, &be) {
				return err // a failed teardown block is printed, and goes on
			}
		}
		p.flush()
	}
	return nil
}

// reportUnused names the steps no permutation line uses, in the order of
// their names, as the tester does on its standard error before it starts.
func (p *player) reportUnused() {
	s := p.spec
	if len(s.Permutations) == 0 {
		return // every step is in the interleavings
	}
	used := map[*scenario.Step]bool{}
	for _, perm := range s.Permutations {
		for _, ps := range perm.Steps {
			used[ps.Step] = true
		}
	}
	var unused []string
	for _, ss := range s.Sessions {
		for _, st := range ss.Steps {
			if !used[st] {
				unused = append(unused, st.Name)
			}
		}
	}
	slices.Sort(unused)
	w := p.errOut()
	for _, name := range unused {
		fmt.Fprintf(w, "unused step name: %s\n", name)
	}
}

// setUp starts the engine for the first permutation, and runs the setup
// blocks again for the others. A failed setup block is printed as the
// tester prints it.
func (p *player) setUp(ctx context.Context, first bool) error {
	var err error
	if first {
		run := p.r.RunID
		if run == "" {
			run = db.NewRunID()
		}
		// The player asks the observer for a poll whenever it needs to know
		// whether a step waits; between those it polls at its usual pace.
		d := p.r.DB.WithoutSchema()
		if p.r.Schema != "" {
			if d, err = p.r.DB.WithSchema(p.r.Schema); err != nil {
				return err
			}
		}
		// The sessions stay inside a transaction a permutation leaves open,
		// as the tester's do; the setup runs below, so that the rows of its
		// blocks print before a later one fails.
		cfg := sim.Config{DB: d, Scenario: p.spec, Sessions: len(p.spec.Sessions), RunID: run,
			Lean: true, OnDemand: p.onDemand, DeferSetup: true, KeepTransactions: true, StuckAfter: p.r.stuckAfter(),
			// As the tester does, the run ends without waiting for its
			// backends to be gone, when every connection ended in order.
			QuickClose: true}
		if p.r.AppName != "" {
			cfg.AppName = func(i int) string { return p.r.AppName + "/" + p.spec.Sessions[i].Name }
		}
		if p.eng, err = sim.New(ctx, cfg); err != nil {
			return err
		}
	}
	err = p.await(ctx, p.eng.Setup)
	var be *sim.BlockError
	if !errors.As(err, &be) {
		return err
	}
	// As the tester does: the message as libpq words it, on its standard
	// error, and nothing more.
	msg := be.Err.Error() + "\n"
	if m := sim.ServerError(be.Err); m != nil {
		msg = libpqText(m, be.SQL, true)
	}
	if be.Block.Session != "" {
		fmt.Fprintf(p.errOut(), "setup of session %s failed: %s", be.Block.Session, msg)
	} else {
		fmt.Fprintf(p.errOut(), "setup failed: %s", msg)
	}
	if db.SQLState(be.Err) == pgerrcode.InsufficientPrivilege {
		return fmt.Errorf("%w: the spec's setup needs a privilege role %s does not have (PostgreSQL's own specs run as a superuser)",
			ErrSetupFailed, p.r.DB.User())
	}
	return ErrSetupFailed
}

// await runs fn (a blocking engine call) while it prints the events the
// engine sends meanwhile, then those already sent when fn returned.
func (p *player) await(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	p.callInBackground(func() { done <- fn(ctx) })
	for {
		select {
		case err := <-done:
			if derr := p.drain(ctx); err == nil {
				err = derr
			}
			return err
		case ev, ok := <-p.eng.Events():
			if !ok {
				return <-done
			}
			p.handle(ev)
		}
	}
}

// callInBackground runs f on the player's helper goroutine, started at the
// first call and kept for the next (stopHelper ends it): a spec calls the
// engine's Setup and Teardown twice a permutation, and a goroutine of its
// own for each grew its stack anew every time (3 % of prepared-transactions'
// CPU).
func (p *player) callInBackground(f func()) {
	if p.calls == nil {
		p.calls = make(chan func())
		go func(calls <-chan func()) {
			for f := range calls {
				f()
			}
		}(p.calls)
	}
	p.calls <- f
}

// stopHelper ends the helper goroutine, once nothing runs on it.
func (p *player) stopHelper() {
	if p.calls != nil {
		close(p.calls)
		p.calls = nil
	}
}

// drain handles every event already sent.
func (p *player) drain(ctx context.Context) error {
	for {
		select {
		case ev, ok := <-p.eng.Events():
			if !ok {
				return errors.New("the engine closed")
			}
			p.handle(ev)
		case <-ctx.Done():
			return ctx.Err()
		default:
			return nil
		}
	}
}

// dropEmptySchemas drops a --schema the run created when the spec's
// teardown has left it empty, as it was before the run (it did not exist).
// One the spec left tables in stays, as the tester leaves them (lockstep
// clean removes it); nothing is printed either way: the output is the
// tester's.
func dropEmptySchemas(ctx context.Context, eng *sim.Engine) {
	for _, d := range eng.MadeSchemas() {
		conn, err := d.Connect(ctx, db.AppName("drop"))
		if err != nil {
			continue
		}
		// Not Made: anything in it (a table the spec left) is not the
		// run's to drop, so the drop is refused and the schema stays. The
		// run's backends, left to exit by themselves (QuickClose), may
		// still hold its claim for a moment: a busy machine is given a
		// second.
		for wait := time.Now().Add(time.Second); ; {
			err := ledger.DropSchema(ctx, conn, d.Schema(), ledger.DropOptions{})
			if !errors.Is(err, ledger.ErrSchemaInUse) || time.Now().After(wait) || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		db.CloseConn(ctx, conn)
	}
}
