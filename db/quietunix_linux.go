package db

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Unix socket tells whoever polls it that it is writable again each time
// the server reads what was sent on it. The runtime's poller asks every
// socket for both directions, so a process waiting for the server's answer
// was woken once for nothing — when the server read the statement — and
// went back to sleep: a second thread switch for every statement (the
// isolation tester, which polls for reading only, is woken once).
//
// quietUnix takes the socket out of the runtime's poller and waits for it
// to be readable through an epoll instance of its own that asks for
// reading only; the runtime's poller watches that instance, which becomes
// ready only when the socket has something to read. Reads and writes are
// raw system calls (quietConn says why). A write that finds the socket's
// buffer full (a statement of hundreds of kilobytes) waits in short sleeps
// for room.

// quietUnix is a Unix-domain connection read and written quietly.
type quietUnix struct {
	fd     int      // the socket, non-blocking, in no poller but ours
	poll   *os.File // an epoll instance watching fd for reading, in the runtime's poller
	pollRC syscall.RawConn
	local  net.Addr
	remote net.Addr

	// mu is held for reading through every system call on fd, and for
	// writing by Close: the descriptor is never closed (and its number
	// reused) under a read or a write.
	mu            sync.RWMutex
	writeDeadline time.Time
	closed        bool
}

// newQuietUnix moves uc's socket to a quietUnix; uc is closed (its socket
// lives on in the copy), or left as it was on an error.
func newQuietUnix(uc *net.UnixConn) (*quietUnix, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, dupErr
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		unix.Close(ep)
		return nil, err
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(fd)
		unix.Close(ep)
		return nil, err
	}
	poll := os.NewFile(uintptr(ep), "lockstep-socket-poll")
	pollRC, err := poll.SyscallConn()
	if err != nil {
		unix.Close(fd)
		poll.Close()
		return nil, err
	}
	q := &quietUnix{fd: fd, poll: poll, pollRC: pollRC, local: uc.LocalAddr(), remote: uc.RemoteAddr()}
	// The socket stays open through its copy: closing uc takes the first
	// descriptor out of the runtime's poller (and the file description
	// with it: O_NONBLOCK, which the copy shares, stays).
	uc.Close()
	return q, nil
}

func (q *quietUnix) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	// The read is made inside the wait: the runtime forgets the poller's
	// word that our epoll instance was ready before it asks f, so f reads
	// the socket itself — a read that finds nothing parks the goroutine
	// until the instance becomes ready (a byte that arrived after that
	// read makes it so), then f reads again. A read that waits costs two
	// reads and the runtime's own wait, where asking the instance before
	// and after the wait cost two more system calls.
	var n int
	var rerr error
	err := q.pollRC.Read(func(uintptr) bool {
		for {
			q.mu.RLock()
			if q.closed {
				q.mu.RUnlock()
				rerr = net.ErrClosed
				return true
			}
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(q.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			q.mu.RUnlock()
			switch e {
			case 0:
				if r == 0 {
					rerr = io.EOF
				}
				n = int(r)
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			default:
				rerr = os.NewSyscallError("read", e)
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, q.opError("read", err)
	case rerr == io.EOF:
		return 0, io.EOF
	case rerr != nil:
		return 0, q.opError("read", rerr)
	}
	return n, nil
}

func (q *quietUnix) Write(b []byte) (int, error) {
	written := 0
	pause := 50 * time.Microsecond
	for written < len(b) {
		q.mu.RLock()
		if q.closed {
			q.mu.RUnlock()
			return written, q.opError("write", net.ErrClosed)
		}
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(q.fd), uintptr(unsafe.Pointer(&b[written])), uintptr(len(b)-written))
		q.mu.RUnlock()
		switch e {
		case 0:
			written += int(r)
			pause = 50 * time.Microsecond
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			return written, q.opError("write", os.NewSyscallError("write", e))
		}
		q.mu.RLock()
		deadline := q.writeDeadline
		q.mu.RUnlock()
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return written, q.opError("write", os.ErrDeadlineExceeded)
		}
		time.Sleep(pause)
		pause = min(2*pause, 2*time.Millisecond)
	}
	return written, nil
}

func (q *quietUnix) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return net.ErrClosed
	}
	q.closed = true
	q.mu.Unlock()
	err := q.poll.Close() // wakes a read waiting on it
	if cerr := unix.Close(q.fd); err == nil {
		err = cerr
	}
	return err
}

func (q *quietUnix) LocalAddr() net.Addr  { return q.local }
func (q *quietUnix) RemoteAddr() net.Addr { return q.remote }

func (q *quietUnix) SetDeadline(t time.Time) error {
	if err := q.SetReadDeadline(t); err != nil {
		return err
	}
	return q.SetWriteDeadline(t)
}

func (q *quietUnix) SetReadDeadline(t time.Time) error { return q.poll.SetReadDeadline(t) }

func (q *quietUnix) SetWriteDeadline(t time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.writeDeadline = t
	return nil
}

// SyscallConn gives the socket for Control (Engine.Unread counts its
// unread bytes); its Read and Write are not for use.
func (q *quietUnix) SyscallConn() (syscall.RawConn, error) { return socketControl{q}, nil }

type socketControl struct{ q *quietUnix }

func (c socketControl) Control(f func(fd uintptr)) error {
	c.q.mu.RLock()
	defer c.q.mu.RUnlock()
	if c.q.closed {
		return net.ErrClosed
	}
	f(uintptr(c.q.fd))
	return nil
}

var errRawIO = errors.New("the socket's raw reads and writes are the connection's own")

func (socketControl) Read(func(fd uintptr) bool) error  { return errRawIO }
func (socketControl) Write(func(fd uintptr) bool) error { return errRawIO }

func (q *quietUnix) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "unix", Source: q.local, Addr: q.remote, Err: err}
}
