package siem

import (
	"net"

	"golang.org/x/sys/unix"
)

// unackedBytes is the number of bytes in the socket's send queue: written
// by us but not yet acknowledged by the peer (SIOCOUTQ).
func unackedBytes(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		return 0, err
	}
	return n, ierr
}
