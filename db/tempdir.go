package db

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxBaseLen bounds the temp base directory: the server's Unix socket lives
// at BASE/lockstep-XXXXXXXX/.s.PGSQL.5432, and a socket path is limited to
// about 104 bytes (macOS) or 107 (Linux).
const maxBaseLen = 70

// tempCandidates are where a throwaway server's private dir may go, in the
// order they are tried: $TMPDIR (os.TempDir), then the system's usual temp
// dirs.
func tempCandidates() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range append([]string{os.TempDir()}, systemTempDirs...) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// makeServerDir creates the server's private dir in the first candidate the
// server's user (cred; nil: lockstep's own) can enter, after clearing that
// base of stale dirs. When none will do, the error is one line naming each
// candidate, why it cannot be used, and what to do.
func makeServerDir(candidates []string, cred *runAs) (string, error) {
	var why []string
	for _, base := range candidates {
		dir, err := tryBase(base, cred)
		if err == nil {
			return dir, nil
		}
		why = append(why, err.Error())
	}
	who := "lockstep"
	if cred != nil {
		who = "the " + cred.name + " user"
	}
	return "", fmt.Errorf("no temp directory for the throwaway server: %s; set TMPDIR to a directory %s can enter "+
		"(e.g. TMPDIR=/var/tmp), or pass --dsn for an existing server", strings.Join(why, "; "), who)
}

// tryBase makes the server's private dir in base, or says why base will not do.
func tryBase(base string, cred *runAs) (string, error) {
	abs, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("%s: %w", base, err)
	}
	if len(abs) > maxBaseLen {
		return "", fmt.Errorf("%s is too long a path for the server's socket (at most %d bytes)", abs, maxBaseLen)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%s does not exist", abs)
	case err != nil:
		return "", fmt.Errorf("%s: %w", abs, errors.Unwrap(err))
	case !st.IsDir():
		return "", fmt.Errorf("%s is not a directory", abs)
	}
	if err := cred.canEnter(abs); err != nil {
		return "", err
	}
	removeStale(abs)
	dir, err := os.MkdirTemp(abs, dirPrefix)
	if err != nil {
		return "", fmt.Errorf("cannot create a directory in %s: %w", abs, errors.Unwrap(err))
	}
	return dir, nil
}
