package serve

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/dbtest"
)

// lockstepBin builds the lockstep binary into the test's temp dir (go's
// build cache makes it quick after the first), which goes with the test.
func lockstepBin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lockstep")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("building lockstep: %v\n%s", err, out)
	}
	return bin
}

// process is a lockstep serve started from the built binary.
type process struct {
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	stderr strings.Builder
	exited chan error
}

var readyRE = regexp.MustCompile(`ready on (127\.0\.0\.1:\d+)`)

// startBinary runs lockstep serve with args and waits until it listens.
func startBinary(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{exited: make(chan error, 1)}
	p.cmd = exec.Command(lockstepBin(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--host-key", filepath.Join(t.TempDir(), "key"),
		"--code", "test-code", "--max-students", "4"}, args...)...)
	p.cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				ready <- m[1]
			}
		}
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
	})
	select {
	case p.addr = <-ready:
	case err := <-p.exited:
		t.Fatalf("lockstep serve exited before it was ready: %v\n%s", err, p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("lockstep serve was not ready in a minute:\n%s", p.output())
	}
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// TestSignalsEndTheClass sends SIGTERM, SIGINT and SIGHUP to a built
// lockstep serve while a student holds a transaction: serve tells the
// student, rolls back, drops the role and schema it made, and exits within
// 2 s, leaving no backend of the student's. One more run does the same on
// serve's own throwaway server.
func TestSignalsEndTheClass(t *testing.T) {
	conn := adminConn(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startBinary(t, nil, "--dsn", dbtest.DSN(t))
			signalDuringClass(t, p, sig, conn)
		})
	}
	t.Run("throwaway", func(t *testing.T) {
		// No --dsn, no DATABASE_URL: serve's own throwaway server.
		p := startBinary(t, []string{"DATABASE_URL="})
		signalDuringClass(t, p, syscall.SIGTERM, nil)
	})
}

func signalDuringClass(t *testing.T, p *process, sig syscall.Signal, conn *pgx.Conn) {
	t.Helper()
	name := uniq("sig")
	gc, err := dial(t, p.addr, name, codeAuth("test-code"))
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, gc, 100, 30)
	c.waitFor("▶ BEGIN")
	c.press("1")
	c.waitFor("● in transaction")
	c.press("1")
	c.waitFor("✓ INSERT INTO transfers")
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		took := time.Since(start)
		t.Logf("%s: exited %v after %s", sig, err, took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("%s: serve took %s to exit, more than 2 s", sig, took)
		}
		if err != nil {
			t.Errorf("%s: serve exited with %v:\n%s", sig, err, p.output())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: serve did not exit:\n%s", sig, p.output())
	}
	c.waitEnd()
	if out := c.output(); !strings.Contains(out, "the class is over") {
		t.Errorf("the student was not told the class is over: %q", out)
	}
	if !strings.Contains(p.output(), "the students' roles and schemas are dropped") {
		t.Errorf("serve's last words:\n%s", p.output())
	}
	if conn == nil {
		return
	}
	role := roleName(name)
	var roles, schemas, left int
	err = conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1),
		(SELECT count(*) FROM pg_namespace WHERE nspname = $1),
		(SELECT count(*) FROM pg_stat_activity WHERE usename = $1)`, role).Scan(&roles, &schemas, &left)
	if err != nil {
		t.Fatal(err)
	}
	if roles+schemas+left > 0 {
		t.Errorf("after %s: role %s: %d roles, %d schemas, %d backends left", sig, role, roles, schemas, left)
	}
}

// TestDSNNeedsCreateRole: serve over a role that may not create roles
// says so in one line and exits 2.
func TestDSNNeedsCreateRole(t *testing.T) {
	conn := adminConn(t)
	role := "lockstep_t_nocreaterole_" + fmt.Sprint(os.Getpid())
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(ctx, "DROP ROLE "+role) })
	u, err := url.Parse(dbtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	cmd := exec.Command(lockstepBin(t), "serve", "--dsn", u.String(), "--listen", "127.0.0.1:0",
		"--host-key", filepath.Join(t.TempDir(), "key"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errorAs(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("exit %v, want 2", err)
	}
	got := strings.TrimSpace(string(out))
	if strings.Count(got, "\n") > 0 || !strings.Contains(got, "may not create roles") || !strings.Contains(got, "CREATEROLE") {
		t.Errorf("want one line naming CREATEROLE, got:\n%s", got)
	}
}

func errorAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}
