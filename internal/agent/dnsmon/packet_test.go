package dnsmon

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon/dnstest"
)

// ipPacket builds an IPv4 or IPv6 UDP packet from src to dst.
func ipPacket(src, dst netip.AddrPort, payload []byte) []byte {
	udp := binary.BigEndian.AppendUint16(nil, src.Port())
	udp = binary.BigEndian.AppendUint16(udp, dst.Port())
	udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(payload)))
	udp = append(udp, 0, 0) // no checksum
	udp = append(udp, payload...)
	if src.Addr().Is4() {
		h := []byte{0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(udp)))
		h = append(h, src.Addr().AsSlice()...)
		h = append(h, dst.Addr().AsSlice()...)
		return append(h, udp...)
	}
	h := []byte{0x60, 0, 0, 0, 0, 0, 17, 64}
	binary.BigEndian.PutUint16(h[4:], uint16(len(udp)))
	h = append(h, src.Addr().AsSlice()...)
	h = append(h, dst.Addr().AsSlice()...)
	return append(h, udp...)
}

var (
	client4 = netip.MustParseAddrPort("192.0.2.10:53211")
	server4 = netip.MustParseAddrPort("192.0.2.1:53")
	client6 = netip.MustParseAddrPort("[2001:db8::10]:40000")
	server6 = netip.MustParseAddrPort("[2001:db8::1]:53")
)

func TestParsePacket(t *testing.T) {
	q := dnstest.Query(1, "a.example", dnstest.TypeA)
	for _, c := range []struct{ src, dst netip.AddrPort }{{client4, server4}, {client6, server6}} {
		b := ipPacket(c.src, c.dst, q)
		p, err := ParsePacket(append(b, 0, 0, 0)) // with link-layer padding
		if err != nil {
			t.Fatal(err)
		}
		if p.Src != c.src || p.Dst != c.dst || string(p.Payload) != string(q) {
			t.Fatalf("%+v", p)
		}
	}
	v4 := ipPacket(client4, server4, q)
	v6 := ipPacket(client6, server6, q)
	mod := func(b []byte, f func(b []byte)) []byte {
		c := append([]byte(nil), b...)
		f(c)
		return c
	}
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":            {nil, nil},
		"version 5":        {mod(v4, func(b []byte) { b[0] = 0x55 }), nil},
		"v4 short":         {v4[:19], nil},
		"v4 ihl 4":         {mod(v4, func(b []byte) { b[0] = 0x44 }), nil},
		"v4 total long":    {mod(v4, func(b []byte) { b[2] = 0xff }), nil},
		"v4 more frags":    {mod(v4, func(b []byte) { b[6] = 0x20 }), ErrFragment},
		"v4 frag offset":   {mod(v4, func(b []byte) { b[7] = 1 }), ErrFragment},
		"v4 tcp":           {mod(v4, func(b []byte) { b[9] = 6 }), ErrNotUDP},
		"v6 short":         {v6[:39], nil},
		"v6 payload long":  {mod(v6, func(b []byte) { b[4] = 0xff }), nil},
		"v6 fragment":      {mod(v6, func(b []byte) { b[6] = 44 }), ErrFragment},
		"v6 hop-by-hop":    {mod(v6, func(b []byte) { b[6] = 0 }), ErrNotUDP},
		"udp short":        {mod(v4[:27], func(b []byte) { b[3] = 27 }), nil},
		"udp length long":  {mod(v4, func(b []byte) { b[24] = 0xff }), nil},
		"udp length short": {mod(v4, func(b []byte) { b[24], b[25] = 0, 7 }), nil},
	} {
		_, err := ParsePacket(c.b)
		if err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func FuzzParsePacket(f *testing.F) {
	q := dnstest.Query(1, "a.example", dnstest.TypeA)
	f.Add(ipPacket(client4, server4, q))
	f.Add(ipPacket(client6, server6, realResponse()))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			return
		}
		if len(p.Payload) > len(b) || !p.Src.IsValid() || !p.Dst.IsValid() {
			t.Fatalf("%+v", p)
		}
		tr := newTracker(Config{}, nopHandler{}, nil)
		tr.packet(b, epoch)
		tr.flush()
	})
}

type nopHandler struct{}

func (nopHandler) Query(*Query)        {}
func (nopHandler) Lost(string, uint64) {}
