package load

import (
	"os"
	"syscall"
)

// workerAttr puts a chaos worker in a process group of its own, so that a
// Ctrl-C reaches the supervisor, which ends the workers itself. (macOS has
// no parent-death signal.)
func workerAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// stopWorker asks a worker to stop: at SIGTERM its transaction in flight
// rolls back.
func stopWorker(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
