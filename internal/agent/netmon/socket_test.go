package netmon

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func littleEndian() bool {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	return b[0] == 1
}

// Lines as a little-endian kernel prints them.
const procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 20 4 30 10 -1
   2: 0A00A8C0:D431 22B8C8C6:01BB 06 00000000:00000000 03:00000F35 00000000     0        0 0 3 0000000000000000
`

const procTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:9C41 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2002 1 0000000000000000 20 4 30 10 -1
   2: B80D0120000000000000000001000000:C350 00000000000000000000000001000000:0035 02 00000001:00000000 01:00000064 00000000    65534        0 2003 1 0000000000000000
`

func TestParseProcNet(t *testing.T) {
	if !littleEndian() {
		t.Skip("test lines are in little-endian host order")
	}
	socks, err := ParseProcNet(nil, strings.NewReader(procTCP), ProtoTCP)
	if err != nil {
		t.Fatal(err)
	}
	socks, err = ParseProcNet(socks, strings.NewReader(procTCP6), ProtoTCP)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	want := []Socket{
		{ProtoTCP, StateListen, ap("127.0.0.1:8080"), ap("0.0.0.0:0"), 1000, 123456, 0},
		{ProtoTCP, StateEstablished, ap("127.0.0.1:40000"), ap("127.0.0.1:8080"), 0, 77, 0},
		{ProtoTCP, StateTimeWait, ap("192.168.0.10:54321"), ap("198.200.184.34:443"), 0, 0, 0},
		{ProtoTCP, StateListen, ap("[::]:22"), ap("[::]:0"), 0, 2001, 0},
		{ProtoTCP, StateEstablished, ap("[::ffff:127.0.0.1]:40001"), ap("[::ffff:127.0.0.1]:8080"), 1000, 2002, 0},
		{ProtoTCP, StateSynSent, ap("[2001:db8::1]:50000"), ap("[::1]:53"), 65534, 2003, 0},
	}
	if len(socks) != len(want) {
		t.Fatalf("got %d sockets, want %d: %+v", len(socks), len(want), socks)
	}
	for i := range want {
		if socks[i] != want[i] {
			t.Errorf("socket %d = %+v, want %+v", i, socks[i], want[i])
		}
	}
}

func TestParseProcNetErrors(t *testing.T) {
	hdr := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	for _, line := range []string{
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000",
		"   0: 0100007F 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1",
		"   0: 0100007G:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1",
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 x",
		"   0: 0100007F:1F90 000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1",
		"   0: 0100007F:1F90 00000000:10000 0A 00000000:00000000 00:00000000 00000000  1000 0 1",
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1" + strings.Repeat(" x", 300),
	} {
		if _, err := ParseProcNet(nil, strings.NewReader(hdr+line+"\n"), ProtoTCP); err == nil {
			t.Errorf("ParseProcNet(%q) succeeded", line)
		}
	}
}

func FuzzParseProcNet(f *testing.F) {
	f.Add([]byte(procTCP))
	f.Add([]byte(procTCP6))
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, err := ParseProcNet(nil, strings.NewReader(string(b)), ProtoUDP)
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.Local.IsValid() || !s.Remote.IsValid() {
				t.Fatalf("invalid address in %+v", s)
			}
		}
	})
}

func TestStateName(t *testing.T) {
	for s, want := range map[uint8]string{0: "UNKNOWN", 1: "ESTABLISHED", 6: "TIME_WAIT", 10: "LISTEN", 12: "NEW_SYN_RECV", 13: "UNKNOWN", 255: "UNKNOWN"} {
		if got := StateName(s); got != want {
			t.Errorf("StateName(%d) = %q, want %q", s, got, want)
		}
	}
}
