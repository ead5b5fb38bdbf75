package dnsmon

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon/dnstest"
)

var ptrQ = []byte{0xc0, 12} // a pointer to the question name

// realResponse is a typical resolver answer: a CNAME chain (the second
// name compressed against the first target), addresses, and a record type
// that is not kept.
func realResponse() []byte {
	q := dnstest.Query(0xbeef, "WWW.Example.COM", dnstest.TypeA)
	cname := append([]byte{3, 'c', 'd', 'n'}, 0xc0, 12+4) // cdn.example.com, against the question
	return dnstest.Response(q, 0,
		dnstest.RR{Name: ptrQ, Type: dnstest.TypeCNAME, TTL: 300, RData: cname},
		dnstest.RR{Name: []byte{0xc0, 12 + 17 + 4 + 12}, Type: dnstest.TypeA, TTL: 60, RData: dnstest.A("198.51.100.20")},
		dnstest.RR{Name: ptrQ, Type: dnstest.TypeMX, TTL: 60, RData: append([]byte{0, 10}, ptrQ...)},
		dnstest.RR{Name: ptrQ, Type: dnstest.TypeAAAA, TTL: 1 << 31, RData: dnstest.A("2001:db8::20")},
	)
}

func TestParseMessage(t *testing.T) {
	m, err := ParseMessage(dnstest.Query(7, "update.example.org", dnstest.TypeAAAA))
	if err != nil {
		t.Fatal(err)
	}
	want := &Message{ID: 7, Name: "update.example.org", Type: TypeAAAA, Class: 1}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("query: %+v", m)
	}

	m, err = ParseMessage(realResponse())
	if err != nil {
		t.Fatal(err)
	}
	want = &Message{ID: 0xbeef, Response: true, Name: "www.example.com", Type: TypeA, Class: 1, AnswerCount: 4, Answers: []Answer{
		{Type: TypeCNAME, TTL: 300, Target: "cdn.example.com"},
		{Type: TypeA, TTL: 60, Addr: netip.MustParseAddr("198.51.100.20")},
		{Type: TypeAAAA, TTL: 0, Addr: netip.MustParseAddr("2001:db8::20")},
	}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("response:\n%+v\nwant\n%+v", m, want)
	}

	// NXDOMAIN, truncated, odd bytes in a label, the root.
	q := dnstest.Query(9, "x", dnstest.TypeA)
	q = append(q[:12], append([]byte{3, 'a', '.', 0xff, 0}, q[12+3:]...)...)
	r := dnstest.Response(q, 3)
	r[2] |= 0x02
	m, err = ParseMessage(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != `a\046\255` || m.RCode != 3 || !m.Truncated || RCodeName(m.RCode) != "NXDomain" {
		t.Fatalf("%+v", m)
	}
	m, err = ParseMessage(dnstest.Query(1, ".", 2))
	if err != nil || m.Name != "." || TypeName(m.Type) != "NS" {
		t.Fatalf("root: %+v %v", m, err)
	}

	// At most MaxAnswers are kept; all are counted.
	var rrs []dnstest.RR
	for i := 0; i < MaxAnswers+5; i++ {
		rrs = append(rrs, dnstest.RR{Name: ptrQ, Type: dnstest.TypeA, TTL: 1, RData: []byte{192, 0, 2, byte(i)}})
	}
	m, err = ParseMessage(dnstest.Response(dnstest.Query(1, "many.example", dnstest.TypeA), 0, rrs...))
	if err != nil || len(m.Answers) != MaxAnswers || m.AnswerCount != MaxAnswers+5 {
		t.Fatalf("many answers: %d of %d, %v", len(m.Answers), m.AnswerCount, err)
	}
}

