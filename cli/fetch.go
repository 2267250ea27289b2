package cli

import (
	"os"

	"github.com/charmbracelet/x/term"

	"lockstep/db"
)

// fetchOptions say how PostgreSQL is fetched when none is installed (or
// --fetch-postgres asks for another version): from LOCKSTEP_POSTGRES_REPO
// (default Maven Central), with a progress bar when stderr is a terminal.
func (a *app) fetchOptions() db.FetchOptions {
	f := db.FetchOptions{Version: a.fetchPostgres, Repo: os.Getenv("LOCKSTEP_POSTGRES_REPO"), Offline: a.offline}
	if file, ok := a.stderr.(*os.File); ok && term.IsTerminal(file.Fd()) {
		f.Bar = file
	}
	return f
}
