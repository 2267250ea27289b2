package db

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"lockstep/lazyre"
)

// Binaries are the PostgreSQL server programs of one installation.
type Binaries struct {
	Dir     string // the bin directory holding initdb and postgres
	Version string // as printed by postgres --version, e.g. "15.20"
	major   int
	minor   int
	// Fetched names the binaries lockstep fetched into its cache, e.g.
	// "17.5.0 for linux-amd64"; "" for binaries installed on the machine.
	Fetched string
}

// templateKey names the template this installation's data dirs are copied
// from: fetched binaries are another build than the installed ones of the
// same version (other options, other libraries), so they get their own.
func (b Binaries) templateKey() string {
	if b.Fetched != "" {
		return b.Version + "-fetched"
	}
	return b.Version
}

// program is the path of the server program name (initdb, postgres) in b.
func (b Binaries) program(name string) string { return filepath.Join(b.Dir, name+exeSuffix) }

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

var versionRE = lazyre.New(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// FindBinaries returns the newest PostgreSQL server installation on PATH or
// in the usual Debian, RHEL and Homebrew locations.
func FindBinaries() (Binaries, error) {
	globs := searchGlobs[:]
	if runtime.GOOS == "windows" {
		// The installer from postgresql.org puts them in Program Files.
		globs = []string{filepath.Join(cmp.Or(os.Getenv("ProgramFiles"), `C:\Program Files`), "PostgreSQL", "*", "bin")}
	}
	return findBinaries(os.Getenv("PATH"), globs)
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
		initdb := filepath.Join(d, "initdb"+exeSuffix)
		postgres := filepath.Join(d, "postgres"+exeSuffix)
		real, err := filepath.EvalSymlinks(postgres)
		if err != nil || seen[real] || !isExecutable(initdb) || !isExecutable(postgres) {
			continue
		}
		seen[real] = true
		b, err := binariesIn(d)
		if err != nil {
			continue
		}
		found = append(found, b)
	}
	if len(found) == 0 {
		return Binaries{}, fmt.Errorf("%w (looked for initdb and postgres on PATH and in %s); "+
			"install the PostgreSQL server package (%s), "+
			"or run `docker compose up -d` and pass --dsn postgres://postgres:lockstep@localhost:PORT/postgres, "+
			"or pass --dsn / DATABASE_URL for any server you have",
			ErrNoServerBinaries, strings.Join(globs, ", "), installTable)
	}
	sort.SliceStable(found, func(i, j int) bool {
		if found[i].major != found[j].major {
			return found[i].major > found[j].major
		}
		return found[i].minor > found[j].minor
	})
	return found[0], nil
}

// installTable is README's table of server packages, in one line.
const installTable = "apt-get install postgresql on Debian and Ubuntu, dnf install postgresql-server postgresql-contrib " +
	"on Fedora and RHEL, brew install postgresql@17 on macOS, the installer from postgresql.org on Windows"

// binariesIn runs dir's postgres --version: the installation in dir, if
// its server program runs here.
func binariesIn(dir string) (Binaries, error) {
	postgres := filepath.Join(dir, "postgres"+exeSuffix)
	out, err := exec.Command(postgres, "--version").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("%s --version: %w", postgres, err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return Binaries{}, fmt.Errorf("%s --version said %q, not a PostgreSQL version", postgres, strings.TrimSpace(string(out)))
	}
	b := Binaries{Dir: dir, Version: m[1]}
	b.major, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		b.minor, _ = strconv.Atoi(m[2])
		b.Version += "." + m[2]
	}
	return b, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() {
		return false
	}
	// Windows keeps no execute bits: a program is a file named .exe.
	return exeSuffix != "" || st.Mode()&0o111 != 0
}

// exeSuffix ends a program's file name: ".exe" on Windows.
var exeSuffix = func() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}()
