package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

// stixIndicator is one STIX 2.1 indicator object for a test bundle.
func stixIndicator(id, pattern string, validUntil time.Time) map[string]any {
	o := map[string]any{"type": "indicator", "spec_version": "2.1", "id": id, "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
		"pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}
	if !validUntil.IsZero() {
		o["valid_until"] = validUntil.UTC().Format(time.RFC3339)
	}
	return o
}

func stixBundle(t testing.TB, objs ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": objs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// importIoC posts an indicator file and decodes the answer into out.
func importIoC(t testing.TB, ts *servertest.Server, query string, body []byte, out any) int {
	t.Helper()
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/ioc/sources?"+query, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
	hc := *ts.HTTP
	hc.Timeout = 10 * time.Minute // a million indicators take a while
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("import answer %q: %v", data, err)
		}
	}
	return resp.StatusCode
}

// eventWriter is a device journal from which batches are sent.
type eventWriter struct {
	t    testing.TB
	d    *device
	j    *journal.Journal
	sent uint64
}

func newEventWriter(t testing.TB, d *device) *eventWriter {
	j, err := journal.Open(t.TempDir(), journal.Options{DeviceID: d.id, NoSync: true, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return &eventWriter{t: t, d: d, j: j}
}

// send appends the events to the journal and sends them as one batch; it
// returns their seqs.
func (w *eventWriter) send(evs ...any) []uint64 {
	w.t.Helper()
	var seqs []uint64
	for _, details := range evs {
		typ := map[string]string{"events.NetConnection": events.TypeNetConnection, "events.AuthLogin": events.TypeAuthLogin,
			"events.FileActivity": events.TypeFileActivity}[fmt.Sprintf("%T", details)]
		ev, err := events.New(typ, w.d.id, events.SeverityInformational, time.Now(), details)
		if err != nil {
			w.t.Fatal(err)
		}
		seq, err := w.j.Append(ev)
		if err != nil {
			w.t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	r := send(w.t, w.d, readRecords(w.t, w.j, w.sent+1, len(evs)))
	if r.Stored != len(evs) {
		w.t.Fatalf("batch: %+v", r)
	}
	w.sent += uint64(len(evs))
	return seqs
}

func outbound(dst string) events.NetConnection {
	return events.NetConnection{Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: 40512, DstIP: dst, DstPort: 443,
		CommunityID: "1:LQU9qZlK+B5F3KDmev6m5PMibrg="}
}

type iocHit struct {
	Seq        uint64          `json:"seq"`
	SeverityID int             `json:"severity_id"`
	Details    events.IoCMatch `json:"details"`
}

// iocHits returns the device's ioc.match events, oldest first.
func iocHits(t testing.TB, ts *servertest.Server, deviceID string) []iocHit {
	t.Helper()
	page := listEvents(t, ts, "", "device="+deviceID+"&type=ioc.match")
	var out []iocHit
	for i := len(page.Events) - 1; i >= 0; i-- {
		se := page.Events[i]
		if se.Source != "server" || se.Seq != 0 {
			t.Fatalf("ioc.match stored as %+v", se)
		}
		if _, err := events.Decode(se.Event); err != nil {
			t.Fatalf("ioc.match does not validate: %v", err)
		}
		var h iocHit
		if err := json.Unmarshal(se.Event, &h); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// clock is a test clock that can be moved forward.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

func TestIoCMatchOnIngest(t *testing.T) {
	for _, backend := range storetest.Backends {
		t.Run(string(backend), func(t *testing.T) { testIoCMatchOnIngest(t, dbFor(t, backend)) })
	}
}

func testIoCMatchOnIngest(t *testing.T, db string) {
	var clk clock
	var mu sync.Mutex
	var hooked []events.IoCMatch
	ts := servertest.Start(t, servertest.Options{DB: db, Config: server.Config{Now: clk.now, IoC: server.IoCConfig{OnMatch: func(_ string, m events.IoCMatch) {
		mu.Lock()
		hooked = append(hooked, m)
		mu.Unlock()
	}}}})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "ioc-1")
	w := newEventWriter(t, d)

	now := time.Now()
	bundle := stixBundle(t,
		stixIndicator("indicator--a1000000-0000-4000-8000-000000000001", "[ipv4-addr:value = '198.51.100.66']", now.Add(time.Hour)),
		stixIndicator("indicator--a1000000-0000-4000-8000-000000000002", "[ipv4-addr:value ISSUBSET '203.0.113.0/24']", time.Time{}),
		stixIndicator("indicator--a1000000-0000-4000-8000-000000000003", "[ipv4-addr:value = '192.0.2.99']", now.Add(-time.Hour)),
		stixIndicator("indicator--a1000000-0000-4000-8000-000000000004", "[file:hashes.'SHA-256' = '"+strings.Repeat("ab", 32)+"']", time.Time{}),
		stixIndicator("indicator--a1000000-0000-4000-8000-000000000005", "[process:pid = 1]", time.Time{}), // unsupported: skipped
	)
	var res api.IoCImportResult
	if code := importIoC(t, ts, "name=cert-feed", bundle, &res); code != 200 {
		t.Fatalf("import: %d %+v", code, res)
	}
	if s := res.Source; s.Name != "cert-feed" || s.Kind != "stix" || s.Indicators != 4 || s.Skipped != 1 || s.Version != 1 || len(res.Reasons) != 1 {
		t.Fatalf("import result: %+v", res)
	}

	// Nothing matches: no hit.
	w.send(outbound("198.51.100.67"), outbound("8.8.8.8"))
	if h := iocHits(t, ts, d.id); len(h) != 0 {
		t.Fatalf("non-matching connections raised %+v", h)
	}

	// An exact address, an address in the CIDR, an expired indicator, an
	// inbound login from the prefix and a file hash.
	seqs := w.send(outbound("198.51.100.66"), outbound("203.0.113.200"), outbound("192.0.2.99"),
		events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: "root", SrcIP: "203.0.113.9", SrcPort: 2222},
		events.FileActivity{Activity: "create", Path: "/tmp/x", SHA256: strings.Repeat("AB", 32)})
	hits := iocHits(t, ts, d.id)
	type want struct {
		seq                            uint64
		indicator, typ, field, obs, et string
	}
	wants := []want{
		{seqs[0], "198.51.100.66", "ip", "dst_ip", "198.51.100.66", "net.connection"},
		{seqs[1], "203.0.113.0/24", "cidr", "dst_ip", "203.0.113.200", "net.connection"},
		{seqs[3], "203.0.113.0/24", "cidr", "src_ip", "203.0.113.9", "auth.login"},
		{seqs[4], strings.Repeat("ab", 32), "sha256", "sha256", strings.Repeat("AB", 32), "file.activity"},
	}
	if len(hits) != len(wants) {
		t.Fatalf("got %d hits, want %d: %+v", len(hits), len(wants), hits)
	}
	for i, w := range wants {
		h := hits[i]
		if h.Seq != w.seq || h.SeverityID != events.SeverityHigh || h.Details.EventSeq != w.seq || h.Details.Indicator != w.indicator ||
			h.Details.IndicatorType != w.typ || h.Details.Field != w.field || h.Details.Observed != w.obs || h.Details.EventType != w.et ||
			h.Details.Source != "cert-feed" || !strings.HasPrefix(h.Details.Ref, "indicator--a1000000") {
			t.Errorf("hit %d = %+v, want %+v", i, h, w)
		}
	}
	// The alert rule ioc.match reads the hits: one alert per indicator.
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
		if len(keys) == 3 && keys["203.0.113.0/24"] == 2 && keys["198.51.100.66"] == 1 && keys[strings.Repeat("ab", 32)] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ioc.match alerts: %+v", al.Alerts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if len(hooked) != len(wants) {
		t.Errorf("OnMatch saw %d hits, want %d", len(hooked), len(wants))
	}
	mu.Unlock()

	// A resent batch is not matched again.
	send(t, d, readRecords(t, w.j, seqs[0], 2))
	if n := len(iocHits(t, ts, d.id)); n != len(wants) {
		t.Fatalf("a resend raised hits again: %d", n)
	}

	// Two hours on, the address indicator has expired; the CIDR has not.
	clk.advance(2 * time.Hour)
	w.send(outbound("198.51.100.66"), outbound("203.0.113.1"))
	hits = iocHits(t, ts, d.id)
	if len(hits) != len(wants)+1 || hits[len(hits)-1].Details.Indicator != "203.0.113.0/24" {
		t.Fatalf("after expiry: %+v", hits[len(wants):])
	}

	// Deleting the source stops matching.
	if code := ts.Do(t, "DELETE", "/api/v1/ioc/sources/cert-feed", "", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	w.send(outbound("203.0.113.1"))
	if n := len(iocHits(t, ts, d.id)); n != len(wants)+1 {
		t.Fatalf("a deleted source still matched: %d hits", n)
	}
}

func TestIoCImportBadInput(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	list := []byte("# blocklist\n198.51.100.66\nevil.example.com\nnot an indicator\n")
	var res api.IoCImportResult
	if code := importIoC(t, ts, "name=list-1&expires=720h", list, &res); code != 200 || res.Source.Kind != "list" || res.Source.Indicators != 2 ||
		res.Source.Skipped != 1 || res.Source.DefaultExpiry != "720h0m0s" {
		t.Fatalf("list import: %d %+v", code, res)
	}
	var inds api.IoCIndicatorList
	if code := ts.Do(t, "GET", "/api/v1/ioc/indicators?source=list-1", "", nil, &inds); code != 200 || len(inds.Indicators) != 2 ||
		inds.Indicators[0].Type != "domain" || inds.Indicators[0].Expires == nil || time.Until(*inds.Indicators[0].Expires) < 719*time.Hour {
		t.Fatalf("indicators: %d %+v", code, inds)
	}

	for _, tc := range []struct {
		name, query string
		body        []byte
		status      int
		msg         string
	}{
		{"no name", "", list, 400, "name must be"},
		{"bad name", "name=../x", list, 400, "name must be"},
		{"bad format", "name=x&format=csv", list, 400, "format must be"},
		{"bad expiry", "name=x&expires=soon", list, 400, "expires must be"},
		{"unknown JSON", "name=x", []byte(`{"hello": 1}`), 400, "cannot tell the file's format"},
		{"broken STIX", "name=x&format=stix", []byte(`{"type": "bundle", "objects": [`), 400, "not a valid stix file"},
		{"nothing usable", "name=x", []byte("not an indicator\n"), 400, "no usable indicator"},
		{"re-import with nothing usable", "name=list-1", []byte("nope\n"), 400, "no usable indicator"},
	} {
		var e api.Error
		if code := importIoC(t, ts, tc.query, tc.body, &e); code != tc.status || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d %q", tc.name, code, e, tc.status, tc.msg)
		}
	}
	// Nothing was half-applied.
	var srcs api.IoCSourceList
	if code := ts.Do(t, "GET", "/api/v1/ioc/sources", "", nil, &srcs); code != 200 || len(srcs.Sources) != 1 || srcs.Sources[0].Indicators != 2 || srcs.Sources[0].Version != 1 {
		t.Fatalf("sources after refused imports: %+v", srcs)
	}

	var e api.Error
	for _, body := range []api.IoCFeedCreate{
		{Name: "f", Kind: "taxii", URL: "https://taxii.example/api1/"},
		{Name: "f", Kind: "rss", URL: "https://taxii.example/"},
		{Name: "f", Kind: "misp-feed", URL: "ftp://x/"},
		{Name: "f", Kind: "misp-feed", URL: "https://x/", Interval: "1s"},
	} {
		if code := ts.Do(t, "POST", "/api/v1/ioc/feeds", "", body, &e); code != 400 {
			t.Errorf("feed %+v: %d %+v", body, code, e)
		}
	}
	if code := ts.Do(t, "POST", "/api/v1/ioc/feeds", "", api.IoCFeedCreate{Name: "list-1", Kind: "misp-feed", URL: "https://x/"}, &e); code != 409 {
		t.Errorf("a feed over an imported source: %d %+v", code, e)
	}
	if code := ts.Do(t, "DELETE", "/api/v1/ioc/sources/nope", "", nil, &e); code != 404 || !strings.Contains(e.Message, "nope") {
		t.Errorf("deleting a missing source: %d %+v", code, e)
	}
}

// taxiiServer serves one TAXII 2.1 collection of STIX objects.
func taxiiServer(t *testing.T, objs func() []map[string]any) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api1/collections/c1/objects/" || r.Header.Get("Accept") != "application/taxii+json;version=2.1" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/taxii+json;version=2.1")
		json.NewEncoder(w).Encode(map[string]any{"more": false, "objects": objs()})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func waitSource(t *testing.T, ts *servertest.Server, name string, ok func(api.IoCSource) bool) api.IoCSource {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var srcs api.IoCSourceList
		ts.Do(t, "GET", "/api/v1/ioc/sources", "", nil, &srcs)
		for _, s := range srcs.Sources {
			if s.Name == name && ok(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("source %s did not reach the expected state: %+v", name, srcs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIoCFeedsPolled(t *testing.T) {
	var clk clock
	ts := servertest.Start(t, servertest.Options{Config: server.Config{Now: clk.now, IoC: server.IoCConfig{Tick: 50 * time.Millisecond}}})
	var objs atomic.Value
	objs.Store([]map[string]any{stixIndicator("indicator--b1000000-0000-4000-8000-000000000001", "[ipv4-addr:value = '198.51.100.80']", time.Time{})})
	taxii := taxiiServer(t, func() []map[string]any { return objs.Load().([]map[string]any) })

	var src api.IoCSource
	if code := ts.Do(t, "POST", "/api/v1/ioc/feeds", "", api.IoCFeedCreate{Name: "taxii-1", Kind: "taxii", URL: taxii.URL + "/api1/", Collection: "c1", Interval: "1h"}, &src); code != 201 {
		t.Fatalf("adding the feed: %d %+v", code, src)
	}
	src = waitSource(t, ts, "taxii-1", func(s api.IoCSource) bool { return s.Version == 1 })
	if src.Indicators != 1 || src.Failures != 0 || src.LastPoll == nil || src.NextPoll == nil || src.NextPoll.Sub(*src.LastPoll) != time.Hour || src.Interval != "1h0m0s" {
		t.Fatalf("after the first poll: %+v", src)
	}
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "ioc-2")
	w := newEventWriter(t, d)
	w.send(outbound("198.51.100.80"))
	if h := iocHits(t, ts, d.id); len(h) != 1 || h[0].Details.Source != "taxii-1" || h[0].Details.Indicator != "198.51.100.80" {
		t.Fatalf("hits from the feed: %+v", h)
	}

	// The next poll, an hour on, replaces the set.
	objs.Store([]map[string]any{stixIndicator("indicator--b1000000-0000-4000-8000-000000000002", "[domain-name:value = 'c2.example']", time.Time{})})
	clk.advance(time.Hour + time.Second)
	waitSource(t, ts, "taxii-1", func(s api.IoCSource) bool { return s.Version == 2 })
	w.send(outbound("198.51.100.80"))
	if h := iocHits(t, ts, d.id); len(h) != 1 {
		t.Fatalf("an indicator dropped by the feed still matched: %+v", h)
	}

	// A failing feed shows its error and backs off.
	if code := ts.Do(t, "POST", "/api/v1/ioc/feeds", "", api.IoCFeedCreate{Name: "misp-1", Kind: "misp-feed", URL: taxii.URL + "/misp/"}, &src); code != 201 {
		t.Fatalf("adding the MISP feed: %d", code)
	}
	src = waitSource(t, ts, "misp-1", func(s api.IoCSource) bool { return s.Failures == 1 })
	if !strings.Contains(src.LastError, "404") || src.Interval != "1h0m0s" || src.NextPoll.Sub(*src.LastPoll) != time.Minute {
		t.Fatalf("failed feed: %+v", src)
	}
	clk.advance(time.Minute + time.Second)
	src = waitSource(t, ts, "misp-1", func(s api.IoCSource) bool { return s.Failures == 2 })
	if src.NextPoll.Sub(*src.LastPoll) != 2*time.Minute {
		t.Fatalf("second failure: %+v", src)
	}
}

// deviceHTTP returns a client presenting the device's certificate.
func deviceHTTP(ts *servertest.Server, d *device) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ts.Roots, Certificates: []tls.Certificate{*d.cert}, MinVersion: tls.VersionTLS13}, DisableCompression: true}}
}

func TestDeviceIoCSet(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "ioc-3")
	hc := deviceHTTP(ts, d)
	get := func(etag string, gz bool) (*http.Response, api.DeviceIoCSet) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+api.PathIoC, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		var set api.DeviceIoCSet
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(body).Decode(&set); err != nil {
				t.Fatal(err)
			}
		}
		return resp, set
	}
	resp, empty := get("", false)
	if resp.StatusCode != 200 || len(empty.Indicators) != 0 || empty.Version == "" || resp.Header.Get("ETag") != `"`+empty.Version+`"` {
		t.Fatalf("empty set: %d %+v", resp.StatusCode, empty)
	}
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	importIoC(t, ts, "name=a", []byte("198.51.100.66\n203.0.113.0/24\nevil.example.com\n"), nil)
	importIoC(t, ts, "name=b&format=stix", stixBundle(t,
		stixIndicator("indicator--c1000000-0000-4000-8000-000000000001", "[ipv4-addr:value = '198.51.100.66']", exp),
		stixIndicator("indicator--c1000000-0000-4000-8000-000000000002", "[ipv4-addr:value = '198.51.100.70']", exp),
		stixIndicator("indicator--c1000000-0000-4000-8000-000000000003", "[ipv4-addr:value = '198.51.100.71']", time.Now().Add(-time.Hour))), nil)
	resp, set := get(`"`+empty.Version+`"`, true)
	if resp.StatusCode != 200 || set.Version == empty.Version || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("after imports: %d %+v", resp.StatusCode, set)
	}
	var got []string
	for _, in := range set.Indicators {
		got = append(got, fmt.Sprintf("%s:%s:%v", in.Type, in.Value, in.Expires != 0))
	}
	sort.Strings(got)
	// 198.51.100.66 is in both: the one that never expires wins; the
	// expired 198.51.100.71 is left out.
	if want := []string{"cidr:203.0.113.0/24:false", "domain:evil.example.com:false", "ip:198.51.100.66:false", "ip:198.51.100.70:true"}; !slices.Equal(got, want) {
		t.Fatalf("set = %v, want %v", got, want)
	}
	for _, in := range set.Indicators {
		if in.Value == "198.51.100.70" && in.Expires != exp.Unix() {
			t.Errorf("expiry %d, want %d", in.Expires, exp.Unix())
		}
	}
	if resp, _ := get(`"`+set.Version+`"`, false); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged set: %d", resp.StatusCode)
	}
	// A source deleted and imported again with other content is another
	// version, though its own version number is 1 again.
	if code := ts.Do(t, "DELETE", "/api/v1/ioc/sources/b", "", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	importIoC(t, ts, "name=b", []byte("198.51.100.99\n"), nil)
	resp, again := get(`"`+set.Version+`"`, false)
	if resp.StatusCode != 200 || again.Version == set.Version || len(again.Indicators) != 4 {
		t.Fatalf("after re-creating a source: %d %+v", resp.StatusCode, again)
	}
	// Admin tokens are not device certificates.
	if code := ts.Do(t, "GET", api.PathIoC, "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("GET %s with an admin token: %d", api.PathIoC, code)
	}
}

