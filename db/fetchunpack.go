package db

// Unpacking a bundle: the .txz inside the jar, read as the jar downloads
// (or from the file), decompressed by the xz program or the Go decoder,
// every entry kept inside the installation's directory.

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/xi2/xz"
)

// unpackBundle unpacks the .txz inside the jar at jar into dst. Every name
// must stay inside dst; modes keep only the execute bits.
func unpackBundle(jar, dst, xzProg string) error {
	zr, err := zip.OpenReader(jar)
	if err != nil {
		return fmt.Errorf("not a whole zip archive: %w", err)
	}
	defer zr.Close()
	var entry *zip.File
	for _, zf := range zr.File {
		if strings.HasSuffix(zf.Name, ".txz") && !zf.FileInfo().IsDir() {
			entry = zf
			break
		}
	}
	if entry == nil {
		return errors.New("it holds no .txz archive")
	}
	rc, err := entry.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := unpackTxz(rc, entry.Name, dst, xzProg); err != nil {
		return err
	}
	// Reading to the end checks the zip entry's CRC-32.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("%s: %w", entry.Name, err)
	}
	return nil
}

// unpackTxz unpacks the tar archive, xz-compressed, that r reads (the
// jar's entry name) into dst.
func unpackTxz(r io.Reader, name, dst, xzProg string) error {
	xr, err := decompressXZ(r, xzProg)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// Decompressing is most of the work: it runs ahead, on a goroutine or
	// a process of its own, while this goroutine writes the files.
	if c, ok := xr.(io.Closer); ok {
		defer c.Close()
	}
	ahead := readAhead(xr)
	defer ahead.Close()
	u := unpacker{root: dst, made: map[string]bool{".": true}, buf: make([]byte, 256<<10)}
	tr := tar.NewReader(ahead)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("%s: %s: %w", name, hdr.Name, err)
		}
	}
	// Reading to the end checks the xz stream's own check.
	if _, err := io.Copy(io.Discard, ahead); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return u.copyLinks()
}

// xzProgram is the xz program, when there is one: it decompresses about
// half again as fast as the Go decoder, on a core of its own.
func xzProgram() string {
	p, _ := exec.LookPath("xz")
	return p
}

// decompressXZ reads the xz stream r decompressed: through the xz program
// prog when there is one, else through the Go decoder.
func decompressXZ(r io.Reader, prog string) (io.Reader, error) {
	if prog == "" {
		return xz.NewReader(bufio.NewReaderSize(r, 256<<10), 0)
	}
	cmd := exec.Command(prog, "-dc", "-T1")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return xz.NewReader(bufio.NewReaderSize(r, 256<<10), 0)
	}
	return &xzProcess{cmd: cmd, out: out, stderr: &stderr}, nil
}

// xzProcess is the output of an xz process; at its end, the process's
// verdict on its input.
type xzProcess struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *bytes.Buffer
	done   bool
}

func (x *xzProcess) Read(p []byte) (int, error) {
	n, err := x.out.Read(p)
	if err == io.EOF && !x.done {
		x.done = true
		if werr := x.cmd.Wait(); werr != nil {
			return n, fmt.Errorf("xz: %s", cmp.Or(lastLine(x.stderr.String()), werr.Error()))
		}
	}
	return n, err
}

// Close ends an xz process that has not finished (its reader stopped at
// an error) and waits for it.
func (x *xzProcess) Close() error {
	if !x.done {
		x.done = true
		x.out.Close()
		_ = x.cmd.Process.Kill()
		_ = x.cmd.Wait()
	}
	return nil
}

// makeInstallDir makes the dir a bundle is unpacked into, which every user
// may read (the server may run as another).
func makeInstallDir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// errNotStreamable is a jar whose .txz cannot be read as it downloads (an
// entry stored with its size after it, or a zip64 one): it is unpacked from
// the downloaded file instead.
var errNotStreamable = errors.New("the jar cannot be read as it downloads")

// streamBundle unpacks the .txz of the jar that r reads as it arrives, from
// the zip's local entry headers (a jar's central directory comes at its
// end): the manifest first, then the bundle.
func streamBundle(r io.Reader, dst, xzProg string) error {
	br := bufio.NewReaderSize(r, 256<<10)
	for {
		var h [30]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return fmt.Errorf("not a whole zip archive: %w", err)
		}
		switch binary.LittleEndian.Uint32(h[0:]) {
		case 0x04034b50: // a local file header
		case 0x02014b50, 0x06054b50: // the central directory: no entry left
			return errors.New("it holds no .txz archive")
		default:
			return errors.New("not a zip archive")
		}
		flags, method := binary.LittleEndian.Uint16(h[6:]), binary.LittleEndian.Uint16(h[8:])
		csize := binary.LittleEndian.Uint32(h[18:])
		nameLen, extraLen := binary.LittleEndian.Uint16(h[26:]), binary.LittleEndian.Uint16(h[28:])
		nameExtra := make([]byte, int(nameLen)+int(extraLen))
		if _, err := io.ReadFull(br, nameExtra); err != nil {
			return fmt.Errorf("not a whole zip archive: %w", err)
		}
		name := string(nameExtra[:nameLen])
		const sizeAfter = 0x8 // the sizes follow the data, in a data descriptor
		var body io.Reader
		switch {
		case csize == 0xffffffff:
			return errNotStreamable // zip64
		case method == zip.Deflate:
			body = flate.NewReader(br) // stops at the deflate stream's end
		case method == zip.Store && flags&sizeAfter == 0:
			body = io.LimitReader(br, int64(csize))
		default:
			return errNotStreamable
		}
		if strings.HasSuffix(name, ".txz") {
			return unpackTxz(body, name, dst, xzProg)
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if flags&sizeAfter != 0 {
			// CRC-32 and the two sizes, after an optional signature.
			sig, err := br.Peek(4)
			if err == nil && binary.LittleEndian.Uint32(sig) == 0x08074b50 {
				_, err = br.Discard(4)
			}
			if err == nil {
				_, err = br.Discard(12)
			}
			if err != nil {
				return fmt.Errorf("not a whole zip archive: %w", err)
			}
		}
	}
}

