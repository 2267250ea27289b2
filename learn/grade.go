package learn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/load"
	"lockstep/locks"
	"lockstep/sim"
)

// MaxInterleavings bounds the interleavings a grade runs in each run of an
// exercise: past it the grade stops and says so.
const MaxInterleavings = 20000

// Grade is an answer graded on the server.
type Grade struct {
	Exercise string
	Passed   bool
	// Problem is what is wrong before any interleaving runs: the answer
	// does not parse, or uses a value nothing sets.
	Problem string
	Runs    []RunTally
	// Counterexample is the first interleaving that broke the invariant.
	Counterexample *Counterexample
	// Chaos is the chaos run after the interleavings passed (the transfer).
	Chaos *load.ChaosResult
	// ChaosSkipped says why no chaos run followed, when none did.
	ChaosSkipped string
	Took         time.Duration
	// Interleaving is how long the interleavings took, all runs together.
	Interleaving time.Duration
	answer       *Answer
	ex           *Exercise
}

// RunTally is what one run of an exercise explored.
type RunTally struct {
	Name string
	// Interleavings is how many orders ran whole (or up to their failure).
	Interleavings int
	// Bounded says the run stopped at MaxInterleavings.
	Bounded bool
	// Orders are the orders run, as session indexes: the isolation
	// tester's permutations for the same spec (the benchmark's).
	Orders [][]int
}

// Counterexample is an interleaving that broke the exercise's invariant,
// as it ran.
type Counterexample struct {
	Run   ExerciseRun
	Order []int // the session of each statement sent, by index
	Steps []CounterStep
	// What is what went wrong, in a sentence.
	What string
}

// CounterStep is one statement of a counterexample and how it went.
type CounterStep struct {
	Session string
	N       int // the statement's number in the answer, from 1
	SQL     string
	Outcome string
}

// Summary is the grade in a line or two.
func (g *Grade) Summary() string {
	switch {
	case g.Problem != "":
		return "not graded: " + g.Problem
	case g.Counterexample != nil:
		c := g.Counterexample
		return fmt.Sprintf("fails (%s): %s", c.Run.Name, c.What)
	case g.Chaos != nil && !g.Chaos.Books.OK():
		return fmt.Sprintf("fails under chaos: %s", g.Chaos.Books.Summary())
	}
	var parts []string
	for _, r := range g.Runs {
		bound := ""
		if r.Bounded {
			bound = fmt.Sprintf(" (the first %d)", MaxInterleavings)
		}
		parts = append(parts, fmt.Sprintf("%d interleavings %s%s", r.Interleavings, r.Name, bound))
	}
	s := "passes: " + strings.Join(parts, ", ")
	if c := g.Chaos; c != nil {
		s += fmt.Sprintf("; chaos: %d committed, %d killed (%d inside a transaction), %d deadlocks, books kept",
			c.Committed, c.Kills, c.KillsInTransaction, c.Deadlocks)
	} else if g.ChaosSkipped != "" {
		s += "; " + g.ChaosSkipped
	}
	return s
}

// GradeOptions say how to grade.
type GradeOptions struct {
	// Chaos runs the chaos monkey with workers running the answer (the
	// transfer); nil skips it, saying so. The command line gives one that
	// starts lockstep's own worker processes.
	Chaos func(ctx context.Context, d *db.Database) (load.ChaosResult, error)
	// Progress, when set, hears what the grade is doing.
	Progress func(string)
	// Max bounds the interleavings of each run; 0 means MaxInterleavings.
	Max int
}

