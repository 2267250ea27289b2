package db

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// bar draws a download's progress on a terminal, at most ten times a
// second, on one line it clears when done. (Written by hand: bubbles'
// progress bar needs a Bubble Tea program, and this runs before one.)
type bar struct {
	w       io.Writer // nil: no bar
	total   int64     // -1 when the server did not say
	n       int64
	started time.Time
	drawn   time.Time
}

func newBar(w io.Writer, total int64) *bar {
	return &bar{w: w, total: total, started: time.Now()}
}

func (b *bar) Write(p []byte) (int, error) {
	b.n += int64(len(p))
	if b.w != nil && time.Since(b.drawn) >= 100*time.Millisecond {
		b.drawn = time.Now()
		fmt.Fprint(b.w, "\r"+b.line(40))
	}
	return len(p), nil
}

// line is the bar's text: the bar itself when the total is known, the
// bytes so far and the rate.
func (b *bar) line(width int) string {
	rate := float64(b.n) / max(time.Since(b.started).Seconds(), 0.001)
	if b.total <= 0 {
		return fmt.Sprintf("  fetching  %s  %s/s ", humanSize(b.n), humanSize(int64(rate)))
	}
	frac := min(float64(b.n)/float64(b.total), 1)
	full := int(frac * float64(width))
	return fmt.Sprintf("  [%s%s] %3d%%  %s of %s  %s/s ", strings.Repeat("█", full), strings.Repeat("░", width-full),
		int(frac*100), humanSize(b.n), humanSize(b.total), humanSize(int64(rate)))
}

// done clears the bar's line.
func (b *bar) done() {
	if b.w != nil && !b.drawn.IsZero() {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}
