package db

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests serve the bundles themselves, as Maven Central lays them out
// (repo.go's testRepo): this machine cannot reach the real repository.

// tarFile is one entry of a test archive.
type tarFile struct {
	name, body, link string
	mode             int64
	dir              bool
}

// makeTar is a tar archive of files.
func makeTar(t testing.TB, files []tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		switch {
		case f.dir:
			h.Typeflag, h.Size = tar.TypeDir, 0
		case f.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.link, 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(f.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// xzCompress compresses data with the xz program, as the bundles are made
// (tar -cJ); level 0 keeps the tests quick.
func xzCompress(t testing.TB, data []byte) []byte {
	t.Helper()
	return xzLevel(t, data, "-0")
}

// xzLevel compresses data with the xz program at level (-0 … -9).
func xzLevel(t testing.TB, data []byte, level string) []byte {
	t.Helper()
	xzProg, err := exec.LookPath("xz")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("xz is needed to build the test bundles: apt-get install xz-utils")
		}
		t.Skip("xz not installed (apt-get install xz-utils); skipping")
	}
	cmd := exec.Command(xzProg, level, "-c", "-T1")
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("xz: %v: %s", err, stderr.String())
	}
	return out.Bytes()
}

// makeJar wraps a .txz as the bundles do: a jar (zip) with a manifest and
// the archive, deflated.
func makeJar(t testing.TB, platform string, txz []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("META-INF/MANIFEST.MF")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Manifest-Version: 1.0\r\n\r\n")
	goos, arch, _ := strings.Cut(platform, "-")
	w, err = zw.Create("postgres-" + goos + "-" + map[string]string{"amd64": "x86_64", "arm64v8": "arm_64", "i386": "x86_32"}[arch] + ".txz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(txz); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testRepo is a Maven repository on loopback publishing bundles for one
// platform: each jar beside its .sha1 and .md5 (as Maven Central always
// has them; .sha256 when asked), and maven-metadata.xml listing versions.
type testRepo struct {
	*httptest.Server
	platform string

	mu    sync.Mutex
	files map[string][]byte
	// serve, when set, answers a jar request instead of the file.
	serve func(w http.ResponseWriter, r *http.Request, jar []byte, n int) bool

	jarGets atomic.Int32
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	plat, err := zonkyPlatform(runtime.GOOS, runtime.GOARCH)
	if err != nil {
		t.Skip(err)
	}
	r := &testRepo{platform: plat, files: map[string][]byte{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.handle))
	t.Cleanup(r.Close)
	return r
}

func (r *testRepo) dir() string {
	return "/" + zonkyGroup + "/embedded-postgres-binaries-" + r.platform
}

// publish puts jar up as version, with checksum files of algos (default
// sha1 and md5), and lists it in maven-metadata.xml.
func (r *testRepo) publish(version string, jar []byte, algos ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if algos == nil {
		algos = []string{"sha1", "md5"}
	}
	p := fmt.Sprintf("%s/%s/embedded-postgres-binaries-%s-%s.jar", r.dir(), version, r.platform, version)
	r.files[p] = jar
	for _, a := range algos {
		var sum []byte
		switch a {
		case "sha1":
			s := sha1.Sum(jar)
			sum = s[:]
		case "sha256":
			s := sha256.Sum256(jar)
			sum = s[:]
		case "md5":
			s := md5.Sum(jar)
			sum = s[:]
		}
		r.files[p+"."+a] = []byte(hex.EncodeToString(sum))
	}
	var versions []string
	for f := range r.files {
		if strings.HasSuffix(f, ".jar") {
			versions = append(versions, filepath.Base(filepath.Dir(f)))
		}
	}
	slices.Sort(versions)
	var meta strings.Builder
	meta.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>io.zonky.test.postgres</groupId>\n")
	fmt.Fprintf(&meta, "  <artifactId>embedded-postgres-binaries-%s</artifactId>\n  <versioning>\n    <versions>\n", r.platform)
	for _, v := range versions {
		fmt.Fprintf(&meta, "      <version>%s</version>\n", v)
	}
	meta.WriteString("    </versions>\n  </versioning>\n</metadata>\n")
	r.files[r.dir()+"/maven-metadata.xml"] = []byte(meta.String())
}

func (r *testRepo) handle(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	body, ok := r.files[req.URL.Path]
	serve := r.serve
	r.mu.Unlock()
	if !ok {
		http.NotFound(w, req)
		return
	}
	if strings.HasSuffix(req.URL.Path, ".jar") {
		n := int(r.jarGets.Add(1))
		if serve != nil && serve(w, req, body, n) {
			return
		}
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
}

func (r *testRepo) setServe(f func(w http.ResponseWriter, r *http.Request, jar []byte, n int) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.serve = f
}

func TestParseAndMatchVersions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s    string
		want []int
	}{{"17", []int{17}}, {"17.5", []int{17, 5}}, {"17.5.0", []int{17, 5, 0}}, {"", nil}, {"17.x", nil}, {"1.2.3.4", nil}, {"-1", nil}} {
		if got := parseVersion(c.s); !slices.Equal(got, c.want) {
			t.Errorf("parseVersion(%q) = %v; want %v", c.s, got, c.want)
		}
	}
	if !versionMatches([]int{17, 5, 0}, []int{17}) || versionMatches([]int{16, 9, 0}, []int{17}) || !versionMatches([]int{17, 5, 0}, []int{17, 5, 0}) {
		t.Error("versionMatches is wrong")
	}
	for _, ok := range []string{"17", "10", "16.9", "17.5.0"} {
		if err := ValidateFetchVersion(ok); err != nil {
			t.Errorf("ValidateFetchVersion(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"latest", "17.5.0.1", "9", "17-alpine", " 17"} {
		err := ValidateFetchVersion(bad)
		if err == nil || !strings.Contains(err.Error(), "--fetch-postgres") {
			t.Errorf("ValidateFetchVersion(%q) = %v; want a refusal naming the flag", bad, err)
		}
	}
}

func TestZonkyPlatformNames(t *testing.T) {
	t.Parallel()
	for _, c := range [][3]string{
		{"darwin", "arm64", "darwin-arm64v8"}, {"darwin", "amd64", "darwin-amd64"},
		{"windows", "amd64", "windows-amd64"}, {"windows", "386", "windows-i386"},
	} {
		if got, err := zonkyPlatform(c[0], c[1]); err != nil || got != c[2] {
			t.Errorf("zonkyPlatform(%s, %s) = %q, %v; want %q", c[0], c[1], got, err, c[2])
		}
	}
	if got, err := zonkyPlatform("linux", "arm64"); err != nil || !strings.HasPrefix(got, "linux-arm64v8") {
		t.Errorf("zonkyPlatform(linux, arm64) = %q, %v", got, err)
	}
	_, err := zonkyPlatform("freebsd", "amd64")
	if err == nil || !strings.Contains(err.Error(), "freebsd/amd64") || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("freebsd: %v; want one line naming the platform with the install table", err)
	}
}

// An archive may name nothing outside the directory it is unpacked in,
// neither by its names nor by its links.
func TestUnpackRefusesEscapes(t *testing.T) {
	t.Parallel()
	for name, files := range map[string][]tarFile{
		"dot-dot":           {{name: "../evil", body: "x"}},
		"absolute":          {{name: "/tmp/evil", body: "x"}},
		"deep dot-dot":      {{name: "bin/../../evil", body: "x"}},
		"absolute link":     {{name: "lib/passwd", link: "/etc/passwd"}},
		"link that escapes": {{name: "lib/up", link: "../../etc"}},
	} {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			u := unpacker{root: dst, made: map[string]bool{".": true}, buf: make([]byte, 4096)}
			var err error
			for _, f := range files {
				tr := makeTar(t, []tarFile{f})
				r := tar.NewReader(bytes.NewReader(tr))
				hdr, herr := r.Next()
				if herr != nil {
					t.Fatal(herr)
				}
				if err = u.entry(hdr, r); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), "leaves the archive's directory") {
				t.Fatalf("unpacking %v: %v; want a refusal", files, err)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "evil")); err == nil {
				t.Fatal("a file was written outside the directory")
			}
		})
	}
}

func TestBarDrawsAndClears(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	b := newBar(&out, 2_000_000)
	b.Write(make([]byte, 1_000_000))
	if line := b.line(10); !strings.Contains(line, "█████░░░░░") || !strings.Contains(line, " 50%") || !strings.Contains(line, "1.0 MB of 2.0 MB") {
		t.Errorf("half-way bar %q", line)
	}
	if !strings.HasPrefix(out.String(), "\r  [") {
		t.Errorf("the first write drew %q", out.String())
	}
	b.done()
	if !strings.HasSuffix(out.String(), "\r\x1b[K") {
		t.Errorf("done left %q", out.String())
	}
	unknown := newBar(nil, -1)
	unknown.Write(make([]byte, 3_000_000))
	if line := unknown.line(10); !strings.Contains(line, "3.0 MB") || strings.Contains(line, "%") {
		t.Errorf("a bar of unknown size says %q", line)
	}
}
