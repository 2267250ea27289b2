//go:build unix

package db

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hidden stands for a machine with no PostgreSQL installed.
func hidden() (Binaries, error) {
	return Binaries{}, fmt.Errorf("%w (hidden by the test)", ErrNoServerBinaries)
}

// tinyJar is a bundle whose programs only tell their version: enough to
// fetch, check and unpack, not to start a server. It has the bundles'
// layout: bin/, lib/ with a symbolic link, share/postgresql.
func tinyJar(t testing.TB, platform, version string) []byte {
	t.Helper()
	script := "#!/bin/sh\necho 'postgres (PostgreSQL) " + version + "'\n"
	tr := makeTar(t, []tarFile{
		{name: "bin/", dir: true, mode: 0o755},
		{name: "bin/initdb", body: script, mode: 0o755},
		{name: "bin/pg_ctl", body: script, mode: 0o755},
		{name: "bin/postgres", body: script, mode: 0o755},
		{name: "lib/libpq.so.5.15", body: strings.Repeat("library ", 1000), mode: 0o644},
		{name: "lib/libpq.so.5", link: "libpq.so.5.15"},
		{name: "share/postgresql/postgres.bki", body: "catalog", mode: 0o644},
	})
	return makeJar(t, platform, xzCompress(t, tr))
}

// testFetcher fetches from repo into cache, with the machine's PostgreSQL
// hidden; what it says goes to the returned log.
func testFetcher(t testing.TB, repoURL, cache string, fetch FetchOptions) (*fetcher, *progressLog) {
	t.Helper()
	log := &progressLog{}
	cred, err := serverCredential()
	if err != nil {
		t.Fatal(err)
	}
	fetch.Repo, fetch.installed = repoURL, hidden
	f, err := newFetcher(ServerOptions{CacheDir: cache, Progress: log.add, Fetch: fetch}, cred)
	if err != nil {
		t.Fatal(err)
	}
	return f, log
}

// leftovers are the cache's entries other than complete installations and
// lock files: what a failed fetch must not leave.
func leftovers(t testing.TB, root string) []string {
	t.Helper()
	ents, _ := os.ReadDir(root)
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".lock-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestFetchOnceThenFromTheCache(t *testing.T) {
	t.Parallel()
	for decoder, prog := range decoders() {
		t.Run(decoder, func(t *testing.T) {
			t.Parallel()
			fetchOnceThenFromTheCache(t, prog)
		})
	}
}

