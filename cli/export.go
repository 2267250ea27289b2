package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"lockstep/handout"
	"lockstep/tui"
)

func (a *app) exportCommand() *cobra.Command {
	var (
		markdown, dot, mermaid, svg, cast bool
		at, output                        string
		width, height                     int
	)
	cmd := &cobra.Command{
		Use:   "export FILE",
		Short: "Turn a recording into a handout: Markdown, the wait-for graph (DOT, Mermaid), a screen (SVG), a cast",
		Long: "export turns a recording made with --record into what a class is given or shown:\n" +
			"  --markdown  the transcript in the isolation tester's format, with the locks and the wait-for graph\n" +
			"              at every wait and at the deadlock, and the books at the end\n" +
			"  --dot       the wait-for graph at a moment (--at), for Graphviz (dot -Tsvg)\n" +
			"  --mermaid   the same as Mermaid, which Markdown viewers draw\n" +
			"  --svg       the interface's screen at a moment, as an SVG image for a slide\n" +
			"  --cast      the whole run as an asciicast v2 file (asciinema play FILE.cast)\n" +
			"A moment is one of the replay's: start, end, deadlock (the first), or its number as the replay shows it.",
		Example: "  lockstep run --record lecture.jsonl\n  lockstep export lecture.jsonl --markdown -o lecture.md\n" +
			"  lockstep export lecture.jsonl --dot --at deadlock | dot -Tsvg > deadlock.svg",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var chosen []string
			for name, on := range map[string]bool{"--markdown": markdown, "--dot": dot, "--mermaid": mermaid, "--svg": svg, "--cast": cast} {
				if on {
					chosen = append(chosen, name)
				}
			}
			if len(chosen) != 1 {
				return badInput(fmt.Errorf("choose one format: --markdown, --dot, --mermaid, --svg or --cast"))
			}
			if width < 80 || height < 24 {
				return badInput(fmt.Errorf("--width %d --height %d: the interface needs at least 80×24", width, height))
			}
			rec, err := openRecording(args[0])
			if err != nil {
				return err
			}
			theme, err := tui.ParseTheme(a.theme)
			if err != nil {
				return badInput(fmt.Errorf("--theme: %w", err))
			}
			out := cmd.OutOrStdout()
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return badInput(fmt.Errorf("-o %s: %w", output, err))
				}
				defer f.Close()
				out = f
			}
			if markdown {
				return handout.Markdown(out, rec)
			}
			moments, err := tui.NewMoments(rec, tui.ReplayOptions{Theme: theme})
			if err != nil {
				return badInput(err)
			}
			if cast {
				return writeCast(out, moments, rec.Header.Run.Name, width, height, rec.Header.Started)
			}
			if at == "" {
				at = "end"
			}
			i, err := moments.Resolve(at)
			if err != nil {
				return badInput(err)
			}
			switch {
			case svg:
				return handout.SVG(out, moments.Screen(i, width, height), width, height)
			default:
				snap := moments.Snapshot(i)
				if snap == nil {
					return badInput(fmt.Errorf("--at %s: no lock snapshot yet at that moment; try a later one", at))
				}
				if dot {
					title := fmt.Sprintf("%s: who waits for whom at %s (moment %d: %s)", rec.Header.Run.Name,
						snap.Taken.Format("15:04:05.000"), i+1, strings.TrimSpace(moments.What(i)))
					return handout.DOT(out, snap, title)
				}
				return handout.Mermaid(out, snap)
			}
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&markdown, "markdown", false, "the transcript with locks and graphs, as Markdown")
	fl.BoolVar(&dot, "dot", false, "the wait-for graph at --at, as Graphviz DOT")
	fl.BoolVar(&mermaid, "mermaid", false, "the wait-for graph at --at, as Mermaid")
	fl.BoolVar(&svg, "svg", false, "the interface's screen at --at, as SVG")
	fl.BoolVar(&cast, "cast", false, "the run as an asciicast v2 file")
	fl.StringVar(&at, "at", "", "the moment: start, end (default), deadlock, or its number")
	fl.StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	fl.IntVar(&width, "width", 120, "the screen's width for --svg and --cast")
	fl.IntVar(&height, "height", 40, "the screen's height for --svg and --cast")
	fl.StringVar(&a.theme, "theme", a.theme, "default, or projector")
	return cmd
}

// writeCast writes every moment's screen at its time.
func writeCast(out io.Writer, ms *tui.Moments, title string, width, height int, started time.Time) error {
	frames := make([]handout.Frame, 0, ms.Len())
	for i := range ms.Len() {
		at := ms.At(i)
		if n := len(frames); n > 0 && at < frames[n-1].At {
			at = frames[n-1].At // the cast's times must not go back
		}
		frames = append(frames, handout.Frame{At: at, Screen: ms.Screen(i, width, height)})
	}
	return handout.Cast(out, frames, width, height, "lockstep: "+title, started)
}
