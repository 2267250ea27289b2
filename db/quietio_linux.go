package db

import (
	"context"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Quiet reads and writes. Every system call a Go program makes through the
// syscall package tells the scheduler it is entering one; when the
// scheduler's monitor thread (sysmon) is asleep — as it is whenever the
// process has waited for the server — that wakes it, and it then polls
// every 20 µs until the process waits again. A run that sends one short
// statement at a time (lockstep spec, the isolation tester's way) paid
// about two extra thread switches a statement for it: a fifth of its CPU.
// A socket lockstep reads and writes is non-blocking, so its reads and
// writes return at once: quietConn makes them without telling the
// scheduler (syscall.RawSyscall), and waits for the socket as net.Conn
// does, through the runtime's poller (syscall.RawConn), deadlines and all.

// quietDial dials as pgx's default dialer does and wraps the connection.
func quietDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if uc, ok := c.(*net.UnixConn); ok {
			if q, err := newQuietUnix(uc); err == nil {
				return q, nil
			}
		}
		sc, ok := c.(syscall.Conn)
		if !ok {
			return c, nil
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return c, nil
		}
		return &quietConn{Conn: c, sc: sc, raw: raw}, nil
	}
}

// quietConn is a socket whose reads and writes do not wake the scheduler's
// monitor thread.
type quietConn struct {
	net.Conn
	sc  syscall.Conn
	raw syscall.RawConn
}

// SyscallConn is the socket's own (Engine.Unread counts its unread bytes).
func (c *quietConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }

func (c *quietConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait for the poller to say it is readable
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *quietConn) Write(b []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for written < len(b) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[written])), uintptr(len(b)-written))
			switch e {
			case 0:
				written += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait for room
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return written, c.opError("write", err)
	case errno != 0:
		return written, c.opError("write", errno)
	}
	return written, nil
}

// opError words err as net.Conn's own reads and writes do.
func (c *quietConn) opError(op string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
