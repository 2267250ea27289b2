package db

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The parent-death signal is Linux's.
func TestServerDiesWithItsParent(t *testing.T) {
	t.Parallel()
	base := sharedTempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+base)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	var dir string
	var pm int
	if _, err := fmt.Sscan(line, &dir, &pm); err != nil {
		cmd.Process.Kill()
		t.Fatalf("helper said %q", line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The kernel's parent-death signal reaches the postmaster asynchronously;
	// wait for it to exit (the deadline is only a guard against a hang).
	deadline := time.Now().Add(30 * time.Second)
	for processAlive(pm) {
		if time.Now().After(deadline) {
			syscall.Kill(pm, syscall.SIGKILL)
			t.Fatalf("postmaster %d outlived its parent", pm)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the dead lockstep's dir should still be there until the next start: %v", err)
	}
	removeStale(base)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removeStale left %s: %v", dir, err)
	}
}
