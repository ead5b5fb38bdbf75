package netmon

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Protocol numbers.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// TCP states as numbered by the kernel (include/net/tcp_states.h). UDP
// sockets report StateEstablished when connected and StateClose otherwise.
const (
	StateEstablished = 1
	StateSynSent     = 2
	StateSynRecv     = 3
	StateFinWait1    = 4
	StateFinWait2    = 5
	StateTimeWait    = 6
	StateClose       = 7
	StateCloseWait   = 8
	StateLastAck     = 9
	StateListen      = 10
	StateClosing     = 11
	StateNewSynRecv  = 12
)

var stateNames = [...]string{
	StateEstablished: "ESTABLISHED", StateSynSent: "SYN_SENT", StateSynRecv: "SYN_RECV",
	StateFinWait1: "FIN_WAIT1", StateFinWait2: "FIN_WAIT2", StateTimeWait: "TIME_WAIT",
	StateClose: "CLOSE", StateCloseWait: "CLOSE_WAIT", StateLastAck: "LAST_ACK",
	StateListen: "LISTEN", StateClosing: "CLOSING", StateNewSynRecv: "NEW_SYN_RECV",
}

// StateName returns the kernel's name for a socket state ("UNKNOWN" if out
// of range).
func StateName(s uint8) string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// Socket is one kernel socket as listed by sock_diag or /proc/net.
type Socket struct {
	Proto  uint8 // ProtoTCP or ProtoUDP
	State  uint8 // see the State constants
	Local  netip.AddrPort
	Remote netip.AddrPort
	UID    uint32
	Inode  uint64 // 0 for sockets no longer owned by a process (TIME_WAIT)
	// Cookie is the kernel's socket cookie (sock_diag only; 0 from
	// /proc/net). It survives the move to TIME_WAIT and differs for a new
	// connection that reuses the same addresses and ports.
	Cookie uint64
}

// maxProcNetLine bounds a line of /proc/net/{tcp,udp}[6].
const maxProcNetLine = 512

// ParseProcNet parses /proc/net/tcp, tcp6, udp or udp6 (proto ProtoTCP or
// ProtoUDP) and appends the sockets to dst. Addresses are hex words in host
// byte order, as the kernel prints them.
func ParseProcNet(dst []Socket, r io.Reader, proto uint8) ([]Socket, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, maxProcNetLine), maxProcNetLine)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue // header
		}
		s, err := parseProcNetLine(sc.Bytes(), proto)
		if err != nil {
			return dst, fmt.Errorf("netmon: /proc/net line %d: %w", line, err)
		}
		dst = append(dst, s)
	}
	if err := sc.Err(); err != nil {
		return dst, fmt.Errorf("netmon: read /proc/net: %w", err)
	}
	return dst, nil
}

// parseProcNetLine parses one socket line:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
func parseProcNetLine(b []byte, proto uint8) (Socket, error) {
	var f [10][]byte
	n := 0
	for n < len(f) {
		b = bytes.TrimLeft(b, " ")
		if len(b) == 0 {
			break
		}
		i := bytes.IndexByte(b, ' ')
		if i < 0 {
			i = len(b)
		}
		f[n], b = b[:i], b[i:]
		n++
	}
	if n < 10 {
		return Socket{}, fmt.Errorf("%d fields, want at least 10", n)
	}
	s := Socket{Proto: proto}
	var err error
	if s.Local, err = parseHexAddrPort(f[1]); err != nil {
		return Socket{}, fmt.Errorf("local address: %w", err)
	}
	if s.Remote, err = parseHexAddrPort(f[2]); err != nil {
		return Socket{}, fmt.Errorf("remote address: %w", err)
	}
	st, err := strconv.ParseUint(string(f[3]), 16, 8)
	if err != nil {
		return Socket{}, fmt.Errorf("state %q: %w", f[3], err)
	}
	s.State = uint8(st)
	uid, err := strconv.ParseUint(string(f[7]), 10, 32)
	if err != nil {
		return Socket{}, fmt.Errorf("uid %q: %w", f[7], err)
	}
	s.UID = uint32(uid)
	if s.Inode, err = strconv.ParseUint(string(f[9]), 10, 64); err != nil {
		return Socket{}, fmt.Errorf("inode %q: %w", f[9], err)
	}
	return s, nil
}

// parseHexAddrPort parses "0100007F:0CEA" (IPv4) or 32 hex digits and a
// port (IPv6). Each 32-bit word of the address is in host byte order.
func parseHexAddrPort(b []byte) (netip.AddrPort, error) {
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: no port", b)
	}
	ab, pb := b[:i], b[i+1:]
	port, err := strconv.ParseUint(string(pb), 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: bad port", b)
	}
	var raw [16]byte
	if len(ab) != 8 && len(ab) != 32 {
		return netip.AddrPort{}, fmt.Errorf("%q: address of %d hex digits", b, len(ab))
	}
	if _, err := hex.Decode(raw[:len(ab)/2], ab); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: bad hex", b)
	}
	var out [16]byte
	for w := 0; w < len(ab)/8; w++ {
		// The kernel printed the word as a host-order integer.
		v := binary.BigEndian.Uint32(raw[4*w:])
		binary.NativeEndian.PutUint32(out[4*w:], v)
	}
	var a netip.Addr
	if len(ab) == 8 {
		a = netip.AddrFrom4([4]byte(out[:4]))
	} else {
		a = netip.AddrFrom16(out)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}
