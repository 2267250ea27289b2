package load

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"
)

// socket is a worker's connection once the bench has taken it from pgconn:
// the socket's descriptor, and what a cancel request for its backend needs.
type socket struct {
	fd               int
	pid              uint32
	key              []byte
	network, address string
	dial             pgconn.DialFunc
}

// takeSockets takes the connections' sockets from pgconn (Hijack, its
// documented hand-over) when every one is a plain TCP or Unix socket; it
// returns none, and leaves conns as they are, when one is not (a TLS
// connection's bytes are not the protocol's). Each socket is then held by a descriptor of
// the bench's own and the net.Conn closed: that takes it off Go's network
// poller, which would otherwise be woken by every answer and every write
// for a socket no goroutine waits on (about 8,000 wake-ups a second of an
// idle thread, in a runtime trace).
func takeSockets(ctx context.Context, conns []*pgx.Conn) (socks []*socket, err error) {
	for _, c := range conns {
		if err := c.PgConn().SyncConn(ctx); err != nil {
			return nil, err
		}
		if _, ok := c.PgConn().Conn().(syscall.Conn); !ok {
			return nil, nil
		}
	}
	defer func() {
		if err != nil {
			for _, s := range socks {
				s.close()
			}
			socks = nil
		}
	}()
	for i, c := range conns {
		s, err := takeSocket(c)
		if err != nil {
			return socks, fmt.Errorf("preparing worker %d: %w", i+1, err)
		}
		socks = append(socks, s)
	}
	return socks, nil
}

func takeSocket(c *pgx.Conn) (*socket, error) {
	hc, err := c.PgConn().Hijack()
	if err != nil {
		return nil, err
	}
	defer hc.Conn.Close()
	s := &socket{fd: -1, pid: hc.PID, key: hc.SecretKey, dial: hc.Config.DialFunc}
	// Where cancel requests go: the address connected to (one of several
	// hosts, perhaps), or for a Unix socket, whose peer name is relative,
	// the configured one. pgconn's CancelRequest does the same.
	addr := hc.Conn.RemoteAddr()
	if addr.Network() == "unix" {
		s.network, s.address = pgconn.NetworkAddress(hc.Config.Host, hc.Config.Port)
	} else {
		s.network, s.address = addr.Network(), addr.String()
	}
	rc, err := hc.Conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		s.fd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("duplicating the socket: %w", dupErr)
	}
	// The copy shares the original's non-blocking mode.
	return s, nil
}

// cancel asks the server, on a connection of its own, to cancel the
// statement s's backend is running, and waits for the server to hang up.
func (s *socket) cancel(ctx context.Context) error {
	conn, err := s.dial(ctx, s.network, s.address)
	if err != nil {
		return err
	}
	defer conn.Close()
	// CancelRequest: its length, the code 80877102, the pid, the key.
	msg := make([]byte, 12, 12+len(s.key))
	binary.BigEndian.PutUint32(msg, uint32(12+len(s.key)))
	binary.BigEndian.PutUint32(msg[4:], 80877102)
	binary.BigEndian.PutUint32(msg[8:], s.pid)
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d) // a server that has stopped answering
	}
	// A clean-up ended early (a signal) ends the wait for the hang-up too.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(append(msg, s.key...)); err != nil {
		return err
	}
	_, _ = conn.Read(msg)
	return nil
}

// close says goodbye to the server (Terminate) and closes the socket.
func (s *socket) close() {
	if s.fd >= 0 {
		_, _ = unix.Write(s.fd, []byte{'X', 0, 0, 0, 4})
		_ = unix.Close(s.fd)
		s.fd = -1
	}
}

// The bench's own system calls on its sockets and its epoll set are made
// raw: the Go runtime is not told the driving thread is in the kernel. Told,
// it lets the monitor thread take the processor from a thread that waits
// more than 20 µs and wake another thread to hold it; the waiting thread,
// back from the kernel, then finds no processor free, sleeps, and the
// driving goroutine goes on later on another thread, on another core than
// its backends (README, the strategy benchmark). A raw call keeps the
// processor, so nothing else of the runtime runs on the driver's core; the
// runtime still interrupts a long wait with a signal (EINTR) when it needs
// the processor, for the collector or for another goroutine.

func rawRead(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawEpollWait is epoll_wait(2), as epoll_pwait without a signal mask (the
// call every Linux architecture has).
func rawEpollWait(ep int, events []unix.EpollEvent, msec int) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(unsafe.SliceData(events))),
		uintptr(len(events)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// pinThread locks the calling goroutine to its thread and that thread to
// the k-th processor the process may run on (counting round); unpin, which
// the same goroutine must call before it returns, gives the thread back its
// processors and unlocks it. The thread must outlive the run: the kernel's
// parent-death signal follows the thread that forked a child (golang/go#27505),
// and the runtime ends a thread whose goroutine returns locked to it — if
// that thread had started the throwaway server, the server would get its
// parent-death signal mid-run (db/daemon.go). The pin does nothing when the
// process's processors cannot be read.
func pinThread(k int) (unpin func()) {
	runtime.LockOSThread()
	var all, one unix.CPUSet
	if unix.SchedGetaffinity(0, &all) != nil || all.Count() == 0 {
		return runtime.UnlockOSThread
	}
	unpin = func() {
		_ = unix.SchedSetaffinity(0, &all)
		runtime.UnlockOSThread()
	}
	k %= all.Count()
	for c := 0; c < int(unsafe.Sizeof(all))*8; c++ {
		if !all.IsSet(c) {
			continue
		}
		if k == 0 {
			one.Set(c)
			_ = unix.SchedSetaffinity(0, &one) // no pin is only slower
			return unpin
		}
		k--
	}
	return unpin
}
