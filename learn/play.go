package learn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

// Pace is how fast a lesson's actions follow each other headless.
type Pace int

const (
	// MachinePace takes each action as soon as the last has settled.
	MachinePace Pace = iota
	// HumanPace takes them as a student would, who reads and answers
	// between keys: after an action that leaves a session waiting, the
	// next waits until the server's timers a student's pause would let
	// run — each waiter's deadlock check, its lock_timeout — have run
	// (those that fire within humanGap). Where nothing waits no timer
	// runs, and nothing is waited for.
	HumanPace
)

func (p Pace) String() string {
	if p == HumanPace {
		return "human pace"
	}
	return "machine pace"
}

// humanGap is the pause between two keys a student's pace is taken to be.
const humanGap = 5 * time.Second

// Env is what lessons run on.
type Env struct {
	DB *db.Database
	// Second opens the second database of a two-database part (scenario
	// coupled); nil when there is none.
	Second func(ctx context.Context) (*db.Database, error)
	Ledger *ledger.Ledger
	Poll   time.Duration
}

// Config is the engine's set-up for a part of a lesson, with the part's
// one-line summary.
func (env Env) Config(p *Part) (sim.Config, string, error) {
	if p.Make != nil {
		cfg, err := p.Make(env)
		return cfg, p.Summary, err
	}
	r := p.Run
	setup := ledger.DefaultSetup()
	if r.Accounts > 0 {
		setup.Accounts = r.Accounts
	}
	cfg := sim.Config{DB: env.DB, Ledger: env.Ledger, Setup: setup, Poll: env.Poll, Books: true}
	if r.Strategy != "" {
		s, err := ledger.Lookup(r.Strategy)
		if err != nil {
			return cfg, "", err
		}
		cfg.Strategy, cfg.Sessions = s, max(r.Sessions, sim.MinSessions)
		if r.Direction != "" {
			if cfg.Direction, err = sim.ParseDirection(r.Direction); err != nil {
				return cfg, "", err
			}
		}
		if r.Amount != "" {
			if cfg.Amount, err = decimal.NewFromString(r.Amount); err != nil {
				return cfg, "", err
			}
		}
		amount := cfg.Amount
		if amount.IsZero() {
			amount = decimal.RequireFromString("10.00")
		}
		for _, t := range r.Transfers {
			cfg.Transfers = append(cfg.Transfers, ledger.Transfer{From: t.From, To: t.To, Amount: amount})
		}
		return cfg, s.Summary, cfg.Validate()
	}
	name, err := r.ScenarioName()
	if err != nil {
		return cfg, "", err
	}
	sc, err := r.Spec()
	if err != nil {
		return cfg, "", err
	}
	cfg.Scenario, cfg.ScenarioName, cfg.Sessions = sc, name, len(sc.Sessions)
	summary := ""
	for _, b := range scenario.Builtins() {
		if b.Name == name {
			summary = b.Summary
		}
	}
	if cfg.TwoDatabases() {
		return cfg, summary, nil // validated once the second database is open
	}
	return cfg, summary, cfg.Validate()
}

// SessionIndex finds the session a lesson names (T1, w1) among the run's.
func SessionIndex(name string, sessions []sim.SessionInfo) int {
	for _, exact := range []bool{true, false} {
		for i, s := range sessions {
			if exact && (s.Name == name || s.Label == name) {
				return i
			}
			if !exact && (strings.EqualFold(s.Name, name) || strings.EqualFold(s.Label, name)) {
				return i
			}
		}
	}
	return -1
}

// Target is the session an action acts on, given who the victim and the
// survivor of the last failure are (Aliases); -1 for an action on none.
func (a *Action) Target(sessions []sim.SessionInfo, aliases Aliases) (string, int, error) {
	switch a.Kind {
	case Look, Bench:
		return "", -1, nil
	}
	name := a.Session
	if isAlias(name) {
		if aliases[name] == "" {
			return "", -1, fmt.Errorf("%s %s: no session has failed with a deadlock or a serialization failure yet", a.Kind, name)
		}
		name = aliases[name]
	}
	i := SessionIndex(name, sessions)
	if i < 0 {
		return "", -1, fmt.Errorf("%s %s: no such session in this run", a.Kind, name)
	}
	return sessions[i].Name, i, nil
}

