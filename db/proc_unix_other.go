//go:build unix && !linux

package db

import "syscall"

// childAttr runs a server program as cred (nil: as lockstep) in a process
// group of its own, so that a Ctrl-C at the terminal reaches lockstep only.
// There is no parent-death signal here (macOS, the BSDs): a server whose
// lockstep was killed with kill -9 keeps running.
func childAttr(cred *runAs, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred.credential(), Setpgid: true}
}
