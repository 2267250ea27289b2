package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"lockstep/record"
	"lockstep/sim"
	"lockstep/tui"
)

// openRecording reads a recording; what is wrong with it is bad input.
func openRecording(path string) (*record.Recording, error) {
	rec, err := record.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, badInput(fmt.Errorf("no recording %s: make one with --record %s", path, path))
		}
		return nil, badInput(err)
	}
	return rec, nil
}

func (a *app) replayCommand() *cobra.Command {
	var at string
	var live bool
	cmd := &cobra.Command{
		Use:   "replay FILE",
		Short: "Replay a recording in the interface, with no database: play, pause, step back and forward",
		Long: "replay opens the interface on a recording made with --record: every pane shows the run as it was.\n" +
			"space plays and pauses, ←/→ step back and forward one moment, w/d/e jump to the next wait, deadlock\n" +
			"or error (W/D/E the previous), +/- change the speed. --live plays the recorded statements again on a\n" +
			"real server and reports where the server now behaves differently.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := openRecording(args[0])
			if err != nil {
				return err
			}
			if live {
				return a.replayLive(cmd, rec)
			}
			theme, err := tui.ParseTheme(a.theme)
			if err != nil {
				return badInput(fmt.Errorf("--theme: %w", err))
			}
			if f, ok := cmd.OutOrStdout().(*os.File); !ok || !term.IsTerminal(f.Fd()) {
				return badInput(fmt.Errorf("replay opens the interface and needs a terminal; for text, use lockstep export %s --markdown", args[0]))
			}
			if tui.IsWatchRecording(rec) {
				m, err := tui.NewWatchReplay(cmd.Context(), rec, theme)
				if err != nil {
					return badInput(err)
				}
				return tui.RunModel(cmd.Context(), m)
			}
			m, err := tui.NewReplay(cmd.Context(), rec, tui.ReplayOptions{Theme: theme, At: at})
			if err != nil {
				return badInput(err)
			}
			return tui.RunModel(cmd.Context(), m)
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "where to open: start, end, deadlock, or a moment's number")
	cmd.Flags().BoolVar(&live, "live", false, "play the recorded statements again on a server (--dsn, or a throwaway one) and report what differs")
	cmd.Flags().StringVar(&a.theme, "theme", a.theme, "default, or projector: high contrast on a black screen")
	return cmd
}

// replayLive plays a recording's statements again on a server and reports
// where the server now behaves differently: another wait, result or error.
func (a *app) replayLive(cmd *cobra.Command, rec *record.Recording) error {
	h := rec.Header
	if h.Command != "run" && h.Command != "tui" {
		return badInput(fmt.Errorf("--live plays recordings of lockstep run and of the interface; this one is of lockstep %s", h.Command))
	}
	var (
		rf runFlags
		sf scenarioFlags
		pf poolFlags
	)
	recorded := &cobra.Command{Use: "recorded"}
	rf.register(recorded, "for-update")
	sf.register(recorded)
	pf.register(recorded)
	recorded.Flags().DurationVar(&a.deadlockTimeout, "deadlock-timeout", a.deadlockTimeout, "")
	if err := recorded.ParseFlags(h.Args); err != nil {
		return badInput(fmt.Errorf("the recording's set-up %q: %w", strings.Join(h.Args, " "), err))
	}
	if sf.scenario == "pool" {
		return badInput(fmt.Errorf("--live cannot replay the pool scenario: it has no statements of its own to send"))
	}
	cfg, _, _, err := a.runConfig(&rf, &sf, pf.fix)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	eng, cfg, end, err := a.startRun(ctx, cfg)
	if err != nil {
		return err
	}
	defer end()
	d := cfg.DB
	events := rec.Events()
	plan := record.Plan(events)
	var live []sim.Event
	playErr := eng.PlaySteps(ctx, plan, func(ev sim.Event) { live = append(live, ev) })
	if playErr != nil && !errors.Is(playErr, sim.ErrParted) {
		return fmt.Errorf("replaying the recording: %w", playErr)
	}
	if err := eng.Close(ctx); err != nil {
		return err
	}
	a.dropRunSchema(ctx, eng)
	out := cmd.OutOrStdout()
	setUp := "default set-up"
	if len(h.Args) > 0 {
		setUp = strings.Join(h.Args, " ")
	}
	fmt.Fprintf(out, "replayed %d statements of %s (%s, recorded %s on %s by lockstep %s) on %s\n",
		len(plan), h.Run.Name, setUp, h.Started.Format("2006-01-02 15:04"), h.Server, h.Lockstep, d.Describe())
	diffs := record.Diff(record.Outcomes(events), record.Outcomes(live))
	if playErr != nil {
		diffs = append(diffs, playErr.Error())
	}
	if len(diffs) == 0 {
		fmt.Fprintln(out, "the server behaves as recorded: every statement waited where it waited, for the same sessions, and ended the same way")
		return nil
	}
	fmt.Fprintf(out, "the server behaves differently in %d place(s):\n", len(diffs))
	for _, d := range diffs {
		fmt.Fprintf(out, "  %s\n", d)
	}
	return &ExitError{Code: ExitFailure, Err: fmt.Errorf("the replay differs from the recording in %d place(s)", len(diffs))}
}
