package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lockstep/db"
)

func TestFetchPostgresBadVersionIsOneLine(t *testing.T) {
	t.Parallel()
	_, errOut, code := lockstep(t, "--fetch-postgres", "latest", "db")
	if code != 2 || !strings.Contains(errOut, `invalid --fetch-postgres "latest" (or LOCKSTEP_FETCH_POSTGRES): give a PostgreSQL major version such as 17`) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, said %q", code, errOut)
	}
}

// lockstep clean --cache removes what the cache keeps, and nothing else.
// (Not parallel: it points the user's cache dir elsewhere.)
func TestCleanCache(t *testing.T) {
	// Where the postgres user can enter, so that, run as root, the fetched
	// binaries' place is this cache too and no system dir is touched.
	base, err := os.MkdirTemp("/var/tmp", "lockstep-clean-cache-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(db.SharedFetchRoot); os.Geteuid() == 0 && err == nil {
		t.Skipf("run as root, clean --cache also empties %s, which this machine uses", db.SharedFetchRoot)
	}
	t.Setenv("XDG_CACHE_HOME", base)
	cache := filepath.Join(base, "lockstep")
	fetched := filepath.Join(cache, "postgres", "15.99.0-linux-amd64")
	tpl := filepath.Join(cache, "pgdata-15.20-f1")
	keep := filepath.Join(cache, "notes.txt")
	for _, d := range []string{filepath.Join(fetched, "bin"), filepath.Join(tpl, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(fetched, "bin", "postgres"), make([]byte, 2_000_000), 0o755)
	os.WriteFile(filepath.Join(tpl, "data", "PG_VERSION"), []byte("15\n"), 0o600)
	os.WriteFile(keep, []byte("not lockstep's to remove"), 0o600)
	out, errOut, code := lockstep(t, "clean", "--cache")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"removed fetched PostgreSQL 15.99.0-linux-amd64 (2.0 MB): " + fetched,
		"removed template for PostgreSQL 15.20 (0.0 MB): " + tpl,
		"2.0 MB freed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("clean --cache said:\n%s\nwant %q", out, want)
		}
	}
	for _, gone := range []string{fetched, tpl} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s is still there", gone)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("clean --cache removed a file it did not make: %v", err)
	}
	out, _, code = lockstep(t, "clean", "--cache")
	if code != 0 || !strings.Contains(out, "nothing to remove: lockstep's cache ("+cache+") holds no fetched PostgreSQL and no template") {
		t.Errorf("a second clean --cache: exit %d, %q", code, out)
	}
}
