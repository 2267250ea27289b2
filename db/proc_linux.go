package db

import (
	"errors"
	"os"
	"syscall"
)

// childAttr runs a server program as cred (nil: as lockstep) in a process
// group of its own — a Ctrl-C at the terminal reaches lockstep only, which
// rolls its sessions back before stopping the server — and has the kernel
// send it parentDeath if lockstep dies, even by kill -9.
func childAttr(cred *runAs, parentDeath syscall.Signal) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: parentDeath, Setpgid: true}
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
