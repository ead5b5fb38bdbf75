package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

// TestIoCMatchDNS ingests dns.query events: the queried name matches a
// domain indicator of a parent domain, a CNAME target and an answer
// address match theirs, and each hit becomes an ioc.match event and an
// alert.
func TestIoCMatchDNS(t *testing.T) {
	for _, backend := range storetest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			ts := servertest.Start(t, servertest.Options{DB: dbFor(t, backend)})
			testIoCMatchDNS(t, ts)
		})
	}
}

func testIoCMatchDNS(t *testing.T, ts *servertest.Server) {
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "ioc-dns")
	w := newEventWriter(t, d)
	bundle := stixBundle(t,
		stixIndicator("indicator--d1000000-0000-4000-8000-000000000001", "[domain-name:value = 'evil.example']", time.Time{}),
		stixIndicator("indicator--d1000000-0000-4000-8000-000000000002", "[domain-name:value = 'bad-cdn.example.net']", time.Time{}),
		stixIndicator("indicator--d1000000-0000-4000-8000-000000000003", "[ipv6-addr:value = '2001:db8::66']", time.Time{}),
	)
	var res api.IoCImportResult
	if code := importIoC(t, ts, "name=dns-feed", bundle, &res); code != 200 || res.Source.Indicators != 3 {
		t.Fatalf("import: %d %+v", code, res)
	}
	query := func(host string, answers ...events.DNSAnswer) events.DNSQuery {
		q := events.DNSQuery{Hostname: host, QueryType: "AAAA", TransactionID: 4242, Protocol: "udp",
			SrcIP: "192.0.2.10", SrcPort: 53211, DstIP: "192.0.2.1", DstPort: 53, CommunityID: "1:XlkEnIEpGlsxMTHxcQTm/XHq5IM="}
		if answers != nil {
			q.RCode, q.Answers, q.AnswerCount = "NoError", answers, len(answers)
		}
		return q
	}
	seqs := w.sendDNS(
		query("www.example.org", events.DNSAnswer{Type: "AAAA", RData: "2001:db8::1", TTL: 60}), // nothing matches
		query("evil.example.com"), // not a sub-domain of evil.example
		query("c2.Stage1.EVIL.example."),
		query("assets.example.org", events.DNSAnswer{Type: "CNAME", RData: "x.bad-cdn.example.net", TTL: 60},
			events.DNSAnswer{Type: "AAAA", RData: "2001:db8::66", TTL: 60}),
	)
	hits := iocHits(t, ts, d.id)
	type want struct {
		seq                       uint64
		indicator, typ, field, ob string
	}
	wants := []want{
		{seqs[2], "evil.example", "domain", "hostname", "c2.Stage1.EVIL.example."},
		{seqs[3], "bad-cdn.example.net", "domain", "answers.rdata", "x.bad-cdn.example.net"},
		{seqs[3], "2001:db8::66", "ip", "answers.rdata", "2001:db8::66"},
	}
	if len(hits) != len(wants) {
		t.Fatalf("got %d hits, want %d: %+v", len(hits), len(wants), hits)
	}
	for i, w := range wants {
		h := hits[i].Details
		if hits[i].Seq != w.seq || hits[i].SeverityID != events.SeverityHigh || h.EventSeq != w.seq || h.Indicator != w.indicator ||
			h.IndicatorType != w.typ || h.Field != w.field || h.Observed != w.ob || h.EventType != events.TypeDNSQuery || h.Source != "dns-feed" ||
			!strings.HasPrefix(h.Ref, "indicator--d1000000") {
			t.Errorf("hit %d = %+v, want %+v", i, hits[i], w)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var al api.AlertList
		ts.Do(t, "GET", "/api/v1/alerts?device="+d.id, "", nil, &al)
		keys := map[string]int{}
		for _, a := range al.Alerts {
			if a.Rule == "ioc.match" {
				keys[a.Key] = a.Count
			}
		}
		if len(keys) == 3 && keys["evil.example"] == 1 && keys["bad-cdn.example.net"] == 1 && keys["2001:db8::66"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ioc.match alerts: %+v", al.Alerts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendDNS appends dns.query events to the journal and sends them as one
// batch; it returns their seqs.
func (w *eventWriter) sendDNS(qs ...events.DNSQuery) []uint64 {
	w.t.Helper()
	var seqs []uint64
	for _, q := range qs {
		ev, err := events.New(events.TypeDNSQuery, w.d.id, events.SeverityInformational, time.Now(), q)
		if err != nil {
			w.t.Fatal(err)
		}
		seq, err := w.j.Append(ev)
		if err != nil {
			w.t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	r := send(w.t, w.d, readRecords(w.t, w.j, w.sent+1, len(qs)))
	if r.Stored != len(qs) {
		w.t.Fatalf("batch: %+v", r)
	}
	w.sent += uint64(len(qs))
	return seqs
}
