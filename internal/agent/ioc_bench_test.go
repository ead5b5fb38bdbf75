package agent

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/ioc"
)

// BenchmarkIoCMatchEvent is what matching adds to recording one
// net.connection event (a miss, the common case) with 100,000 address
// indicators active.
func BenchmarkIoCMatchEvent(b *testing.B) {
	inds := make([]ioc.Indicator, 0, 100_000)
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		in, _ := ioc.New(ioc.TypeIP, a.String(), "bench", "", time.Time{})
		inds = append(inds, in)
	}
	m, err := ioc.Build(inds, nil)
	if err != nil {
		b.Fatal(err)
	}
	st := &iocState{}
	st.active.Store(&iocActive{m: m, version: "bench", action: api.IoCActionFlag})
	d := &daemon{iocs: st}
	c := events.NetConnection{Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: 40000, DstIP: "198.51.100.66", DstPort: 443,
		Process: &events.ProcessRef{SHA256: fmt.Sprintf("%064x", 7)}}
	b.ReportAllocs()
	for b.Loop() {
		if hits := d.iocMatches(events.TypeNetConnection, &c); len(hits) != 0 {
			b.Fatal("hit")
		}
	}
}
