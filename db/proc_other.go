//go:build !unix && !windows

package db

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// systemTempDirs: $TMPDIR (os.TempDir) is the temp dir.
var systemTempDirs []string

// throwawayUnsupported: lockstep starts its own PostgreSQL on Unix and
// Windows only; elsewhere the user brings a server.
func throwawayUnsupported() error {
	return errors.New("lockstep cannot start its own PostgreSQL on " + runtime.GOOS +
		"; pass --dsn postgres://postgres:PASSWORD@HOST:5432/postgres or set DATABASE_URL")
}

func childAttr(*runAs, syscall.Signal) *syscall.SysProcAttr { return nil }

func (r *runAs) canEnter(string) error { return nil }

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}

func quit(p *os.Process) error { return p.Kill() }

// killGroup kills a program at once.
func killGroup(p *os.Process) { _ = p.Kill() }

func guardServer(int) (func(), error) { return func() {}, nil }

func holdUntilGuarded(*exec.Cmd) {}

func removeAll(dir string) error { return os.RemoveAll(dir) }
