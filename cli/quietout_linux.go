package cli

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// quietOut is w, or, when w is standard output going to a file (or to
// /dev/null), a writer to it that does not wake the Go scheduler's monitor
// thread (db.Options.QuietIO says why): a write to a file returns at once.
// A terminal or a pipe, which may make a write wait, is written as ever.
func quietOut(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	st, err := f.Stat()
	if err != nil {
		return w
	}
	if !st.Mode().IsRegular() {
		null, err := os.Stat(os.DevNull)
		if err != nil || !os.SameFile(st, null) {
			return w
		}
	}
	return &quietFile{f: f}
}

// quietFile writes to a file with raw system calls.
type quietFile struct{ f *os.File }

func (q *quietFile) Write(b []byte) (int, error) {
	fd := q.f.Fd()
	written := 0
	for written < len(b) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[written])), uintptr(len(b)-written))
		switch e {
		case 0:
			written += int(r)
		case syscall.EINTR:
		default:
			// Anything else (EAGAIN on a non-blocking file, a full disk) is
			// the file's own write's to handle and to word.
			n, err := q.f.Write(b[written:])
			return written + n, err
		}
	}
	return written, nil
}
