package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"lockstep/db"
)

// registerCacheFlag adds clean's --cache.
func registerCacheFlag(cmd *cobra.Command) {
	cmd.Flags().Bool("cache", false, "remove what lockstep keeps in its cache dir instead: the PostgreSQL it fetched and its data-directory templates (no server is touched)")
}

// cleanCache is lockstep clean --cache: it removes the fetched PostgreSQL
// installations and the templates, and says what and how much. Everything
// there is made again when next needed, so it does not ask first.
func (a *app) cleanCache(cmd *cobra.Command) error {
	out := cmd.OutOrStdout()
	removed, err := db.CleanCache(cmd.Context(), "", func() {
		fmt.Fprintln(out, "another lockstep is fetching PostgreSQL; waiting for it to finish…")
	})
	var total int64
	for _, item := range removed {
		fmt.Fprintf(out, "removed %s (%.1f MB): %s\n", item.What, float64(item.Bytes)/1e6, item.Path)
		total += item.Bytes
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Fprintf(out, "nothing to remove: lockstep's cache (%s) holds no fetched PostgreSQL and no template\n", db.CacheDir())
		return nil
	}
	fmt.Fprintf(out, "%.1f MB freed; the next start fetches PostgreSQL again if none is installed, and makes its template again\n", float64(total)/1e6)
	return nil
}
