package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) dbCommand() *cobra.Command {
	var sf setupFlags
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Start a throwaway PostgreSQL with the ledger and keep it until Ctrl-C",
		Long: "db starts a private throwaway PostgreSQL (Unix socket only; on Windows, 127.0.0.1 with a password\n" +
			"kept in a file), creates the ledger in it, prints its connection URL and a ready psql command line,\n" +
			"and keeps it until Ctrl-C or SIGTERM — so you can open psql tabs beside lockstep (lockstep --dsn URL).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.dsn != "" {
				return badInput(errors.New("lockstep db starts a throwaway server of its own; drop --dsn"))
			}
			setup, err := sf.setup()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// DATABASE_URL and PG* are ignored: this command is about the throwaway server.
			d, err := a.openWith(ctx, func(string) (string, bool) { return "", false })
			if err != nil {
				return err
			}
			defer d.Close()
			if err := a.reset(ctx, d, setup); err != nil {
				return err
			}
			srv := d.Server()
			url := srv.PublicURL("postgres")
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s is ready; the ledger is in schema %s (%d accounts, %s each).\n\n",
				d.Describe(), d.Schema(), setup.Accounts, setup.Balance.StringFixed(2))
			fmt.Fprintln(out, url)
			fmt.Fprintln(out)
			fmt.Fprintf(out, "psql:      PGOPTIONS='-c search_path=%s' psql '%s'\n", d.Schema(), url)
			fmt.Fprintf(out, "lockstep:  lockstep --dsn '%s'\n\n", url)
			fmt.Fprintln(out, "Ctrl-C stops the server and deletes it.")
			a.untilSignal = true // Ctrl-C is how it ends: exit code 0
			select {
			case <-ctx.Done():
				fmt.Fprintln(out, "stopping the throwaway server")
				return nil
			case <-srv.Done():
				return errors.New("the throwaway server exited unexpectedly")
			}
		},
	}
	sf.register(cmd)
	return cmd
}
