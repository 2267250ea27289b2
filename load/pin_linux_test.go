//go:build linux

package load

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPinnedThreadKeepsItsChildren guards the throwaway server's
// parent-death signal (db/daemon.go): the kernel sends it when the *thread*
// that forked the server ends (golang/go#27505), and the Go runtime ends a
// thread whose goroutine returns while locked to it. A bench driver pins its
// thread to a core; were it to leave the thread locked, the thread would end
// with the driver, and a server that thread had started would be shut down
// mid-run. Here a child is forked on the very thread a driver then runs on.
func TestPinnedThreadKeepsItsChildren(t *testing.T) {
	started := make(chan *exec.Cmd, 1)
	drove := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // this thread forks the child, then drives
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			drove <- err
			return
		}
		started <- cmd
		// No connections, a deadline already past: the driver pins its
		// thread, finds nothing to drive, and returns.
		_, _, err := driveOnCore(context.Background(), 1, nil, nil, "", 2, false, rand.New(rand.NewPCG(1, 2)), time.Now())
		runtime.UnlockOSThread()
		drove <- err // and the goroutine ends: its thread must not
	}()
	cmd := <-started
	if err := <-drove; err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		t.Fatalf("the child got its parent-death signal when the driver returned (%v): the driver's thread ended with it", err)
	case <-time.After(time.Second):
		_ = cmd.Process.Kill()
		<-waited
	}
}

// TestPinnedThreadIsGivenBack: the pinned thread gets back every core it
// could run on, and is unlocked, before the driver returns.
func TestPinnedThreadIsGivenBack(t *testing.T) {
	runtime.LockOSThread() // to read the same thread's affinity before and after
	defer runtime.UnlockOSThread()
	before, err := affinity()
	if err != nil {
		t.Fatalf("reading the thread's affinity: %v", err)
	}
	unpin := pinThread(1)
	during, _ := affinity()
	unpin()
	after, _ := affinity()
	if before.Count() > 1 && during.Count() != 1 {
		t.Errorf("pinned to %d cores, want 1", during.Count())
	}
	if after != before {
		t.Errorf("after the run the thread may run on %d cores, before on %d", after.Count(), before.Count())
	}
}

func affinity() (unix.CPUSet, error) {
	var s unix.CPUSet
	err := unix.SchedGetaffinity(0, &s)
	return s, err
}