// BenchmarkIngestIoC is BenchmarkIngest's "http" case with every
// net.connection matched against 1,000,000 indicators (999,000 addresses
// and 1,000 prefixes, none matching the benchmark's traffic); compare the
// two run together on the same machine.
func BenchmarkIngestIoC(b *testing.B) {
	ts := servertest.Start(b, servertest.Options{})
	var list bytes.Buffer
	for i := 0; i < 999_000; i++ {
		fmt.Fprintf(&list, "10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
	}
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&list, "172.%d.%d.0/24\n", 16+i/256, i%256)
	}
	var res api.IoCImportResult
	if code := importIoC(b, ts, "name=million", list.Bytes(), &res); code != 200 || res.Source.Indicators != 1_000_000 {
		b.Fatalf("import: %d %+v", code, res.Source)
	}
	const devices = 8
	tok := ts.EnrollToken(b, devices, "")
	devs := make([]*device, devices)
	batches := make([][][]api.EventRecord, devices)
	per := b.N/devices + 1
	for i := range devs {
		devs[i] = enroll(b, ts, tok, fmt.Sprintf("bench-%d", i))
		batches[i] = benchBatches(b, devs[i].id, per)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	cpu0 := cpu()
	var wg sync.WaitGroup
	for i := range devs {
		n := b.N / devices
		if i < b.N%devices {
			n++
		}
		wg.Go(func() {
			for k := 0; k < n; k++ {
				r, err := devs[i].client.SendEvents(context.Background(), &api.EventBatch{Records: batches[i][k]})
				if err != nil || r.Stored != api.MaxEventBatch {
					b.Errorf("batch %d: %+v, %v", k, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*api.MaxEventBatch)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu()-cpu0)/float64(time.Microsecond)/float64(b.N*api.MaxEventBatch), "cpu-µs/event")
}
