package communityid

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

// Vectors from the reference implementation's test suite
// (corelight/pycommunityid tests/communityid_test.py): base64 with seed 0,
// hex with seed 0, base64 with seed 1.
var vectors = []struct {
	proto      uint8
	src, dst   string
	sport, dpt uint16
	b64, hex   string
	seed1      string
}{
	// TCP
	{ProtoTCP, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "2d053da9994af81e45dca0e67afea6e4f3226eb8", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
	{ProtoTCP, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "2d053da9994af81e45dca0e67afea6e4f3226eb8", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
	{ProtoTCP, "10.0.0.1", "10.0.0.2", 10, 11569, "1:SXBGMX1lBOwhhoDrZynfROxnhnM=", "497046317d6504ec218680eb6729df44ec678673", "1:HmBRGR+fUyXF4t8WEtal7Y0gEAo="},
	// UDP
	{ProtoUDP, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "77f14fe445b7c22635bc29dd87095e451287a304", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="},
	{ProtoUDP, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "77f14fe445b7c22635bc29dd87095e451287a304", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="},
	// SCTP
	{ProtoSCTP, "192.168.170.8", "192.168.170.56", 7, 80, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "8d0802c5b92efa9346c3c58f6c473f4d2fee4e94", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="},
	{ProtoSCTP, "192.168.170.56", "192.168.170.8", 80, 7, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "8d0802c5b92efa9346c3c58f6c473f4d2fee4e94", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="},
	// ICMP: type in SrcPort, code in DstPort.
	{ProtoICMP, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "5f4b27617a60c22bfd4d9b6a83ae2c833527e839", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
	{ProtoICMP, "192.168.0.1", "192.168.0.89", 0, 8, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "5f4b27617a60c22bfd4d9b6a83ae2c833527e839", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
	{ProtoICMP, "192.168.0.89", "192.168.0.1", 20, 0, "1:3o2RFccXzUgjl7zDpqmY7yJi8rI=", "de8d9115c717cd482397bcc3a6a998ef2262f2b2", "1:lCXHHxavE1Vq3oX9NH5ladQg02o="},
	{ProtoICMP, "192.168.0.89", "192.168.0.1", 20, 1, "1:tz/fHIDUHs19NkixVVoOZywde+I=", "b73fdf1c80d41ecd7d3648b1555a0e672c1d7be2", "1:Ie3wmFyxiEyikbsbcO03d2nh+PM="},
	{ProtoICMP, "192.168.0.1", "192.168.0.89", 0, 20, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "5f4b27617a60c22bfd4d9b6a83ae2c833527e839", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
	// ICMPv6
	{ProtoICMPv6, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "7461f21af8cc7e58e0e81a69c26ddb8342cef136", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="},
	{ProtoICMPv6, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "7461f21af8cc7e58e0e81a69c26ddb8342cef136", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="},
	{ProtoICMPv6, "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0, "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=", "35da1b0d7f0f40d25b0327e45b186d2f63eaa79c", "1:OlOWx9psIbBFi7lOCw/4MhlKR9M="},
	{ProtoICMPv6, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:507:0:1:260:97ff:fe07:69ea", 3, 0, "1:/OGBt9BN1ofenrmSPWYicpij2Vc=", "fce181b7d04dd687de9eb9923d66227298a3d957", "1:Ij4ZxnC87/MXzhOjvH2vHu7LRmE="},
	// A protocol without ports (46, RSVP): ports are ignored.
	{46, "10.1.24.4", "10.1.12.1", 0, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "fe7408e1187f4ed63799fd11da0245064565812e", "1:BK3BVW3U2eemuwVQVN3zd/GULno="},
	{46, "10.1.12.1", "10.1.24.4", 0, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "fe7408e1187f4ed63799fd11da0245064565812e", "1:BK3BVW3U2eemuwVQVN3zd/GULno="},
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		tu := Tuple{Proto: v.proto, SrcIP: netip.MustParseAddr(v.src), DstIP: netip.MustParseAddr(v.dst), SrcPort: v.sport, DstPort: v.dpt}
		got, err := ID(0, tu)
		if err != nil || got != v.b64 {
			t.Errorf("ID(0, %+v) = %q, %v; want %q", tu, got, err, v.b64)
		}
		sum, err := Sum(0, tu)
		if err != nil || hex.EncodeToString(sum[:]) != v.hex {
			t.Errorf("Sum(0, %+v) = %x, %v; want %s", tu, sum, err, v.hex)
		}
		got, err = ID(1, tu)
		if err != nil || got != v.seed1 {
			t.Errorf("ID(1, %+v) = %q, %v; want %q", tu, got, err, v.seed1)
		}
	}
}

func TestZeekVectors(t *testing.T) {
	// From Zeek's community_id_v1 btest.
	for _, c := range []struct {
		proto uint8
		want  string
	}{
		{ProtoTCP, "1:wCb3OG7yAFWelaUydu0D+125CLM="},
		{ProtoUDP, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="},
	} {
		tu := Tuple{Proto: c.proto, SrcIP: netip.MustParseAddr("1.2.3.4"), DstIP: netip.MustParseAddr("5.6.7.8"), SrcPort: 1122, DstPort: 3344}
		if got, _ := ID(0, tu); got != c.want {
			t.Errorf("proto %d: got %q, want %q", c.proto, got, c.want)
		}
	}
}

func TestMappedAndErrors(t *testing.T) {
	v4 := Tuple{Proto: ProtoTCP, SrcIP: netip.MustParseAddr("128.232.110.120"), DstIP: netip.MustParseAddr("66.35.250.204"), SrcPort: 34855, DstPort: 80}
	mapped := v4
	mapped.SrcIP = netip.AddrFrom16(v4.SrcIP.As16())
	mapped.DstIP = netip.AddrFrom16(v4.DstIP.As16())
	a, _ := ID(0, v4)
	b, err := ID(0, mapped)
	if err != nil || a != b {
		t.Errorf("v4-mapped: %q, %v; want %q", b, err, a)
	}
	bad := v4
	bad.DstIP = netip.MustParseAddr("2001:db8::1")
	if _, err := ID(0, bad); err != ErrMixedFamilies {
		t.Errorf("mixed families: err = %v", err)
	}
	if _, err := ID(0, Tuple{Proto: ProtoTCP}); err != ErrInvalidAddr {
		t.Errorf("zero tuple: err = %v", err)
	}
}

func BenchmarkID(b *testing.B) {
	tu := Tuple{Proto: ProtoTCP, SrcIP: netip.MustParseAddr("128.232.110.120"), DstIP: netip.MustParseAddr("66.35.250.204"), SrcPort: 34855, DstPort: 80}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ID(0, tu); err != nil {
			b.Fatal(err)
		}
	}
}
