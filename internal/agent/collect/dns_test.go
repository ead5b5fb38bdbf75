package collect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon"
	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon/dnstest"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// dnsFeed is a DNSSource that hands over a fixed list of observations,
// then waits for the context (or returns err at once).
type dnsFeed struct {
	queries []dnsmon.Query
	lost    map[string]uint64
	err     error
	fed     chan struct{}
}

func (f *dnsFeed) Run(ctx context.Context, h dnsmon.Handler) error {
	if f.err != nil {
		return f.err
	}
	for i := range f.queries {
		q := f.queries[i]
		h.Query(&q)
	}
	for r, n := range f.lost {
		h.Lost(r, n)
	}
	close(f.fed)
	<-ctx.Done()
	return nil
}

func dnsQ(exe, name string, answers ...string) dnsmon.Query {
	q := dnsmon.Query{Time: testTime, Client: netip.MustParseAddrPort("192.0.2.10:53211"), Server: netip.MustParseAddrPort("192.0.2.1:53"),
		ID: 7, Name: name, Type: dnsmon.TypeA, QuerySeen: true, CommunityID: "1:test",
		Process: dnsmon.Process{PID: 812, Exe: exe, ExeSHA256: strings.Repeat("ab", 32), User: "app"}}
	if answers != nil {
		q.Answered, q.AnswerCount = true, len(answers)
		for _, a := range answers {
			if ip, err := netip.ParseAddr(a); err == nil {
				q.Answers = append(q.Answers, dnsmon.Answer{Type: dnsmon.TypeA, TTL: 60, Addr: ip})
			} else {
				q.Answers = append(q.Answers, dnsmon.Answer{Type: dnsmon.TypeCNAME, TTL: 60, Target: a})
			}
		}
	}
	return q
}

// runDNS runs RunDNS over src until it has fed everything, then stops it.
func runDNS(t *testing.T, feed *dnsFeed, cfg DNSConfig) []recorded {
	t.Helper()
	var rec recorder
	feed.fed = make(chan struct{})
	cfg.Source = feed
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunDNS(ctx, cfg, &rec) }()
	select {
	case <-feed.fed:
	case <-time.After(10 * time.Second):
		t.Fatal("the feed was not drained")
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunDNS: %v", err)
	}
	for _, r := range rec.all() {
		if _, err := events.New(r.typ, "dev-1", r.severity, testTime, r.details); err != nil {
			t.Errorf("%s %+v is not a valid event: %v", r.typ, r.details, err)
		}
	}
	return rec.all()
}

