package db

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// debianBundle is a bundle made of this machine's own PostgreSQL server
// (Debian's package). It keeps Debian's layout inside the archive —
// lib/postgresql/N/bin, lib/postgresql/N/lib, share/postgresql/N — because
// PostgreSQL finds its share and lib dirs relative to its programs only
// when they sit as they were built to: so the server started from it uses
// the archive's files, not the machine's. The small one holds only what
// initdb and postgres need, and pgrowlocks; the full one every library
// and extension, about the size of a real bundle, compressed as the real
// ones are (tar -cJ: xz -6).
type debianBundle struct {
	jar     []byte
	version string // the bundle's version, e.g. 15.20.0
}

var (
	debianMu      sync.Mutex
	debianBundles = map[bool]debianBundle{}
)

func debianJar(tb testing.TB, platform string, full bool) debianBundle {
	tb.Helper()
	b, err := findBinaries("", []string{"/usr/lib/postgresql/*/bin"})
	if err != nil {
		tb.Skipf("no Debian PostgreSQL server package to build a bundle from (%v)", err)
	}
	debianMu.Lock()
	defer debianMu.Unlock()
	if bundle, ok := debianBundles[full]; ok {
		return bundle
	}
	major := strings.Split(b.Version, ".")[0]
	var files []tarFile
	add := func(src, name string) {
		st, err := os.Lstat(src)
		if err != nil {
			tb.Fatal(err)
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			link, _ := os.Readlink(src)
			files = append(files, tarFile{name: name, link: link})
		case st.IsDir():
			files = append(files, tarFile{name: name + "/", dir: true, mode: 0o755})
		default:
			body, err := os.ReadFile(src)
			if err != nil {
				tb.Fatal(err)
			}
			files = append(files, tarFile{name: name, body: string(body), mode: int64(st.Mode().Perm())})
		}
	}
	lib := "/usr/lib/postgresql/" + major
	for _, p := range []string{"initdb", "postgres", "pg_ctl"} {
		add(filepath.Join(lib, "bin", p), "lib/postgresql/"+major+"/bin/"+p)
	}
	libs := []string{"plpgsql.so", "dict_snowball.so", "pgrowlocks.so"}
	if full {
		libs, _ = filepath.Glob(filepath.Join(lib, "lib", "*.so"))
		for i, l := range libs {
			libs[i] = filepath.Base(l)
		}
	}
	for _, l := range libs {
		add(filepath.Join(lib, "lib", l), "lib/postgresql/"+major+"/lib/"+l)
	}
	share := "/usr/share/postgresql/" + major
	err = filepath.WalkDir(share, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(share, p)
		if rel == "man" {
			return filepath.SkipDir
		}
		if dir, name := filepath.Split(rel); !full && dir == "extension/" && !strings.HasPrefix(name, "plpgsql") && !strings.HasPrefix(name, "pgrowlocks") {
			return nil
		}
		if rel != "." {
			add(p, "share/postgresql/"+major+"/"+rel)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	level := "-0"
	if full {
		level = "-6"
	}
	v := parseVersion(b.Version)
	bundle := debianBundle{jar: makeJar(tb, platform, xzLevel(tb, makeTar(tb, files), level)), version: fmt.Sprintf("%d.%d.0", v[0], v[1])}
	debianBundles[full] = bundle
	return bundle
}

// With no PostgreSQL on the machine, lockstep fetches one, starts its
// server from the cache — programs, libraries and extensions all from
// there — and, the repository gone, starts from the cache again.
func TestFetchedPostgresStartsAndServes(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	bundle := debianJar(t, repo.platform, false)
	repo.publish(bundle.version, bundle.jar)
	cache := sharedTempDir(t)
	log := &progressLog{}
	opts := ServerOptions{TempDir: sharedTempDir(t), CacheDir: cache, Progress: log.add,
		Fetch: FetchOptions{Repo: repo.URL, installed: hidden}}
	ctx := context.Background()
	s, err := StartServer(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	install := filepath.Join(cache, "postgres", bundle.version+"-"+repo.platform)
	if !strings.Contains(log.String(), "fetching PostgreSQL "+bundle.version+" for "+repo.platform) {
		t.Errorf("the first start said %q", log)
	}
	if s.Fetched() != bundle.version+" for "+repo.platform {
		t.Errorf("Fetched() = %q", s.Fetched())
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", s.Pid()))
	if !strings.HasPrefix(exe, install+string(filepath.Separator)) {
		t.Errorf("the postmaster runs %s; want the program in %s", exe, install)
	}
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	other, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	for _, sql := range []string{
		"CREATE EXTENSION pgrowlocks",
		"CREATE TABLE t (id int PRIMARY KEY)",
		"INSERT INTO t VALUES (1)",
		"DO $$ BEGIN PERFORM 1; END $$", // PL/pgSQL, from the bundle's lib
		"BEGIN",
		"SELECT * FROM t FOR UPDATE",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var modes string
	var pid int
	if err := other.QueryRow(ctx, "SELECT array_to_string(modes, ','), pg_backend_pid() FROM pgrowlocks('t')").Scan(&modes, &pid); err != nil {
		t.Fatalf("pgrowlocks from the fetched contrib: %v", err)
	}
	if modes != "For Update" {
		t.Errorf("pgrowlocks says %q", modes)
	}
	maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if !strings.Contains(string(maps), filepath.Join(install, "lib/postgresql")) || !strings.Contains(string(maps), "pgrowlocks.so") {
		t.Errorf("the backend did not load pgrowlocks from %s", install)
	}
	conn.Exec(ctx, "ROLLBACK")
	conn.Close(ctx)
	other.Close(ctx)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Errorf("the server's dir outlived it: %v", err)
	}

	// The repository gone: the cache and the template serve. (And a bundle
	// without pgrowlocks says so with SQLSTATE 0A000, "not available", which
	// the observer turns into its note that row locks are inferred.)
	repo.Close()
	controls, _ := filepath.Glob(filepath.Join(install, "share", "postgresql", "*", "extension", "pgrowlocks.control"))
	if len(controls) != 1 {
		t.Fatalf("pgrowlocks.control in the cache: %v", controls)
	}
	if err := os.Remove(controls[0]); err != nil {
		t.Fatal(err)
	}
	log2 := &progressLog{}
	opts.Progress = log2.add
	s2, err := StartServer(ctx, opts)
	if err != nil {
		t.Fatalf("a start from the cache, without the network: %v", err)
	}
	defer s2.Stop()
	if s2.ranInitdb || log2.String() != "" {
		t.Errorf("the second start ran initdb=%v and said %q; want the template, silently", s2.ranInitdb, log2)
	}
	if _, err := os.Stat(templatePath(cache, s2.bins.templateKey())); err != nil {
		t.Errorf("no template for the fetched binaries: %v", err)
	}
	conn2, err := pgx.Connect(ctx, s2.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	if _, err := conn2.Exec(ctx, "CREATE EXTENSION pgrowlocks"); SQLState(err) != pgerrcode.FeatureNotSupported && SQLState(err) != pgerrcode.UndefinedFile {
		t.Errorf("CREATE EXTENSION pgrowlocks without its files: %v", err)
	}
}

// Windows has no Unix sockets: the server listens on 127.0.0.1 at a random
// port, and postgres has a random password, new at every start. The same
// code runs here, on the installed binaries.
func TestServerOverTCPWithAPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cache := sharedTempDir(t)
	opts := ServerOptions{TempDir: sharedTempDir(t), CacheDir: cache, tcp: true}
	s1, err := StartServer(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Stop()
	if !s1.ranInitdb {
		t.Error("the first start used a template")
	}
	if _, err := os.Stat(filepath.Join(s1.Dir(), ".s.PGSQL.5432")); !os.IsNotExist(err) {
		t.Errorf("a Unix socket exists: %v", err)
	}
	if !strings.Contains(s1.URL("postgres"), "@127.0.0.1:") || strings.Contains(s1.PublicURL("postgres"), s1.password) {
		t.Errorf("URL %s, PublicURL %s", s1.URL("postgres"), s1.PublicURL("postgres"))
	}
	for _, u := range []string{s1.URL("postgres"), s1.PublicURL("postgres")} {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connecting with %s: %v", u, err)
		}
		conn.Close(ctx)
	}
	noPassword := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", s1.port)
	if _, err := pgx.Connect(ctx, noPassword); err == nil || SQLState(err) != pgerrcode.InvalidPassword {
		t.Errorf("without the password: %v (SQLSTATE %s)", err, SQLState(err))
	}
	s2, err := StartServer(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if s2.ranInitdb || s2.port == s1.port || s2.password == s1.password {
		t.Errorf("second start: initdb=%v, port %d (first %d), same password=%v", s2.ranInitdb, s2.port, s1.port, s2.password == s1.password)
	}
	// The template's first password opens neither.
	first, err := os.ReadFile(filepath.Join(templatePath(cache, s2.bins.templateKey()+"-tcp"), "data", passwordFile))
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres", strings.TrimSpace(string(first)), s2.port)
	if _, err := pgx.Connect(ctx, old); SQLState(err) != pgerrcode.InvalidPassword {
		t.Errorf("the template's password: %v", err)
	}
}

// BenchmarkFetch is the first fetch's cost beyond the download. Each round
// runs, one after the other: the bare download of the jar (to a file,
// nothing else); a whole fetch into a fresh cache (download with its
// checksum, unpacking as it comes, the program run) decompressing with the
// xz program, and one with the Go decoder; and, as the anchor, GNU tar
// unpacking the same .txz (tar -xJf). The repository is on loopback, so
// that the download costs next to nothing and what is left is checking and
// unpacking. The bundle is the full one, compressed as the real ones are.
// Reports seconds of that extra per 10 MB of jar (target ≤ 1), and each
// fetch's extra over tar's time.
func BenchmarkFetch(b *testing.B) {
	repo := newTestRepo(b)
	bundle := debianJar(b, repo.platform, true)
	repo.publish(bundle.version, bundle.jar)
	jarURL := repo.URL + repo.dir() + "/" + bundle.version + "/embedded-postgres-binaries-" + repo.platform + "-" + bundle.version + ".jar"
	zr, err := zip.NewReader(bytes.NewReader(bundle.jar), int64(len(bundle.jar)))
	if err != nil {
		b.Fatal(err)
	}
	txz := filepath.Join(b.TempDir(), "bundle.txz")
	for _, zf := range zr.File {
		if strings.HasSuffix(zf.Name, ".txz") {
			rc, _ := zf.Open()
			out, _ := os.Create(txz)
			io.Copy(out, rc)
			out.Close()
			rc.Close()
		}
	}
	ctx := context.Background()
	fetch := func(xzProg string) time.Duration {
		f, _ := testFetcher(b, repo.URL, sharedTempDir(b), FetchOptions{})
		f.xz = xzProg
		started := time.Now()
		if _, err := f.binaries(ctx, b.TempDir()); err != nil {
			b.Fatal(err)
		}
		return time.Since(started)
	}
	var download, withXZ, withGo, tar time.Duration
	rounds := 0
	for b.Loop() {
		dst := filepath.Join(b.TempDir(), "download.jar")
		started := time.Now()
		resp, err := http.Get(jarURL)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := os.Create(dst)
		if _, err := io.Copy(out, resp.Body); err != nil {
			b.Fatal(err)
		}
		out.Close()
		resp.Body.Close()
		download += time.Since(started)
		if p := xzProgram(); p != "" {
			withXZ += fetch(p)
		}
		withGo += fetch("")
		started = time.Now()
		if out, err := exec.Command("tar", "-xJf", txz, "-C", sharedTempDir(b)).CombinedOutput(); err != nil {
			b.Fatalf("tar: %v: %s", err, out)
		}
		tar += time.Since(started)
		rounds++
	}
	n := float64(rounds)
	mb := float64(len(bundle.jar)) / 1e6
	b.ReportMetric(mb, "MB-jar")
	b.ReportMetric(download.Seconds()/n, "s-download")
	b.ReportMetric(tar.Seconds()/n, "s-tar-xJf")
	if withXZ > 0 {
		b.ReportMetric((withXZ-download).Seconds()/n/(mb/10), "s-extra/10MB-xz")
		b.ReportMetric((withXZ-download).Seconds()/tar.Seconds(), "extra-xz/tar")
	}
	b.ReportMetric((withGo-download).Seconds()/n/(mb/10), "s-extra/10MB-go")
	b.ReportMetric((withGo-download).Seconds()/tar.Seconds(), "extra-go/tar")
}

// BenchmarkStartFetched is a start from fetched binaries against a start
// from the installed ones — the same PostgreSQL, both from their templates
// — alternating, in the same run. Reports the ratio (target ≤ 1.1).
func BenchmarkStartFetched(b *testing.B) {
	repo := newTestRepo(b)
	bundle := debianJar(b, repo.platform, false)
	repo.publish(bundle.version, bundle.jar)
	ctx := context.Background()
	cache, tmp := sharedTempDir(b), sharedTempDir(b)
	installed := ServerOptions{TempDir: tmp, CacheDir: cache}
	fetched := ServerOptions{TempDir: tmp, CacheDir: cache, Fetch: FetchOptions{Repo: repo.URL, installed: hidden}}
	start := func(opts ServerOptions) time.Duration {
		started := time.Now()
		s, err := StartServer(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(started)
		if err := s.Stop(); err != nil {
			b.Fatal(err)
		}
		return took
	}
	start(installed) // the templates, and the fetch
	start(fetched)
	var a, f time.Duration
	rounds := 0
	for b.Loop() {
		a += start(installed)
		f += start(fetched)
		rounds++
	}
	b.ReportMetric(a.Seconds()*1000/float64(rounds), "ms-installed")
	b.ReportMetric(f.Seconds()*1000/float64(rounds), "ms-fetched")
	b.ReportMetric(f.Seconds()/a.Seconds(), "fetched/installed")
}

// readOnly makes dir read-only for the rest of the test: a read-only bind
// mount of it on itself when the test runs as root (for whom permission
// bits are no bar), its mode bits otherwise.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot make %s read-only (bind mount: %v)", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		t.Skipf("cannot make %s read-only (remount: %v)", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// A cache dir that cannot be written: the fetch is for this run only, in
// the server's own dir, said in one line; a start still works.
func TestFetchIntoAReadOnlyCache(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
	cache := sharedTempDir(t)
	readOnly(t, cache)
	if err := os.Mkdir(filepath.Join(cache, "probe"), 0o755); err == nil {
		t.Fatal("the cache dir is still writable")
	}
	f, log := testFetcher(t, repo.URL, cache, FetchOptions{})
	scratch := t.TempDir()
	b, err := f.binaries(context.Background(), scratch)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.Dir, scratch+string(filepath.Separator)) || b.Version != "15.99" {
		t.Errorf("fetched into %s (%s); want the scratch dir %s", b.Dir, b.Version, scratch)
	}
	said := log.String()
	if !strings.Contains(said, "cannot keep PostgreSQL in "+filepath.Join(cache, "postgres")+" (read-only file system): fetching it for this run only") &&
		!strings.Contains(said, "cannot keep PostgreSQL in "+filepath.Join(cache, "postgres")+" (permission denied): fetching it for this run only") ||
		!strings.Contains(said, "from "+repo.URL+" for this run only") {
		t.Errorf("the fetch said %q", said)
	}
}

// Fetched for this run only (the cache read-only), PostgreSQL lives in the
// server's own dir and goes with it.
func TestFetchedForOneRunGoesWithTheServer(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	bundle := debianJar(t, repo.platform, false)
	repo.publish(bundle.version, bundle.jar)
	cache := sharedTempDir(t)
	readOnly(t, cache)
	s, err := StartServer(context.Background(), ServerOptions{TempDir: sharedTempDir(t), CacheDir: cache,
		Fetch: FetchOptions{Repo: repo.URL, installed: hidden}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", s.Pid()))
	if !strings.HasPrefix(exe, s.Dir()+string(filepath.Separator)) {
		t.Errorf("the postmaster runs %s; want a program in the server's dir %s", exe, s.Dir())
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Errorf("the server's dir, with its PostgreSQL, outlived it: %v", err)
	}
}