func fetchOnceThenFromTheCache(t *testing.T, xzProg string) {
	repo := newTestRepo(t)
	jar := tinyJar(t, repo.platform, "15.99")
	repo.publish("15.99.0", jar)
	cache := sharedTempDir(t)
	var bar bytes.Buffer
	f, log := testFetcher(t, repo.URL, cache, FetchOptions{Bar: &bar})
	f.xz = xzProg
	b, err := f.binaries(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(cache, "postgres")
	install := filepath.Join(root, "15.99.0-"+repo.platform)
	if b.Dir != filepath.Join(install, "bin") || b.Version != "15.99" || b.Fetched != "15.99.0 for "+repo.platform {
		t.Fatalf("fetched %+v", b)
	}
	said := log.String()
	want := fmt.Sprintf("fetching PostgreSQL 15.99.0 for %s (%s) from %s into %s, once", repo.platform, humanSize(int64(len(jar))), repo.URL, root)
	if !strings.Contains(said, want) || !strings.Contains(said, "checked (sha1) and unpacked PostgreSQL 15.99.0 into "+install) {
		t.Errorf("the fetch said:\n%s\nwant the line %q", said, want)
	}
	if !strings.Contains(bar.String(), "100%") || !strings.HasSuffix(bar.String(), "\r\x1b[K") {
		t.Errorf("the progress bar drew %q", bar.String())
	}
	if link, err := os.Readlink(filepath.Join(install, "lib", "libpq.so.5")); err != nil || link != "libpq.so.5.15" {
		t.Errorf("the archive's symbolic link is %q, %v", link, err)
	}
	if st, err := os.Stat(filepath.Join(install, "bin", "postgres")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("bin/postgres: %v, %v", st, err)
	}
	if got := leftovers(t, root); len(got) != 1 {
		t.Errorf("the cache holds %v; want the installation only", got)
	}
	marker, _ := os.ReadFile(filepath.Join(install, fetchedMarker))
	if !strings.Contains(string(marker), "sha1=") || !strings.Contains(string(marker), "version=15.99") {
		t.Errorf("marker %q", marker)
	}

	// The repository gone, a later start finds the binaries in the cache.
	repo.Close()
	f2, log2 := testFetcher(t, repo.URL, cache, FetchOptions{})
	b2, err := f2.binaries(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("from the cache, without the network: %v", err)
	}
	if b2 != b || log2.String() != "" {
		t.Errorf("from the cache: %+v, saying %q; want %+v, silently", b2, log2, b)
	}
	if repo.jarGets.Load() != 1 {
		t.Errorf("the jar was fetched %d times", repo.jarGets.Load())
	}
}

func TestFetchPicksTheVersion(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	for _, v := range []string{"14.10.0", "15.99.0", "18.1.0"} {
		repo.publish(v, tinyJar(t, repo.platform, strings.TrimSuffix(v, ".0")))
	}
	cache := sharedTempDir(t)
	ctx := context.Background()
	// Nothing asked for: the newest published up to 17.
	f, _ := testFetcher(t, repo.URL, cache, FetchOptions{})
	if b, err := f.binaries(ctx, t.TempDir()); err != nil || b.Version != "15.99" {
		t.Fatalf("by default: %+v, %v; want 15.99", b, err)
	}
	// --fetch-postgres 14 fetches 14, although 15 is cached.
	f, _ = testFetcher(t, repo.URL, cache, FetchOptions{Version: "14"})
	if b, err := f.binaries(ctx, t.TempDir()); err != nil || b.Version != "14.10" {
		t.Fatalf("--fetch-postgres 14: %+v, %v", b, err)
	}
	f, _ = testFetcher(t, repo.URL, cache, FetchOptions{Version: "18.1.0"})
	if b, err := f.binaries(ctx, t.TempDir()); err != nil || b.Version != "18.1" {
		t.Fatalf("--fetch-postgres 18.1.0: %+v, %v", b, err)
	}
	// A major the repository does not have: one line naming those it has.
	f, _ = testFetcher(t, repo.URL, cache, FetchOptions{Version: "16"})
	_, err := f.binaries(ctx, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL 16 is not published for "+repo.platform) ||
		!strings.Contains(err.Error(), "it has 18, 15, 14: pass --fetch-postgres 18") {
		t.Fatalf("--fetch-postgres 16: %v", err)
	}
}

func TestFetchChecksumMismatch(t *testing.T) {
	t.Parallel()
	corrupt := func(w http.ResponseWriter, jar []byte) {
		bad := bytes.Clone(jar)
		bad[len(bad)/2] ^= 0xff
		w.Write(bad)
	}
	t.Run("refused and fetched again", func(t *testing.T) {
		t.Parallel()
		repo := newTestRepo(t)
		repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
		repo.setServe(func(w http.ResponseWriter, _ *http.Request, jar []byte, n int) bool {
			if n == 1 {
				corrupt(w, jar)
				return true
			}
			return false
		})
		cache := sharedTempDir(t)
		f, log := testFetcher(t, repo.URL, cache, FetchOptions{})
		if _, err := f.binaries(context.Background(), t.TempDir()); err != nil {
			t.Fatal(err)
		}
		if said := log.String(); !strings.Contains(said, "the download's sha1 checksum is") || !strings.Contains(said, "deleted it; fetching it again") {
			t.Errorf("the fetch said %q", said)
		}
		if repo.jarGets.Load() != 2 {
			t.Errorf("the jar was fetched %d times; want 2", repo.jarGets.Load())
		}
	})
	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		repo := newTestRepo(t)
		repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
		repo.setServe(func(w http.ResponseWriter, _ *http.Request, jar []byte, _ int) bool {
			corrupt(w, jar)
			return true
		})
		cache := sharedTempDir(t)
		f, _ := testFetcher(t, repo.URL, cache, FetchOptions{})
		_, err := f.binaries(context.Background(), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "does not match its checksum twice") || !strings.Contains(err.Error(), "deleted it") {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q is more than one line", err)
		}
		if got := leftovers(t, filepath.Join(cache, "postgres")); len(got) != 0 {
			t.Errorf("a refused download left %v in the cache", got)
		}
	})
}