func TestDNSRateLimit(t *testing.T) {
	feed := &dnsFeed{lost: map[string]uint64{dnsmon.LostKernel: 3, dnsmon.LostFragment: 1}}
	// Three distinct queries, one of them repeated 4 times; a query with
	// other answers is a new one; then 5 new queries past the limit of 5.
	feed.queries = append(feed.queries, dnsQ("/usr/bin/curl", "a.example", "cdn.example.net", "198.51.100.1"))
	for i := 0; i < 4; i++ {
		feed.queries = append(feed.queries, dnsQ("/usr/bin/curl", "a.example", "cdn.example.net", "198.51.100.1"))
	}
	feed.queries = append(feed.queries, dnsQ("/usr/bin/curl", "a.example", "198.51.100.2"), dnsQ("/usr/bin/curl", "b.example"), dnsQ("/usr/sbin/ntpd", "a.example"))
	feed.queries = append(feed.queries, dnsQ("/usr/bin/curl", "c.example", "198.51.100.3"))
	for i := 0; i < 5; i++ {
		feed.queries = append(feed.queries, dnsQ("/usr/bin/curl", fmt.Sprintf("n%d.example", i)))
	}
	got := runDNS(t, feed, DNSConfig{Limit: 5, Window: time.Hour})
	var queries []events.DNSQuery
	notes := map[string][]events.PolicyDenial{}
	for _, r := range got {
		switch d := r.details.(type) {
		case events.DNSQuery:
			queries = append(queries, d)
		case events.PolicyDenial:
			notes[d.Policy] = append(notes[d.Policy], d)
		default:
			t.Fatalf("unexpected %s", r.typ)
		}
	}
	if len(queries) != 5 {
		t.Fatalf("%d dns.query events, want 5: %+v", len(queries), queries)
	}
	q := queries[0]
	if q.Hostname != "a.example" || q.QueryType != "A" || q.RCode != "NoError" || len(q.Answers) != 2 || q.Answers[0] != (events.DNSAnswer{Type: "CNAME", RData: "cdn.example.net", TTL: 60}) ||
		q.Answers[1].RData != "198.51.100.1" || q.Process == nil || q.Process.Path != "/usr/bin/curl" || q.SrcPort != 53211 || q.DstIP != "192.0.2.1" {
		t.Fatalf("%+v", q)
	}
	if queries[2].RCode != "" || queries[2].Answers != nil {
		t.Fatalf("unanswered query: %+v", queries[2])
	}
	if c := notes[PolicyDNSCoalesce]; len(c) != 1 || !strings.HasPrefix(c[0].Reason, "4 repeats") || !strings.Contains(c[0].Target, "a.example") {
		t.Errorf("coalesce notes: %+v", c)
	}
	if r := notes[PolicyDNSRateLimit]; len(r) != 1 || !strings.HasPrefix(r[0].Reason, "5 new DNS queries") {
		t.Errorf("rate-limit notes: %+v", r)
	}
	l := notes[PolicyDNSCaptureLoss]
	if len(l) != 2 || l[0].Target != dnsmon.LostFragment || !strings.HasPrefix(l[0].Reason, "1 DNS packets") ||
		l[1].Target != dnsmon.LostKernel || !strings.HasPrefix(l[1].Reason, "3 DNS packets") {
		t.Errorf("loss notes: %+v", l)
	}
}

// TestDNSWindowRolls checks that a new window records repeats again.
func TestDNSWindowRolls(t *testing.T) {
	clock := testTime
	var rec recorder
	lim := newDNSLimiter(time.Minute, 10)
	q := dnsQ("/bin/x", "a.example")
	for i := 0; i < 3; i++ {
		if lim.admit(clock, &q) != (i == 0) {
			t.Fatalf("admit %d", i)
		}
	}
	lim.roll(clock.Add(59*time.Second), false, &rec)
	if len(rec.all()) != 0 {
		t.Fatal("rolled early")
	}
	lim.roll(clock.Add(time.Minute), false, &rec)
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d notes", n)
	}
	if !lim.admit(clock.Add(61*time.Second), &q) {
		t.Fatal("the next window did not record the query")
	}
}

func TestDNSUnsupported(t *testing.T) {
	var rec recorder
	err := RunDNS(context.Background(), DNSConfig{Source: &dnsFeed{err: fmt.Errorf("x: %w", dnsmon.ErrUnsupported)}}, &rec)
	if !errors.Is(err, dnsmon.ErrUnsupported) || len(rec.all()) != 0 {
		t.Fatalf("%v %+v", err, rec.all())
	}
	if err := RunDNS(context.Background(), DNSConfig{}, &rec); err == nil {
		t.Fatal("no source accepted")
	}
}

