package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/ledger"
)

func (a *app) resetCommand() *cobra.Command {
	var sf setupFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Create or re-create the ledger and print its accounts",
		Long: "reset creates the ledger's schema when there is none, marked as made by lockstep for your login, or\n" +
			"else replaces the ledger's tables in it — accounts, transfers and entries, and nothing else: a table you\n" +
			"added there stays — and opens the accounts. It refuses a schema lockstep did not make for your login,\n" +
			"one a live run uses, and tables that something lockstep did not make depends on (a view over accounts,\n" +
			"a foreign key to it), naming them; --force drops those with the tables, after naming them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setup, err := sf.setup()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			d, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer d.Close()
			out := cmd.OutOrStdout()
			l := a.ledger
			if force {
				l = l.Forced(func(s string) { fmt.Fprintf(out, "%s\n", s) })
			}
			if err := resetWith(ctx, l, d, setup); err != nil {
				return err
			}
			fmt.Fprintf(out, "ledger reset in schema %s on %s\n\n", d.Schema(), d.Describe())
			if err := printAccounts(ctx, out, d); err != nil {
				return err
			}
			if d.Server() != nil {
				fmt.Fprintln(out, "\n(the throwaway server is deleted as lockstep exits; `lockstep db` keeps one running)")
			}
			return nil
		},
	}
	sf.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "also drop what depends on the ledger's tables and is not lockstep's (a view over accounts, a foreign key to it), after naming each")
	return cmd
}

// reset re-creates the ledger on a connection of its own.
func (a *app) reset(ctx context.Context, d *db.Database, setup ledger.Setup) error {
	return resetWith(ctx, a.ledger, d, setup)
}

func resetWith(ctx context.Context, l *ledger.Ledger, d *db.Database, setup ledger.Setup) error {
	if err := l.ResetDatabase(ctx, d, setup); err != nil {
		return badInput(err)
	}
	return nil
}

func printAccounts(ctx context.Context, out io.Writer, d *db.Database) error {
	conn, err := d.Connect(ctx, db.AppName("accounts"))
	if err != nil {
		return err
	}
	defer db.CloseConn(ctx, conn)
	accounts, err := ledger.Accounts(ctx, conn)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "%4s\towner\t%12s\n", "id", "balance")
	// A ledger of thousands of accounts (a bench's) is not worth a screenful
	// of identical lines: the first ones and a count.
	const shown = 12
	for _, acc := range accounts[:min(len(accounts), shown)] {
		fmt.Fprintf(w, "%4d\t%s\t%12s\n", acc.ID, acc.Owner, acc.Balance.StringFixed(2))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(accounts) > shown {
		total := decimal.Zero
		for _, acc := range accounts {
			total = total.Add(acc.Balance)
		}
		_, err = fmt.Fprintf(out, "… and %d more accounts (%d in all, %s in total)\n", len(accounts)-shown, len(accounts), total.StringFixed(2))
	}
	return err
}
