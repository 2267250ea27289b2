package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"lockstep/tui"
)

// runTUI opens the interface in the set-up the flags describe.
func (a *app) runTUI(cmd *cobra.Command, rf *runFlags) error {
	cfg, order, err := rf.config(a)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if a.dsn == "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "lockstep: starting…")
	}
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	server := d.Describe()
	if srv := d.Server(); srv != nil {
		server = "throwaway PostgreSQL " + srv.Version()
	}
	return tui.Run(ctx, tui.Options{DB: d, Config: cfg, Order: order, Server: server})
}