// TestDNSCapture runs the collector over a real capture: Go's resolver
// sends queries over loopback to a test DNS server on a port other than
// 53, listed in the configuration, and the collector records them with
// their answers and the querying process.
func TestDNSCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("capturing packets needs root (CAP_NET_RAW)")
	}
	srv, err := dnstest.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Delay = 100 * time.Millisecond
	srv.Answer("www.dnscapture.example", dnstest.TypeA,
		dnstest.RR{Type: dnstest.TypeCNAME, TTL: 300, RData: dnstest.Name("edge.dnscapture.example")},
		dnstest.RR{Name: dnstest.Name("edge.dnscapture.example"), Type: dnstest.TypeA, TTL: 60, RData: dnstest.A("192.0.2.77")})
	srv.Silent("gone.dnscapture.example")

	var rec recorder
	mon := dnsmon.New(dnsmon.Config{Ports: []uint16{srv.Addr.Port()}, Timeout: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunDNS(ctx, DNSConfig{Source: mon}, &rec) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunDNS: %v", err)
		}
	}()
	find := func(name string, wait time.Duration) *events.DNSQuery {
		deadline := time.Now().Add(wait)
		for {
			for _, r := range rec.all() {
				if d, ok := r.details.(events.DNSQuery); ok && d.Hostname == name && d.QueryType == "A" {
					return &d
				}
			}
			if time.Now().After(deadline) {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Wait until the capture runs.
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	started := func() bool {
		for _, r := range rec.all() {
			if _, ok := r.details.(events.DNSQuery); ok {
				return true
			}
		}
		return false
	}
	for i := 0; !started(); i++ {
		if i == 200 {
			t.Fatal("the collector recorded no query")
		}
		c.Write(dnstest.Query(uint16(i), fmt.Sprintf("warmup%d.dnscapture.example", i), dnstest.TypeA))
		time.Sleep(50 * time.Millisecond)
	}

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", srv.Addr.String())
	}}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	if addrs, err := r.LookupNetIP(lctx, "ip4", "www.dnscapture.example"); err != nil || len(addrs) != 1 {
		t.Fatalf("lookup: %v %v", addrs, err)
	}
	d := find("www.dnscapture.example", 5*time.Second)
	if d == nil {
		t.Fatal("the query was not recorded")
	}
	exe, _ := os.Executable()
	want := []events.DNSAnswer{{Type: "CNAME", RData: "edge.dnscapture.example", TTL: 300}, {Type: "A", RData: "192.0.2.77", TTL: 60}}
	if d.RCode != "NoError" || len(d.Answers) != 2 || d.Answers[0] != want[0] || d.Answers[1] != want[1] || d.SrcIP != "127.0.0.1" ||
		d.DstPort != int(srv.Addr.Port()) || d.Protocol != "udp" || !strings.HasPrefix(d.CommunityID, "1:") {
		t.Fatalf("%+v", d)
	}
	if d.Process == nil || d.Process.PID != os.Getpid() || d.Process.Path != exe || len(d.Process.SHA256) != 64 {
		t.Errorf("process %+v, want %d %s", d.Process, os.Getpid(), exe)
	}
	// A query without a response is recorded after the timeout.
	c.Write(dnstest.Query(999, "gone.dnscapture.example", dnstest.TypeA))
	if d := find("gone.dnscapture.example", 5*time.Second); d == nil || d.RCode != "" || d.TransactionID != 999 {
		t.Fatalf("unanswered query: %+v", d)
	}
}

// BenchmarkDNSRecord measures the collector's work per query reported by
// the monitor: the coalescing key, the limit and the conversion to a
// dns.query event (distinct queries, all recorded; the journal not
// included).
func BenchmarkDNSRecord(b *testing.B) {
	qs := make([]dnsmon.Query, 1024)
	for i := range qs {
		qs[i] = dnsQ("/usr/bin/curl", fmt.Sprintf("host%d.example.com", i), "cdn.example.net", "198.51.100.1", "198.51.100.2")
	}
	lim := newDNSLimiter(time.Hour, 1<<30)
	rec := RecordFunc(func(string, int, any) {})
	i := 0
	for b.Loop() {
		q := &qs[i%len(qs)]
		q.ID = uint16(i)
		if i%len(qs) == 0 {
			lim.roll(testTime, true, rec)
		}
		if lim.admit(testTime, q) {
			rec.Record(events.TypeDNSQuery, events.SeverityInformational, dnsQuery(q))
		}
		i++
	}
}
