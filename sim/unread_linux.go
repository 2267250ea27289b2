package sim

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// socketUnread is how many bytes wait in c's socket, read by nobody yet, or -1
// when that cannot be told.
func socketUnread(c net.Conn) int {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	if err := raw.Control(func(fd uintptr) {
		// A raw call, as the sockets' reads and writes are (db.Options.QuietIO):
		// asked after every check of whether a step waits, it would wake
		// the scheduler's monitor thread each time.
		var v int32
		if _, _, errno := unix.RawSyscall(unix.SYS_IOCTL, fd, unix.SIOCINQ, uintptr(unsafe.Pointer(&v))); errno == 0 {
			n = int(v)
		}
	}); err != nil {
		return -1
	}
	return n
}
