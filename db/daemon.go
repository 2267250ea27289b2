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
		// ends, and Go ends a thread only when a goroutine locked to it
		// returns. So nothing here locks one: a locked goroutine that ended
		// when this program stopped would take its thread with it, and with
		// it any other child that thread had forked (a chaos worker, say).
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
	return nil
}

// stop ends the program with shutdown (its immediate shutdown), kills it if
// it has not exited within grace, and deletes its dir. It is safe to call
// more than once and from any exit path.
func (d *daemon) stop(shutdown func(*os.Process) error, grace time.Duration) error {
	d.stopOnce.Do(func() {
		if d.guard != nil {
			d.guard()
		}
		if d.cmd != nil {
			_ = shutdown(d.cmd.Process)
			select {
			case <-d.done:
			case <-time.After(grace):
				_ = d.cmd.Process.Kill()
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
