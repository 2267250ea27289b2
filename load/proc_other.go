//go:build !unix

package load

import (
	"os"
	"syscall"
)

// workerAttr: elsewhere (Windows) a chaos worker starts with the system's
// defaults.
func workerAttr() *syscall.SysProcAttr { return nil }

// stopWorker ends a worker: without Unix signals it cannot be asked to
// stop, and the server rolls its open transaction back when its
// connection goes.
func stopWorker(p *os.Process) error { return p.Kill() }
