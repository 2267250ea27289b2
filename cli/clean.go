package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/ledger"
)

func (a *app) cleanCommand() *cobra.Command {
	var all, yes, force bool
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Remove what lockstep left on a server for your login",
		Long: "clean lists what lockstep created on the server for your login and left there — prepared\n" +
			"transactions of lockstep runs that have ended that hold locks in the run's schema (every one of yours\n" +
			"with --all-mine; rolled back first, since a drop would wait for their locks), the run's schema\n" +
			"(every schema lockstep marked as made for your login, with --all-mine), and with --all-mine the\n" +
			"database " + db.SecondName + " of two-database runs when your login created it and nothing else lives\n" +
			"there — and removes them after you confirm (--yes: without asking). A schema is lockstep's for you\n" +
			"only when lockstep's mark on it names your login and your login owns it: a superuser or a teacher\n" +
			"who is a member of the students' roles cleans only their own. Nothing lockstep did not create is\n" +
			"touched, nor anything a live run uses; a schema that holds what lockstep did not make (a table you\n" +
			"added) or that something elsewhere depends on (a view, a foreign key) is kept, naming them, unless\n" +
			"--force, which drops them with it. The pgrowlocks extension stays: it serves everyone on the database.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cache, _ := cmd.Flags().GetBool("cache"); cache {
				return a.cleanCache(cmd)
			}
			ctx := cmd.Context()
			d, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer d.Close()
			out := cmd.OutOrStdout()
			if d.Server() != nil {
				fmt.Fprintln(out, "nothing to clean: the throwaway server is deleted, whole, as lockstep exits (give --dsn for a server of your own)")
				return nil
			}
			conn, err := d.Connect(ctx, db.AppName("clean"))
			if err != nil {
				return err
			}
			defer db.CloseConn(ctx, conn)
			list, err := ledger.Leftovers(ctx, conn, d.Schema(), all, force)
			if err != nil {
				return err
			}
			a.checkSecond(ctx, d, list)
			fmt.Fprintf(out, "lockstep's leftovers on %s:\n", d.Describe())
			var remove []ledger.Leftover
			for _, l := range list {
				fmt.Fprintf(out, "  %s\n", l)
				if l.Keep == "" {
					remove = append(remove, l)
				}
			}
			if len(remove) == 0 {
				if len(list) == 0 {
					fmt.Fprintln(out, "  none")
				}
				hint := ""
				if !all {
					hint = " (--all-mine looks for every schema of yours, and " + db.SecondName + ")"
				}
				fmt.Fprintf(out, "nothing to remove%s\n", hint)
				return nil
			}
			if !yes {
				ok, err := confirm(cmd.InOrStdin(), out, len(remove))
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintln(out, "nothing removed")
					return nil
				}
			}
			opts := ledger.RemoveOptions{Force: force, Say: func(s string) { fmt.Fprintf(out, "%s\n", s) }}
			var failed []error
			for _, l := range remove {
				if err := ledger.Remove(ctx, conn, l, opts); err != nil {
					// The others may still go: a locked schema does not keep
					// a prepared transaction, or the next schema, in place.
					fmt.Fprintf(out, "kept %s %s: %v\n", l.Kind, l.Name, errors.Unwrap(err))
					failed = append(failed, err)
					continue
				}
				fmt.Fprintf(out, "removed %s %s\n", l.Kind, l.Name)
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d not removed: %w", len(failed), len(remove), failed[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all-mine", false, "every schema lockstep made for your login on this database, and "+db.SecondName)
	cmd.Flags().BoolVar(&yes, "yes", false, "remove without asking (for scripts)")
	cmd.Flags().BoolVar(&force, "force", false, "also drop what lockstep did not make but would go with its schema (a table added to it, a view or foreign key elsewhere that depends on it), after naming each")
	registerCacheFlag(cmd)
	return cmd
}

// checkSecond keeps the second database when anything but lockstep's own
// lives there.
func (a *app) checkSecond(ctx context.Context, d *db.Database, list []ledger.Leftover) {
	for i, l := range list {
		if l.Kind != "database" || l.Keep != "" {
			continue
		}
		second, err := db.OpenSecond(ctx, d, "")
		if err != nil {
			list[i].Keep = "cannot look inside it: " + err.Error()
			continue
		}
		conn, err := second.Connect(ctx, db.AppName("clean"))
		if err != nil {
			list[i].Keep = "cannot look inside it: " + err.Error()
			continue
		}
		why, err := ledger.SecondHoldsOnlyLockstep(ctx, conn)
		db.CloseConn(ctx, conn)
		switch {
		case err != nil:
			list[i].Keep = err.Error()
		case why != "":
			list[i].Keep = why
		}
	}
}

// confirm asks before removing, on a terminal; elsewhere it wants --yes.
func confirm(in io.Reader, out io.Writer, n int) (bool, error) {
	if f, ok := in.(*os.File); !ok || !term.IsTerminal(f.Fd()) {
		return false, badInput(errors.New("clean asks before it removes anything: pass --yes to remove without asking"))
	}
	fmt.Fprintf(out, "remove these %d? [y/N] ", n)
	line, _ := bufio.NewReader(in).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}
