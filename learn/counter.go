package learn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lockstep/ledger"
	"lockstep/sim"
)

// Lesson is a failed grade's counterexample as a lesson of its own: the
// interleaving the answer failed in, one statement a step on a fresh run,
// each narrated as it went in the grade, the last saying what broke. The
// interface plays it like any lesson (space steps, ← goes back).
func (g *Grade) Lesson() *Lesson {
	c := g.Counterexample
	if c == nil {
		return nil
	}
	ex, a := g.ex, g.answer
	part := &Part{Summary: fmt.Sprintf("your %s answer, %s: the interleaving it failed in", ex.Name, c.Run.Name)}
	part.Make = func(env Env) (sim.Config, error) { return ex.replayConfig(env, a, c.Run) }
	for k, st := range c.Steps {
		say := fmt.Sprintf("%s sends its statement %d: %s", st.Session, st.N, oneLine(st.SQL))
		if st.Outcome != "" {
			say += " — in the grade: " + st.Outcome
		}
		if k == len(c.Steps)-1 {
			say += ". This is where it breaks."
		}
		part.Actions = append(part.Actions, &Action{Kind: Step, Session: st.Session, Say: say})
	}
	part.Actions = append(part.Actions, &Action{Kind: Look, Say: "What broke: " + c.What})
	return &Lesson{Name: "counterexample", Title: "Your " + ex.Name + " answer's counterexample", Minutes: 2, Parts: []*Part{part},
		Intro: fmt.Sprintf("The grade ran your answer in two sessions, %s, in every order; this is the first that broke. Step it and watch the locks.", c.Run.Name)}
}

// replayConfig is the engine's set-up for playing an answer in the
// interface: the transfer on a fresh ledger (its books shown), the job
// queue on its tables; failed statements rolled back, as an application
// would.
func (e *Exercise) replayConfig(env Env, a *Answer, run ExerciseRun) (sim.Config, error) {
	scripts := func(i int) sim.Script { return newAnswerScript(a, run.Vars[i]) }
	if e.Name == "transfer" {
		s, _ := ledger.Lookup("naive") // its statements are replaced; it names a transactional run
		cfg := sim.Config{DB: env.DB, Ledger: env.Ledger, Strategy: s, Sessions: 2, Transfers: run.Transfers,
			Setup: ledger.DefaultSetup(), Poll: env.Poll, Books: true, Scripts: scripts}
		return cfg, cfg.Validate()
	}
	sp := e.spec(a)
	sp.Setup = []string{jobsDrop + "; " + jobsCreate + "; " + jobsReset}
	sp.Teardown = jobsDrop
	cfg := sim.Config{DB: env.DB, Scenario: sp, ScenarioName: "exercise " + e.Name, Sessions: len(e.Sessions), Poll: env.Poll, Scripts: scripts}
	return cfg, cfg.Validate()
}

// Text is the counterexample as the command line prints it.
func (c *Counterexample) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the first interleaving that broke, %s:\n", c.Run.Name)
	for _, st := range c.Steps {
		out := st.Outcome
		if out == "" {
			out = "…"
		}
		fmt.Fprintf(&b, "  %s %d: %s  %s\n", st.Session, st.N, oneLine(st.SQL), out)
	}
	fmt.Fprintf(&b, "what broke: %s\n", c.What)
	return b.String()
}

// saved is a grade's counterexample as it is kept for --replay: the
// answer as it was graded (an edit since does not change what replays).
type saved struct {
	Version        int             `json:"version"`
	Exercise       string          `json:"exercise"`
	Answer         string          `json:"answer"`
	Graded         time.Time       `json:"graded"`
	Counterexample *Counterexample `json:"counterexample"`
}

func counterFile(dir, name string) string {
	return filepath.Join(dir, "answers", name+".counterexample.json")
}

// SaveCounterexample keeps a failed grade's counterexample beside the
// answer, for lockstep learn --replay.
func SaveCounterexample(dir, name, answerPath string, g *Grade) error {
	if g.Counterexample == nil {
		return nil
	}
	src, err := os.ReadFile(answerPath)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(saved{Version: 1, Exercise: name, Answer: string(src), Graded: time.Now(), Counterexample: g.Counterexample}, "", "  ")
	if err != nil {
		return err
	}
	path := counterFile(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// LoadCounterexample is the last counterexample kept for an exercise, as
// a lesson to play.
func LoadCounterexample(dir, name string) (*Lesson, error) {
	ex, ok := LookupExercise(name)
	if !ok {
		return nil, fmt.Errorf("no exercise %q: the exercises are %s", name, strings.Join(ExerciseNames(), ", "))
	}
	b, err := os.ReadFile(counterFile(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no failed grade of your %s answer to replay: lockstep learn --check %s grades it", name, name)
	}
	if err != nil {
		return nil, err
	}
	var s saved
	if err := json.Unmarshal(b, &s); err != nil || s.Version != 1 || s.Counterexample == nil {
		return nil, fmt.Errorf("%s is damaged: grade your answer again (lockstep learn --check %s)", counterFile(dir, name), name)
	}
	a, err := ParseAnswer(name+".sql", []byte(s.Answer))
	if err != nil {
		return nil, err
	}
	g := &Grade{Exercise: name, Counterexample: s.Counterexample, answer: a, ex: ex}
	return g.Lesson(), nil
}
