package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/transcript"
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
			var board transcript.ClassBoard
			defer board.Close()
			return a.lookEvery(cmd, "class", every, !once, func(ctx context.Context, d *db.Database, conn *pgx.Conn, out io.Writer, cleared bool) (bool, error) {
				return once, board.Print(ctx, conn, out, d.Describe()+hint, cleared)
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
	look func(ctx context.Context, d *db.Database, conn *pgx.Conn, out io.Writer, cleared bool) (done bool, err error)) error {
	if err := checkInterval("--every", every, time.Second); err != nil {
		return err
	}
	ctx := cmd.Context()
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := d.ConnConfig(db.AppName(what))
	// A signal mid-look cancels the statement and gives up on the
	// connection half a second later: the command ends within 2 s.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 500 * time.Millisecond}
	}
	conn, err := d.ConnectConfig(ctx, cfg)
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
		done, err := look(ctx, d, conn, out, clear)
		if ctx.Err() != nil {
			return nil // a signal ended it, mid-look or not
		}
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
