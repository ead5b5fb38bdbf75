// Package dnstest builds DNS messages and runs a tiny DNS server over
// UDP, for tests of the DNS monitor. A Server is safe for concurrent use.
package dnstest

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Record types used here.
const (
	TypeA     = 1
	TypeCNAME = 5
	TypeMX    = 15
	TypeAAAA  = 28
)

// Name encodes a domain name as uncompressed labels.
func Name(s string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// RR is a resource record: Name is already encoded (Name, or a
// compression pointer such as []byte{0xc0, 12}).
type RR struct {
	Name  []byte
	Type  uint16
	TTL   uint32
	RData []byte
}

// Encode appends the record's wire form to b.
func (r RR) Encode(b []byte) []byte {
	b = append(b, r.Name...)
	b = binary.BigEndian.AppendUint16(b, r.Type)
	b = binary.BigEndian.AppendUint16(b, 1) // IN
	b = binary.BigEndian.AppendUint32(b, r.TTL)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.RData)))
	return append(b, r.RData...)
}

// Query builds a standard query with one question.
func Query(id uint16, name string, qtype uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	b = append(b, Name(name)...)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1)
}

// Response builds the response to query q (its header and question are
// copied; its other sections, such as an EDNS OPT record, are not) with
// rcode and the answers.
func Response(q []byte, rcode uint8, answers ...RR) []byte {
	end := len(q)
	if len(q) > 12 {
		off := 12
		for off < len(q) && q[off] != 0 && q[off] < 64 {
			off += 1 + int(q[off])
		}
		end = min(off+5, len(q))
	}
	b := append([]byte(nil), q[:end]...)
	if len(b) >= 12 {
		clear(b[8:12]) // no authority or additional records
	}
	b[2] |= 0x80            // QR
	b[3] = 0x80 | rcode&0xf // RA
	binary.BigEndian.PutUint16(b[6:], uint16(len(answers)))
	for _, a := range answers {
		b = a.Encode(b)
	}
	return b
}

// A returns an A or AAAA record data.
func A(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

// Server answers DNS queries over UDP from a table.
type Server struct {
	Addr netip.AddrPort
	conn *net.UDPConn
	// Delay is how long it waits before answering, so that a client's
	// socket is still open when a monitor looks it up.
	Delay   time.Duration
	mu      sync.Mutex
	answers map[string][]RR // "name/type" -> answers; absent: NXDOMAIN
	silent  map[string]bool // names never answered
	wg      sync.WaitGroup
}

// Listen starts a server on addr ("127.0.0.1:0", "[::1]:0").
func Listen(addr string) (*Server, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), conn: c, answers: map[string][]RR{}, silent: map[string]bool{}}
	s.wg.Go(s.serve)
	return s, nil
}

// Answer sets the answers for name and type; the records' names may be
// nil, meaning a pointer to the question.
func (s *Server) Answer(name string, qtype uint16, rrs ...RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range rrs {
		if rrs[i].Name == nil {
			rrs[i].Name = []byte{0xc0, 12}
		}
	}
	s.answers[key(name, qtype)] = rrs
}

// Silent makes the server ignore queries for name.
func (s *Server) Silent(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent[strings.ToLower(name)] = true
}

func key(name string, t uint16) string {
	return fmt.Sprintf("%s/%d", strings.ToLower(strings.TrimSuffix(name, ".")), t)
}

// Close stops the server and waits for it.
func (s *Server) Close() error {
	err := s.conn.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		name, qtype, ok := question(q)
		if !ok {
			continue
		}
		s.mu.Lock()
		silent := s.silent[name]
		rrs, found := s.answers[key(name, qtype)]
		s.mu.Unlock()
		if silent {
			continue
		}
		rcode := uint8(0)
		if !found {
			rcode = 3
			// NOERROR with no data if the name has answers of another type.
			s.mu.Lock()
			for k := range s.answers {
				if strings.HasPrefix(k, name+"/") {
					rcode = 0
				}
			}
			s.mu.Unlock()
		}
		resp := Response(q, rcode, rrs...)
		s.wg.Go(func() {
			time.Sleep(s.Delay)
			s.conn.WriteToUDPAddrPort(resp, from)
		})
	}
}

// question reads the question of a query with an uncompressed name.
func question(b []byte) (string, uint16, bool) {
	if len(b) < 12 || binary.BigEndian.Uint16(b[4:]) != 1 {
		return "", 0, false
	}
	var labels []string
	off := 12
	for off < len(b) && b[off] != 0 {
		n := int(b[off])
		if n > 63 || off+1+n > len(b) {
			return "", 0, false
		}
		labels = append(labels, strings.ToLower(string(b[off+1:off+1+n])))
		off += 1 + n
	}
	if off+5 > len(b) {
		return "", 0, false
	}
	return strings.Join(labels, "."), binary.BigEndian.Uint16(b[off+1:]), true
}
