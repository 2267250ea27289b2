package load

import (
	"os"
	"syscall"
)

// workerAttr puts a chaos worker in a process group of its own — a Ctrl-C
// reaches the supervisor, which ends the workers itself — and has the
// kernel kill it if the supervisor dies.
func workerAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// stopWorker asks a worker to stop: at SIGTERM its transaction in flight
// rolls back.
func stopWorker(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
