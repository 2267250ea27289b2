package db

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// daemon is a program lockstep runs in a private dir of its own — the
// throwaway server, a pooler in front of it — and stops on every exit path.
// Those running are listed, for Abandon.
type daemon struct {
	dir      string
	cmd      *exec.Cmd
	done     chan struct{} // closed when the program has exited
	guard    func()        // ends what stops the program if lockstep dies
	stopOnce sync.Once
	stopErr  error
}

// run starts cmd, then the guard that stops it if lockstep dies where the
// kernel's parent-death signal cannot (guardServer). logf, when not nil,
// takes its output and is closed when it exits.
func (d *daemon) run(cmd *exec.Cmd, logf *os.File) error {
	d.done = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		defer close(d.done)
		if logf != nil {
			defer logf.Close()
		}
		// The parent-death signal fires when the *thread* that forked a child
		// ends (golang/go#27505), and Go ends a thread only when a goroutine
		// returns locked to it. So nothing here locks one, and nothing
		// anywhere in lockstep returns locked: the bench pins its drivers'
		// threads and unlocks them before they return (load.pinThread, and
		// its test TestPinnedThreadKeepsItsChildren); a thread that ended
		// would take this server's signal with it.
		holdUntilGuarded(cmd)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return err
	}
	d.cmd = cmd
	guard, err := guardServer(cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("starting the watcher that stops it if lockstep dies: %w", err)
	}
	d.guard = guard
	running.Lock()
	running.daemons[d] = true
	running.Unlock()
	return nil
}

// running are the daemons started and not yet stopped.
var running = struct {
	sync.Mutex
	daemons map[*daemon]bool
}{daemons: map[*daemon]bool{}}

// Abandon kills every program lockstep started and is still running (its
// throwaway servers and poolers), with their processes, and deletes their
// dirs, without waiting for anything: for an exit that cannot wait (a
// second Ctrl-C while the first one's clean-up waits on a server that has
// stopped answering).
func Abandon() {
	running.Lock()
	defer running.Unlock()
	for d := range running.daemons {
		killGroup(d.cmd.Process)
		_ = removeAll(d.dir)
	}
}

// stop ends the program with shutdown (its immediate shutdown), kills it if
// it has not exited within grace, and deletes its dir. It is safe to call
// more than once and from any exit path.
func (d *daemon) stop(shutdown func(*os.Process) error, grace time.Duration) error {
	d.stopOnce.Do(func() {
		running.Lock()
		delete(running.daemons, d)
		running.Unlock()
		if d.guard != nil {
			d.guard()
		}
		if d.cmd != nil {
			_ = shutdown(d.cmd.Process)
			select {
			case <-d.done:
			case <-time.After(grace):
				killGroup(d.cmd.Process)
				<-d.done
			}
		}
		if err := removeAll(d.dir); err != nil {
			d.stopErr = fmt.Errorf("removing %s: %w", d.dir, err)
		}
	})
	return d.stopErr
}

// ended forgets a program that has exited, so that run may start another
// in the same dir (a server whose port another program took first).
func (d *daemon) ended() {
	<-d.done
	if d.guard != nil {
		d.guard()
		d.guard = nil
	}
	d.cmd = nil
}
