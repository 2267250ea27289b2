package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"lockstep/ledger"
)

func (a *app) strategiesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "strategies",
		Short: "List the transfer strategies and what each one shows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			for _, s := range ledger.Strategies() {
				fmt.Fprintf(w, "%s\t%s\n", s.Name, s.Summary)
			}
			return w.Flush()
		},
	}
}
