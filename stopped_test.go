//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/jackc/pgx/v5"

	"lockstep/db"
)

// TestEveryCommandEndsAgainstAStoppedServer runs each long-running command
// against a throwaway server of the test's own, stops that server (SIGSTOP
// to its postmaster and every backend: a server that has stopped answering,
// as on a frozen machine), then signals lockstep: it must be gone within
// 2 s, with exit code 1, having said it was interrupted. Once the server
// runs again, no backend of lockstep's is left on it. Then a second signal:
// lockstep ends at once, without waiting for its clean-up, and kills its
// own throwaway server.
func TestEveryCommandEndsAgainstAStoppedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lockstep and starts a server of its own")
	}
	bin := filepath.Join(t.TempDir(), "lockstep")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building lockstep: %v\n%s", err, out)
	}
	ctx := context.Background()
	srv, err := db.Open(ctx, db.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	postmaster := srv.Server().Pid()
	dsn := srv.Server().URL("postgres")
	spec := filepath.Join(t.TempDir(), "wait.spec")
	if err := os.WriteFile(spec, fmt.Appendf(nil, waitForever, 4242, 4242), 0o644); err != nil {
		t.Fatal(err)
	}
	waits := "wait_event_type = 'Lock'"
	cases := []struct {
		name  string
		args  []string
		ready string // a condition on pg_stat_activity's lockstep backends
		tty   bool
		sig   syscall.Signal
	}{
		{"run", []string{"run", "--scenario", spec}, waits, false, syscall.SIGTERM},
		{"spec", []string{"spec", spec, "--stuck-after", "1h"}, waits, false, syscall.SIGINT},
		{"interface", []string{"--scenario", spec}, waits, true, syscall.SIGTERM},
		{"watch", []string{"watch"}, "true", false, syscall.SIGHUP},
		{"class", []string{"class"}, "true", false, syscall.SIGTERM},
		{"chaos", []string{"chaos", "--workers", "2", "--duration", "1m", "--kill-every", "5s"}, "application_name LIKE 'lockstep/%/W%'", false, syscall.SIGTERM},
		{"bench", []string{"bench", "--workers", "2", "--duration", "1m"}, "application_name LIKE 'lockstep/bench/W%'", false, syscall.SIGINT},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, append(c.args, "--dsn", dsn)...)
			cmd.Env = append(os.Environ(), "DATABASE_URL=", "TERM=xterm-256color")
			var out syncBuffer
			exited := make(chan error, 1)
			copied := make(chan struct{})
			if c.tty {
				term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
				if err != nil {
					t.Fatal(err)
				}
				defer term.Close()
				go func() {
					defer close(copied)
					_, _ = io.Copy(&out, term) // until lockstep has exited and its terminal closed
				}()
				go func() { exited <- cmd.Wait() }()
				waitFor(t, &out, exited, "ready:")
				if _, err := term.Write([]byte("+++a")); err != nil { // autoplay: s2 comes to wait
					t.Fatal(err)
				}
			} else {
				close(copied)
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				go func() { exited <- cmd.Wait() }()
			}
			waitForBackend(t, dsn, c.ready, exited, &out)
			stopServer(t, postmaster)
			time.Sleep(200 * time.Millisecond) // lockstep's next query now hangs
			start := time.Now()
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			var exitErr error
			select {
			case exitErr = <-exited:
			case <-time.After(2 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				resumeServer(t, postmaster)
				t.Fatalf("lockstep %s still running 2 s after %v, the server stopped:\n%s", c.name, c.sig, out.String())
			}
			took := time.Since(start)
			resumeServer(t, postmaster)
			select {
			case <-copied:
			case <-time.After(5 * time.Second):
			}
			if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(out.String(), "lockstep: interrupted") {
				t.Errorf("exit %d (%v), want 1 and the interruption said:\n%s", code, exitErr, out.String())
			}
			t.Logf("%v ended lockstep %s in %v", c.sig, c.name, took.Round(time.Millisecond))
			waitForNoBackend(t, dsn)
		})
	}
	t.Run("second signal", func(t *testing.T) {
		// The interface on a throwaway server of its own, the test's server
		// stopped under its second database: the first signal's clean-up
		// waits for that server; the second does not.
		tmp, err := os.MkdirTemp("", "lockstep-second-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		if err := os.Chmod(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--scenario", spec, "--dsn", dsn)
		cmd.Env = append(os.Environ(), "DATABASE_URL=", "TMPDIR="+tmp)
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		waitForBackend(t, dsn, waits, exited, &out)
		stopServer(t, postmaster)
		defer resumeServer(t, postmaster)
		time.Sleep(200 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("still running after a second signal:\n%s", out.String())
		}
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(out.String(), "a second signal: ended at once") {
			t.Errorf("exit %d, want 1 and the second signal said:\n%s", code, out.String())
		}
	})
}

// stopServer stops a postmaster, then every process it started (each
// backend leads a process group of its own): the server answers nothing.
func stopServer(t *testing.T, postmaster int) {
	t.Helper()
	if err := syscall.Kill(postmaster, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for _, pid := range children(t, postmaster) {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
}

func resumeServer(t *testing.T, postmaster int) {
	t.Helper()
	for _, pid := range children(t, postmaster) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	if err := syscall.Kill(postmaster, syscall.SIGCONT); err != nil {
		t.Error(err)
	}
}

// children are the processes whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no process of postmaster %d found (pgrep, from procps, lists them)", pid)
	}
	return pids
}

// waitForBackend waits until a lockstep backend on the server meets cond;
// the guard is against a hang, not a timing assertion.
func waitForBackend(t *testing.T, dsn, cond string, exited <-chan error, out *syncBuffer) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for guard := time.Now().Add(60 * time.Second); time.Now().Before(guard); {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'lockstep%' AND pid <> pg_backend_pid() AND "+cond).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("lockstep ended before it was under way: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("lockstep never got under way:\n%s", out.String())
}

// waitForNoBackend waits until no backend of lockstep's is left on the
// server: once it runs again, each finds its client gone.
func waitForNoBackend(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left []string
	for guard := time.Now().Add(30 * time.Second); time.Now().Before(guard); time.Sleep(50 * time.Millisecond) {
		rows, _ := conn.Query(ctx, "SELECT application_name || ' (' || coalesce(state, 'no state yet') || ')' FROM pg_stat_activity WHERE application_name LIKE 'lockstep%'")
		if left, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
	}
	t.Errorf("backends of lockstep left on the server: %s", strings.Join(left, ", "))
}
