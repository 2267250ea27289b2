package transcript

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"lockstep/locks"
)

// The headless views of a watch: its looks printed as text or JSON, one
// after the other, or — waiting for the next deadlock — the deadlock and
// the server's verdict on it. The interface (tui) shows the same looks.

// WatchSource is what a headless watch reads: a live watch, or one whose
// every look is recorded.
type WatchSource interface {
	Poll(ctx context.Context) (*locks.Look, error)
	DeadlockTimeout() time.Duration
}

// WatchPrint says how a headless watch prints.
type WatchPrint struct {
	// Where names the server (and database) watched; Filter says which of
	// its sessions, in words.
	Where, Filter string
	// Poll is how often it looks again; Once prints one look.
	Poll time.Duration
	Once bool
	// JSON prints one object per look; UntilDeadlock waits for the next
	// deadlock, prints it, then its verdict.
	JSON, UntilDeadlock bool
	// Notes are said once: in the first JSON document, else on Err.
	Notes []string
	Err   io.Writer
}

// Watch prints the looks of w on out until ctx ends or, with Once or
// UntilDeadlock, the thing asked for is printed.
func Watch(ctx context.Context, w WatchSource, out io.Writer, p WatchPrint) error {
	notes := p.Notes
	if !p.JSON {
		for _, n := range notes {
			fmt.Fprintf(p.Err, "lockstep: %s\n", n)
		}
	}
	var following *locks.WatchEvent
	for {
		look, err := w.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		done := p.Once
		switch {
		case p.UntilDeadlock:
			if following == nil {
				if ev, ok := deadlockIn(look); ok {
					following = &ev
					printDeadlock(out, look, ev, p.JSON)
				} else if p.Once {
					fmt.Fprintln(out, "no deadlock now")
				}
			}
			// Then its end, with the server's verdict where there is one.
			if following != nil {
				if ev, over := verdictOf(look, *following, w.DeadlockTimeout()); over {
					printVerdict(out, ev, p.JSON)
					done = true
				}
			}
		case p.JSON:
			_ = json.NewEncoder(out).Encode(look.Document(notes))
			notes = nil
		default:
			counts := fmt.Sprintf("%d in a transaction, %d idle in one", look.InTransaction, look.IdleInTransaction)
			if look.Partial() {
				counts += fmt.Sprintf(" (of those it may see: %d of other roles hidden)", look.Hidden)
			}
			fmt.Fprintf(out, "%s — %d sessions watched (%s) on %s — %s\n%s",
				look.Taken.Format("15:04:05.000"), look.Watched, p.Filter, p.Where, counts, look.Tree.Draw(look.Taken))
			for _, ev := range look.New {
				fmt.Fprintf(out, "history: %s\n", historyLine(ev))
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.Poll):
		}
	}
}

// deadlockIn is a deadlock the look shows newly: one standing, or one the
// server broke between two looks — among the filter's sessions: a rise of
// the database's counter with a filter may be anyone's, and is not one.
func deadlockIn(look *locks.Look) (locks.WatchEvent, bool) {
	for _, ev := range look.New {
		if (ev.Kind == "deadlock" || ev.Kind == "server") && !ev.Unattributed {
			return ev, true
		}
	}
	return locks.WatchEvent{}, false
}

// verdictOf is the followed deadlock's entry once it is over: ended with
// its verdict (or the log's silence) known, or standing longer than the
// server's check should take, which is worth saying too.
func verdictOf(look *locks.Look, followed locks.WatchEvent, timeout time.Duration) (locks.WatchEvent, bool) {
	for _, ev := range look.New {
		if ev.ID == followed.ID {
			followed = ev
		}
	}
	if followed.Ended && !strings.Contains(followed.Verdict, "has not named a victim yet") {
		return followed, true
	}
	if !followed.Ended && look.Taken.Sub(followed.Time) > timeout+10*time.Second {
		followed.Verdict = fmt.Sprintf("still standing after %s: the server's check has not broken it "+
			"(its sessions may have set a longer deadlock_timeout)", locks.Age(look.Taken.Sub(followed.Time)))
		return followed, true
	}
	return followed, false
}

// historyLine is an entry in one line: when, what, and how it ended.
func historyLine(ev locks.WatchEvent) string {
	s := ev.Time.Format("15:04:05") + " " + ev.What
	if ev.Kind == "wait" && ev.Ended {
		s += fmt.Sprintf(" (waited %s)", locks.Age(ev.Lasted))
	}
	if ev.Verdict != "" {
		s += " — " + ev.Verdict
	}
	if ev.Counted {
		s += " (counted in pg_stat_database.deadlocks)"
	}
	return s
}

func printDeadlock(out io.Writer, look *locks.Look, ev locks.WatchEvent, asJSON bool) {
	if asJSON {
		doc := look.Document(nil)
		ev.Tree, ev.TreeAt = locks.Tree{}, time.Time{}
		_ = json.NewEncoder(out).Encode(map[string]any{"time": look.Taken, "deadlock": ev, "look": doc})
		return
	}
	fmt.Fprintf(out, "%s %s\n", ev.Time.Format("15:04:05.000"), ev.What)
	for _, s := range ev.Statements {
		fmt.Fprintf(out, "  %s\n", s)
	}
	fmt.Fprint(out, look.Tree.Draw(look.Taken))
}

func printVerdict(out io.Writer, ev locks.WatchEvent, asJSON bool) {
	if asJSON {
		ev.Tree, ev.TreeAt = locks.Tree{}, time.Time{}
		_ = json.NewEncoder(out).Encode(map[string]any{"verdict": ev})
		return
	}
	fmt.Fprintf(out, "verdict: %s\n", ev.Verdict)
	if ev.Detail != "" {
		fmt.Fprintf(out, "the server's report:\n  %s\n", strings.ReplaceAll(ev.Detail, "\n", "\n  "))
	}
}

// Class prints the live lockstep runs of a server, one line each: who,
// where, and what waits or is deadlocked right now.
func Class(w io.Writer, server string, runs []locks.Run, look *locks.Look, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	waiting, stuck, hidden := 0, 0, 0
	for _, r := range runs {
		if len(r.Waits) > 0 {
			waiting++
		}
		if r.Deadlock != "" {
			stuck++
		}
		if r.Hidden {
			hidden++
		}
	}
	counts := fmt.Sprintf("%d live runs, %d waiting, %d deadlocked", len(runs), waiting, stuck)
	if hidden > 0 {
		counts += fmt.Sprintf(" (%d runs' state hidden from this role: running and idle not told apart there)", hidden)
	}
	fmt.Fprintf(w, "%s — %s: %s\n", look.Taken.Format("15:04:05"), server, counts)
	for _, r := range runs {
		schema := r.Schema
		if schema == "" {
			schema = "? (no claim yet)"
		}
		now := r.State
		switch {
		case r.Deadlock != "":
			now = "DEADLOCK " + r.Deadlock
		case len(r.Waits) > 0:
			now = strings.Join(r.Waits, "; ")
		}
		since := "since —"
		if r.Since != nil {
			since = "since " + r.Since.Format("15:04:05")
		}
		fmt.Fprintf(w, "  run %-6s %-12s %-10s %-20s %d sessions  %s  %s\n",
			r.ID, r.User, r.Database, schema, len(r.Sessions), since, now)
	}
}
