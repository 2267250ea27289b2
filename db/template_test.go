package db

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// progressLog collects what a start says it is doing.
type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *progressLog) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, s)
}

func (p *progressLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// startIn starts a server whose template lives in cache and checks it answers.
func startIn(t *testing.T, cache string, log *progressLog) *Server {
	t.Helper()
	ctx := context.Background()
	s, err := StartServer(ctx, ServerOptions{TempDir: sharedTempDir(t), CacheDir: cache, Progress: log.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	return s
}

func exec1(t *testing.T, s *Server, sql string) error {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func TestWarmStartCopiesTheTemplate(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	var log progressLog
	first := startIn(t, cache, &log)
	if !first.ranInitdb || !strings.Contains(log.String(), "preparing a PostgreSQL "+first.Version()+" template") {
		t.Fatalf("the first start ran initdb=%v and said %q", first.ranInitdb, log.String())
	}
	tpl := templatePath(cache, first.Version())
	if _, err := os.Stat(filepath.Join(tpl, manifestName)); err != nil {
		t.Fatalf("no template kept for PostgreSQL %s: %v", first.Version(), err)
	}
	if err := exec1(t, first, "CREATE TABLE left_by_the_first_run (id int)"); err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	var log2 progressLog
	second := startIn(t, cache, &log2)
	if second.ranInitdb || log2.String() != "" {
		t.Fatalf("a warm start ran initdb=%v and said %q", second.ranInitdb, log2.String())
	}
	err := exec1(t, second, "SELECT * FROM left_by_the_first_run")
	if SQLState(err) != "42P01" {
		t.Fatalf("the template holds the first run's table: %v", err)
	}
}

func TestDamagedTemplateIsMadeAgain(t *testing.T) {
	t.Parallel()
	for _, damage := range []struct {
		name string
		do   func(tpl string) error
	}{
		{"a truncated file", func(tpl string) error {
			return os.Truncate(filepath.Join(tpl, "data", "global", "pg_control"), 100)
		}},
		{"a missing file", func(tpl string) error {
			return os.Remove(filepath.Join(tpl, "data", "PG_VERSION"))
		}},
		{"no manifest", func(tpl string) error {
			return os.Remove(filepath.Join(tpl, manifestName))
		}},
	} {
		t.Run(damage.name, func(t *testing.T) {
			t.Parallel()
			cache := t.TempDir()
			s := startIn(t, cache, &progressLog{})
			s.Stop()
			if err := damage.do(templatePath(cache, s.Version())); err != nil {
				t.Fatal(err)
			}
			var log progressLog
			again := startIn(t, cache, &log)
			if !again.ranInitdb || !strings.Contains(log.String(), "is damaged") {
				t.Fatalf("after %s the start ran initdb=%v and said %q", damage.name, again.ranInitdb, log.String())
			}
			again.Stop()
			if warm := startIn(t, cache, &progressLog{}); warm.ranInitdb {
				t.Fatal("the template was not made again")
			}
		})
	}
}

func TestUnwritableCacheStillStarts(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var log progressLog
	s := startIn(t, filepath.Join(file, "lockstep"), &log)
	if !s.ranInitdb || !strings.Contains(log.String(), "cannot keep a template in") {
		t.Fatalf("with an unwritable cache the start ran initdb=%v and said %q", s.ranInitdb, log.String())
	}
}

func TestUnreachableTempDirIsOneLine(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "gone")
	_, err := StartServer(context.Background(), ServerOptions{TempDir: missing, CacheDir: t.TempDir()})
	if err == nil {
		t.Fatal("a server started in a temp dir that does not exist")
	}
	msg := err.Error()
	for _, want := range []string{missing + " does not exist", "TMPDIR=/var/tmp", "--dsn"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("%q is more than one line", msg)
	}
}

// The check is the permission bits' arithmetic, so a made-up user tells it
// whoever runs the tests.
func TestCanEnter(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	closed := filepath.Join(base, "closed")
	inner := filepath.Join(closed, "inner")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	other := &runAs{name: "pgfake", uid: 4242, gid: 4242}
	err := other.canEnter(inner)
	if err == nil || !strings.Contains(err.Error(), "the pgfake user cannot enter "+closed+" (mode 0700") {
		t.Fatalf("canEnter(%s) = %v", inner, err)
	}
	if err := os.Chmod(closed, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := other.canEnter(inner); err != nil && strings.Contains(err.Error(), closed) {
		t.Fatalf("a 0711 dir is enterable: %v", err)
	}
	if _, err := makeServerDir([]string{inner}, other); err == nil || !strings.Contains(err.Error(), "TMPDIR=/var/tmp") {
		t.Fatalf("makeServerDir for an unreachable base = %v", err)
	}
}

func TestFindBinariesNewestVersionWins(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, v := range []string{"14.9", "16.2", "15.20"} {
		bin := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		script := "#!/bin/sh\necho 'postgres (PostgreSQL) " + v + "'\n"
		for _, prog := range []string{"initdb", "postgres"} {
			if err := os.WriteFile(filepath.Join(bin, prog), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := findBinaries("", []string{filepath.Join(root, "*", "bin")})
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != "16.2" || b.Dir != filepath.Join(root, "16.2", "bin") {
		t.Fatalf("found %s in %s; want 16.2", b.Version, b.Dir)
	}
	if templatePath("c", "16.2") == templatePath("c", "15.20") {
		t.Fatal("two server versions share a template")
	}
}

// A home directory that does not exist is not created for the template
// cache: the server starts without one (initdb), and says so in one line.
func TestMissingHomeIsNotCreated(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "nohome")
	cache := filepath.Join(home, ".cache", "lockstep")
	var log progressLog
	s := startIn(t, cache, &log)
	if !s.ranInitdb || !strings.Contains(log.String(), "cannot keep a template in "+cache+" ("+home+" does not exist, and lockstep does not create it") ||
		strings.Count(log.String(), "\n") != 0 {
		t.Errorf("the start ran initdb=%v and said %q", s.ranInitdb, log.String())
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("%s was created: %v", home, err)
	}
}