// unpacker writes a tar archive's entries under root.
type unpacker struct {
	root   string
	made   map[string]bool // directories made, slash-separated, relative
	buf    []byte
	copies [][2]string // symbolic links the system refused, made copies of at the end
	total  int64       // bytes written so far
}

// maxUnpacked bounds what a bundle may unpack to (a real one is under
// 100 MB), so that a damaged or hostile one cannot fill the disk.
const maxUnpacked = 2 << 30

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
	if name == "." {
		return nil
	}
	if !fs.ValidPath(name) || strings.Contains(hdr.Name, `\`) {
		return errors.New("a name that leaves the archive's directory")
	}
	to := filepath.Join(u.root, filepath.FromSlash(name))
	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.mkdir(name)
	case tar.TypeReg:
		if err := u.mkdir(path.Dir(name)); err != nil {
			return err
		}
		if u.total += hdr.Size; u.total > maxUnpacked {
			return fmt.Errorf("the archive unpacks to more than %s", humanSize(maxUnpacked))
		}
		mode := fs.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			mode = 0o755
		}
		out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(out, r, u.buf)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != hdr.Size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		return os.Chmod(to, mode) // whatever the umask
	case tar.TypeSymlink, tar.TypeLink:
		target := hdr.Linkname
		if hdr.Typeflag == tar.TypeSymlink {
			target = path.Join(path.Dir(name), hdr.Linkname)
		}
		target = path.Clean(strings.TrimPrefix(target, "./"))
		if path.IsAbs(hdr.Linkname) || !fs.ValidPath(target) {
			return errors.New("a link that leaves the archive's directory")
		}
		if err := u.mkdir(path.Dir(name)); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeLink {
			return os.Link(filepath.Join(u.root, filepath.FromSlash(target)), to)
		}
		if err := os.Symlink(filepath.FromSlash(hdr.Linkname), to); err != nil {
			// Windows lets few users make symbolic links: a copy will do.
			u.copies = append(u.copies, [2]string{target, name})
		}
		return nil
	default:
		return nil // devices, FIFOs: nothing a PostgreSQL installation needs
	}
}

func (u *unpacker) mkdir(name string) error {
	if u.made[name] {
		return nil
	}
	if err := u.mkdir(path.Dir(name)); err != nil {
		return err
	}
	dir := filepath.Join(u.root, filepath.FromSlash(name))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	u.made[name] = true
	return os.Chmod(dir, 0o755)
}

func (u *unpacker) copyLinks() error {
	c := newCopier(nil)
	for _, l := range u.copies {
		src := filepath.Join(u.root, filepath.FromSlash(l[0]))
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("%s links to %s, which the archive lacks", l[1], l[0])
		}
		if _, _, err := c.file(src, filepath.Join(u.root, filepath.FromSlash(l[1])), st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// findBinDir is the directory under root holding initdb and postgres: bin/
// in the zonky.io bundles; found by a walk in archives laid out otherwise.
func findBinDir(root string) (string, error) {
	has := func(dir string) bool {
		return isExecutable(filepath.Join(dir, "initdb"+exeSuffix)) && isExecutable(filepath.Join(dir, "postgres"+exeSuffix))
	}
	if has(filepath.Join(root, "bin")) {
		return "bin", nil
	}
	var found string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || found != "" {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if strings.Count(filepath.ToSlash(rel), "/") > 5 {
			return filepath.SkipDir
		}
		if has(p) {
			found = rel
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		return "", errors.New("it has no initdb and postgres")
	}
	return found, nil
}

// aheadReader reads its source on a goroutine of its own, up to eight
// chunks ahead of its reader.
type aheadReader struct {
	chunks chan []byte
	err    error // the source's, once chunks is closed
	cur    []byte
	stop   chan struct{}
	once   sync.Once
}

func readAhead(r io.Reader) *aheadReader {
	a := &aheadReader{chunks: make(chan []byte, 8), stop: make(chan struct{})}
	go func() {
		defer close(a.chunks)
		for {
			buf := make([]byte, 256<<10)
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				select {
				case a.chunks <- buf[:n]:
				case <-a.stop:
					return
				}
			}
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if err != nil {
				a.err = err
				return
			}
		}
	}()
	return a
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		c, ok := <-a.chunks
		if !ok {
			return 0, a.err
		}
		a.cur = c
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the reading ahead and waits for it to end.
func (a *aheadReader) Close() error {
	a.once.Do(func() { close(a.stop) })
	for range a.chunks {
	}
	return nil
}
