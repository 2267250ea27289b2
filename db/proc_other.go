//go:build !unix

package db

import (
	"os"
	"syscall"
)

// childAttr: elsewhere (Windows) a server program runs as lockstep's user,
// with the system's defaults.
func childAttr(*runAs, syscall.Signal) *syscall.SysProcAttr { return nil }

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
