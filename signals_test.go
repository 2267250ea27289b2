package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/jackc/pgx/v5"

	"lockstep/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// A scenario whose second step waits for good: s1 takes an advisory lock
// and has nothing left to do.
const waitForever = `
session s1
step take { BEGIN; SELECT pg_advisory_xact_lock(%d); }
session s2
step want { SELECT pg_advisory_xact_lock(%d); }
permutation take want
`

// TestSignalsEndEverything starts the built binary's interface in a
// terminal, lets a statement wait (autoplay, as the server says), sends
// SIGTERM, SIGINT or SIGHUP (a closed terminal) and checks that lockstep is
// gone within 2 s and left no backend — and, on its throwaway server, no
// server and no temp dir.
func TestSignalsEndEverything(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "lockstep")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building lockstep: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			for try := range 20 {
				// One try in ten on the throwaway server, the others on the
				// test database.
				throwaway := try%10 == 9
				signalWhileWaiting(t, bin, sig, try, throwaway)
			}
		})
	}
}

func signalWhileWaiting(t *testing.T, bin string, sig syscall.Signal, try int, throwaway bool) {
	t.Helper()
	ctx := context.Background()
	key := int(sig)*1000 + try
	dir := t.TempDir()
	spec := filepath.Join(dir, "wait.spec")
	if err := os.WriteFile(spec, fmt.Appendf(nil, waitForever, key, key), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "lockstep-signals-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil { // the throwaway server's user must reach it
		t.Fatal(err)
	}
	schema := fmt.Sprintf("lockstep_sig_%d_%d", os.Getpid(), key)
	args := []string{"--scenario", spec, "--schema", schema}
	if !throwaway {
		args = append(args, "--dsn", dbtest.DSN(t))
		// The interface leaves the schema it made: the test drops it.
		t.Cleanup(func() {
			if c, err := pgx.Connect(context.Background(), dbtest.DSN(t)); err == nil {
				c.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
				c.Close(context.Background())
			}
		})
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "DATABASE_URL=", "TERM=xterm-256color")
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	var screen syncBuffer
	go io.Copy(&screen, term)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	waitFor(t, &screen, exited, "ready:")
	if _, err := term.Write([]byte("+++a")); err != nil { // autoplay, fast
		t.Fatal(err)
	}
	if throwaway {
		waitFor(t, &screen, exited, "WAITING")
	} else {
		waitForLockWait(t, key)
	}
	start := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if sig == syscall.SIGHUP {
		term.Close() // as a closed terminal window does
	}
	select {
	case <-exited:
	case <-time.After(2 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("try %d: lockstep still running 2 s after %v (throwaway server: %v)", try, sig, throwaway)
	}
	t.Logf("try %d: %v ended lockstep in %v", try, sig, time.Since(start).Round(time.Millisecond))
	if throwaway {
		if left, _ := filepath.Glob(filepath.Join(tmp, "lockstep-*")); len(left) > 0 {
			t.Fatalf("try %d: the throwaway server's dir is left: %v", try, left)
		}
		if out, _ := exec.Command("pgrep", "-f", "postgres -D "+tmp).Output(); len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("try %d: a postgres of ours still runs: %s", try, out)
		}
		return
	}
	conn, err := pgx.Connect(ctx, dbtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'lockstep/%'
		AND query LIKE $1`, fmt.Sprintf("%%advisory_xact_lock(%d)%%", key)).Scan(&n)
	if err != nil || n != 0 {
		t.Fatalf("try %d: %d backends of lockstep left after %v (%v)", try, n, sig, err)
	}
}

// waitFor waits until the screen has shown text; the guard is against a
// hang, not a timing assertion.
func waitFor(t *testing.T, screen *syncBuffer, exited <-chan error, text string) {
	t.Helper()
	guard := time.After(30 * time.Second)
	for !strings.Contains(screen.String(), text) {
		select {
		case err := <-exited:
			t.Fatalf("lockstep ended before showing %q: %v\n%s", text, err, screen.String())
		case <-guard:
			t.Fatalf("lockstep never showed %q", text)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitForLockWait waits until the server says a lockstep backend waits for
// the advisory lock key.
func waitForLockWait(t *testing.T, key int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	guard := time.Now().Add(30 * time.Second)
	for time.Now().Before(guard) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'lockstep/%'
			AND wait_event_type = 'Lock' AND query LIKE $1`, fmt.Sprintf("%%advisory_xact_lock(%d)%%", key)).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no statement ever waited")
}

// syncBuffer is a buffer written by one goroutine and read by another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