// GradeAnswer grades an answer to an exercise on the server: every
// interleaving of two sessions running it — in both directions for the
// transfer — in the order the isolation tester enumerates them, leaving
// out the orders that would send a statement to a session the server says
// waits (they cannot happen); then, for the transfer, a short chaos run.
// The first interleaving that breaks the invariant is the counterexample.
func GradeAnswer(ctx context.Context, env Env, ex *Exercise, a *Answer, opts GradeOptions) (*Grade, error) {
	start := time.Now()
	g := &Grade{Exercise: ex.Name, answer: a, ex: ex}
	defer func() { g.Took = time.Since(start) }()
	if len(a.Statements) == 0 {
		g.Problem = "the answer has no statement"
		return g, nil
	}
	if err := ex.prepare(ctx, env); err != nil {
		return nil, err
	}
	defer ex.cleanup(context.WithoutCancel(ctx), env)
	limit := opts.Max
	if limit <= 0 {
		limit = MaxInterleavings
	}
	for _, run := range ex.Runs() {
		if opts.Progress != nil {
			opts.Progress("every interleaving, " + run.Name + "…")
		}
		t0 := time.Now()
		tally, cex, err := explore(ctx, env, ex, a, run, limit)
		g.Interleaving += time.Since(t0)
		if err != nil {
			var pe *problemError
			if errors.As(err, &pe) {
				g.Problem = pe.msg
				return g, nil
			}
			return nil, err
		}
		g.Runs = append(g.Runs, tally)
		if cex != nil {
			g.Counterexample = cex
			return g, nil
		}
	}
	switch {
	case ex.Name != "transfer":
		g.ChaosSkipped = "no chaos run: the job queue's invariant is about waiting, which killing workers does not test"
	case opts.Chaos == nil:
		g.ChaosSkipped = "no chaos run"
	default:
		if opts.Progress != nil {
			opts.Progress("a chaos run: workers running your transfer, one killed every 250 ms…")
		}
		res, err := opts.Chaos(ctx, env.DB)
		if err != nil {
			return nil, fmt.Errorf("the chaos run: %w", err)
		}
		g.Chaos = &res
		if !res.Books.OK() {
			return g, nil
		}
	}
	g.Passed = true
	return g, nil
}

// problemError is a mistake in the answer itself, not an interleaving's.
type problemError struct{ msg string }

func (e *problemError) Error() string { return e.msg }

