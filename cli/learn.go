package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/learn"
	"lockstep/load"
	"lockstep/tui"
)

// learnFlags are lockstep learn's flags.
type learnFlags struct {
	checkLesson string
	pace        string
	export      string
	output      string
	width       int
	height      int
	reset       bool
	edit        bool
	check       bool
	replay      bool
	answer      string
	chaos       time.Duration
}

func (a *app) learnCommand() *cobra.Command {
	var f learnFlags
	cmd := &cobra.Command{
		Use:   "learn [N|FILE|EXERCISE]",
		Short: "The course: lessons that ask what the server will do, show it, and say why; exercises graded on the server",
		Long: "learn lists the course's lessons with your progress. lockstep learn N runs lesson N in the interface:\n" +
			"each step's narration above the sessions; before chosen steps a question (keys 1–5); then the step runs\n" +
			"on the real server and your answer is marked, with what the server did and why. ← goes back through\n" +
			"the lesson. lockstep learn FILE runs a lesson file of your own (the format is in README's Learn).\n\n" +
			"Two lessons end with an exercise (transfer, job-queue): --edit opens your answer in $EDITOR, --check\n" +
			"grades it on the server — every interleaving of two sessions, then (the transfer) a chaos run — and\n" +
			"prints the first interleaving that fails; --replay plays that interleaving in the interface.\n\n" +
			"Your progress is kept in " + stateDirWords() + "; --reset clears it.",
		Example: "  lockstep learn\n  lockstep learn 3\n  lockstep learn --edit transfer\n  lockstep learn --check transfer\n" +
			"  lockstep learn --check-lesson all --pace both\n  lockstep learn --export 3 -o lesson3.md",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			modes := 0
			for _, on := range []bool{f.checkLesson != "", f.export != "", f.reset, f.edit, f.check, f.replay} {
				if on {
					modes++
				}
			}
			if modes > 1 {
				return badInput(errors.New("choose one of --check-lesson, --export, --reset, --edit, --check, --replay"))
			}
			switch {
			case f.reset:
				return a.learnReset(cmd)
			case f.checkLesson != "":
				return a.learnCheckLessons(cmd, f)
			case f.export != "":
				return a.learnExport(cmd, f)
			case f.edit:
				return a.learnEdit(cmd, arg)
			case f.check:
				return a.learnCheck(cmd, arg, f)
			case f.replay:
				return a.learnReplay(cmd, arg)
			case arg == "":
				return a.learnList(cmd)
			}
			return a.learnLesson(cmd, arg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.checkLesson, "check-lesson", "", "run a lesson (N, a name, a file, or all) headless and check that the server does what each question expects; exit code 1 if not")
	fl.StringVar(&f.pace, "pace", "machine", "for --check-lesson: machine (each step once the last settled), human (the server's timers a student's pause lets run, run), or both")
	fl.StringVar(&f.export, "export", "", "write lesson N (or a file) as a Markdown handout: narration, questions, the screen at each answer")
	fl.StringVarP(&f.output, "output", "o", "", "for --export: the file to write (default: standard output)")
	fl.IntVar(&f.width, "width", 100, "for --export: the screens' width")
	fl.IntVar(&f.height, "height", 30, "for --export: the screens' height")
	fl.BoolVar(&f.reset, "reset", false, "clear your progress (your answers to the exercises stay)")
	fl.BoolVar(&f.edit, "edit", false, "open your answer to an exercise (transfer, job-queue) in $EDITOR")
	fl.BoolVar(&f.check, "check", false, "grade your answer to an exercise on the server")
	fl.BoolVar(&f.replay, "replay", false, "play the interleaving your last graded answer failed in, in the interface")
	fl.StringVar(&f.answer, "answer", "", "for --check: grade this file instead of your saved answer")
	fl.DurationVar(&f.chaos, "chaos", 3*time.Second, "for --check: how long the chaos run lasts (0 skips it)")
	return cmd
}

// stateDirWords says where the progress is kept, for the help.
func stateDirWords() string {
	d, err := learn.StateDir()
	if err != nil {
		return "your state directory ($XDG_STATE_HOME/lockstep)"
	}
	return d + " ($XDG_STATE_HOME/lockstep when set)"
}

// loadProgress reads the student's progress; a damaged file is set aside
// and said so in one line.
func (a *app) loadProgress() (*learn.Progress, string, error) {
	dir, err := learn.StateDir()
	if err != nil {
		return nil, "", badInput(err)
	}
	p, note, err := learn.LoadProgress(dir)
	if err != nil {
		return nil, "", err
	}
	if note != "" {
		fmt.Fprintf(a.stderr, "lockstep: %s\n", note)
	}
	return p, dir, nil
}

// learnList prints the lessons with the student's progress.
func (a *app) learnList(cmd *cobra.Command) error {
	all, err := learn.Builtins()
	if err != nil {
		return err
	}
	p, _, err := a.loadProgress()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	minutes := 0
	for _, l := range all {
		minutes += l.Minutes
	}
	fmt.Fprintf(out, "lockstep learn — %d lessons, about %d minutes; your progress: %s\n\n", len(all), minutes, p.Path())
	next := 0
	for _, l := range all {
		lp := p.Lessons[l.Key()]
		mark, score := " ", ""
		switch {
		case lp != nil && lp.Done:
			mark = "✓"
		case lp != nil && lp.Reached > 0:
			mark = "▸"
		}
		if next == 0 && (lp == nil || !lp.Done) {
			next = l.Number
		}
		if right, asked := lp.Score(); asked > 0 {
			score = fmt.Sprintf("%d/%d right first time", right, asked)
			if lp != nil && !lp.Done {
				// Reopened, a lesson starts again from its first step: its
				// sessions and the server's state are new.
				score += fmt.Sprintf(", left at step %d of %d (reopened, it starts again)", lp.Reached+1, l.Steps())
			}
		}
		ex := ""
		if l.Exercise != nil {
			ex = " + exercise " + l.Exercise.Name
			if ep := p.Exercises[l.Exercise.Name]; ep != nil && ep.Passed {
				ex += " ✓"
			}
		}
		fmt.Fprintf(out, "  %2d %s %-52s %2d min  %s\n", l.Number, mark, l.Title+ex, l.Minutes, score)
	}
	fmt.Fprintln(out)
	if next > 0 {
		fmt.Fprintf(out, "lockstep learn %d starts the next lesson in the interface; lockstep learn --help says more.\n", next)
	} else {
		fmt.Fprintln(out, "Every lesson is done. lockstep learn N takes one again; lockstep learn --reset starts afresh.")
	}
	return nil
}

// learnReset clears the progress.
func (a *app) learnReset(cmd *cobra.Command) error {
	dir, err := learn.StateDir()
	if err != nil {
		return badInput(err)
	}
	removed, err := learn.Reset(dir)
	if err != nil {
		return err
	}
	if removed {
		fmt.Fprintf(cmd.OutOrStdout(), "cleared your progress (%s); your answers in %s stay\n", learn.ProgressFile(dir), filepath.Join(dir, "answers"))
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "no progress to clear (%s)\n", learn.ProgressFile(dir))
	}
	return nil
}

