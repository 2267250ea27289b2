//go:build !unix

package db

import (
	"errors"
	"os"
	"syscall"
)

// systemTempDirs: on Windows, $TMP / $TEMP (os.TempDir) is the temp dir.
var systemTempDirs []string

// throwawayUnsupported: lockstep's throwaway server reaches PostgreSQL over
// a Unix socket in a private directory and stops it with Unix signals;
// on Windows the user brings a server.
func throwawayUnsupported() error {
	return errors.New("lockstep cannot start its own PostgreSQL on Windows; install PostgreSQL " +
		"(https://www.postgresql.org/download/windows/) or use WSL, then pass --dsn postgres://postgres:PASSWORD@localhost:5432/postgres " +
		"or set DATABASE_URL")
}

// childAttr: elsewhere (Windows) a server program runs as lockstep's user,
// with the system's defaults.
func childAttr(*runAs, syscall.Signal) *syscall.SysProcAttr { return nil }

// canEnter: the server runs as lockstep's own user here.
func (r *runAs) canEnter(string) error { return nil }

// processAlive says whether process pid exists: finding one opens it where
// there are no Unix signals.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}

// quit stops a postmaster at once: without Unix signals, there is no
// immediate shutdown to ask for.
func quit(p *os.Process) error { return p.Kill() }

// guardServer: no throwaway server runs here.
func guardServer(int) (func(), error) { return func() {}, nil }
