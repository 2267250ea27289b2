//go:build unix && !linux

package db

import "syscall"

// childAttr runs a server program as cred (nil: as lockstep) in a process
// group of its own, so that a Ctrl-C at the terminal reaches lockstep only.
// There is no parent-death signal here (macOS, the BSDs): guardServer's
// watcher stands in for it.
func childAttr(cred *runAs, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred.credential(), Setpgid: true}
}

// guardServer starts the watcher that gives the postmaster PostgreSQL's
// immediate shutdown when lockstep dies, even by kill -9.
func guardServer(pid int) (func(), error) { return watchParent(pid, syscall.SIGQUIT) }