func TestFetchBrokenOrDamaged(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		publish func(r *testRepo)
		want    string
	}{
		"the connection drops half-way": {func(r *testRepo) {
			r.publish("15.99.0", tinyJar(t, r.platform, "15.99"))
			r.setServe(func(w http.ResponseWriter, _ *http.Request, jar []byte, _ int) bool {
				w.Header().Set("Content-Length", fmt.Sprint(len(jar)))
				w.Write(jar[:len(jar)/2])
				return true // the server then closes the connection
			})
		}, "broke off after"},
		"a truncated jar, published so": {func(r *testRepo) {
			jar := tinyJar(t, r.platform, "15.99")
			r.publish("15.99.0", jar[:len(jar)*2/3])
		}, "is damaged"},
		"a truncated .txz inside a whole jar": {func(r *testRepo) {
			tr := makeTar(t, []tarFile{{name: "bin/postgres", body: strings.Repeat("x", 100000), mode: 0o755}})
			txz := xzCompress(t, tr)
			r.publish("15.99.0", makeJar(t, r.platform, txz[:len(txz)/2]))
		}, "is damaged"},
		"a jar without a .txz": {func(r *testRepo) {
			r.publish("15.99.0", makeJarWithout(t))
		}, "holds no .txz archive"},
		"a bundle without initdb": {func(r *testRepo) {
			tr := makeTar(t, []tarFile{{name: "bin/postgres", body: "#!/bin/sh\n", mode: 0o755}})
			r.publish("15.99.0", makeJar(t, r.platform, xzCompress(t, tr)))
		}, "has no initdb and postgres"},
		"no checksum published": {func(r *testRepo) {
			r.publish("15.99.0", tinyJar(t, r.platform, "15.99"), "md5")
		}, "publishes no checksum beside embedded-postgres-binaries-"},
		"the jar is missing (404)": {func(r *testRepo) {
			r.publish("15.99.0", tinyJar(t, r.platform, "15.99"))
			r.mu.Lock()
			for p := range r.files {
				if strings.HasSuffix(p, ".jar") {
					delete(r.files, p)
				}
			}
			r.mu.Unlock()
		}, "is not published at"},
		"nothing for this platform (404)": {func(*testRepo) {}, "HTTP 404"},
	} {
		for decoder, prog := range decoders() {
			t.Run(name+"/"+decoder, func(t *testing.T) {
				t.Parallel()
				repo := newTestRepo(t)
				c.publish(repo)
				cache := sharedTempDir(t)
				f, _ := testFetcher(t, repo.URL, cache, FetchOptions{})
				f.xz = prog
				_, err := f.binaries(context.Background(), t.TempDir())
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("got %v; want %q", err, c.want)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("%q is more than one line", err)
				}
				if got := leftovers(t, filepath.Join(cache, "postgres")); len(got) != 0 {
					t.Errorf("a failed fetch left %v in the cache", got)
				}
			})
		}
	}
}

// decoders are the ways a bundle is decompressed: the Go decoder always,
// the xz program when there is one.
func decoders() map[string]string {
	d := map[string]string{"go": ""}
	if p := xzProgram(); p != "" {
		d["xz"] = p
	}
	return d
}

// makeJarWithout is a jar with a manifest and no bundle.
func makeJarWithout(t testing.TB) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("META-INF/MANIFEST.MF")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Manifest-Version: 1.0\r\n\r\n")
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFetchWithoutNetworkOrOffline(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	cache := sharedTempDir(t)
	f, _ := testFetcher(t, closed, cache, FetchOptions{})
	_, err = f.binaries(context.Background(), t.TempDir())
	msg := fmt.Sprint(err)
	for _, want := range []string{"cannot be reached to fetch them", "connection refused", "apt-get install postgresql", "brew install postgresql@17", "--dsn"} {
		if !strings.Contains(msg, want) {
			t.Errorf("no network: %q does not say %q", msg, want)
		}
	}
	repo := newTestRepo(t)
	repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
	f, _ = testFetcher(t, repo.URL, cache, FetchOptions{Offline: true})
	_, err = f.binaries(context.Background(), t.TempDir())
	msg = fmt.Sprint(err)
	for _, want := range []string{"--offline forbids fetching them", "apt-get install postgresql", "the installer from postgresql.org on Windows", "--dsn"} {
		if !strings.Contains(msg, want) {
			t.Errorf("offline: %q does not say %q", msg, want)
		}
	}
	for _, m := range []string{msg} {
		if strings.Contains(m, "\n") {
			t.Errorf("%q is more than one line", m)
		}
	}
	if repo.jarGets.Load() != 0 {
		t.Error("--offline fetched")
	}
}

// Run as root, the server runs as the postgres user, who cannot enter
// root's private cache: the binaries go where it can.
func TestFetchRootForTheServersUser(t *testing.T) {
	t.Parallel()
	private := t.TempDir() // 0700
	other := &runAs{name: "pgfake", uid: 4242, gid: 4242}
	if got := fetchRoot(private, other, "/shared"); got != "/shared" {
		t.Errorf("for another user: %s", got)
	}
	if got := fetchRoot(private, nil, "/shared"); got != filepath.Join(private, "postgres") {
		t.Errorf("for lockstep's own user: %s", got)
	}
	if got := fetchRoot("", nil, "/shared"); got != "" {
		t.Errorf("without a cache dir: %q", got)
	}
}

