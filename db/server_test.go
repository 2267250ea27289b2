package db

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// helperEnv makes the test binary act as a lockstep that starts a server and
// then waits to be killed.
const helperEnv = "LOCKSTEP_TEST_SERVER_HELPER"

func init() {
	base := os.Getenv(helperEnv)
	if base == "" {
		return
	}
	s, err := StartServer(context.Background(), ServerOptions{TempDir: base})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(s.Dir(), s.Pid())
	select {} // until SIGKILL
}

// sharedTempDir is a fresh dir the postgres user can traverse when tests run
// as root (the server runs as postgres then), made where a server's own dir
// would be.
func sharedTempDir(t testing.TB) string {
	t.Helper()
	cred, err := serverCredential()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := makeServerDir(tempCandidates(), cred)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func childPids(t *testing.T, parent int) []int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses: state, ppid, …
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if ppid, _ := strconv.Atoi(f[1]); ppid == parent {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			kids = append(kids, pid)
		}
	}
	return kids
}

func TestServerStartsServesAndStopsClean(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := StartServer(ctx, ServerOptions{TempDir: sharedTempDir(t), DeadlockTimeout: 300 * time.Millisecond, MaxPreparedTransactions: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var timeout, prepared, listen string
	err = conn.QueryRow(ctx, "SELECT current_setting('deadlock_timeout'), current_setting('max_prepared_transactions'), current_setting('listen_addresses')").
		Scan(&timeout, &prepared, &listen)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if timeout != "300ms" || prepared != "5" || listen != "" {
		t.Errorf("deadlock_timeout=%s max_prepared_transactions=%s listen_addresses=%q", timeout, prepared, listen)
	}
	st, err := os.Stat(s.Dir())
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("server dir %s: %v, mode %v; want 0700", s.Dir(), err, st.Mode().Perm())
	}
	pm := s.Pid()
	kids := childPids(t, pm)
	if len(kids) == 0 {
		t.Fatalf("the postmaster %d has no children", pm)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range append(kids, pm) {
		if processAlive(pid) {
			t.Errorf("process %d still runs after Stop", pid)
		}
	}
	if _, err := os.Stat(s.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("server dir still there after Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// removeStale removes only lockstep's own dead temp dirs: named as
// os.MkdirTemp names them, with lockstep's marker file, whose process is
// gone. A user's lockstep-notes, a clone at lockstep-main, a dir being
// created, a live lockstep's, a marker without lockstep's mark: all stay,
// whatever their age.
func TestRemoveStaleRemovesOnlyLockstepsDeadDirs(t *testing.T) {
	t.Parallel()
	base := sharedTempDir(t)
	old := time.Now().Add(-time.Hour)
	dead := deadPid(t)
	mk := func(name string, files map[string]string) string {
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		for f, body := range files {
			if err := os.WriteFile(filepath.Join(d, f), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
		return d
	}
	mark := func(pid int) map[string]string {
		return map[string]string{ownerFile: fmt.Sprintf("%d\n%s\n", pid, ownerMark)}
	}
	stale := mk(dirPrefix+"123456789", mark(dead))
	keep := []string{
		mk(dirPrefix+"987654321", mark(os.Getpid())),                          // a live lockstep's
		mk(dirPrefix+"notes", map[string]string{"lecture.md": "# notes"}),     // the user's
		mk(dirPrefix+"main", map[string]string{"go.mod": "module lockstep"}),  // a clone
		mk(dirPrefix+"555", nil),                                              // being created: no marker yet
		mk(dirPrefix+"556", map[string]string{ownerFile: strconv.Itoa(dead)}), // a pid file without lockstep's mark
		mk(dirPrefix+"notes2", mark(dead)),                                    // a marker, but not lockstep's name
		mk("unrelated", nil),
	}
	removeStale(base)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removeStale left lockstep's dead dir %s: %v", stale, err)
	}
	for _, d := range keep {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("removeStale removed %s", d)
		}
	}
}

// deadPid is the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no true(1) to get a dead pid: %v", err)
	}
	return cmd.Process.Pid
}

func TestNoServerBinaries(t *testing.T) {
	t.Parallel()
	_, err := findBinaries("", []string{"/nonexistent/postgresql/*/bin"})
	if !errors.Is(err, ErrNoServerBinaries) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"/nonexistent/postgresql/*/bin", "docker compose up -d", "--dsn", "install the PostgreSQL server package"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFindBinariesNewestFirst(t *testing.T) {
	t.Parallel()
	b, err := FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if b.major < 14 {
		t.Errorf("found PostgreSQL %s in %s; the machine has 15", b.Version, b.Dir)
	}
}

// BenchmarkStartServer is a throwaway server from nothing to accepting
// connections, then stopped and deleted: cold runs initdb every time, warm
// copies a template made beforehand.
func BenchmarkStartServer(b *testing.B) {
	ctx := context.Background()
	cache := b.TempDir()
	bench := func(opts ServerOptions) func(*testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				s, err := StartServer(ctx, opts)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Stop(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
	}
	b.Run("cold", bench(ServerOptions{NoTemplate: true}))
	warm := ServerOptions{CacheDir: cache}
	s, err := StartServer(ctx, warm) // makes the template
	if err != nil {
		b.Fatal(err)
	}
	s.Stop()
	b.Run("warm", bench(warm))
}

// tasks is the set of this process's OS threads.
func tasks(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	set := make(map[string]bool, len(ents))
	for _, e := range ents {
		set[e.Name()] = true
	}
	return set
}

// A child started with a parent-death signal gets it when the *thread*
// that forked it ends, not only when lockstep does: chaos workers were
// killed at start when a throwaway server stopped elsewhere in the process
// and took its thread with it. Starting and stopping a server must end no
// thread.
func TestStoppingAServerEndsNoThread(t *testing.T) {
	s, err := StartServer(context.Background(), ServerOptions{TempDir: sharedTempDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	before := tasks(t)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// A second server's start is work enough for an ending thread to be gone.
	s2, err := StartServer(context.Background(), ServerOptions{TempDir: sharedTempDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	after := tasks(t)
	for tid := range before {
		if !after[tid] {
			t.Errorf("thread %s ended while the server stopped", tid)
		}
	}
}
