package localapi

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

var errConnRefused error = syscall.ECONNREFUSED

func peerCred(c *net.UnixConn) (Peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if serr != nil {
		return Peer{}, serr
	}
	return Peer{Known: true, PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}
