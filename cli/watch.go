package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/locks"
	"lockstep/tui"
)

// watchFlags are lockstep watch's flags.
type watchFlags struct {
	opts          locks.WatchOptions
	pids          string
	database      string
	poll          time.Duration
	once, asJSON  bool
	untilDeadlock bool
	recordTo      string
}

func (a *app) watchCommand() *cobra.Command {
	var wf watchFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Watch the locks of sessions lockstep did not start: who waits for whom, and why, as a tree",
		Long: "watch points lockstep's observer at any application's sessions on the server (--dsn): by default every\n" +
			"client session of the database but its own. It draws the waits as a tree — the root blockers first,\n" +
			"each waiter under what it waits for, with the lock and the conflict in words, queueing told from\n" +
			"blocking — keeps a history of long waits and deadlocks, and can cancel or terminate a backend after\n" +
			"asking (not with --read-only). --once prints the tree once (--json: one object), --until-deadlock\n" +
			"waits for the next deadlock and prints it. It reads pg_stat_activity, and pg_locks only while someone waits.",
		Example: "  lockstep watch --dsn postgres://me@localhost/shop --app psql\n" +
			"  lockstep watch --app 'lockstep/%' --once --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.watch(cmd, wf) },
	}
	fl := cmd.Flags()
	fl.StringVar(&wf.opts.Filter.App, "app", "", "only sessions whose application_name matches this LIKE pattern (e.g. psql, 'lockstep/%')")
	fl.StringVar(&wf.opts.Filter.User, "user", "", "only sessions of this role")
	fl.StringVar(&wf.database, "database", "", "watch this database of the server instead of the connection's")
	fl.BoolVar(&wf.opts.Filter.AllDatabases, "all", false, "sessions of every database of the server, not only the connection's")
	fl.StringVar(&wf.pids, "pid", "", "only these backend pids, separated by commas")
	fl.DurationVar(&wf.poll, "poll", 500*time.Millisecond, "how often to look again")
	fl.DurationVar(&wf.opts.Threshold, "history-after", time.Second, "keep in the history every wait that lasts this long")
	fl.BoolVar(&wf.opts.ReadOnly, "read-only", false, "never cancel or terminate a backend")
	fl.BoolVar(&wf.once, "once", false, "print the tree once and exit")
	fl.BoolVar(&wf.asJSON, "json", false, "print JSON instead of text, one object per look")
	fl.BoolVar(&wf.untilDeadlock, "until-deadlock", false, "wait for the next deadlock and print it")
	fl.StringVar(&wf.recordTo, "record", "", "write every look to this file (lockstep replay FILE plays it back)")
	fl.StringVar(&a.theme, "theme", a.theme, "default, or projector: high contrast on a black screen")
	return cmd
}

func (a *app) watch(cmd *cobra.Command, wf watchFlags) (err error) {
	for _, p := range strings.Split(wf.pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n <= 0 {
			return badInput(fmt.Errorf("--pid %q: give backend pids separated by commas, e.g. --pid 4711,4712", wf.pids))
		}
		wf.opts.Filter.Pids = append(wf.opts.Filter.Pids, int32(n))
	}
	if err := checkInterval("--poll", wf.poll, 500*time.Millisecond); err != nil {
		return err
	}
	if wf.opts.Threshold <= 0 {
		return badInput(fmt.Errorf("--history-after %s: must be positive, e.g. --history-after 1s", wf.opts.Threshold))
	}
	if wf.database != "" && wf.opts.Filter.AllDatabases {
		return badInput(fmt.Errorf("--database and --all: choose one (--all watches every database)"))
	}
	theme, err := tui.ParseTheme(a.theme)
	if err != nil {
		return badInput(fmt.Errorf("--theme: %w", err))
	}
	out := cmd.OutOrStdout()
	f, isFile := out.(*os.File)
	interactive := isFile && term.IsTerminal(f.Fd()) && !wf.once && !wf.asJSON && !wf.untilDeadlock

	ctx := cmd.Context()
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := d.ConnConfig(db.AppName("watch"))
	if wf.database != "" {
		cfg.Database = wf.database
	}
	// A signal mid-look cancels the look's statement on the server, and
	// gives up on the connection half a second later if the server has not
	// answered: the command ends within 2 s of it.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 500 * time.Millisecond}
	}
	conn, err := d.ConnectConfig(ctx, cfg)
	if err != nil {
		return badInput(err)
	}
	defer db.CloseConn(ctx, conn)
	wf.opts.ServerLog = d.ServerLog()
	w, err := locks.NewWatch(ctx, conn, wf.opts)
	if err != nil {
		return err
	}
	defer w.Close()
	where := d.Describe()
	if wf.database != "" {
		where += " (database " + wf.database + ")"
	}
	rec, err := a.recordWatch(wf.recordTo, "watch", cmd, w, d, describeFilter(wf.opts.Filter), wf.poll)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := a.endRecording(rec, wf.recordTo); err == nil {
			err = rerr
		}
	}()
	var source tui.WatchSource = w
	if rec != nil {
		source = recordingWatch{w, rec}
	}
	if interactive {
		return tui.RunWatch(ctx, tui.WatchOptions{Watch: source, Poll: wf.poll, Server: where, Filter: describeFilter(wf.opts.Filter), Theme: theme})
	}
	notes := w.Notes() // said once: on stderr, or in the first document
	if n := w.LogNote(); n != "" {
		notes = append(notes, n)
	}
	if !wf.asJSON {
		for _, n := range notes {
			fmt.Fprintf(a.stderr, "lockstep: %s\n", n)
		}
	}
	var following *locks.WatchEvent
	for {
		look, err := source.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		done := wf.once
		switch {
		case wf.untilDeadlock:
			if following == nil {
				if ev, ok := deadlockIn(look); ok {
					following = &ev
					printDeadlock(out, look, ev, wf.asJSON)
				} else if wf.once {
					fmt.Fprintln(out, "no deadlock now")
				}
			}
			// Then its end, with the server's verdict where there is one.
			if following != nil {
				if ev, over := verdictOf(look, *following, w.DeadlockTimeout()); over {
					printVerdict(out, ev, wf.asJSON)
					done = true
				}
			}
		case wf.asJSON:
			_ = json.NewEncoder(out).Encode(look.Document(notes))
			notes = nil
		default:
			counts := fmt.Sprintf("%d in a transaction, %d idle in one", look.InTransaction, look.IdleInTransaction)
			if look.Partial() {
				counts += fmt.Sprintf(" (of those it may see: %d of other roles hidden)", look.Hidden)
			}
			fmt.Fprintf(out, "%s — %d sessions watched (%s) on %s — %s\n%s",
				look.Taken.Format("15:04:05.000"), look.Watched, describeFilter(wf.opts.Filter), where,
				counts, look.Tree.Draw(look.Taken))
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
		case <-time.After(wf.poll):
		}
	}
}

// describeFilter says in words which sessions a watch chooses.
func describeFilter(f locks.WatchFilter) string {
	var parts []string
	if f.App != "" {
		parts = append(parts, "application_name LIKE '"+f.App+"'")
	}
	if f.User != "" {
		parts = append(parts, "user "+f.User)
	}
	if len(f.Pids) > 0 {
		var ps []string
		for _, p := range f.Pids {
			ps = append(ps, strconv.Itoa(int(p)))
		}
		parts = append(parts, "pid "+strings.Join(ps, ","))
	}
	if len(parts) == 0 {
		parts = append(parts, "every client session")
	}
	if f.AllDatabases {
		parts = append(parts, "every database")
	}
	return strings.Join(parts, ", ")
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
