package agent

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon/dnstest"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// TestDNSCollectorToServer runs the agent with the DNS collector watching
// a test DNS server's port against a real server holding a domain
// indicator; a real lookup of a sub-domain of the indicator from this
// process reaches the server as a dns.query event and raises an ioc.match.
func TestDNSCollectorToServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("capturing DNS needs root (CAP_NET_RAW)")
	}
	ts := servertest.Start(t, servertest.Options{})
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/ioc/sources?name=dns-list", strings.NewReader("# test\ndnsioc.example\n"))
	req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("import: %d", resp.StatusCode)
	}

	srv, err := dnstest.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Delay = 50 * time.Millisecond
	srv.Answer("c2.dnsioc.example", dnstest.TypeA, dnstest.RR{Type: dnstest.TypeA, TTL: 30, RData: dnstest.A("192.0.2.99")})

	dir := filepath.Join(t.TempDir(), "state")
	st, err := Enroll(context.Background(), EnrollOptions{StateDir: dir, Server: ts.URL, Token: ts.EnrollToken(t, 1, ""), CAPEM: ts.CAPEM, TPM: "none"})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	cfg := testConfig(dir)
	cfg.Collectors = CollectorsConfig{NetOff: true, AuthLog: AuthLogOff, dnsPorts: []uint16{srv.Addr.Port()}}
	start(t, cfg)

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", srv.Addr.String())
	}}
	find := func(typ string, match func(ev *events.Event) bool) *events.Event {
		var page api.EventPage
		if code := ts.Do(t, "GET", "/api/v1/events?limit=500&type="+typ+"&device="+st.DeviceID, "", nil, &page); code != http.StatusOK {
			t.Fatalf("GET /api/v1/events: status %d", code)
		}
		for _, se := range page.Events {
			ev, err := events.Decode(se.Event)
			if err != nil {
				t.Fatalf("stored event: %v", err)
			}
			if match(ev) {
				return ev
			}
		}
		return nil
	}
	var query, hit *events.Event
	deadline := time.Now().Add(30 * time.Second)
	for query == nil || hit == nil {
		if time.Now().After(deadline) {
			t.Fatalf("on the server: dns.query %+v, ioc.match %+v", query, hit)
		}
		// Until the agent's capture runs, queries go unseen: ask again.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if _, err := r.LookupNetIP(ctx, "ip4", "c2.dnsioc.example"); err != nil {
			t.Fatalf("lookup: %v", err)
		}
		cancel()
		time.Sleep(200 * time.Millisecond)
		query = find(events.TypeDNSQuery, func(ev *events.Event) bool {
			return ev.Details.(*events.DNSQuery).Hostname == "c2.dnsioc.example"
		})
		hit = find(events.TypeIoCMatch, func(ev *events.Event) bool {
			m := ev.Details.(*events.IoCMatch)
			return m.EventType == events.TypeDNSQuery && m.Field == "hostname"
		})
	}
	q := query.Details.(*events.DNSQuery)
	exe, _ := os.Executable()
	if q.QueryType != "A" || q.RCode != "NoError" || len(q.Answers) != 1 || q.Answers[0].RData != "192.0.2.99" ||
		q.DstPort != int(srv.Addr.Port()) || q.Process == nil || q.Process.Path != exe {
		t.Errorf("dns.query %+v (process %+v)", q, q.Process)
	}
	m := hit.Details.(*events.IoCMatch)
	if m.Indicator != "dnsioc.example" || m.IndicatorType != "domain" || m.Observed != "c2.dnsioc.example" || m.Source != "dns-list" || m.EventSeq != query.Seq {
		t.Errorf("ioc.match %+v for dns.query seq %d", m, query.Seq)
	}
}
