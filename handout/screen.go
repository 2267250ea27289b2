package handout

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"strings"
	"time"

	uv "github.com/charmbracelet/ultraviolet"
)

// Terminal colours where a screen leaves them to the terminal: a dark
// terminal's, as lockstep's default theme assumes.
const (
	defaultFg = "#e6edf3"
	defaultBg = "#0d1117"
)

// cellW and cellH are one cell's size in the SVG, in pixels, for a 14px
// monospace font.
const (
	cellW    = 8.4
	cellH    = 17.0
	fontSize = 14
)

// SVG draws a screen of the interface — its text with the colours and
// attributes of its escape sequences, w×h cells — as an SVG image: a
// background rectangle per run of one background colour, a text element
// per run of one style, each cell at its own column so box drawing lines
// up. The ANSI is read by ultraviolet, the terminal emulation Bubble Tea
// itself draws with.
func SVG(w io.Writer, screen string, width, height int) error {
	buf := uv.NewScreenBuffer(width, height)
	uv.NewStyledString(screen).Draw(buf, uv.Rect(0, 0, width, height))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.1f %.1f">`+"\n",
		cellW*float64(width), cellH*float64(height), cellW*float64(width), cellH*float64(height))
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="%s"/>`+"\n", defaultBg)
	fmt.Fprintf(&b, `<g font-family="'DejaVu Sans Mono', 'Menlo', 'Consolas', monospace" font-size="%d" xml:space="preserve">`+"\n", fontSize)
	for y := range height {
		// Backgrounds first, as runs.
		for x := 0; x < width; {
			c := buf.CellAt(x, y)
			bg := cellBg(c)
			n := 1
			for x+n < width && cellBg(buf.CellAt(x+n, y)) == bg {
				n++
			}
			if bg != defaultBg {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
					cellW*float64(x), cellH*float64(y), cellW*float64(n), cellH, bg)
			}
			x += n
		}
		// Then the text, a cell at a time in runs of one style.
		for x := 0; x < width; {
			c := buf.CellAt(x, y)
			if c == nil || c.Content == "" || c.Content == " " {
				x++
				continue
			}
			style := textStyle(c)
			var run strings.Builder
			var xs []string
			n := 0
			for x+n < width {
				cc := buf.CellAt(x+n, y)
				if cc == nil || cc.Content == "" || textStyle(cc) != style {
					break
				}
				run.WriteString(xmlText(cc.Content))
				xs = append(xs, fmt.Sprintf("%.1f", cellW*float64(x+n)))
				n += max(1, cc.Width)
			}
			fmt.Fprintf(&b, `<text x="%s" y="%.1f"%s>%s</text>`+"\n", strings.Join(xs, " "), cellH*float64(y)+cellH*0.78, style, run.String())
			x += n
		}
	}
	b.WriteString("</g>\n</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func cellBg(c *uv.Cell) string {
	if c == nil || c.Style.Bg == nil {
		return defaultBg
	}
	if c.Style.Attrs&uv.AttrReverse != 0 {
		return hex(c.Style.Fg, defaultFg)
	}
	return hex(c.Style.Bg, defaultBg)
}

// textStyle is a cell's text attributes as SVG attributes.
func textStyle(c *uv.Cell) string {
	fg := hex(c.Style.Fg, defaultFg)
	if c.Style.Attrs&uv.AttrReverse != 0 {
		fg = hex(c.Style.Bg, defaultBg)
	}
	s := fmt.Sprintf(` fill="%s"`, fg)
	if c.Style.Attrs&uv.AttrBold != 0 {
		s += ` font-weight="bold"`
	}
	if c.Style.Attrs&uv.AttrItalic != 0 {
		s += ` font-style="italic"`
	}
	if c.Style.Underline != 0 {
		s += ` text-decoration="underline"`
	}
	return s
}

func hex(c color.Color, def string) string {
	if c == nil {
		return def
	}
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Frame is one screen of a cast, at its time since the start.
type Frame struct {
	At     time.Duration
	Screen string
}

// Cast writes n frames, frame(0) … frame(n-1), as an asciicast v2 file: a
// header line, then each frame as output that clears the screen and draws
// it. asciinema play replays it in any terminal. Each frame is made,
// written and dropped in turn, so a long run's cast never sits in memory
// whole; a frame's time never goes back. It stops, with ctx's error, when
// ctx ends (a signal).
func Cast(ctx context.Context, w io.Writer, n int, frame func(i int) Frame, width, height int, title string, started time.Time) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	header := map[string]any{"version": 2, "width": width, "height": height, "timestamp": started.Unix(), "title": title,
		"env": map[string]string{"TERM": "xterm-256color", "SHELL": "/bin/sh"}}
	if err := enc.Encode(header); err != nil {
		return err
	}
	var last time.Duration
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := frame(i)
		last = max(last, f.At) // the cast's times must not go back
		out := "\x1b[H\x1b[2J" + strings.ReplaceAll(f.Screen, "\n", "\r\n")
		if err := enc.Encode([]any{last.Seconds(), "o", out}); err != nil {
			return err
		}
	}
	return nil
}
