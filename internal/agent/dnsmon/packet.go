package dnsmon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Packet is a UDP datagram read from an IP packet.
type Packet struct {
	Src, Dst netip.AddrPort
	Payload  []byte // aliases the packet
}

// Errors of ParsePacket that the monitor counts apart.
var (
	ErrFragment = errors.New("dnsmon: IP fragment")
	ErrNotUDP   = errors.New("dnsmon: not a UDP packet (or behind IPv6 extension headers)")
)

// ParsePacket reads the UDP datagram of an IPv4 or IPv6 packet (starting
// at the IP header, as an AF_PACKET SOCK_DGRAM socket delivers it). It
// refuses fragments (ErrFragment), IPv6 extension headers and other
// protocols (ErrNotUDP), and lengths that disagree with the packet.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < 1 {
		return Packet{}, fmt.Errorf("dnsmon: empty packet")
	}
	be := binary.BigEndian
	var p Packet
	var udp []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return Packet{}, fmt.Errorf("dnsmon: IPv4 header: %w", errShort)
		}
		ihl := int(b[0]&0xf) * 4
		total := int(be.Uint16(b[2:]))
		if ihl < 20 || total < ihl || total > len(b) {
			return Packet{}, fmt.Errorf("dnsmon: IPv4 header length %d, total length %d in %d bytes", ihl, total, len(b))
		}
		if be.Uint16(b[6:])&0x3fff != 0 { // more fragments, or an offset
			return Packet{}, ErrFragment
		}
		if b[9] != 17 {
			return Packet{}, ErrNotUDP
		}
		p.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), 0)
		p.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), 0)
		udp = b[ihl:total] // the rest may be link-layer padding
	case 6:
		if len(b) < 40 {
			return Packet{}, fmt.Errorf("dnsmon: IPv6 header: %w", errShort)
		}
		plen := int(be.Uint16(b[4:]))
		if 40+plen > len(b) {
			return Packet{}, fmt.Errorf("dnsmon: IPv6 payload length %d in %d bytes", plen, len(b)-40)
		}
		if b[6] == 44 {
			return Packet{}, ErrFragment
		}
		if b[6] != 17 {
			return Packet{}, ErrNotUDP
		}
		p.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), 0)
		p.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])).Unmap(), 0)
		udp = b[40 : 40+plen]
	default:
		return Packet{}, fmt.Errorf("dnsmon: IP version %d", b[0]>>4)
	}
	if len(udp) < 8 {
		return Packet{}, fmt.Errorf("dnsmon: UDP header: %w", errShort)
	}
	ulen := int(be.Uint16(udp[4:]))
	if ulen < 8 || ulen > len(udp) {
		return Packet{}, fmt.Errorf("dnsmon: UDP length %d in %d bytes", ulen, len(udp))
	}
	p.Src = netip.AddrPortFrom(p.Src.Addr(), be.Uint16(udp[0:]))
	p.Dst = netip.AddrPortFrom(p.Dst.Addr(), be.Uint16(udp[2:]))
	p.Payload = udp[8:ulen]
	return p, nil
}
