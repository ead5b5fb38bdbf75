package dnsmon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Sizes of the sock_diag wire structures (linux/inet_diag.h).
const (
	nlmsgHdrLen      = 16
	inetDiagReqV2Len = 56
	inetDiagMsgLen   = 72
)

// udpDiag looks up one UDP socket by its addresses over NETLINK_SOCK_DIAG
// (an exact request, not a dump), which costs far less than reading
// /proc/net/udp: the kernel walks its whole UDP hash table for that. It
// is not safe for concurrent use.
type udpDiag struct {
	fd  int // -1 until opened
	seq uint32
	buf []byte
}

func newUDPDiag() *udpDiag { return &udpDiag{fd: -1, buf: make([]byte, 8192)} }

func (d *udpDiag) close() {
	if d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// lookup returns the uid and inode of the UDP socket that receives
// datagrams from remote to local.
func (d *udpDiag) lookup(local, remote netip.AddrPort) (uid uint32, inode uint64, err error) {
	if d.fd < 0 {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if err != nil {
			return 0, 0, fmt.Errorf("dnsmon: open sock_diag socket: %w", err)
		}
		tv := unix.Timeval{Sec: 1}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		d.fd = fd
	}
	family := uint8(unix.AF_INET)
	if !local.Addr().Is4() || !remote.Addr().Is4() {
		family = unix.AF_INET6
	}
	// udp_dump_one looks the socket up with the id's source as the
	// datagram's source (the socket's remote end) and its destination as
	// the socket's local end ("swapped for historical reasons").
	return d.request(family, remote, local, local.Port())
}

func (d *udpDiag) request(family uint8, src, dst netip.AddrPort, localPort uint16) (uint32, uint64, error) {
	d.seq++
	var req [nlmsgHdrLen + inetDiagReqV2Len]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], d.seq)
	r := req[nlmsgHdrLen:]
	r[0], r[1] = family, unix.IPPROTO_UDP
	ne.PutUint32(r[4:], 0xffffffff) // all states
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], src.Port())
	binary.BigEndian.PutUint16(id[2:], dst.Port())
	putAddr(id[4:20], src.Addr(), family)
	putAddr(id[20:36], dst.Addr(), family)
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(d.fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		d.close()
		return 0, 0, fmt.Errorf("dnsmon: sock_diag request: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(d.fd, d.buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			d.close()
			return 0, 0, fmt.Errorf("dnsmon: sock_diag receive: %w", err)
		}
		b := d.buf[:n]
		for len(b) >= nlmsgHdrLen {
			l := int(ne.Uint32(b[0:]))
			typ := ne.Uint16(b[4:])
			seq := ne.Uint32(b[8:])
			if l < nlmsgHdrLen || l > len(b) {
				d.close()
				return 0, 0, errors.New("dnsmon: sock_diag: malformed answer")
			}
			msg := b[nlmsgHdrLen:l]
			b = b[min((l+3)&^3, len(b)):]
			if seq != d.seq {
				continue // the answer to an earlier, timed-out request
			}
			switch typ {
			case unix.NLMSG_ERROR:
				errno := int32(0)
				if len(msg) >= 4 {
					errno = int32(ne.Uint32(msg))
				}
				return 0, 0, fmt.Errorf("dnsmon: sock_diag lookup: %w", unix.Errno(-errno))
			case unix.SOCK_DIAG_BY_FAMILY:
				if len(msg) < inetDiagMsgLen {
					return 0, 0, errors.New("dnsmon: sock_diag: short answer")
				}
				if binary.BigEndian.Uint16(msg[4:]) != localPort {
					return 0, 0, errors.New("dnsmon: sock_diag: another socket")
				}
				rest := msg[4+48:]
				return ne.Uint32(rest[12:]), uint64(ne.Uint32(rest[16:])), nil
			default:
				return 0, 0, fmt.Errorf("dnsmon: sock_diag: answer of type %d", typ)
			}
		}
	}
}

// putAddr writes a as an inet_diag address of family (IPv4 in the first
// word; IPv4 in IPv6 as a mapped address).
func putAddr(dst []byte, a netip.Addr, family uint8) {
	if family == unix.AF_INET {
		b := a.As4()
		copy(dst, b[:])
		return
	}
	b := a.As16()
	copy(dst, b[:])
}