// lessonsFor finds the lessons an argument names: N, a name, a file, or all.
func lessonsFor(arg string) ([]*learn.Lesson, error) {
	if arg == "all" {
		return learn.Builtins()
	}
	l, err := learn.Load(arg)
	if err != nil {
		return nil, badInput(err)
	}
	return []*learn.Lesson{l}, nil
}

// learnEnv is what lessons and grades run on; the second database of a
// two-database part is opened once, when first needed.
func (a *app) learnEnv(d *db.Database) learn.Env {
	env := learn.Env{DB: d, Ledger: a.ledger}
	var second *db.Database
	env.Second = func(ctx context.Context) (*db.Database, error) {
		if second != nil {
			return second, nil
		}
		d2, err := a.openSecond(ctx, d)
		second = d2
		return d2, err
	}
	return env
}

// learnCheckLessons plays lessons headless at the paces asked and checks
// every question against the server.
func (a *app) learnCheckLessons(cmd *cobra.Command, f learnFlags) error {
	var paces []learn.Pace
	switch f.pace {
	case "machine":
		paces = []learn.Pace{learn.MachinePace}
	case "human":
		paces = []learn.Pace{learn.HumanPace}
	case "both":
		paces = []learn.Pace{learn.MachinePace, learn.HumanPace}
	default:
		return badInput(fmt.Errorf("--pace %q: machine, human or both", f.pace))
	}
	lessons, err := lessonsFor(f.checkLesson)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	out := cmd.OutOrStdout()
	failed := 0
	for _, l := range lessons {
		for _, pace := range paces {
			r, err := learn.Play(ctx, l, a.learnEnv(d), pace, nil)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				failed++
				fmt.Fprintf(out, "✗ %s at %s: %v\n", lessonName(l), pace, err)
				continue
			}
			problems := r.Problems()
			if len(problems) == 0 {
				fmt.Fprintf(out, "✓ %s at %s: %d steps, %d questions, each as the lesson expects (%s)\n",
					lessonName(l), pace, len(r.Played), l.Questions(), r.Took.Round(10*time.Millisecond))
				continue
			}
			failed++
			fmt.Fprintf(out, "✗ %s at %s:\n", lessonName(l), pace)
			for _, p := range problems {
				fmt.Fprintf(out, "    %s\n", p)
			}
		}
	}
	if failed > 0 {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%d lesson runs teach something the server does not do", failed)}
	}
	return nil
}

