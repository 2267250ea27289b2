package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/handout"
	"lockstep/learn"
	"lockstep/record"
	"lockstep/sim"
	"lockstep/tui"
)

// learnExport plays a lesson headless, recording each part, and writes it
// as a Markdown handout with the interface's screen at each question's
// answer, as the recording's replay shows it.
func (a *app) learnExport(cmd *cobra.Command, f learnFlags) error {
	if f.width < 80 || f.height < 24 || f.width > maxExportWidth || f.height > maxExportHeight {
		return badInput(fmt.Errorf("--width %d --height %d: from 80×24 to %d×%d", f.width, f.height, maxExportWidth, maxExportHeight))
	}
	lessons, err := lessonsFor(f.export)
	if err != nil {
		return err
	}
	if len(lessons) != 1 {
		return badInput(fmt.Errorf("--export takes one lesson: a number, a name or a file"))
	}
	l := lessons[0]
	theme, err := tui.ParseTheme(a.theme)
	if err != nil {
		return badInput(fmt.Errorf("--theme: %w", err))
	}
	ctx := cmd.Context()
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	parts := map[int]*partRecording{}
	tap := func(part int, eng *sim.Engine, ev sim.Event) {
		pr := parts[part]
		if pr == nil {
			pr = a.newPartRecording(eng, d, l, part)
			parts[part] = pr
		}
		if pr.tap != nil {
			pr.tap(ev)
		}
		pr.last = ev.Time
	}
	r, err := learn.Play(ctx, l, a.learnEnv(d), learn.MachinePace, func(part int, eng *sim.Engine, ev sim.Event) {
		tap(part, eng, ev)
	})
	if err != nil {
		return err
	}
	// Each action's moment: the last one the replay shows by the time the
	// action had settled.
	steps := make([]handout.LessonStep, 0, len(r.Played))
	moments := map[int]*tui.Moments{}
	for _, p := range r.Played {
		s := handout.LessonStep{Action: p.Action, Part: p.Part, Verdict: p.Verdict}
		if p.Obs != nil {
			s.Notable = p.Obs.Notable()
		}
		if p.Action.Question != nil {
			if pr := parts[p.Part]; pr != nil {
				ms := moments[p.Part]
				if ms == nil {
					if ms, err = pr.moments(theme); err != nil {
						return fmt.Errorf("replaying part %d: %w", p.Part+1, err)
					}
					moments[p.Part] = ms
				}
				at := p.At
				i := 0
				for k := 0; k < ms.Len(); k++ {
					if !pr.start.Add(ms.At(k)).After(at) {
						i = k
					}
				}
				s.Screen = ms.Screen(i, f.width, f.height)
			}
		}
		steps = append(steps, s)
	}
	var out io.Writer = cmd.OutOrStdout()
	var tmp *os.File
	if f.output != "" {
		if tmp, err = os.CreateTemp(filepath.Dir(f.output), ".lockstep-export-*"); err != nil {
			return badInput(fmt.Errorf("-o %s: %w", f.output, err))
		}
		defer func() {
			tmp.Close()
			os.Remove(tmp.Name())
		}()
		out = tmp
	}
	if err := handout.Lesson(out, l, "PostgreSQL "+d.Version(), steps); err != nil {
		return err
	}
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), f.output); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "lockstep: wrote %s (%d steps, %d questions)\n", f.output, len(steps), l.Questions())
	}
	return nil
}

// partRecording is one part of a lesson recorded as it played.
type partRecording struct {
	buf   bytes.Buffer
	w     *record.Writer
	tap   func(sim.Event)
	start time.Time
	last  time.Time
}

func (a *app) newPartRecording(eng *sim.Engine, d *db.Database, l *learn.Lesson, part int) *partRecording {
	cfg := eng.Config()
	pr := &partRecording{start: time.Now()}
	run := record.Run{Name: cfg.Name(), RunID: string(eng.RunID()), Sessions: cfg.Sessions, HasLedger: cfg.HasLedger(),
		TwoDatabases: cfg.TwoDatabases(), Poll: cfg.Poll, DeadlockTimeout: eng.Observer().DeadlockTimeout(),
		Summary: fmt.Sprintf("lesson %q, part %d", l.Title, part+1)}
	w, err := record.NewWriter(&pr.buf, record.Header{Lockstep: Version, Command: "learn", Server: d.Describe(),
		ServerVersion: d.Version(), Run: run, Started: pr.start})
	if err != nil {
		return pr
	}
	pr.w, pr.tap = w, w.Tap(eng.Sessions)
	return pr
}

// moments replays the part's recording, as lockstep replay would.
func (pr *partRecording) moments(theme string) (*tui.Moments, error) {
	if pr.w == nil {
		return nil, fmt.Errorf("the part was not recorded")
	}
	if _, err := pr.w.Close(); err != nil {
		return nil, err
	}
	rec, err := record.Read(&pr.buf)
	if err != nil {
		return nil, err
	}
	return tui.NewMoments(rec, tui.ReplayOptions{Theme: theme})
}
