package sim

import (
	"net"
	"syscall"

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
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	}); err != nil {
		return -1
	}
	return n
}