// lessonName is "lesson 3 (The foreign-key deadlock)" or a file's name.
func lessonName(l *learn.Lesson) string {
	if l.Number > 0 {
		return fmt.Sprintf("lesson %d (%s)", l.Number, l.Title)
	}
	return fmt.Sprintf("%s (%s)", l.Name, l.Title)
}

// answerPath is the student's answer to an exercise, made from the
// exercise's start when there is none yet.
func answerPath(name string) (string, error) {
	ex, ok := learn.LookupExercise(name)
	if !ok {
		return "", badInput(fmt.Errorf("no exercise %q: the exercises are %s", name, strings.Join(learn.ExerciseNames(), ", ")))
	}
	dir, err := learn.StateDir()
	if err != nil {
		return "", badInput(err)
	}
	path := filepath.Join(dir, "answers", ex.Name+".sql")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("making a place for your answer: %w", err)
	}
	if err := os.WriteFile(path, []byte(ex.Start), 0o600); err != nil {
		return "", fmt.Errorf("writing your answer's first version: %w", err)
	}
	return path, nil
}

// exerciseArg is the exercise an argument names, or the first not passed.
func (a *app) exerciseArg(arg string) (string, error) {
	if arg != "" {
		if _, ok := learn.LookupExercise(arg); !ok {
			return "", badInput(fmt.Errorf("no exercise %q: the exercises are %s", arg, strings.Join(learn.ExerciseNames(), ", ")))
		}
		return arg, nil
	}
	p, _, err := a.loadProgress()
	if err != nil {
		return "", err
	}
	for _, name := range []string{"transfer", "job-queue"} {
		if ep := p.Exercises[name]; ep == nil || !ep.Passed {
			return name, nil
		}
	}
	return "transfer", nil
}

// learnEdit opens the student's answer in $EDITOR.
func (a *app) learnEdit(cmd *cobra.Command, arg string) error {
	name, err := a.exerciseArg(arg)
	if err != nil {
		return err
	}
	path, err := answerPath(name)
	if err != nil {
		return err
	}
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	fields := strings.Fields(editor)
	e := exec.CommandContext(cmd.Context(), fields[0], append(fields[1:], path)...)
	e.Stdin, e.Stdout, e.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
	if err := e.Run(); err != nil {
		return badInput(fmt.Errorf("the editor %s: %w (set EDITOR; your answer is %s)", editor, err, path))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "your answer: %s — lockstep learn --check %s grades it\n", path, name)
	return nil
}

// grader grades answers to exercises, with a chaos run of lockstep's own
// worker processes running the answer.
func (a *app) grader(d *db.Database, chaos time.Duration) func(ctx context.Context, name, path string, progress func(string)) (*learn.Grade, error) {
	return func(ctx context.Context, name, path string, progress func(string)) (*learn.Grade, error) {
		ex, _ := learn.LookupExercise(name)
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, badInput(fmt.Errorf("reading your answer: %w", err))
		}
		ans, err := learn.ParseAnswer(path, src)
		if err != nil {
			return &learn.Grade{Exercise: name, Problem: err.Error()}, nil
		}
		opts := learn.GradeOptions{Progress: progress}
		if chaos > 0 {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("finding lockstep's own binary to run workers: %w", err)
			}
			abs, _ := filepath.Abs(path)
			opts.Chaos = func(ctx context.Context, d *db.Database) (load.ChaosResult, error) {
				const accounts = 10
				cfg := load.ChaosConfig{DB: d, Ledger: a.ledger, Workers: 4, Accounts: accounts, Duration: chaos, KillEvery: 250 * time.Millisecond}
				cfg.Command = func(runID db.RunID, name string, seed uint64) *exec.Cmd {
					return exec.Command(exe, "worker", "--schema", d.Schema(), "--answer", abs, "--accounts", strconv.Itoa(accounts),
						"--run", string(runID), "--name", name, "--seed", strconv.FormatUint(seed, 10))
				}
				return load.Chaos(ctx, cfg)
			}
		}
		return learn.GradeAnswer(ctx, a.learnEnv(d), ex, ans, opts)
	}
}

