package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/locks"
)

func (a *app) watchCommand() *cobra.Command {
	var (
		f             locks.WatchFilter
		pids          string
		every         time.Duration
		once, asJSON  bool
		untilDeadlock bool
	)
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Watch the locks of sessions lockstep did not start: who waits for whom, and why, as a tree",
		Long: "watch points lockstep's observer at any application's sessions on the server (--dsn): by default every\n" +
			"client session of the database but its own. It draws the waits as a tree — the root blockers first,\n" +
			"each waiter under what it waits for, with the lock and the conflict in words, queueing told from\n" +
			"blocking — and refreshes it. --once prints it once (--json: one object), --until-deadlock waits for\n" +
			"the next deadlock and prints it. It only reads pg_stat_activity and pg_locks.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range strings.Split(pids, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				n, err := strconv.Atoi(p)
				if err != nil || n <= 0 {
					return badInput(fmt.Errorf("--pid %q: give backend pids separated by commas", pids))
				}
				f.Pids = append(f.Pids, int32(n))
			}
			var obs *locks.Observer
			clear := !once && !asJSON && !untilDeadlock
			return a.lookEvery(cmd, "watch", every, clear, func(ctx context.Context, d *db.Database, conn *pgx.Conn, out io.Writer) (bool, error) {
				if obs == nil {
					var err error
					if obs, err = locks.NewObserver(ctx, conn, db.RunID("watch"), "", locks.WithoutRowLocks()); err != nil {
						return false, err
					}
				}
				targets, err := locks.WatchTargets(ctx, conn, f)
				if err != nil {
					return false, err
				}
				obs.Named(targets)
				snap, err := obs.Poll(ctx)
				if err != nil {
					return false, err
				}
				tree := locks.BuildTree(snap)
				switch {
				case untilDeadlock && len(tree.Cycles) == 0 && !once:
				case asJSON:
					_ = json.NewEncoder(out).Encode(map[string]any{"time": snap.Taken, "sessions": len(targets), "tree": tree})
				default:
					fmt.Fprintf(out, "%s — %d sessions watched on %s\n%s", snap.Taken.Format("15:04:05.000"), len(targets), d.Describe(), tree)
				}
				return once || (untilDeadlock && len(tree.Cycles) > 0), nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.App, "app", "", "only sessions whose application_name matches this LIKE pattern (e.g. psql, 'lockstep/%')")
	fl.StringVar(&f.User, "user", "", "only sessions of this role")
	fl.StringVar(&pids, "pid", "", "only these backend pids, separated by commas")
	fl.DurationVar(&every, "every", 500*time.Millisecond, "how often to look again")
	fl.BoolVar(&once, "once", false, "print the tree once and exit")
	fl.BoolVar(&asJSON, "json", false, "print the tree as JSON, one object per look")
	fl.BoolVar(&untilDeadlock, "until-deadlock", false, "wait for the next deadlock and print it")
	return cmd
}
