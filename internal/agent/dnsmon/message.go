package dnsmon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Message is what the monitor reads of a DNS message (RFC 1035 section
// 4): the header, the one question and the answer section's A, AAAA and
// CNAME records.
type Message struct {
	ID          uint16
	Response    bool
	Opcode      uint8
	RCode       uint8 // the header's 4 bits (an EDNS extended rcode is not read)
	Truncated   bool
	Name        string // question name, as Query.Name
	Type        uint16 // question type
	Class       uint16 // question class
	AnswerCount int
	Answers     []Answer // at most MaxAnswers, class IN only
}

const (
	headerLen = 12
	// maxNameWire is the longest name on the wire (RFC 1035 2.3.4).
	maxNameWire = 255
	// maxPointers bounds the compression pointers followed in one name;
	// pointers must also point backwards, so no name loops.
	maxPointers = 32
	classIN     = 1
)

var errShort = errors.New("message too short")

// ParseMessage parses a DNS message strictly: a header, exactly one
// question, and well-formed answer records (names with compression
// pointers that point backwards, at most maxPointers of them, at most 255
// bytes; record data within the message and of the right length for A,
// AAAA and CNAME). The authority and additional sections are not read.
func ParseMessage(b []byte) (*Message, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("dnsmon: %w (%d bytes)", errShort, len(b))
	}
	be := binary.BigEndian
	flags := be.Uint16(b[2:])
	m := &Message{
		ID:        be.Uint16(b[0:]),
		Response:  flags&0x8000 != 0,
		Opcode:    uint8(flags>>11) & 0xf,
		Truncated: flags&0x0200 != 0,
		RCode:     uint8(flags & 0xf),
	}
	qd, an := be.Uint16(b[4:]), be.Uint16(b[6:])
	if qd != 1 {
		return nil, fmt.Errorf("dnsmon: %d questions, want 1", qd)
	}
	m.AnswerCount = int(an)
	off := headerLen
	name, off, err := readName(b, off)
	if err != nil {
		return nil, fmt.Errorf("dnsmon: question name: %w", err)
	}
	if len(b)-off < 4 {
		return nil, fmt.Errorf("dnsmon: question: %w", errShort)
	}
	m.Name, m.Type, m.Class = name, be.Uint16(b[off:]), be.Uint16(b[off+2:])
	off += 4
	if !m.Response && an != 0 {
		return nil, fmt.Errorf("dnsmon: a query with %d answers", an)
	}
	for i := 0; i < int(an); i++ {
		_, off, err = skipName(b, off)
		if err != nil {
			return nil, fmt.Errorf("dnsmon: answer %d name: %w", i, err)
		}
		if len(b)-off < 10 {
			return nil, fmt.Errorf("dnsmon: answer %d: %w", i, errShort)
		}
		typ, class := be.Uint16(b[off:]), be.Uint16(b[off+2:])
		ttl := be.Uint32(b[off+4:])
		rdlen := int(be.Uint16(b[off+8:]))
		off += 10
		if len(b)-off < rdlen {
			return nil, fmt.Errorf("dnsmon: answer %d data: %w", i, errShort)
		}
		rdata := b[off : off+rdlen]
		if ttl > 1<<31-1 {
			ttl = 0 // RFC 2181 section 8
		}
		if class == classIN {
			var a Answer
			ok := true
			switch typ {
			case TypeA:
				if rdlen != 4 {
					return nil, fmt.Errorf("dnsmon: answer %d: A record of %d bytes", i, rdlen)
				}
				a = Answer{Type: TypeA, TTL: ttl, Addr: netip.AddrFrom4([4]byte(rdata))}
			case TypeAAAA:
				if rdlen != 16 {
					return nil, fmt.Errorf("dnsmon: answer %d: AAAA record of %d bytes", i, rdlen)
				}
				a = Answer{Type: TypeAAAA, TTL: ttl, Addr: netip.AddrFrom16([16]byte(rdata))}
			case TypeCNAME:
				// The target may point back into the message, but its
				// own bytes must fill the record data exactly.
				target, end, err := readName(b[:off+rdlen], off)
				if err != nil {
					return nil, fmt.Errorf("dnsmon: answer %d CNAME: %w", i, err)
				}
				if end != off+rdlen {
					return nil, fmt.Errorf("dnsmon: answer %d: CNAME of %d bytes in %d bytes of data", i, end-off, rdlen)
				}
				a = Answer{Type: TypeCNAME, TTL: ttl, Target: target}
			default:
				ok = false
			}
			if ok && len(m.Answers) < MaxAnswers {
				m.Answers = append(m.Answers, a)
			}
		}
		off += rdlen
	}
	return m, nil
}

// skipName reads a name for its length only.
func skipName(b []byte, off int) (string, int, error) {
	return walkName(b, off, nil)
}

// readName reads the name at off and returns it in presentation form and
// the offset after its bytes in place (after the first pointer, if any).
func readName(b []byte, off int) (string, int, error) {
	var sb strings.Builder
	_, end, err := walkName(b, off, &sb)
	if err != nil {
		return "", 0, err
	}
	if sb.Len() == 0 {
		return ".", end, nil
	}
	return sb.String(), end, nil
}

// walkName follows the labels and pointers of the name at off, writing
// its labels to sb (if not nil) lower-cased and separated by dots, with
// bytes other than letters, digits, '-' and '_' escaped as \DDD.
func walkName(b []byte, off int, sb *strings.Builder) (string, int, error) {
	end := -1 // offset after the name in place
	wire := 0 // bytes of the name as if uncompressed
	pointers := 0
	lowest := off // a pointer must go below where the labels it ends began
	for {
		if off >= len(b) {
			return "", 0, errShort
		}
		c := b[off]
		switch c & 0xc0 {
		case 0xc0:
			if off+1 >= len(b) {
				return "", 0, errShort
			}
			ptr := int(c&0x3f)<<8 | int(b[off+1])
			if end < 0 {
				end = off + 2
			}
			if pointers++; pointers > maxPointers {
				return "", 0, errors.New("too many compression pointers")
			}
			if ptr >= lowest {
				return "", 0, fmt.Errorf("compression pointer to %d does not point backwards", ptr)
			}
			off, lowest = ptr, ptr
			continue
		case 0x40, 0x80:
			return "", 0, fmt.Errorf("label type %#x not supported", c&0xc0)
		}
		n := int(c)
		wire += 1 + n
		if wire > maxNameWire {
			return "", 0, errors.New("name longer than 255 bytes")
		}
		if n == 0 {
			if end < 0 {
				end = off + 1
			}
			return "", end, nil
		}
		if off+1+n > len(b) {
			return "", 0, errShort
		}
		if sb != nil {
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			for _, ch := range b[off+1 : off+1+n] {
				switch {
				case 'A' <= ch && ch <= 'Z':
					sb.WriteByte(ch + 'a' - 'A')
				case 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9', ch == '-', ch == '_':
					sb.WriteByte(ch)
				default:
					fmt.Fprintf(sb, "\\%03d", ch)
				}
			}
		}
		off += 1 + n
	}
}