// Send starts an action on the engine: a statement is sent and runs on;
// a retry runs the session's rollback and rewinds its script before it
// returns. Look and bench send nothing.
func Send(ctx context.Context, eng *sim.Engine, a *Action, idx int) error {
	switch a.Kind {
	case Step:
		return eng.Step(idx)
	case Commit:
		return eng.Commit(idx)
	case Rollback:
		return eng.Rollback(idx)
	case SQL:
		return eng.Exec(idx, a.SQL)
	case Retry:
		return eng.Restart(ctx, idx)
	}
	return nil
}

// Aliases say which sessions "victim" and "survivor" name now.
type Aliases map[string]string

// Learn updates the aliases from an action's observation: a session the
// server failed becomes the victim, and the other of its deadlock (or of a
// two-session run) the survivor.
func (al Aliases) Learn(o *Observation) {
	v := o.Failed()
	if v == "" {
		return
	}
	al[Victim], al[Survivor] = v, ""
	var others []string
	if o.Cycle != nil && !o.Cycle.Distributed {
		others = o.Cycle.Sessions
	} else {
		for _, s := range o.Sessions {
			others = append(others, s.Name)
		}
	}
	var rest []string
	for _, s := range others {
		if s != v && !slices.Contains(rest, s) {
			rest = append(rest, s)
		}
	}
	if len(rest) == 1 {
		al[Survivor] = rest[0]
	}
}

// Failed is the session an action's observation says the server failed
// with a deadlock or a serialization failure — the one a retry loop
// starts again — or "".
func (o *Observation) Failed() string {
	if o.Victim != "" {
		return o.Victim
	}
	for _, s := range o.order() {
		if e, ok := o.Ended[s]; ok && e.Err != nil && e.Err.SQLState == pgerrcode.SerializationFailure {
			return s
		}
	}
	return ""
}

// Played is one action of a lesson played headless.
type Played struct {
	Part, Index int
	Action      *Action
	Session     string
	Obs         *Observation
	// Verdict is the action's question judged with the expected option as
	// the answer; nil when the action asks nothing.
	Verdict *Verdict
	Took    time.Duration
	// At is when the action had settled.
	At time.Time
}

// Problem is what is wrong with a played question: the server decided
// none of its options, or several, or not the one the lesson expects. "".
func (p Played) Problem() string {
	q := p.Action.Question
	if q == nil || p.Verdict == nil {
		return ""
	}
	v := p.Verdict
	happened := strings.Join(v.Happened, " ")
	switch {
	case len(v.True) == 0:
		return fmt.Sprintf("none of the options is what the server did: %s", happened)
	case len(v.True) > 1:
		var names []string
		for _, i := range v.True {
			names = append(names, fmt.Sprintf("%d (%s)", i+1, q.Options[i].Claim))
		}
		return "the server made several options true: " + strings.Join(names, ", ") + "; a question's options must exclude each other"
	case q.Expect > 0 && v.True[0] != q.Expect-1:
		return fmt.Sprintf("the lesson expects option %d (%s); the server made option %d true (%s): %s",
			q.Expect, q.Options[q.Expect-1].Claim, v.True[0]+1, q.Options[v.True[0]].Claim, happened)
	}
	return ""
}

// Report is a lesson played headless.
type Report struct {
	Lesson *Lesson
	Pace   Pace
	Played []Played
	Took   time.Duration
}

// Problems are the report's problems, each with where in the file.
func (r *Report) Problems() []string {
	var out []string
	for _, p := range r.Played {
		if msg := p.Problem(); msg != "" {
			out = append(out, fmt.Sprintf("line %d (%s): %s", p.Action.Question.Line, cut(p.Action.Question.Text, 60), msg))
		}
		if p.Obs.Problem != "" {
			out = append(out, fmt.Sprintf("line %d: %s %s: %s", p.Action.Line, p.Action.Kind, p.Action.Session, p.Obs.Problem))
		} else if p.Obs.Timeout {
			out = append(out, fmt.Sprintf("line %d: %s %s did not settle within %s", p.Action.Line, p.Action.Kind, p.Action.Session, settleWithin))
		}
	}
	return out
}

// Tap sees every engine event of a lesson played headless, with its engine
// (a recording keeps them); part says which part's engine it is.
type Tap func(part int, eng *sim.Engine, ev sim.Event)

