//go:build unix

package db

import (
	"errors"
	"os"
	"syscall"
)

// credential is the identity to start a program as; nil keeps lockstep's.
func (r *runAs) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return &syscall.Credential{Uid: r.uid, Gid: r.gid}
}

// processAlive says whether process pid exists (perhaps another user's).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// quit asks a postmaster for PostgreSQL's immediate shutdown.
func quit(p *os.Process) error { return p.Signal(syscall.SIGQUIT) }
