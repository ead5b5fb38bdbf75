package netmon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Sizes of the sock_diag wire structures (linux/inet_diag.h).
const (
	nlmsgHdrLen       = 16
	inetDiagReqV2Len  = 56
	inetDiagMsgLen    = 72
	inetDiagSockIDLen = 48
	nlmsgDone         = 3
	nlmsgError        = 2
	nlmFRequest       = 0x1
	nlmFDump          = 0x300
)

// sockDiag lists sockets over a NETLINK_SOCK_DIAG socket with
// inet_diag_req_v2 dump requests. It is not safe for concurrent use.
type sockDiag struct {
	buf []byte
	seq uint32
}

// list appends the TCP and UDP sockets of both families to dst.
func (d *sockDiag) list(dst []Socket) ([]Socket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return dst, fmt.Errorf("netmon: open sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return dst, fmt.Errorf("netmon: bind sock_diag socket: %w", err)
	}
	if d.buf == nil {
		d.buf = make([]byte, 64<<10)
	}
	for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			if dst, err = d.dump(fd, dst, family, proto); err != nil {
				return dst, err
			}
		}
	}
	return dst, nil
}

func (d *sockDiag) dump(fd int, dst []Socket, family, proto uint8) ([]Socket, error) {
	d.seq++
	var req [nlmsgHdrLen + inetDiagReqV2Len]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], nlmFRequest|nlmFDump)
	ne.PutUint32(req[8:], d.seq)
	r := req[nlmsgHdrLen:]
	r[0], r[1] = family, proto
	ne.PutUint32(r[4:], 0xffffffff) // all states
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return dst, fmt.Errorf("netmon: sock_diag request: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(fd, d.buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return dst, fmt.Errorf("netmon: sock_diag receive: %w", err)
		}
		b := d.buf[:n]
		for len(b) >= nlmsgHdrLen {
			l := int(ne.Uint32(b[0:]))
			typ := ne.Uint16(b[4:])
			seq := ne.Uint32(b[8:])
			if l < nlmsgHdrLen || l > len(b) {
				return dst, fmt.Errorf("netmon: sock_diag: malformed message of length %d", l)
			}
			msg := b[nlmsgHdrLen:l]
			b = b[min(nlmAlign(l), len(b)):]
			if seq != d.seq {
				continue
			}
			switch typ {
			case nlmsgDone:
				return dst, nil
			case nlmsgError:
				if len(msg) >= 4 {
					if errno := int32(ne.Uint32(msg)); errno != 0 {
						return dst, fmt.Errorf("netmon: sock_diag family %d proto %d: %w", family, proto, unix.Errno(-errno))
					}
				}
				return dst, nil
			case unix.SOCK_DIAG_BY_FAMILY:
				if s, ok := parseInetDiagMsg(msg, proto); ok {
					dst = append(dst, s)
				}
			}
		}
	}
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }

// parseInetDiagMsg decodes struct inet_diag_msg.
func parseInetDiagMsg(m []byte, proto uint8) (Socket, bool) {
	if len(m) < inetDiagMsgLen {
		return Socket{}, false
	}
	ne := binary.NativeEndian
	family, state := m[0], m[1]
	id := m[4 : 4+inetDiagSockIDLen]
	sport := binary.BigEndian.Uint16(id[0:])
	dport := binary.BigEndian.Uint16(id[2:])
	var src, dst netip.Addr
	switch family {
	case unix.AF_INET:
		src = netip.AddrFrom4([4]byte(id[4:8]))
		dst = netip.AddrFrom4([4]byte(id[20:24]))
	case unix.AF_INET6:
		src = netip.AddrFrom16([16]byte(id[4:20]))
		dst = netip.AddrFrom16([16]byte(id[20:36]))
	default:
		return Socket{}, false
	}
	rest := m[4+inetDiagSockIDLen:]
	cookie := uint64(ne.Uint32(id[40:])) | uint64(ne.Uint32(id[44:]))<<32
	return Socket{
		Proto:  proto,
		State:  state,
		Local:  netip.AddrPortFrom(src, sport),
		Remote: netip.AddrPortFrom(dst, dport),
		UID:    ne.Uint32(rest[12:]),
		Inode:  uint64(ne.Uint32(rest[16:])),
		Cookie: cookie,
	}, true
}