// fetchHelperEnv makes the test binary act as a lockstep fetching from the
// repository and into the cache its value names (JSON).
const fetchHelperEnv = "LOCKSTEP_TEST_FETCH_HELPER"

func init() {
	spec := os.Getenv(fetchHelperEnv)
	if spec == "" {
		return
	}
	var c struct{ Repo, Cache string }
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	cred, _ := serverCredential()
	f, err := newFetcher(ServerOptions{CacheDir: c.Cache, Progress: func(s string) { fmt.Println("said", s) },
		Fetch: FetchOptions{Repo: c.Repo, installed: hidden}}, cred)
	if err == nil {
		var b Binaries
		if b, err = f.binaries(context.Background(), os.TempDir()); err == nil {
			fmt.Println("fetched", b.Dir)
			os.Exit(0)
		}
	}
	fmt.Println("error", err)
	os.Exit(1)
}

// helper is a lockstep process fetching, and its lines as they come.
func fetchHelper(t *testing.T, repo, cache string) (*exec.Cmd, <-chan string) {
	t.Helper()
	spec, _ := json.Marshal(map[string]string{"Repo": repo, "Cache": cache})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fetchHelperEnv+"="+string(spec))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// await reads lines until one starts with prefix.
func await(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(60 * time.Second) // only a guard against a hang
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the helper ended before saying %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("the helper never said %q", prefix)
		}
	}
}

// Two locksteps fetching at once: the second waits for the first, then
// uses what it fetched; nobody ever sees a half-unpacked installation.
func TestFetchTwoProcessesAtOnce(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
	requested, release := make(chan struct{}), make(chan struct{})
	repo.setServe(func(w http.ResponseWriter, _ *http.Request, jar []byte, n int) bool {
		if n == 1 {
			close(requested)
			<-release // the first download hangs until the second lockstep waits
		}
		return false
	})
	cache := sharedTempDir(t)
	root := filepath.Join(cache, "postgres")
	first, firstLines := fetchHelper(t, repo.URL, cache)
	select {
	case <-requested:
	case <-time.After(60 * time.Second):
		t.Fatal("the first lockstep never asked for the jar")
	}
	second, secondLines := fetchHelper(t, repo.URL, cache)
	await(t, secondLines, "said another lockstep is fetching PostgreSQL into "+root+"; waiting for it")
	if _, err := os.Stat(filepath.Join(root, "15.99.0-"+repo.platform)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the installation is in place while its download is under way: %v", err)
	}
	close(release)
	a := await(t, firstLines, "fetched ")
	b := await(t, secondLines, "fetched ")
	if a != b || !strings.HasPrefix(a, "fetched "+filepath.Join(root, "15.99.0-"+repo.platform)) {
		t.Errorf("the first has %q, the second %q", a, b)
	}
	for _, c := range []*exec.Cmd{first, second} {
		if err := c.Wait(); err != nil {
			t.Errorf("a helper exited with %v", err)
		}
	}
	if n := repo.jarGets.Load(); n != 1 {
		t.Errorf("the jar was fetched %d times; want once", n)
	}
}

