//go:build unix

package load

import (
	"os"
	"syscall"
)

// stopWorker asks a worker to stop: at SIGTERM its transaction in flight
// rolls back.
func stopWorker(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
