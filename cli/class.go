package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/locks"
)

func (a *app) classCommand() *cobra.Command {
	var (
		every time.Duration
		once  bool
	)
	cmd := &cobra.Command{
		Use:   "class",
		Short: "A teacher's view: every live lockstep run on the server, who is waiting, who is deadlocked",
		Long: "class lists the live lockstep runs on one server, one line each — login, database, schema, sessions,\n" +
			"and what is waiting or deadlocked right now — and refreshes it (--every), so a teacher sees who is\n" +
			"stuck. It reads pg_stat_activity and pg_locks only, and runs no statement of anyone's. --once prints\n" +
			"the list once, for a script.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hint := " (Ctrl-C ends)"
			if once {
				hint = ""
			}
			return a.lookEvery(cmd, "class", every, !once, func(ctx context.Context, d *db.Database, conn *pgx.Conn, out io.Writer) (bool, error) {
				runs, err := locks.Class(ctx, conn)
				if err != nil {
					return false, err
				}
				printClass(out, d.Describe()+hint, runs)
				return once, nil
			})
		},
	}
	cmd.Flags().DurationVar(&every, "every", time.Second, "how often to look again")
	cmd.Flags().BoolVar(&once, "once", false, "print the list once and exit")
	return cmd
}

// lookEvery opens the database and a connection of its own named what,
// and calls look on it every interval until look says it is done or a
// signal ends the command. With clear, on a terminal, each look starts on
// a cleared screen.
func (a *app) lookEvery(cmd *cobra.Command, what string, every time.Duration, clear bool,
	look func(ctx context.Context, d *db.Database, conn *pgx.Conn, out io.Writer) (done bool, err error)) error {
	if err := checkInterval("--every", every, time.Second); err != nil {
		return err
	}
	ctx := cmd.Context()
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	conn, err := d.Connect(ctx, db.AppName(what))
	if err != nil {
		return err
	}
	defer db.CloseConn(ctx, conn)
	out := cmd.OutOrStdout()
	f, isFile := out.(*os.File)
	clear = clear && isFile && term.IsTerminal(f.Fd())
	for {
		if clear {
			fmt.Fprint(out, "\x1b[H\x1b[2J")
		}
		done, err := look(ctx, d, conn, out)
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func printClass(w io.Writer, server string, runs []locks.Run) {
	waiting, stuck := 0, 0
	for _, r := range runs {
		if len(r.Waits) > 0 {
			waiting++
		}
		if r.Deadlock != "" {
			stuck++
		}
	}
	fmt.Fprintf(w, "%s — %s: %d live runs, %d waiting, %d deadlocked\n",
		time.Now().Format("15:04:05"), server, len(runs), waiting, stuck)
	for _, r := range runs {
		schema := r.Schema
		if schema == "" {
			schema = "?"
		}
		now := "running"
		switch {
		case r.Deadlock != "":
			now = "DEADLOCK " + r.Deadlock
		case len(r.Waits) > 0:
			now = strings.Join(r.Waits, "; ")
		}
		fmt.Fprintf(w, "  run %-6s %-12s %-10s %-20s %d sessions  since %s  %s\n",
			r.ID, r.User, r.Database, schema, len(r.Sessions), r.Since.Format("15:04:05"), now)
	}
}
