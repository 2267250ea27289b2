//go:build unix && !linux

package load

import "syscall"

// workerAttr puts a chaos worker in a process group of its own, so that a
// Ctrl-C reaches the supervisor, which ends the workers itself. (There is
// no parent-death signal here.)
func workerAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
