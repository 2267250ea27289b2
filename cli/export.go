package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
		RunE: func(cmd *cobra.Command, args []string) (err error) {
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
			if width > maxExportWidth || height > maxExportHeight {
				return badInput(fmt.Errorf("--width %d --height %d: at most %d×%d (a projector's screen at a small font is about 480×135)",
					width, height, maxExportWidth, maxExportHeight))
			}
			rec, err := openRecording(args[0])
			if err != nil {
				return err
			}
			theme, err := tui.ParseTheme(a.theme)
			if err != nil {
				return badInput(fmt.Errorf("--theme: %w", err))
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			if output != "" {
				// Written beside it and renamed at the end: an export cut
				// short (a signal, an error) leaves the file as it was.
				f, ferr := os.CreateTemp(filepath.Dir(output), ".lockstep-export-*")
				if ferr != nil {
					return badInput(fmt.Errorf("-o %s: %w", output, ferr))
				}
				defer func() {
					f.Close()
					os.Remove(f.Name())
				}()
				out = f
				mode := os.FileMode(0o644)
				if st, serr := os.Stat(output); serr == nil {
					mode = st.Mode().Perm()
				}
				defer func() {
					if err == nil {
						if err = f.Chmod(mode); err == nil {
							err = f.Close()
						}
						if err == nil {
							err = os.Rename(f.Name(), output)
						}
					}
				}()
			}
			if markdown {
				return handout.Markdown(out, rec)
			}
			moments, err := tui.NewMoments(rec, tui.ReplayOptions{Theme: theme})
			if err != nil {
				return badInput(err)
			}
			if cast {
				return writeCast(ctx, out, moments, rec.Header.Run.Name, width, height, rec.Header.Started)
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

// maxExportWidth and maxExportHeight bound a screen export: a screen of
// 20000×20000 cells took 23.8 GB before it was killed.
const (
	maxExportWidth  = 500
	maxExportHeight = 200
)

// writeCast writes every moment's screen at its time, one at a time; a
// signal stops it.
func writeCast(ctx context.Context, out io.Writer, ms *tui.Moments, title string, width, height int, started time.Time) error {
	frame := func(i int) handout.Frame { return handout.Frame{At: ms.At(i), Screen: ms.Screen(i, width, height)} }
	return handout.Cast(ctx, out, ms.Len(), frame, width, height, "lockstep: "+title, started)
}
