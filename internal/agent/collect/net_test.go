package collect

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/netmon"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// flowFeed is a FlowSource that returns one queued batch per poll.
type flowFeed struct {
	mu      sync.Mutex
	batches [][]netmon.Flow
	errs    []error
	polls   int
}

func (f *flowFeed) Poll() ([]netmon.Flow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	if len(f.batches) == 0 {
		return nil, nil
	}
	b := f.batches[0]
	f.batches = f.batches[1:]
	return b, nil
}

func (f *flowFeed) drained() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.batches) == 0 && len(f.errs) == 0
}

func outbound(exe string, remote string, rport, lport uint16) netmon.Flow {
	return netmon.Flow{Protocol: "tcp", Direction: netmon.Outbound, State: "ESTABLISHED",
		LocalIP: netip.MustParseAddr("192.0.2.10"), LocalPort: lport,
		RemoteIP: netip.MustParseAddr(remote), RemotePort: rport,
		CommunityID: "1:test", PID: 812, Exe: exe, ExeSHA256: strings.Repeat("ab", 32), UID: 1000, User: "app"}
}

// runNet runs RunNet over feed until the feed is drained, then stops it.
func runNet(t *testing.T, feed *flowFeed, cfg NetConfig) []recorded {
	t.Helper()
	var rec recorder
	cfg.Source, cfg.Interval = feed, time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunNet(ctx, cfg, &rec) }()
	deadline := time.Now().Add(10 * time.Second)
	for !feed.drained() {
		if time.Now().After(deadline) {
			t.Fatal("the feed was not drained")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunNet: %v", err)
	}
	for _, r := range rec.all() {
		if _, err := events.New(r.typ, "dev-1", r.severity, testTime, r.details); err != nil {
			t.Errorf("%s %+v is not a valid event: %v", r.typ, r.details, err)
		}
	}
	return rec.all()
}

func TestRunNetEvents(t *testing.T) {
	in := netmon.Flow{Protocol: "udp", Direction: netmon.Inbound, State: "ESTABLISHED",
		LocalIP: netip.MustParseAddr("2001:db8::10"), LocalPort: 53,
		RemoteIP: netip.MustParseAddr("2001:db8::99"), RemotePort: 40000, CommunityID: "1:in"}
	feed := &flowFeed{batches: [][]netmon.Flow{{outbound("/usr/bin/curl", "198.51.100.20", 443, 40512), in}}}
	evs := runNet(t, feed, NetConfig{})
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	want := []events.NetConnection{
		{Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: 40512, DstIP: "198.51.100.20", DstPort: 443, CommunityID: "1:test",
			Process: &events.ProcessRef{PID: 812, Path: "/usr/bin/curl", SHA256: strings.Repeat("ab", 32), User: "app"}},
		// Inbound: the source is the remote end; the process is unknown.
		{Protocol: "udp", Direction: "inbound", SrcIP: "2001:db8::99", SrcPort: 40000, DstIP: "2001:db8::10", DstPort: 53, CommunityID: "1:in"},
	}
	for i, w := range want {
		got, ok := evs[i].details.(events.NetConnection)
		if !ok || evs[i].typ != events.TypeNetConnection || evs[i].severity != events.SeverityInformational {
			t.Fatalf("event %d: %+v", i, evs[i])
		}
		if (got.Process == nil) != (w.Process == nil) || got.Process != nil && *got.Process != *w.Process {
			t.Errorf("event %d process %+v, want %+v", i, got.Process, w.Process)
		}
		got.Process, w.Process = nil, nil
		if got != w {
			t.Errorf("event %d: %+v, want %+v", i, got, w)
		}
	}
}

// TestRunNetCoalesceAndLimit floods the collector: repeats of a recorded
// flow are coalesced into a note with their count, new flows past the
// limit are counted in another, and nothing is dropped without a note.
func TestRunNetCoalesceAndLimit(t *testing.T) {
	var flood []netmon.Flow
	for i := range 50 { // one process beaconing to one server: 1 event, 49 repeats
		flood = append(flood, outbound("/tmp/beacon", "203.0.113.66", 8443, uint16(30000+i)))
	}
	for i := range 5 { // a second flow: 1 event, 4 repeats
		flood = append(flood, outbound("/usr/bin/curl", "198.51.100.20", 443, uint16(31000+i)))
	}
	for i := range 20 { // a port scan: 20 new flows, 3 within the limit of 5
		flood = append(flood, outbound("/usr/bin/nmap", "192.0.2.200", uint16(1+i), 32000))
	}
	feed := &flowFeed{batches: [][]netmon.Flow{flood[:30], flood[30:]}}
	evs := runNet(t, feed, NetConfig{Limit: 5, Window: time.Hour})

	var conns int
	notes := map[string][]events.PolicyDenial{}
	for _, e := range evs {
		switch d := e.details.(type) {
		case events.NetConnection:
			conns++
		case events.PolicyDenial:
			notes[d.Policy] = append(notes[d.Policy], d)
		}
	}
	if conns != 5 {
		t.Errorf("%d net.connection events, want the limit of 5", conns)
	}
	co := notes[PolicyNetCoalesce]
	if len(co) != 2 || !strings.HasPrefix(co[0].Reason, "49 repeated connections") || co[0].Target != "tcp outbound /tmp/beacon -> 203.0.113.66:8443" ||
		!strings.HasPrefix(co[1].Reason, "4 repeated connections") {
		t.Errorf("coalescing notes %+v", co)
	}
	rl := notes[PolicyNetRateLimit]
	if len(rl) != 1 || !strings.HasPrefix(rl[0].Reason, "17 new connections") {
		t.Errorf("rate-limit notes %+v", rl)
	}
	// Every flow is accounted for: recorded, or counted in a note.
	if total := conns + 49 + 4 + 17; total != len(flood) {
		t.Errorf("accounted for %d of %d flows", total, len(flood))
	}
}

// TestRunNetWindows checks that a new window records the flow again, and
// that a failed poll is survived.
func TestRunNetWindows(t *testing.T) {
	now := testTime
	var mu sync.Mutex
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
	f := outbound("/usr/bin/ntpd", "192.0.2.123", 123, 123)
	f.Protocol = "udp"
	feed := &flowFeed{errs: []error{errors.New("netlink: boom")}}
	for range 150 { // one flow a second for 150 s: windows of 60 s
		feed.batches = append(feed.batches, []netmon.Flow{f})
	}
	evs := runNet(t, feed, NetConfig{Now: clock})
	var conns, repeats int
	for _, e := range evs {
		switch d := e.details.(type) {
		case events.NetConnection:
			conns++
		case events.PolicyDenial:
			var n int
			if _, err := fmt.Sscan(d.Reason, &n); err != nil {
				t.Fatalf("note %q: %v", d.Reason, err)
			}
			repeats += n
		}
	}
	if conns != 3 || conns+repeats != 150 {
		t.Errorf("%d events and %d coalesced repeats over 150 s, want 3 windows accounting for 150", conns, repeats)
	}
}

func TestRunNetUnsupported(t *testing.T) {
	feed := &flowFeed{errs: []error{netmon.ErrUnsupported}}
	if err := RunNet(context.Background(), NetConfig{Source: feed}, &recorder{}); !errors.Is(err, netmon.ErrUnsupported) {
		t.Errorf("RunNet = %v", err)
	}
}