// Play runs a lesson headless: every part on an engine of its own, every
// action at pace, every question judged with the option the lesson
// expects as the answer.
func Play(ctx context.Context, l *Lesson, env Env, pace Pace, tap Tap) (*Report, error) {
	start := time.Now()
	r := &Report{Lesson: l, Pace: pace}
	for pi, part := range l.Parts {
		if err := playPart(ctx, r, pi, part, env, pace, tap); err != nil {
			return r, fmt.Errorf("part %d (line %d, %s): %w", pi+1, part.Line, part.Run.Describe(), err)
		}
	}
	r.Took = time.Since(start)
	return r, nil
}

// Describe is the run in the words of the file.
func (r Run) Describe() string {
	if r.Strategy != "" {
		return "strategy " + r.Strategy
	}
	s := "scenario " + r.Scenario
	if r.Fix != "" {
		s += ", fix " + r.Fix
	}
	return s
}

// StartPart starts the engine for a part: its set-up, and the second
// database of a two-database part.
func StartPart(ctx context.Context, env Env, part *Part) (*sim.Engine, error) {
	cfg, _, err := env.Config(part)
	if err != nil {
		return nil, err
	}
	if cfg.TwoDatabases() {
		if env.Second == nil {
			return nil, sim.ErrNoSecondDatabase
		}
		if cfg.DB2, err = env.Second(ctx); err != nil {
			return nil, err
		}
	}
	return sim.New(ctx, cfg)
}

func playPart(ctx context.Context, r *Report, pi int, part *Part, env Env, pace Pace, tap Tap) (err error) {
	eng, err := StartPart(ctx, env, part)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, eng.Close(context.WithoutCancel(ctx))) }()
	var books *sim.Balances
	aliases := Aliases{}
	feed := func(ev sim.Event) {
		if tap != nil {
			tap(pi, eng, ev)
		}
		if ev.Kind == sim.BooksRead && ev.Books != nil && ev.Books.Err == nil {
			books = ev.Books
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	hasLedger := eng.Config().HasLedger()
	for ai, a := range part.Actions {
		if pace == HumanPace && ai > 0 {
			until := humanPause(eng)
			for time.Now().Before(until) {
				select {
				case ev, ok := <-eng.Events():
					if !ok {
						return errors.New("the engine closed")
					}
					feed(ev)
				case <-time.After(time.Until(until)):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		began := time.Now()
		sessions := eng.Sessions()
		name, idx, terr := a.Target(sessions, aliases)
		p := Played{Part: pi, Index: ai, Action: a, Session: name}
		if a.Kind == Bench {
			obs := &Observation{Sessions: sessions, Ended: map[string]Ending{}}
			if obs.Bench, err = RunBench(ctx, env, a.Bench); err != nil {
				obs.Problem = err.Error()
			}
			p.Obs = obs
		} else {
			j := NewJudge(name, idx, sessions, hasLedger, books, began)
			j.Aliases(aliases)
			if terr != nil {
				j.Fail(terr.Error())
			} else if err := Send(ctx, eng, a, idx); err != nil {
				j.Fail(err.Error())
			} else if a.Kind == Retry {
				j = NewJudge(name, -1, eng.Sessions(), hasLedger, books, time.Now())
				j.Aliases(aliases)
			}
			for !j.Done() {
				if j.WantsPoll() {
					eng.PollNow()
				}
				select {
				case ev, ok := <-eng.Events():
					if !ok {
						return errors.New("the engine closed")
					}
					feed(ev)
					j.Feed(ev, eng.Sessions())
				case now := <-tick.C:
					j.Expired(now)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			p.Obs = j.Observation()
			aliases.Learn(p.Obs)
		}
		if q := a.Question; q != nil {
			v := p.Obs.Judge(q, q.Expect-1)
			p.Verdict = &v
		}
		p.At = time.Now()
		p.Took = p.At.Sub(began)
		r.Played = append(r.Played, p)
	}
	return nil
}

// humanPause is when a student's next key would come, as far as the
// server can tell: once every waiting session's timers that fire within a
// student's pause have fired.
func humanPause(eng *sim.Engine) time.Time {
	until := time.Now()
	def := eng.Observer().DeadlockTimeout()
	for _, s := range eng.Sessions() {
		if s.State != sim.Waiting {
			continue
		}
		dt := s.DeadlockTimeout
		if dt <= 0 {
			dt = def
		}
		for _, t := range []time.Duration{dt, s.LockTimeout} {
			if t > 0 && t <= humanGap {
				if at := s.StartedAt.Add(t + 300*time.Millisecond); at.After(until) {
					until = at
				}
			}
		}
	}
	return until
}
