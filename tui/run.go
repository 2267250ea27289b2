// Package tui is lockstep's interactive view over the engine (sim): one
// component per pane — sessions, locks, wait-for graph, explanation,
// accounts, log, the strategy menu and the set-up form — each drawing
// itself at the size it is given, under a root model (app.go) that routes
// global keys and engine events and lays the panes out. It runs no SQL of
// its own: every database call goes through the engine, inside a tea.Cmd,
// so the screen never blocks. The pool-exhaustion scenario has a view of
// its own (pool.go).
package tui

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/db"
	"lockstep/record"
	"lockstep/sim"
)

// Options set up the interface.
type Options struct {
	DB *db.Database
	// Config is the first run's set-up (its DB is set from DB).
	Config sim.Config
	// Order is the stored order autoplay plays before round-robin.
	Order []int
	// Server describes the database for the header.
	Server string
	// Transfers is the transfer set-up the strategy menu returns to when the
	// run started with a scenario (Config.Scenario set).
	Transfers sim.Config
	// ScenarioSummary is the header's line for a scenario.
	ScenarioSummary string
	// ScenarioExpected is what PostgreSQL's documentation says a built-in
	// scenario does at its isolation level (scenario.Expected).
	ScenarioExpected string
	// Clock is the time the screen shows ages and countdowns against; nil
	// means time.Now.
	Clock func() time.Time
	// Volatile formats what differs from run to run; nil shows it as it is.
	Volatile Volatile
	// Theme is default or projector (high contrast, the screen's own
	// background); empty means default.
	Theme string
	// NoColor asks for no colour at all, as NO_COLOR does: for an
	// interface served over SSH, whose client's environment says so.
	NoColor bool
	// Record, when set, is asked for a recording of the first run once its
	// engine is ready; every event and every change of the sessions goes
	// there, until a new run replaces it.
	Record func(eng *sim.Engine) (*record.Writer, error)
	// Lesson, when set, runs a lesson (lockstep learn): the lesson steps
	// the sessions, part by part, and Config is ignored.
	Lesson *LessonOptions
}

// Volatile formats the values that differ from one run to the next: process
// ids, clock times, ages and countdowns, the run id, the server's
// deadlock_timeout, and text with ids in it (a deadlock's DETAIL). The
// interface shows them as they are; a test gives one that masks them, so
// that whole screens compare with golden files.
type Volatile interface {
	Pid(pid int32) string
	Time(t time.Time) string
	Age(d time.Duration) string
	RunID(id db.RunID) string
	DeadlockTimeout(d time.Duration) string
	Text(s string) string
}

// asIs shows volatile values as they are.
type asIs struct{}

func (asIs) Pid(pid int32) string                   { return fmt.Sprint(pid) }
func (asIs) Time(t time.Time) string                { return t.Format("15:04:05.000") }
func (asIs) Age(d time.Duration) string             { return roundAge(d) }
func (asIs) RunID(id db.RunID) string               { return string(id) }
func (asIs) DeadlockTimeout(d time.Duration) string { return d.String() }
func (asIs) Text(s string) string                   { return s }

// roundAge shows a duration the way the screen does: tenths of a second,
// whole seconds past a minute.
func roundAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// Run shows the interface until the user quits or ctx ends, then rolls back
// every session and closes the engine.
func Run(ctx context.Context, opts Options, progOpts ...tea.ProgramOption) error {
	m := New(ctx, opts)
	defer m.Close()
	if err := runProgram(ctx, m, progOpts); err != nil {
		return err
	}
	if m.fatalErr != nil && m.eng == nil {
		// Quit while the sessions could not start: the run did not happen.
		return fmt.Errorf("%w: %w", ErrNotStarted, m.fatalErr)
	}
	return nil
}

// ErrNotStarted is returned when the user quits an interface whose sessions
// could not start.
var ErrNotStarted = errors.New("the sessions could not start")

// FPS is the most frames a second the interface draws.
const FPS = 20

// runProgram runs a Bubble Tea program until it quits or ctx ends. A program
// killed because ctx ended (Ctrl-C, SIGTERM, SIGHUP) is no error: the
// caller's deferred cleanup rolls back and closes.
func runProgram(ctx context.Context, m tea.Model, progOpts []tea.ProgramOption) error {
	_, err := NewProgram(ctx, m, progOpts...).Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// NewProgram is the Bubble Tea program that runs a model of this package
// — over the terminal, or over an SSH session (lockstep serve), whose
// input, output, size and colours progOpts give. It ends when ctx does.
func NewProgram(ctx context.Context, m tea.Model, progOpts ...tea.ProgramOption) *tea.Program {
	// The signals are lockstep's (main cancels ctx on SIGINT, SIGTERM and
	// SIGHUP): the program is then killed at once, never left to shut down
	// gracefully while a statement waits.
	// 20 frames a second at most, not Bubble Tea's 60: its renderer wakes at
	// that rate whether or not anything changed, which is most of what the
	// interface costs at rest; the fastest clock on screen moves in tenths
	// of a second, and a key's echo waits at most a frame, 50 ms.
	opts := append([]tea.ProgramOption{tea.WithContext(ctx), tea.WithoutSignalHandler(), tea.WithFPS(FPS)}, progOpts...)
	return tea.NewProgram(m, opts...)
}

// styles is the palette for theme, without colour when NoColor says so
// (NO_COLOR of this process is read where styles are made).
func (o Options) styles(theme string, isDark bool) styles {
	st := newStyles(theme, isDark)
	if o.NoColor {
		st.fullScreen = false
	}
	return st
}

// listen is a command that waits for what ch sends next — one value, then
// all that are already queued, so that a burst repaints once — and wraps
// it as a message: the way every long-running producer (the engine's
// events, a pool run's) feeds the program. The handler issues it again
// after each message; closed reports the end of the channel.
func listen[T any](ch <-chan T, wrap func(batch []T, closed bool) tea.Msg) tea.Cmd {
	return func() tea.Msg {
		v, ok := <-ch
		if !ok {
			return wrap(nil, true)
		}
		batch := []T{v}
		for len(batch) < 256 {
			select {
			case v, ok := <-ch:
				if !ok {
					return wrap(batch, true)
				}
				batch = append(batch, v)
			default:
				return wrap(batch, false)
			}
		}
		return wrap(batch, false)
	}
}
