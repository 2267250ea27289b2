//go:build !linux

package sim

import "net"

// socketUnread cannot tell, here, how many bytes wait in c's socket.
func socketUnread(net.Conn) int { return -1 }