// prepare makes the exercise's tables once.
func (e *Exercise) prepare(ctx context.Context, env Env) error {
	conn, err := env.DB.Connect(ctx, db.AppName("learn-grade"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if e.Name == "job-queue" {
		if _, err := ledger.EnsureSchema(ctx, conn, env.DB.Schema()); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, jobsDrop+"; "+jobsCreate); err != nil {
			return fmt.Errorf("making the job queue's tables: %w", err)
		}
		return nil
	}
	setup := ledger.DefaultSetup()
	if _, err := env.Ledger.Reset(ctx, conn, env.DB.Schema(), setup); err != nil {
		return fmt.Errorf("making the ledger: %w", err)
	}
	return nil
}

// cleanup drops what prepare made that is not the ledger.
func (e *Exercise) cleanup(ctx context.Context, env Env) {
	if e.Name != "job-queue" {
		return
	}
	if conn, err := env.DB.Connect(ctx, db.AppName("learn-grade")); err == nil {
		_, _ = conn.Exec(ctx, jobsDrop)
		conn.Close(ctx)
	}
}

// config is the engine's set-up for grading one run of an exercise: the
// exercise as a scenario, each session's script the answer with its
// values; lean, as the isolation tester.
func (e *Exercise) config(d *db.Database, a *Answer, run ExerciseRun) sim.Config {
	return sim.Config{DB: d, Scenario: e.spec(a), ScenarioName: "exercise " + e.Name, Sessions: len(e.Sessions), Lean: true,
		Scripts: func(i int) sim.Script { return newAnswerScript(a, run.Vars[i]) }}
}

// explorer plays one run's interleavings.
type explorer struct {
	eng   *sim.Engine
	ex    *Exercise
	a     *Answer
	run   ExerciseRun
	check *pgx.Conn // reads the books between statements (commits mid-script)
	timer bool      // the answer sets a timeout: a waiting session's step is waited for
	n     int       // statements per session
	// units are the answer's statements as the interleavings move them: a
	// BEGIN goes with the statement after it.
	units [][]int
	// what the interleaving in play did
	steps     []CounterStep
	waited    map[int]bool
	ended     map[int]*sim.Event
	snap      *locks.Snapshot
	cycle     *locks.Cycle
	lastBlock *sim.Event
	failure   string
	// over are the sessions whose script ended early: the application
	// rolled back after a serialization failure, to retry later.
	over map[int]bool
	// full reads every lock, to explain a failure while it stands (the
	// engine's observer is lean: it knows who waits, not on what).
	full *locks.Observer
}

// choice is one position of an interleaving: the sessions that could
// send their next statement there, in order, and which one did.
type choice struct {
	options []int
	at      int
}

// explore runs every interleaving of a run of the exercise, depth first in
// the isolation tester's order, each from a fresh setup: it replays the
// choices made before the deepest position with another option left, takes
// that option, and then the first option at every position after. Orders
// that send a statement to a session the server says waits are left out:
// at such a position that session is no option.
func explore(ctx context.Context, env Env, ex *Exercise, a *Answer, run ExerciseRun, limit int) (RunTally, *Counterexample, error) {
	tally := RunTally{Name: run.Name}
	eng, err := sim.New(ctx, ex.config(env.DB, a, run))
	if err != nil {
		return tally, nil, err
	}
	defer eng.Close(context.WithoutCancel(ctx))
	check, err := env.DB.Connect(ctx, db.AppName("learn-check"))
	if err != nil {
		return tally, nil, err
	}
	defer check.Close(context.WithoutCancel(ctx))
	if _, err := check.Exec(ctx, "SET lock_timeout = '100ms'"); err != nil {
		return tally, nil, err
	}
	x := &explorer{eng: eng, ex: ex, a: a, run: run, check: check, timer: a.setsTimer(), n: len(a.Statements), units: a.units()}
	var path []choice
	for {
		if err := x.drain(ctx); err != nil {
			return tally, nil, err
		}
		if path, err = x.play(ctx, path); err != nil {
			return tally, nil, err
		}
		order := make([]int, len(path))
		for i, c := range path {
			order[i] = c.options[c.at]
		}
		tally.Interleavings++
		tally.Orders = append(tally.Orders, order)
		if x.failure == "" {
			// The teardown reads what the interleaving left.
			if err := eng.Teardown(ctx); err != nil {
				var be *sim.BlockError
				if !errors.As(err, &be) {
					return tally, nil, err
				}
			}
			if err := x.drain(ctx); err != nil {
				return tally, nil, err
			}
			x.failure = x.invariant()
		}
		if x.failure != "" {
			return tally, &Counterexample{Run: run, Order: order, Steps: x.steps, What: x.failure}, nil
		}
		// The deepest position with an option left.
		for len(path) > 0 && path[len(path)-1].at == len(path[len(path)-1].options)-1 {
			path = path[:len(path)-1]
		}
		if len(path) == 0 {
			return tally, nil, nil
		}
		if tally.Interleavings >= limit {
			tally.Bounded = true
			return tally, nil, nil
		}
		path[len(path)-1].at++
		if err := eng.Setup(ctx); err != nil {
			return tally, nil, err
		}
	}
}

// drain takes every event already sent.
func (x *explorer) drain(ctx context.Context) error {
	for {
		select {
		case ev, ok := <-x.eng.Events():
			if !ok {
				return errors.New("the engine closed")
			}
			x.take(ev)
		case <-ctx.Done():
			return ctx.Err()
		default:
			return nil
		}
	}
}

// take keeps what an event says.
func (x *explorer) take(ev sim.Event) {
	switch ev.Kind {
	case sim.Completed, sim.Error, sim.ConnectionLost:
		if !ev.Auto && ev.Index >= 0 {
			e := ev
			x.ended[ev.Index] = &e
		}
	case sim.Polled:
		x.snap = ev.Snapshot
	case sim.DeadlockFormed:
		x.cycle = ev.Cycle
	case sim.BlockRan:
		if ev.Block.Teardown && ev.Block.Session == "" {
			e := ev
			x.lastBlock = &e
		}
	}
}

// next waits for the engine's next event, or until d has passed.
func (x *explorer) next(ctx context.Context, d time.Duration) (bool, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ev, ok := <-x.eng.Events():
		if !ok {
			return false, errors.New("the engine closed")
		}
		x.take(ev)
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// play runs one interleaving: the path's choices, then the first option
// at each position after. It returns the whole path taken.
func (x *explorer) play(ctx context.Context, path []choice) ([]choice, error) {
	x.steps, x.waited, x.ended, x.cycle, x.failure, x.lastBlock = nil, map[int]bool{}, map[int]*sim.Event{}, nil, "", nil
	x.over = map[int]bool{}
	names := x.ex.Sessions
	sent := make([]int, len(names)) // statements sent, by session
	total := len(x.units) * len(names)
	for pos := 0; pos < total; pos++ {
		if err := x.collect(ctx); err != nil || x.failure != "" {
			return path, err
		}
		// Who can take the next statement here: not a session that waits.
		var options []int
		for {
			options = options[:0]
			waiting := false
			for s := range names {
				if sent[s] >= len(x.units) || x.over[s] {
					continue
				}
				if x.waited[s] && x.ended[s] == nil {
					waiting = true
					continue
				}
				options = append(options, s)
			}
			if len(options) > 0 || !waiting {
				break
			}
			// Everyone left waits. A timeout the answer sets may end a
			// wait: as the tester, wait for it (bounded); else nothing can.
			moved, err := x.await(ctx)
			if err != nil {
				return path, err
			}
			if x.failure != "" {
				return path, nil
			}
			if !moved {
				x.failure = x.stuck(sent)
				return path, nil
			}
		}
		if len(options) == 0 {
			break
		}
		if pos < len(path) {
			if !slices.Equal(options, path[pos].options) {
				// The server did not do what it did the last time: take
				// the same session if it can, and go on from here.
				want := path[pos].options[path[pos].at]
				at := slices.Index(options, want)
				if at < 0 {
					at = 0
				}
				path = append(path[:pos], choice{options: slices.Clone(options), at: at})
			}
		} else {
			path = append(path, choice{options: slices.Clone(options)})
		}
		s := path[pos].options[path[pos].at]
		for _, i := range x.units[sent[s]] {
			if err := x.step(ctx, s, i); err != nil {
				return path, err
			}
			if x.failure != "" || x.waited[s] || x.over[s] {
				break
			}
		}
		sent[s]++
		if x.failure == "" {
			if err := x.collect(ctx); err != nil {
				return path, err
			}
		}
		if x.failure != "" {
			return path[:pos+1], nil
		}
	}
	// Every statement is sent: let the waits end.
	for {
		if err := x.collect(ctx); err != nil || x.failure != "" {
			return path, err
		}
		busy := false
		for s := range names {
			if x.waited[s] && x.ended[s] == nil {
				busy = true
			}
		}
		if !busy {
			break
		}
		moved, err := x.await(ctx)
		if err != nil {
			return path, err
		}
		if x.failure != "" {
			return path, nil
		}
		if !moved {
			x.failure = x.stuck(sent)
			return path, nil
		}
	}
	for s, name := range names {
		info := x.eng.Sessions()[s]
		if info.State == sim.InTransaction || info.State == sim.Aborted {
			x.failure = fmt.Sprintf("%s ran every statement and left its transaction open: nothing it did is committed (a COMMIT is missing)", name)
			return path, nil
		}
	}
	return path, nil
}

// step sends session s its statement i and waits until it has settled:
// ended, or said by the server to wait.
func (x *explorer) step(ctx context.Context, s, i int) error {
	name := x.ex.Sessions[s]
	script := x.script(s)
	if err := script.Missing(i); err != nil {
		x.failure = fmt.Sprintf("%s's statement %d: %v", name, i+1, err)
		x.steps = append(x.steps, CounterStep{Session: name, N: i + 1, SQL: x.a.Statements[i].SQL, Outcome: "not sent"})
		return nil
	}
	sql := script.SQL(i)
	delete(x.ended, s)
	x.waited[s] = false
	if err := x.eng.Step(s); err != nil {
		return fmt.Errorf("sending %s's statement %d: %w", name, i+1, err)
	}
	x.steps = append(x.steps, CounterStep{Session: name, N: i + 1, SQL: sql})
	at := len(x.steps) - 1
	pause := 2 * time.Millisecond
	var outsideSince time.Time // since when it waits only on backends outside the run
	for x.ended[s] == nil {
		// A moment for the statement to end, then ask the server whether
		// it waits: first after 2 ms, then every 10 ms (the tester waits
		// 10 ms each time).
		for until := time.Now().Add(pause); x.ended[s] == nil && time.Now().Before(until); {
			if _, err := x.next(ctx, time.Until(until)); err != nil {
				return err
			}
		}
		if x.ended[s] != nil {
			break
		}
		pause = 10 * time.Millisecond
		w, err := x.serverSaysWaiting(ctx, s)
		if err != nil {
			return err
		}
		if x.cycle != nil {
			x.steps[at].Outcome = "waits: deadlock"
			x.failure = "a deadlock: " + x.names(x.cycle.String()) + " — " + x.explainNow(ctx, nil)
			return nil
		}
		// A wait only on a backend outside the run (autovacuum, another
		// client) is no interleaving's: the statement still runs, as the
		// isolation tester sees it, unless that wait lasts.
		if w.outside == nil {
			outsideSince = time.Time{}
		} else if outsideSince.IsZero() {
			outsideSince = time.Now()
		} else if time.Since(outsideSince) > settleWithin {
			return x.outsideError(s, w.outside)
		}
		if w.onRun && x.ended[s] == nil {
			x.waited[s] = true
			x.steps[at].Outcome = "waits for " + strings.Join(x.blockers(s), ", ")
			if x.ex.Name == "job-queue" {
				x.failure = fmt.Sprintf("%s waits for %s: the queue blocks — %s", name, strings.Join(x.blockers(s), ", "),
					x.explainNow(ctx, []string{x.eng.SessionName(s)}))
			}
			return nil
		}
	}
	x.steps[at].Outcome = x.outcome(s)
	return x.settled(ctx, s, i)
}

// waitState is what a poll says of a session's statement.
type waitState struct {
	// onRun: the server says it waits for another session of the run.
	onRun bool
	// outside are the backends outside the run it waits for, when it
	// waits for none of the run's.
	outside []int32
}

// serverSaysWaiting asks for a poll and waits for it (or for the
// statement's end): whether the server says session s waits for the other
// — or only for a backend outside the run, which is no wait of the
// interleaving: on a shared server autovacuum holds a table's lock for a
// moment when it truncates it, and pg_blocking_pids names it.
func (x *explorer) serverSaysWaiting(ctx context.Context, s int) (waitState, error) {
	since := time.Now()
	x.eng.PollNow()
	for x.ended[s] == nil {
		if _, err := x.next(ctx, time.Second); err != nil {
			return waitState{}, err
		}
		if x.snap != nil && !x.snap.Taken.Before(since) {
			if len(x.snap.Graph.Cycles) > 0 {
				c := x.snap.Graph.Cycles[0]
				x.cycle = &c
			}
			b, ok := x.snap.Backend(x.eng.SessionName(s))
			if !ok {
				return waitState{}, nil
			}
			onRun, outside := x.snap.WaitsOnRun(b)
			if onRun {
				outside = nil
			}
			return waitState{onRun: onRun, outside: outside}, nil
		}
	}
	return waitState{}, nil
}

// outsideError says that session s has waited too long for backends
// outside the run: the grade cannot go on, and the answer is not to blame.
func (x *explorer) outsideError(s int, pids []int32) error {
	var who []string
	for _, p := range pids {
		who = append(who, fmt.Sprintf("pid %d", p))
	}
	return fmt.Errorf("%s has waited %s for %s, outside the grade's sessions (another client, or autovacuum, holds a lock it needs): the grade cannot go on — nothing your answer did",
		x.ex.Sessions[s], settleWithin, strings.Join(who, ", "))
}

// await waits for a waiting session's statement to end. A poll taken
// now says whether it still waits: its blocker may have just ended, its
// end then on its way. Still waiting, with nothing left to run, only a
// timeout the answer sets can end the wait (a deadlock is found when it
// forms, and fails the answer at once); moved is false when none will.
func (x *explorer) await(ctx context.Context) (moved bool, err error) {
	for s := range x.ex.Sessions {
		if !x.waited[s] || x.ended[s] != nil {
			continue
		}
		w, err := x.serverSaysWaiting(ctx, s)
		if err != nil {
			return false, err
		}
		if x.cycle != nil {
			x.failure = "a deadlock: " + x.names(x.cycle.String()) + " — " + x.explainNow(ctx, nil)
			return true, nil
		}
		if !w.onRun {
			// Released: its end comes — after a wait for a backend
			// outside the run, if it has one, which is not the answer's.
			for deadline := time.Now().Add(settleWithin); x.ended[s] == nil && time.Now().Before(deadline); {
				if _, err := x.next(ctx, time.Second); err != nil {
					return false, err
				}
			}
			if x.ended[s] == nil && w.outside != nil {
				if w, err = x.serverSaysWaiting(ctx, s); err != nil {
					return false, err
				}
				if w.outside != nil {
					return false, x.outsideError(s, w.outside)
				}
			}
			return x.ended[s] != nil, x.collect(ctx)
		}
	}
	if !x.timer {
		return false, nil // nothing but a statement could end the wait, and none runs
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if _, err := x.next(ctx, 50*time.Millisecond); err != nil {
			return false, err
		}
		for s := range x.ex.Sessions {
			if x.waited[s] && x.ended[s] != nil {
				return true, x.collect(ctx)
			}
		}
	}
	return false, nil
}

// collect takes the ends of statements that had waited and have ended
// since: their outcome, and what their end means for the answer.
func (x *explorer) collect(ctx context.Context) error {
	for s, name := range x.ex.Sessions {
		if !x.waited[s] || x.ended[s] == nil {
			continue
		}
		x.waited[s] = false
		for i := len(x.steps) - 1; i >= 0; i-- {
			if x.steps[i].Session == name {
				x.steps[i].Outcome += ", then " + x.outcome(s)
				if err := x.settled(ctx, s, x.steps[i].N-1); err != nil {
					return err
				}
				break
			}
		}
		if x.failure != "" {
			return nil
		}
	}
	return nil
}

// stuck says why an interleaving cannot go on: a session waits, and
// nothing left to run can end its wait.
func (x *explorer) stuck(sent []int) string {
	for s, name := range x.ex.Sessions {
		if x.waited[s] && x.ended[s] == nil {
			who := strings.Join(x.blockers(s), ", ")
			return fmt.Sprintf("%s waits for %s for ever: %s has run every statement and still holds its locks — its transaction never ends (is a COMMIT missing?)", name, who, who)
		}
	}
	return "the sessions cannot go on"
}

// script is session s's script as the engine runs it now.
func (x *explorer) script(s int) *answerScript {
	return x.eng.ScriptOf(s).(*answerScript)
}

// blockers names whom session s waits for, as the last poll says.
func (x *explorer) blockers(s int) []string {
	var out []string
	if x.snap != nil {
		for _, e := range x.snap.Graph.Edges {
			if e.Waiter == x.eng.SessionName(s) && !slices.Contains(out, x.names(e.Holder)) {
				out = append(out, x.names(e.Holder))
			}
		}
	}
	if len(out) == 0 {
		out = []string{"the other session"}
	}
	return out
}

// names puts the exercise's names for its sessions in place of the
// engine's (T1) in a text about them.
func (x *explorer) names(text string) string {
	for i, name := range x.ex.Sessions {
		if eng := x.eng.SessionName(i); eng != name {
			text = strings.ReplaceAll(text, eng, name)
		}
	}
	return text
}

// explainNow reads every lock while a failure stands — a deadlock before
// the server breaks it, a wait — and says why the waiters wait, in the
// engine's words: the lock each asks for and the one that blocks it.
// waiters limits it to those sessions; nil means the cycle's (or all).
func (x *explorer) explainNow(ctx context.Context, waiters []string) string {
	if x.full == nil {
		o, err := locks.NewObserver(ctx, x.check, x.eng.RunID(), x.eng.Config().DB.Schema())
		if err != nil {
			return "each waits for a lock the other holds"
		}
		x.full = o
	}
	snap, err := x.full.Poll(ctx)
	if err != nil {
		return "each waits for a lock the other holds"
	}
	var why []string
	for _, e := range snap.Graph.Edges {
		if e.Why != "" && (waiters == nil || slices.Contains(waiters, e.Waiter)) {
			why = append(why, x.names(e.Why))
		}
	}
	if len(why) == 0 {
		return "each waits for a lock the other holds"
	}
	return strings.Join(why, "; ")
}

// outcome is how session s's statement ended, in a few words.
func (x *explorer) outcome(s int) string {
	ev := x.ended[s]
	switch {
	case ev == nil:
		return ""
	case ev.Kind == sim.ConnectionLost:
		return "connection lost"
	case ev.Err != nil && ev.Err.SQLState != "":
		return fmt.Sprintf("ERROR %s (%s)", ev.Err.Message, ev.Err.SQLState)
	case ev.Err != nil:
		return "ERROR " + ev.Err.Message
	}
	if r := ev.LastRows(); r != nil && len(r.Rows) > 0 && len(r.Rows[0]) > 0 {
		return "→ " + r.Columns[0] + " = " + r.Rows[0][0]
	}
	return "ok"
}

// settled takes the end of session s's statement i: an error is the
// answer's (a deadlock victim's, a serialization failure the application
// would retry, or a mistake); a commit in the middle of the script leaves
// the books as they are committed now, which must be kept.
func (x *explorer) settled(ctx context.Context, s, i int) error {
	ev := x.ended[s]
	name := x.ex.Sessions[s]
	if ev == nil {
		return nil
	}
	if ev.Kind == sim.ConnectionLost {
		x.failure = fmt.Sprintf("%s's connection was lost at statement %d", name, i+1)
		return nil
	}
	if ev.Err != nil {
		switch code := ev.Err.SQLState; {
		case code == pgerrcode.DeadlockDetected:
			x.failure = fmt.Sprintf("a deadlock: the server failed %s's statement %d with 40P01", name, i+1)
			if x.cycle != nil {
				x.failure += " (" + x.cycle.String() + ")"
			}
		case x.ex.Name == "transfer" && (code == pgerrcode.SerializationFailure || code == pgerrcode.LockNotAvailable):
			// The application rolls back and retries later: the transfer
			// does not happen in this interleaving, and loses nothing.
			x.over[s] = true
			return x.rollback(ctx, s)
		case x.ex.Name == "job-queue" && code == pgerrcode.LockNotAvailable:
			x.failure = fmt.Sprintf("%s got 55P03 (lock_not_available) instead of a job, though another was free: the queue did not block, but the worker did no work", name)
		default:
			x.failure = fmt.Sprintf("%s's statement %d failed: %s", name, i+1, ev.Err.Message)
			if code != "" {
				x.failure += " (SQLSTATE " + code + ")"
			}
		}
		return nil
	}
	if x.ex.Name != "transfer" || i == x.n-1 {
		return nil
	}
	if info := x.eng.Sessions()[s]; info.State == sim.InTransaction || info.State == sim.Aborted {
		return nil
	}
	// The statement committed what it did on its own, and the transfer is
	// not over: a crash here leaves what is committed now.
	res, err := readBooks(ctx, x.check)
	if err != nil {
		return nil // the books are locked (a table lock): the end's check will tell
	}
	if msg := res.broken(); msg != "" {
		x.failure = fmt.Sprintf("after %s's statement %d committed on its own, with the transfer not done, the committed books are broken — a crash there leaves them so: %s", name, i+1, msg)
	}
	return nil
}

// rollback ends session s's failed transaction, as the application does.
func (x *explorer) rollback(ctx context.Context, s int) error {
	if info := x.eng.Sessions()[s]; info.State != sim.Aborted && info.State != sim.InTransaction {
		return nil
	}
	delete(x.ended, s)
	if err := x.eng.Rollback(s); err != nil {
		return err
	}
	for x.ended[s] == nil {
		if _, err := x.next(ctx, time.Second); err != nil {
			return err
		}
	}
	return nil
}

// books is what the transfer exercise's check read.
type books struct {
	accounts []bookAccount
	bad      []string
}

type bookAccount struct {
	id                          int64
	balance, opening, byEntries decimal.Decimal
}

// broken says what is wrong with the books, or "".
func (b books) broken() string {
	var total, opening decimal.Decimal
	var drift []string
	for _, a := range b.accounts {
		total, opening = total.Add(a.balance), opening.Add(a.opening)
		if !a.balance.Equal(a.byEntries) {
			drift = append(drift, fmt.Sprintf("account %d holds %s but its entries say %s", a.id, a.balance.StringFixed(2), a.byEntries.StringFixed(2)))
		}
	}
	var parts []string
	switch d := total.Sub(opening); {
	case d.IsNegative():
		parts = append(parts, fmt.Sprintf("%s lost (the accounts hold %s of %s)", d.Neg().StringFixed(2), total.StringFixed(2), opening.StringFixed(2)))
	case d.IsPositive():
		parts = append(parts, fmt.Sprintf("%s created (the accounts hold %s of %s)", d.StringFixed(2), total.StringFixed(2), opening.StringFixed(2)))
	}
	parts = append(parts, drift...)
	parts = append(parts, b.bad...)
	if len(drift) > 0 && len(b.bad) == 0 {
		parts = append(parts, "a lost update: every transfer has its entries, but a balance was written from a value read before another transfer changed it")
	}
	return strings.Join(parts, "; ")
}

// readBooks reads the ledger on conn.
func readBooks(ctx context.Context, conn *pgx.Conn) (books, error) {
	res, err := conn.PgConn().Exec(ctx, transferCheck).ReadAll()
	if err != nil {
		return books{}, err
	}
	var rs []sim.Result
	for _, r := range res {
		sr := sim.Result{Columns: []string{}}
		for _, row := range r.Rows {
			var cells []string
			for _, v := range row {
				cells = append(cells, string(v))
			}
			sr.Rows = append(sr.Rows, cells)
		}
		rs = append(rs, sr)
	}
	return parseBooks(rs)
}

// parseBooks reads the check's two result sets.
func parseBooks(res []sim.Result) (books, error) {
	var b books
	if len(res) != 2 {
		return b, fmt.Errorf("the check returned %d results, not 2", len(res))
	}
	for _, row := range res[0].Rows {
		if len(row) != 4 {
			return b, errors.New("the check's accounts have the wrong columns")
		}
		id, err := strconv.ParseInt(row[0], 10, 64)
		if err != nil {
			return b, err
		}
		var a bookAccount
		a.id = id
		for i, d := range []*decimal.Decimal{&a.balance, &a.opening, &a.byEntries} {
			if *d, err = decimal.NewFromString(row[i+1]); err != nil {
				return b, err
			}
		}
		b.accounts = append(b.accounts, a)
	}
	for _, row := range res[1].Rows {
		if len(row) != 3 {
			return b, errors.New("the check's transfers have the wrong columns")
		}
		sum, err := decimal.NewFromString(row[2])
		if err != nil {
			return b, err
		}
		if row[1] != "2" || !sum.IsZero() {
			b.bad = append(b.bad, fmt.Sprintf("transfer %s has %s entries summing to %s", row[0], row[1], sum.StringFixed(2)))
		}
	}
	return b, nil
}

// invariant checks what the interleaving left, as the teardown read it:
// for the transfer, the books kept and every transfer that went through
// counted; for the job queue, every worker did a job of its own.
func (x *explorer) invariant() string {
	ev := x.lastBlock
	if ev == nil {
		return ""
	}
	if ev.Err != nil {
		return "reading the result failed: " + ev.Err.Message
	}
	if x.ex.Name == "job-queue" {
		return x.jobsInvariant(ev.Results)
	}
	b, err := parseBooks(ev.Results)
	if err != nil {
		return "reading the books: " + err.Error()
	}
	if msg := b.broken(); msg != "" {
		return "the books are broken at the end: " + msg
	}
	// Each transfer that went through moved its amount.
	want := map[int64]decimal.Decimal{}
	for _, a := range b.accounts {
		want[a.id] = a.opening
	}
	var done []string
	for s, name := range x.ex.Sessions {
		if ev := x.ended[s]; ev != nil && ev.Err == nil {
			t := x.run.Transfers[s]
			want[t.From] = want[t.From].Sub(t.Amount)
			want[t.To] = want[t.To].Add(t.Amount)
			done = append(done, name)
		}
	}
	for _, a := range b.accounts {
		if !a.balance.Equal(want[a.id]) {
			return fmt.Sprintf("money went missing: after %s committed, account %d should hold %s but holds %s",
				strings.Join(done, " and "), a.id, want[a.id].StringFixed(2), a.balance.StringFixed(2))
		}
	}
	return ""
}

// jobsInvariant checks the job queue's result: one job a worker, no job
// done twice, each job done marked so.
func (x *explorer) jobsInvariant(res []sim.Result) string {
	if len(res) != 2 {
		return "reading the queue: the check returned no result"
	}
	did := map[string]string{}
	for _, row := range res[0].Rows {
		if len(row) != 3 {
			return "reading the queue: wrong columns"
		}
		if row[1] != "1" {
			return fmt.Sprintf("job %s was done %s times, by %s", row[0], row[1], row[2])
		}
		did[row[2]] = row[0]
	}
	for s, name := range x.ex.Sessions {
		if did[x.run.Vars[s]["worker"]] == "" {
			return fmt.Sprintf("%s (worker %s) recorded no job in ls_done", name, x.run.Vars[s]["worker"])
		}
	}
	state := map[string]string{}
	for _, row := range res[1].Rows {
		state[row[0]] = row[1]
	}
	for w, job := range did {
		if state[job] != "done" {
			return fmt.Sprintf("%s recorded job %s, but the job is %q, not 'done'", w, job, state[job])
		}
	}
	return ""
}
