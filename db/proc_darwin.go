package db

import (
	"errors"
	"os"
	"syscall"
)

// childAttr runs a server program as cred (nil: as lockstep) in a process
// group of its own, so that a Ctrl-C at the terminal reaches lockstep only.
// macOS has no parent-death signal: after a kill -9 of lockstep the server
// stays up until the next start removes its dir (removeStale).
func childAttr(cred *runAs, _ syscall.Signal) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if cred != nil {
		a.Credential = &syscall.Credential{Uid: cred.uid, Gid: cred.gid}
	}
	return a
}

// processAlive says whether process pid exists (perhaps another user's).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// quit asks a postmaster for PostgreSQL's immediate shutdown.
func quit(p *os.Process) error { return p.Signal(syscall.SIGQUIT) }
