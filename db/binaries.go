package db

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Binaries are the PostgreSQL server programs of one installation.
type Binaries struct {
	Dir     string // the bin directory holding initdb and postgres
	Version string // as printed by postgres --version, e.g. "15.20"
	major   int
	minor   int
}

// ErrNoServerBinaries is returned when no initdb/postgres pair is found.
var ErrNoServerBinaries = errors.New("no PostgreSQL server binaries found")

// searchGlobs are the usual places server packages install to, besides PATH:
// Debian/Ubuntu, RHEL/PGDG, Homebrew (Apple silicon and Intel), source builds.
var searchGlobs = [...]string{
	"/usr/lib/postgresql/*/bin",
	"/usr/pgsql-*/bin",
	"/opt/homebrew/opt/postgresql@*/bin",
	"/opt/homebrew/opt/postgresql/bin",
	"/opt/homebrew/bin",
	"/usr/local/opt/postgresql@*/bin",
	"/usr/local/opt/postgresql/bin",
	"/usr/local/pgsql/bin",
	"/usr/local/bin",
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// FindBinaries returns the newest PostgreSQL server installation on PATH or
// in the usual Debian, RHEL and Homebrew locations.
func FindBinaries() (Binaries, error) {
	return findBinaries(os.Getenv("PATH"), searchGlobs[:])
}

func findBinaries(path string, globs []string) (Binaries, error) {
	dirs := filepath.SplitList(path)
	for _, g := range globs {
		m, _ := filepath.Glob(g)
		dirs = append(dirs, m...)
	}
	seen := map[string]bool{}
	var found []Binaries
	for _, d := range dirs {
		if d == "" {
			continue
		}
		initdb := filepath.Join(d, "initdb")
		postgres := filepath.Join(d, "postgres")
		real, err := filepath.EvalSymlinks(postgres)
		if err != nil || seen[real] || !isExecutable(initdb) || !isExecutable(postgres) {
			continue
		}
		seen[real] = true
		out, err := exec.Command(postgres, "--version").Output()
		if err != nil {
			continue
		}
		m := versionRE.FindStringSubmatch(string(out))
		if m == nil {
			continue
		}
		b := Binaries{Dir: d, Version: m[1]}
		b.major, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			b.minor, _ = strconv.Atoi(m[2])
			b.Version += "." + m[2]
		}
		found = append(found, b)
	}
	if len(found) == 0 {
		return Binaries{}, fmt.Errorf("%w (looked for initdb and postgres on PATH and in %s); "+
			"install the PostgreSQL server package (e.g. apt-get install postgresql, brew install postgresql), "+
			"or run `docker compose up -d` and pass --dsn postgres://postgres:lockstep@localhost:PORT/postgres, "+
			"or pass --dsn / DATABASE_URL for any server you have",
			ErrNoServerBinaries, strings.Join(globs, ", "))
	}
	sort.SliceStable(found, func(i, j int) bool {
		if found[i].major != found[j].major {
			return found[i].major > found[j].major
		}
		return found[i].minor > found[j].minor
	})
	return found[0], nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
