package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/transcript"
	"lockstep/tui"
)

// watchFlags are lockstep watch's flags.
type watchFlags struct {
	cfg           transcript.WatchConfig
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
	fl.StringVar(&wf.cfg.App, "app", "", "only sessions whose application_name matches this LIKE pattern (e.g. psql, 'lockstep/%')")
	fl.StringVar(&wf.cfg.User, "user", "", "only sessions of this role")
	fl.StringVar(&wf.database, "database", "", "watch this database of the server instead of the connection's")
	fl.BoolVar(&wf.cfg.AllDatabases, "all", false, "sessions of every database of the server, not only the connection's")
	fl.StringVar(&wf.pids, "pid", "", "only these backend pids, separated by commas")
	fl.DurationVar(&wf.poll, "poll", 500*time.Millisecond, "how often to look again")
	fl.DurationVar(&wf.cfg.Threshold, "history-after", time.Second, "keep in the history every wait that lasts this long")
	fl.BoolVar(&wf.cfg.ReadOnly, "read-only", false, "never cancel or terminate a backend")
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
		wf.cfg.Pids = append(wf.cfg.Pids, int32(n))
	}
	if err := checkInterval("--poll", wf.poll, 500*time.Millisecond); err != nil {
		return err
	}
	if wf.cfg.Threshold <= 0 {
		return badInput(fmt.Errorf("--history-after %s: must be positive, e.g. --history-after 1s", wf.cfg.Threshold))
	}
	if wf.database != "" && wf.cfg.AllDatabases {
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
	wf.cfg.ServerLog = d.ServerLog()
	w, err := transcript.OpenWatch(ctx, conn, wf.cfg)
	if err != nil {
		return err
	}
	defer w.Close()
	where := d.Describe()
	if wf.database != "" {
		where += " (database " + wf.database + ")"
	}
	rec, err := a.recordWatch(wf.recordTo, "watch", cmd, w, d, wf.cfg.Describe(), wf.poll)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := a.endRecording(rec, wf.recordTo); err == nil {
			err = rerr
		}
	}()
	w.Record(rec)
	if interactive {
		return tui.RunWatch(ctx, tui.WatchOptions{Watch: w, Poll: wf.poll, Server: where, Filter: wf.cfg.Describe(), Theme: theme})
	}
	// The notes are said once: on stderr, or in the first document.
	return transcript.Watch(ctx, w, out, transcript.WatchPrint{Where: where, Filter: wf.cfg.Describe(),
		Poll: wf.poll, Once: wf.once, JSON: wf.asJSON, UntilDeadlock: wf.untilDeadlock, Notes: w.StartNotes(), Err: a.stderr})
}
