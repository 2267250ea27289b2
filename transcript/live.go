package transcript

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/locks"
	"lockstep/record"
)

// The views' own construction: the command line chooses (WatchConfig) and
// hands over a connection; what reads the server for the watch and class
// views is made here, so that the command line never needs the lock
// model.

// WatchConfig is what a watch looks at, as lockstep watch's flags choose it.
type WatchConfig struct {
	// App is a LIKE pattern on application_name; "" means any.
	App string
	// User is a role name; "" means any.
	User string
	// Pids are the backends to watch, when given.
	Pids []int32
	// AllDatabases watches every database of the server, not the connection's.
	AllDatabases bool
	// ReadOnly refuses to cancel or terminate any backend.
	ReadOnly bool
	// Threshold is how long a wait lasts before the history keeps it; 0 means 1s.
	Threshold time.Duration
	// ServerLog is the server's log file when lockstep can read it from
	// disk (a throwaway server's).
	ServerLog string
}

func (c WatchConfig) filter() locks.WatchFilter {
	return locks.WatchFilter{App: c.App, User: c.User, Pids: c.Pids, AllDatabases: c.AllDatabases}
}

// Describe says in words which sessions the watch chooses.
func (c WatchConfig) Describe() string {
	var parts []string
	if c.App != "" {
		parts = append(parts, "application_name LIKE '"+c.App+"'")
	}
	if c.User != "" {
		parts = append(parts, "user "+c.User)
	}
	if len(c.Pids) > 0 {
		var ps []string
		for _, p := range c.Pids {
			ps = append(ps, strconv.Itoa(int(p)))
		}
		parts = append(parts, "pid "+strings.Join(ps, ","))
	}
	if len(parts) == 0 {
		parts = append(parts, "every client session")
	}
	if c.AllDatabases {
		parts = append(parts, "every database")
	}
	return strings.Join(parts, ", ")
}

// LiveWatch is a watch of the server, for the interface (tui.WatchSource)
// or the headless view (WatchSource); with Record, every look it takes is
// also written to a recording.
type LiveWatch struct {
	*locks.Watch
	rec *record.Writer
}

// OpenWatch starts a watch on conn, the watch's own connection.
func OpenWatch(ctx context.Context, conn *pgx.Conn, c WatchConfig) (*LiveWatch, error) {
	w, err := locks.NewWatch(ctx, conn, locks.WatchOptions{Filter: c.filter(), ReadOnly: c.ReadOnly, Threshold: c.Threshold, ServerLog: c.ServerLog})
	if err != nil {
		return nil, err
	}
	return &LiveWatch{Watch: w}, nil
}

// Record writes every look from now on to rec; call it before the first Poll.
func (w *LiveWatch) Record(rec *record.Writer) { w.rec = rec }

// Poll takes a look, and records it when recording.
func (w *LiveWatch) Poll(ctx context.Context) (*locks.Look, error) {
	look, err := w.Watch.Poll(ctx)
	if err == nil && w.rec != nil {
		_ = w.rec.Look(look)
	}
	return look, err
}

// StartNotes are what the watch says once, before its first look: what
// the role does not see, and how the server's log is read.
func (w *LiveWatch) StartNotes() []string {
	notes := w.Notes()
	if n := w.LogNote(); n != "" {
		notes = append(notes, n)
	}
	return notes
}

// ClassBoard is lockstep class's view: the live runs of a server and the
// students taking its lessons, printed a look at a time.
type ClassBoard struct {
	view *locks.ClassView
	said bool
}

// Print reads the runs and the students on conn, the board's own
// connection, and prints them under server. What the role does not see is
// said on top of each cleared screen, else before the first list only.
func (b *ClassBoard) Print(ctx context.Context, conn *pgx.Conn, out io.Writer, server string, cleared bool) error {
	if b.view == nil {
		v, err := locks.NewClass(ctx, conn)
		if err != nil {
			return err
		}
		b.view = v
	}
	runs, look, err := b.view.Runs(ctx)
	if err != nil {
		return err
	}
	var notes []string
	if cleared || !b.said {
		notes, b.said = b.view.Notes(), true
	}
	Class(out, server, runs, look, notes)
	if learners, err := locks.Learners(ctx, conn); err == nil {
		Learners(out, learners)
	}
	return nil
}

// Close ends the board's reading.
func (b *ClassBoard) Close() {
	if b.view != nil {
		b.view.Close()
	}
}
