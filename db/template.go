package db

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// A template is a data directory fresh from initdb, kept in the user's cache
// directory so that a start copies it instead of running initdb again. It is
// made before the server first starts, so it never holds anything of a run.
// Beside the data directory lies a manifest — every directory and file,
// with its mode, size and CRC-32C — written last: a template without one is
// unfinished, and a file that no longer matches it is damage. Either way the
// template is made again.

// templateFormat changes whenever what initdb is asked for changes, so that
// a template made by another lockstep is not used.
const templateFormat = "1"

// manifestName is the manifest's file name inside a template.
const manifestName = "manifest"

// castagnoli is made on first use: making the table at start-up cost every
// lockstep process (a spec run, say) a share of its start for a template copy
// it seldom makes.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// errNoTemplate means there is no template (yet) for this server version.
var errNoTemplate = errors.New("no template")

// templatePath is where the template for PostgreSQL version lives under
// cacheDir (lockstep's own cache dir).
func templatePath(cacheDir, version string) string {
	return filepath.Join(cacheDir, "pgdata-"+version+"-f"+templateFormat)
}

// defaultCacheDir is lockstep's dir in the user's cache directory
// (~/.cache/lockstep, ~/Library/Caches/lockstep), or "" when there is none.
func defaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "lockstep")
}

// entry is one line of a manifest.
type entry struct {
	path string // relative, slash-separated
	dir  bool
	mode fs.FileMode
	size int64
	sum  uint32
}

func (e entry) String() string {
	if e.dir {
		return fmt.Sprintf("d %04o %s", uint32(e.mode), e.path)
	}
	return fmt.Sprintf("f %04o %d %08x %s", uint32(e.mode), e.size, e.sum, e.path)
}

func parseEntry(line string) (entry, error) {
	f := strings.SplitN(line, " ", 5)
	bad := fmt.Errorf("bad manifest line %q", line)
	if len(f) < 3 {
		return entry{}, bad
	}
	mode, err := strconv.ParseUint(f[1], 8, 32)
	if err != nil {
		return entry{}, bad
	}
	e := entry{mode: fs.FileMode(mode)}
	switch {
	case f[0] == "d" && len(f) == 3:
		e.dir, e.path = true, f[2]
	case f[0] == "f" && len(f) == 5:
		size, err1 := strconv.ParseInt(f[2], 10, 64)
		sum, err2 := strconv.ParseUint(f[3], 16, 32)
		if err1 != nil || err2 != nil {
			return entry{}, bad
		}
		e.size, e.sum, e.path = size, uint32(sum), f[4]
	default:
		return entry{}, bad
	}
	if !fs.ValidPath(e.path) {
		return entry{}, bad
	}
	return e, nil
}

