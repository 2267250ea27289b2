//go:build unix

package db

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// watchHelperEnv makes the test binary act as a lockstep that guards
// process $watchHelperEnv with a watcher and then waits to be killed.
const watchHelperEnv = "LOCKSTEP_TEST_WATCH_HELPER"

func init() {
	target := os.Getenv(watchHelperEnv)
	if target == "" {
		return
	}
	pid, _ := strconv.Atoi(target)
	if _, err := watchParent(pid, syscall.SIGTERM); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("watching")
	select {} // until SIGKILL
}

// sleeper is a process to be guarded, and a channel that says how it ended.
func sleeper(t *testing.T) (*exec.Cmd, <-chan error) {
	t.Helper()
	target := exec.Command("sleep", "600")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Process.Kill() })
	ended := make(chan error, 1)
	go func() { ended <- target.Wait() }()
	return target, ended
}

// Where there is no parent-death signal (macOS, the BSDs), the watcher
// stops the server when lockstep dies, even by kill -9. It runs on Linux
// too, so it is tested here.
func TestWatcherSignalsWhenLockstepDies(t *testing.T) {
	t.Parallel()
	target, ended := sleeper(t)
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), watchHelperEnv+"="+strconv.Itoa(target.Process.Pid))
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "watching\n" {
		helper.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	select {
	case err := <-ended:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Fatalf("the guarded process ended with %v; want SIGTERM", err)
		}
	case <-time.After(30 * time.Second): // only a guard against a hang
		t.Fatal("the guarded process outlived the lockstep that was killed")
	}
}

// Stopping the watcher on the way out sends nothing: lockstep stops the
// server itself then.
func TestStoppedWatcherSendsNothing(t *testing.T) {
	t.Parallel()
	target, ended := sleeper(t)
	stop, err := watchParent(target.Process.Pid, syscall.SIGTERM)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case err := <-ended:
		t.Fatalf("the guarded process ended when its watcher was stopped: %v", err)
	default:
	}
	if err := target.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err == nil || err.(*exec.ExitError).Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the guarded process ended with %v; want the test's SIGKILL", err)
	}
}
