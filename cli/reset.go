package cli

import (
	"context"
	"errors"
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
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Create or re-create the ledger and print its accounts",
		Long: "reset drops the ledger's schema (only one lockstep created), creates accounts, transfers and entries,\n" +
			"and opens the accounts. It refuses to drop a schema lockstep did not create.",
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
			if err := a.reset(ctx, d, setup); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
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
	return cmd
}

// reset re-creates the ledger on a connection of its own.
func (a *app) reset(ctx context.Context, d *db.Database, setup ledger.Setup) error {
	if err := a.ledger.ResetDatabase(ctx, d, setup); err != nil {
		if errors.Is(err, ledger.ErrUnmarkedSchema) {
			err = fmt.Errorf("%w (--schema NAME)", err)
		}
		return badInput(err)
	}
	return nil
}

func printAccounts(ctx context.Context, out io.Writer, d *db.Database) error {
	conn, err := d.Connect(ctx, db.AppName("accounts"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
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