// learnCheck grades the student's answer and prints how it went.
func (a *app) learnCheck(cmd *cobra.Command, arg string, f learnFlags) error {
	name, err := a.exerciseArg(arg)
	if err != nil {
		return err
	}
	path := f.answer
	if path == "" {
		if path, err = answerPath(name); err != nil {
			return err
		}
	}
	// An answer that cannot be read is said before a server starts.
	if _, err := os.Stat(path); err != nil {
		return badInput(fmt.Errorf("reading your answer: %w (lockstep learn --edit %s writes one)", err, name))
	}
	p, dir, err := a.loadProgress()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "grading %s (exercise %s) on %s\n", path, name, d.Describe())
	g, err := a.grader(d, f.chaos)(ctx, name, path, func(s string) { fmt.Fprintf(cmd.ErrOrStderr(), "lockstep: %s\n", s) })
	if err != nil {
		return err
	}
	ep := p.Exercise(name)
	ep.Tries++
	ep.Passed = ep.Passed || g.Passed
	ep.Last, ep.Updated = g.Summary(), time.Now()
	if err := p.Save(); err != nil {
		fmt.Fprintf(a.stderr, "lockstep: %v\n", err)
	}
	if c := g.Counterexample; c != nil {
		fmt.Fprint(out, c.Text())
		if err := learn.SaveCounterexample(dir, name, path, g); err == nil {
			fmt.Fprintf(out, "lockstep learn --replay %s plays it step by step in the interface\n", name)
		}
	}
	fmt.Fprintf(out, "%s (%s)\n", g.Summary(), g.Took.Round(100*time.Millisecond))
	if !g.Passed {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("your %s answer does not pass yet", name)}
	}
	return nil
}

// learnReplay plays the last counterexample in the interface.
func (a *app) learnReplay(cmd *cobra.Command, arg string) error {
	name, err := a.exerciseArg(arg)
	if err != nil {
		return err
	}
	dir, err := learn.StateDir()
	if err != nil {
		return badInput(err)
	}
	l, err := learn.LoadCounterexample(dir, name)
	if err != nil {
		return badInput(err)
	}
	return a.runLesson(cmd, l, nil)
}

// learnLesson runs a lesson in the interface.
func (a *app) learnLesson(cmd *cobra.Command, arg string) error {
	l, err := learn.Load(arg)
	if err != nil {
		return badInput(err)
	}
	return a.runLesson(cmd, l, nil)
}

// runLesson opens the interface on a lesson.
func (a *app) runLesson(cmd *cobra.Command, l *learn.Lesson, _ io.Writer) error {
	theme, err := tui.ParseTheme(a.theme)
	if err != nil {
		return badInput(fmt.Errorf("--theme: %w", err))
	}
	if f, ok := cmd.OutOrStdout().(*os.File); !ok || !term.IsTerminal(f.Fd()) {
		return badInput(errors.New("a lesson runs in the interface and needs a terminal; lockstep learn --check-lesson N runs it headless"))
	}
	p, _, err := a.loadProgress()
	if err != nil {
		return err
	}
	all, err := learn.Builtins()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if a.dsn == "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "lockstep: starting…")
	}
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	server := d.Describe()
	if srv := d.Server(); srv != nil {
		server = "throwaway PostgreSQL " + srv.Version()
	}
	lo := &tui.LessonOptions{Lesson: l, Env: a.learnEnv(d), Progress: p, Of: len(all),
		Next: func(cur *learn.Lesson) *learn.Lesson {
			if cur.Number > 0 && cur.Number < len(all) {
				return all[cur.Number]
			}
			return nil
		},
		Exercise: &tui.ExerciseHooks{
			Answer: answerPath,
			Grade: func(ctx context.Context, name string) (*learn.Grade, error) {
				path, err := answerPath(name)
				if err != nil {
					return nil, err
				}
				// The lesson's run claims its schema: the grade goes beside it.
				gd, done, err := learn.SideSchema(ctx, d, "grade")
				if err != nil {
					return nil, err
				}
				defer done()
				g, err := a.grader(gd, 3*time.Second)(ctx, name, path, nil)
				if err == nil {
					ep := p.Exercise(name)
					ep.Tries++
					ep.Passed = ep.Passed || g.Passed
					ep.Last, ep.Updated = g.Summary(), time.Now()
					_ = p.Save()
					if dir, derr := learn.StateDir(); derr == nil && g.Counterexample != nil {
						_ = learn.SaveCounterexample(dir, name, path, g)
					}
				}
				return g, err
			},
		}}
	if rep, err := learn.NewClassReporter(ctx, d); err == nil {
		// On a shared server, lockstep class shows the teacher where each
		// student is.
		defer rep.Close()
		lo.Report = rep.Report
	}
	err = tui.Run(ctx, tui.Options{DB: d, Server: server, Theme: theme, Lesson: lo})
	if errors.Is(err, tui.ErrNotStarted) {
		return badInput(err)
	}
	return err
}