func TestCleanCacheRemovesFetchedAndTemplates(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
	cache := sharedTempDir(t)
	f, _ := testFetcher(t, repo.URL, cache, FetchOptions{})
	if _, err := f.binaries(context.Background(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(cache, "postgres")
	for _, d := range []string{filepath.Join(cache, "pgdata-15.20-f1", "data"), filepath.Join(root, ".fetch-123")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(cache, "pgdata-15.20-f1", "data", "PG_VERSION"), []byte("15\n"), 0o600)
	// A fetch under way holds the lock: clean waits for it.
	unlock, err := lockFile(context.Background(), filepath.Join(root, ".lock-"+repo.platform), func() {})
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	done := make(chan []CacheItem)
	go func() {
		items, err := cleanCache(context.Background(), cache, "", func() { close(waited) })
		if err != nil {
			t.Error(err)
		}
		done <- items
	}()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("clean did not wait for the fetch under way")
	}
	if _, err := os.Stat(filepath.Join(root, "15.99.0-"+repo.platform)); err != nil {
		t.Fatal("clean removed an installation while a fetch held the lock")
	}
	unlock()
	items := <-done
	var what []string
	for _, it := range items {
		what = append(what, it.What)
	}
	got := strings.Join(what, "; ")
	for _, want := range []string{"fetched PostgreSQL 15.99.0-" + repo.platform, "an unfinished fetch", "template for PostgreSQL 15.20"} {
		if !strings.Contains(got, want) {
			t.Errorf("clean removed %q; want %q among them", got, want)
		}
	}
	if left := leftovers(t, root); len(left) != 0 {
		t.Errorf("left %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, ".lock-"+repo.platform)); err != nil {
		t.Error("clean removed the lock file, which a waiting lockstep may hold")
	}
	if again, _ := cleanCache(context.Background(), cache, "", func() {}); len(again) != 0 {
		t.Errorf("a second clean removed %v", again)
	}
}

// A jar whose bundle is stored with its size after it cannot be read as
// it downloads: it is unpacked from the file once checked.
func TestFetchJarThatCannotStream(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	tiny := tinyJar(t, repo.platform, "15.99")
	zr, err := zip.NewReader(bytes.NewReader(tiny), int64(len(tiny)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, zf := range zr.File {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: zf.Name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := zf.Open()
		io.Copy(w, rc)
		rc.Close()
	}
	zw.Close()
	jar := buf.Bytes()
	if err := streamBundle(bytes.NewReader(jar), t.TempDir(), ""); !errors.Is(err, errNotStreamable) {
		t.Fatalf("streaming a jar of stored entries: %v", err)
	}
	repo.publish("15.99.0", jar)
	f, _ := testFetcher(t, repo.URL, sharedTempDir(t), FetchOptions{})
	b, err := f.binaries(context.Background(), t.TempDir())
	if err != nil || b.Version != "15.99" {
		t.Fatalf("fetched %+v, %v", b, err)
	}
	if link, err := os.Readlink(filepath.Join(filepath.Dir(b.Dir), "lib", "libpq.so.5")); err != nil || link != "libpq.so.5.15" {
		t.Errorf("unpacked from the file: the link is %q, %v", link, err)
	}
}

// Ctrl-C during a download ends the fetch at once, and nothing of it stays.
func TestFetchInterruptedMidDownload(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
	halfway := make(chan struct{})
	repo.setServe(func(w http.ResponseWriter, r *http.Request, jar []byte, _ int) bool {
		w.Header().Set("Content-Length", fmt.Sprint(len(jar)))
		w.Write(jar[:len(jar)/2])
		w.(http.Flusher).Flush()
		close(halfway)
		<-r.Context().Done() // the rest never comes
		return true
	})
	cache := sharedTempDir(t)
	f, _ := testFetcher(t, repo.URL, cache, FetchOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.binaries(ctx, t.TempDir())
		done <- err
	}()
	<-halfway
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("interrupted: %v; want context.Canceled in its chain", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the fetch did not end within 2 s of its interruption")
	}
	if got := leftovers(t, filepath.Join(cache, "postgres")); len(got) != 0 {
		t.Errorf("an interrupted fetch left %v", got)
	}
}

// A download that stops sending is given up after a while, in one line.
func TestFetchStalledDownload(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
	repo.setServe(func(w http.ResponseWriter, r *http.Request, jar []byte, _ int) bool {
		w.Header().Set("Content-Length", fmt.Sprint(len(jar)))
		w.Write(jar[:len(jar)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	})
	cache := sharedTempDir(t)
	f, _ := testFetcher(t, repo.URL, cache, FetchOptions{stall: 300 * time.Millisecond})
	_, err := f.binaries(context.Background(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "stopped: no data for 300ms after") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a stalled download: %v", err)
	}
	if got := leftovers(t, filepath.Join(cache, "postgres")); len(got) != 0 {
		t.Errorf("a stalled fetch left %v", got)
	}
}

// With no home directory, lockstep creates none: the fetch is for this run.
func TestFetchWithoutAHome(t *testing.T) {
	t.Parallel()
	repo := newTestRepo(t)
	repo.publish("15.99.0", tinyJar(t, repo.platform, "15.99"))
	home := filepath.Join(sharedTempDir(t), "gone")
	cache := filepath.Join(home, ".cache", "lockstep")
	f, log := testFetcher(t, repo.URL, cache, FetchOptions{})
	scratch := t.TempDir()
	b, err := f.binaries(context.Background(), scratch)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.Dir, scratch) || !strings.Contains(log.String(), home+" does not exist, and lockstep does not create it") {
		t.Errorf("fetched into %s, saying %q", b.Dir, log)
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("the fetch made %s: %v", home, err)
	}
}
