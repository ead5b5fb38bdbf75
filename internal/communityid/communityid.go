// Package communityid computes Community ID flow hashes, version 1
// (https://github.com/corelight/community-id-spec): a SHA-1 over a 2-byte
// seed, the two addresses, the IP protocol, a pad byte and the two ports,
// with the endpoints in canonical order so both directions of a flow get the
// same ID. ICMP and ICMPv6 type/code pairs are mapped to port equivalents as
// the spec (and Zeek) do.
//
// All functions are pure and safe for concurrent use.
package communityid

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers with port (or port-equivalent) handling.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

// Tuple is one direction of a flow. For ICMP and ICMPv6, SrcPort is the
// message type and DstPort the message code. For protocols other than TCP,
// UDP, SCTP, ICMP and ICMPv6 the ports are ignored.
type Tuple struct {
	Proto   uint8
	SrcIP   netip.Addr
	DstIP   netip.Addr
	SrcPort uint16
	DstPort uint16
}

// Errors returned for tuples that cannot be hashed.
var (
	ErrInvalidAddr   = errors.New("communityid: invalid address")
	ErrMixedFamilies = errors.New("communityid: source and destination are of different address families")
)

// ICMP (RFC 792) and ICMPv6 (RFC 4443 and friends) request/response pairs.
var icmpPairs = map[uint16]uint16{
	8: 0, 0: 8, // echo
	13: 14, 14: 13, // timestamp
	15: 16, 16: 15, // information
	10: 9, 9: 10, // router solicitation / advertisement
	17: 18, 18: 17, // address mask
}

var icmp6Pairs = map[uint16]uint16{
	128: 129, 129: 128, // echo
	130: 131, 131: 130, // MLD query / report
	133: 134, 134: 133, // router solicitation / advertisement
	135: 136, 136: 135, // neighbour solicitation / advertisement
	139: 140, 140: 139, // who-are-you
	144: 145, 145: 144, // home agent address discovery
}

func hasPorts(proto uint8) bool {
	switch proto {
	case ProtoICMP, ProtoTCP, ProtoUDP, ProtoICMPv6, ProtoSCTP:
		return true
	}
	return false
}

// Sum returns the raw SHA-1 digest of the Community ID v1 of t with the given
// seed (0 unless the deployment agreed on another). IPv4-mapped IPv6
// addresses are hashed as IPv4, as they appear on the wire; zones are
// ignored.
func Sum(seed uint16, t Tuple) ([sha1.Size]byte, error) {
	if !t.SrcIP.IsValid() || !t.DstIP.IsValid() {
		return [sha1.Size]byte{}, ErrInvalidAddr
	}
	src, dst := t.SrcIP.Unmap().WithZone(""), t.DstIP.Unmap().WithZone("")
	if src.Is4() != dst.Is4() {
		return [sha1.Size]byte{}, ErrMixedFamilies
	}
	sport, dport := t.SrcPort, t.DstPort
	oneWay := false
	switch t.Proto {
	case ProtoICMP, ProtoICMPv6:
		pairs := icmpPairs
		if t.Proto == ProtoICMPv6 {
			pairs = icmp6Pairs
		}
		if peer, ok := pairs[sport]; ok {
			dport = peer
		} else {
			oneWay = true // type and code hashed as they are, never flipped
		}
	}
	var sb, db [16]byte
	var s, d []byte
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		copy(sb[:], a[:])
		copy(db[:], b[:])
		s, d = sb[:4], db[:4]
	} else {
		sb, db = src.As16(), dst.As16()
		s, d = sb[:], db[:]
	}
	ports := hasPorts(t.Proto)
	if !oneWay {
		c := bytes.Compare(s, d)
		if c > 0 || (c == 0 && ports && sport > dport) {
			s, d = d, s
			sport, dport = dport, sport
		}
	}
	var buf [2 + 16 + 16 + 2 + 4]byte
	n := 0
	binary.BigEndian.PutUint16(buf[n:], seed)
	n += 2
	n += copy(buf[n:], s)
	n += copy(buf[n:], d)
	buf[n] = t.Proto
	buf[n+1] = 0
	n += 2
	if ports {
		binary.BigEndian.PutUint16(buf[n:], sport)
		binary.BigEndian.PutUint16(buf[n+2:], dport)
		n += 4
	}
	return sha1.Sum(buf[:n]), nil
}

// ID returns the Community ID v1 string of t: "1:" followed by the base64 of
// Sum.
func ID(seed uint16, t Tuple) (string, error) {
	sum, err := Sum(seed, t)
	if err != nil {
		return "", err
	}
	var out [2 + 28]byte
	out[0], out[1] = '1', ':'
	base64.StdEncoding.Encode(out[2:], sum[:])
	return string(out[:]), nil
}