// readManifest reads the manifest of the template at tpl.
func readManifest(tpl string) ([]entry, error) {
	if st, err := os.Stat(tpl); err != nil || !st.IsDir() {
		return nil, errNoTemplate
	}
	f, err := os.Open(filepath.Join(tpl, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("its manifest is missing (an unfinished template)")
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []entry
	sc := bufio.NewScanner(f)
	if !sc.Scan() || sc.Text() != "lockstep template "+templateFormat {
		return nil, errors.New("its manifest has no lockstep header")
	}
	for sc.Scan() {
		e, err := parseEntry(sc.Text())
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("its manifest is empty")
	}
	return out, nil
}

// copier copies files, reusing one buffer, and checksums what it reads.
type copier struct {
	buf  []byte
	cred *runAs // the new files' owner; nil: lockstep's user
}

func newCopier(cred *runAs) *copier { return &copier{buf: make([]byte, 256<<10), cred: cred} }

// file copies src to the new file dst (mode perm) and returns the size and
// CRC-32C of what it copied.
func (c *copier) file(src, dst string, perm fs.FileMode) (int64, uint32, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, 0, err
	}
	if c.cred != nil {
		if err := out.Chown(int(c.cred.uid), int(c.cred.gid)); err != nil {
			out.Close()
			return 0, 0, err
		}
	}
	var (
		size int64
		sum  uint32
	)
	for {
		n, rerr := io.ReadFull(in, c.buf)
		if n > 0 {
			sum = crc32.Update(sum, castagnoli(), c.buf[:n])
			if err := writeSparse(out, c.buf[:n], size); err != nil {
				out.Close()
				return 0, 0, err
			}
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return 0, 0, rerr
		}
	}
	// A file that ends in zeros gets its length from Truncate.
	if err := out.Truncate(size); err != nil {
		out.Close()
		return 0, 0, err
	}
	return size, sum, out.Close()
}

// pageSize is PostgreSQL's block size: the unit in which a fresh data dir's
// files are zero or not.
const pageSize = 8192

// writeSparse writes b at offset off of f, skipping every all-zero page,
// which the file system then leaves as a hole: about a quarter of a fresh
// data dir is zeros (most of the first WAL segment), and writing less is
// what makes a copy quick on a busy disk.
func writeSparse(f *os.File, b []byte, off int64) error {
	for len(b) > 0 {
		n := min(pageSize, len(b))
		if !allZero(b[:n]) {
			if _, err := f.WriteAt(b[:n], off); err != nil {
				return err
			}
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// mkdir makes dir with mode perm (umask aside) for the new files' owner.
func (c *copier) mkdir(dir string, perm fs.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil {
		return err
	}
	if err := os.Chmod(dir, perm); err != nil {
		return err
	}
	return c.own(dir)
}

func (c *copier) own(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Lchown(path, int(c.cred.uid), int(c.cred.gid))
}

// useTemplate copies the template at tpl to the new data dir dst, owned by
// cred, checking every file against the manifest as it goes. It returns
// errNoTemplate when there is none; any other error means the template is
// damaged or unreadable, and dst may hold part of a copy.
func useTemplate(tpl, dst string, cred *runAs) error {
	entries, err := readManifest(tpl)
	if err != nil {
		return err
	}
	c := newCopier(cred)
	if err := c.mkdir(dst, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dst, err)
	}
	data := filepath.Join(tpl, "data")
	for _, e := range entries {
		if e.dir {
			if err := c.mkdir(filepath.Join(dst, filepath.FromSlash(e.path)), e.mode); err != nil {
				return fmt.Errorf("creating %s: %w", e.path, err)
			}
		}
	}
	// Creating a file costs the file system more than copying its bytes,
	// and creations in different directories overlap well: the files go in
	// parallel.
	var g errgroup.Group
	g.SetLimit(copyWorkers)
	copiers := make(chan *copier, copyWorkers)
	for range copyWorkers {
		copiers <- newCopier(cred)
	}
	for _, e := range entries {
		if e.dir {
			continue
		}
		g.Go(func() error {
			c := <-copiers
			defer func() { copiers <- c }()
			src, to := filepath.Join(data, filepath.FromSlash(e.path)), filepath.Join(dst, filepath.FromSlash(e.path))
			size, sum, err := c.file(src, to, e.mode)
			if err != nil {
				return fmt.Errorf("copying %s: %w", e.path, errors.Unwrap(err))
			}
			if size != e.size || sum != e.sum {
				return fmt.Errorf("%s is %d bytes with checksum %08x; the manifest says %d bytes, %08x", e.path, size, sum, e.size, e.sum)
			}
			return nil
		})
	}
	return g.Wait()
}

// copyWorkers is how many files a template copy creates at once.
const copyWorkers = 8

// saveTemplate keeps the data dir src, fresh from initdb, as the template
// at tpl. It builds the copy beside tpl and renames it into place, so that
// a template is either whole or absent; when another lockstep got there
// first, its template stays.
func saveTemplate(src, tpl string) (err error) {
	parent := filepath.Dir(tpl)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".making-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	c := newCopier(nil)
	data := filepath.Join(tmp, "data")
	var lines strings.Builder
	lines.WriteString("lockstep template " + templateFormat + "\n")
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(data, rel)
		e := entry{path: filepath.ToSlash(rel), mode: info.Mode().Perm()}
		switch {
		case d.IsDir():
			if err := c.mkdir(to, 0o700); err != nil {
				return err
			}
			if rel == "." {
				return nil
			}
			e.dir = true
		case d.Type().IsRegular():
			if e.size, e.sum, err = c.file(path, to, e.mode); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s is neither a file nor a directory", rel)
		}
		lines.WriteString(e.String() + "\n")
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestName), []byte(lines.String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, tpl); err != nil {
		if _, statErr := os.Stat(filepath.Join(tpl, manifestName)); statErr == nil {
			_ = os.RemoveAll(tmp)
			return nil // another lockstep's template is in place
		}
		return err
	}
	return nil
}