func TestParseMessageRefuses(t *testing.T) {
	q := dnstest.Query(1, "a.example", dnstest.TypeA)
	set := func(b []byte, off int, v ...byte) []byte {
		c := append([]byte(nil), b...)
		copy(c[off:], v)
		return c
	}
	long := dnstest.Query(1, strings.Repeat(strings.Repeat("a", 63)+".", 4), dnstest.TypeA)
	resp := func(rrs ...dnstest.RR) []byte { return dnstest.Response(q, 0, rrs...) }
	qEnd := len(q)
	cases := map[string][]byte{
		"empty":              nil,
		"short header":       q[:11],
		"no question":        set(q, 4, 0, 0),
		"two questions":      set(q, 4, 0, 2),
		"question cut":       q[:len(q)-2],
		"name cut":           q[:14],
		"self pointer":       set(q, 12, 0xc0, 12),
		"forward pointer":    set(q, 12, 0xc0, 20),
		"pointer cut":        append(q[:12:12], 0xc0),
		"label type 0x40":    set(q, 12, 0x41),
		"label type 0x80":    set(q, 12, 0x81),
		"name too long":      long,
		"query with answers": set(q, 6, 0, 1),
		"answer missing":     set(resp(), 6, 0, 1),
		"answer cut":         resp(dnstest.RR{Name: ptrQ, Type: dnstest.TypeA, RData: []byte{1, 2, 3, 4}})[:qEnd+8],
		"rdata cut":          resp(dnstest.RR{Name: ptrQ, Type: dnstest.TypeA, RData: []byte{1, 2, 3, 4}})[:qEnd+13],
		"A of 5 bytes":       resp(dnstest.RR{Name: ptrQ, Type: dnstest.TypeA, RData: []byte{1, 2, 3, 4, 5}}),
		"AAAA of 4 bytes":    resp(dnstest.RR{Name: ptrQ, Type: dnstest.TypeAAAA, RData: []byte{1, 2, 3, 4}}),
		"CNAME longer":       resp(dnstest.RR{Name: ptrQ, Type: dnstest.TypeCNAME, RData: append(dnstest.Name("b.example"), 0)}),
		"CNAME shorter":      resp(dnstest.RR{Name: ptrQ, Type: dnstest.TypeCNAME, RData: dnstest.Name("b.example")[:4]}),
		"CNAME loop":         resp(dnstest.RR{Name: ptrQ, Type: dnstest.TypeCNAME, RData: []byte{0xc0, byte(qEnd + 12)}}),
		"answer name loop":   resp(dnstest.RR{Name: []byte{0xc0, byte(qEnd)}, Type: dnstest.TypeA, RData: []byte{1, 2, 3, 4}}),
	}
	for name, b := range cases {
		if m, err := ParseMessage(b); err == nil {
			t.Errorf("%s: parsed %+v", name, m)
		}
	}
	// A pointer chain within the bound parses; one longer does not.
	chain := func(n int) []byte {
		b := append([]byte(nil), q[:12]...)
		b = append(b, 1, 'a', 0) // offset 12: "a"
		prev := 12
		for i := 0; i < n; i++ {
			at := len(b)
			b = append(b, 1, 'a', 0xc0, byte(prev))
			prev = at
		}
		qoff := len(b)
		b = append(b, 0xc0, byte(prev), 0, 1, 0, 1)
		binary.BigEndian.PutUint16(b[4:], 1)
		// The question is the last name: move it first by pointing the
		// header's question at it is not possible, so parse it directly.
		_, _, err := readName(b, qoff)
		if err != nil {
			return nil
		}
		return b
	}
	if chain(maxPointers-1) == nil || chain(maxPointers+1) != nil {
		t.Error("the pointer bound is not applied as documented")
	}
}

func TestTypeAndRCodeNames(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{TypeName(TypeA), "A"}, {TypeName(TypeHTTPS), "HTTPS"}, {TypeName(65280), "TYPE65280"},
		{RCodeName(0), "NoError"}, {RCodeName(2), "ServError"}, {RCodeName(15), "RCODE15"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func FuzzParseDNS(f *testing.F) {
	f.Add(dnstest.Query(7, "update.example.org", dnstest.TypeAAAA))
	f.Add(realResponse())
	f.Add(dnstest.Response(dnstest.Query(9, "nx.example", dnstest.TypeA), 3))
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		if len(m.Answers) > MaxAnswers || len(m.Answers) > m.AnswerCount {
			t.Fatalf("%d answers kept of %d", len(m.Answers), m.AnswerCount)
		}
		if m.Name == "" || len(m.Name) > 4*maxNameWire {
			t.Fatalf("name %q", m.Name)
		}
		for _, a := range m.Answers {
			switch a.Type {
			case TypeA, TypeAAAA:
				if !a.Addr.IsValid() {
					t.Fatalf("answer %+v", a)
				}
			case TypeCNAME:
				if a.Target == "" {
					t.Fatalf("answer %+v", a)
				}
			default:
				t.Fatalf("answer of type %d kept", a.Type)
			}
		}
	})
}
