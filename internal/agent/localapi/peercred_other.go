//go:build !linux

package localapi

import (
	"errors"
	"net"
	"syscall"
)

var errConnRefused error = syscall.ECONNREFUSED

// peerCred is not implemented here: unidentified peers are refused.
func peerCred(*net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("peer credentials are not supported on this system")
}
