package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/iocblock"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// noNFT is an nft command that does not exist: tests that must not touch
// the host's nftables use it.
var noNFT = []string{"/nonexistent/bulwark-test/nft"}

// importIoC imports a plain indicator list into the server as source name.
func importIoC(t *testing.T, ts *servertest.Server, name, list string) {
	t.Helper()
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/ioc/sources?format=list&name="+name, strings.NewReader(list))
	req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("importing %s: status %d", name, resp.StatusCode)
	}
}

// serverIoCVersion is the version of the set the server serves now.
func serverIoCVersion(t *testing.T, ts *servertest.Server, d *daemon) string {
	t.Helper()
	body, _, err := d.currentClient().FetchIoC(context.Background(), "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var set api.DeviceIoCSet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	return set.Version
}

// openDaemon loads an enrolled state directory and opens its journal,
// without starting any loop.
func openDaemon(t *testing.T, dir string, ioc IoCConfig) *daemon {
	t.Helper()
	cfg := testConfig(dir)
	cfg.IoC = ioc
	d := &daemon{cfg: cfg.withDefaults(), log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), dir: dir}
	if err := d.load(); err != nil {
		t.Fatal(err)
	}
	if err := d.openEvents(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.closeEvents)
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// journalEvents returns the journal's events after seq from.
func journalEvents(t *testing.T, d *daemon, from uint64) []*events.Event {
	t.Helper()
	recs, err := d.ev.j.Read(from+1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*events.Event
	for _, r := range recs {
		ev, err := events.Decode(r.Event)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func waitFetched(t *testing.T, d *daemon) {
	t.Helper()
	select {
	case <-d.iocs.fetched:
	case <-time.After(20 * time.Second):
		t.Fatal("no fetch of the indicator set within 20 s")
	}
}

// TestIoCFetchCacheOffline runs against a real server: the agent fetches
// the set at start and caches it, a repeated fetch is answered 304, a
// changed set is fetched again; matching connection events are followed
// in the journal by ioc.match events; and an agent restarted without a
// reachable server matches against the cached set. A corrupt cache is
// refused without harm.
func TestIoCFetchCacheOffline(t *testing.T) {
	ctx := context.Background()
	ts := servertest.Start(t, servertest.Options{})
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Enroll(ctx, EnrollOptions{StateDir: dir, Server: ts.URL, Token: ts.EnrollToken(t, 1, ""), CAPEM: ts.CAPEM, TPM: "none"}); err != nil {
		t.Fatal(err)
	}
	importIoC(t, ts, "blocklist", "198.51.100.66\n203.0.113.0/24\n9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n")

	d := openDaemon(t, dir, IoCConfig{NFT: noNFT})
	stop := d.startIoC(ctx)
	waitFetched(t, d)
	want := serverIoCVersion(t, ts, d)
	if a := d.iocs.active.Load(); a == nil || a.version != want || a.action != api.IoCActionFlag || a.m.Len() != 3 {
		t.Fatalf("active set after start: %+v, want version %s with 3 indicators", a, want)
	}
	cached, err := os.ReadFile(filepath.Join(dir, iocCacheFile))
	if err != nil || !bytes.Contains(cached, []byte(want)) {
		t.Fatalf("cache: %v %.100s", err, cached)
	}
	stop()

	// Unchanged: 304, nothing new. Changed: the new set is used and cached.
	if changed, err := d.fetchIoC(ctx, d.iocs); changed || err != nil {
		t.Fatalf("fetch of an unchanged set: changed %v, %v", changed, err)
	}
	importIoC(t, ts, "extra", "evil.example.com\n")
	if changed, err := d.fetchIoC(ctx, d.iocs); !changed || err != nil {
		t.Fatalf("fetch of a changed set: changed %v, %v", changed, err)
	}
	want = serverIoCVersion(t, ts, d)
	if a := d.iocs.active.Load(); a.version != want || a.m.Len() != 4 {
		t.Fatalf("active set after a change: version %s with %d, want %s with 4", a.version, a.m.Len(), want)
	}

	// Flag: an outbound connection to a listed address, an inbound one
	// from a listed prefix, one by a listed executable, and one that
	// matches nothing.
	last := d.ev.j.LastSeq()
	conns := []events.NetConnection{
		{Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: 40000, DstIP: "198.51.100.66", DstPort: 443, CommunityID: "1:x"},
		{Protocol: "tcp", Direction: "inbound", SrcIP: "203.0.113.9", SrcPort: 50000, DstIP: "192.0.2.10", DstPort: 22, CommunityID: "1:y"},
		{Protocol: "udp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: 40001, DstIP: "192.0.2.99", DstPort: 53, CommunityID: "1:z",
			Process: &events.ProcessRef{PID: 7, SHA256: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}},
		// Outbound to 203.0.113.9: the remote end is dst, which is not listed.
		{Protocol: "tcp", Direction: "outbound", SrcIP: "203.0.113.9", SrcPort: 40002, DstIP: "192.0.2.98", DstPort: 80, CommunityID: "1:w"},
	}
	d.recordEvent(events.TypeNetConnection, events.SeverityInformational, conns[0])
	d.recordEvent(events.TypeNetConnection, events.SeverityInformational, &conns[1])
	d.recordEvent(events.TypeNetConnection, events.SeverityInformational, conns[2])
	d.recordEvent(events.TypeNetConnection, events.SeverityInformational, conns[3])
	evs := journalEvents(t, d, last)
	var got []string
	for _, ev := range evs {
		s := ev.Type
		if m, ok := ev.Details.(*events.IoCMatch); ok {
			if ev.SeverityID != events.SeverityHigh || m.MatchedBy != "agent" || m.Source != "blocklist" || m.EventType != events.TypeNetConnection {
				t.Errorf("ioc.match %+v (severity %d)", m, ev.SeverityID)
			}
			s += " " + m.IndicatorType + ":" + m.Indicator + " " + m.Field + "=" + m.Observed + fmt.Sprintf(" of +%d", int64(m.EventSeq)-int64(last))
		}
		got = append(got, s)
	}
	wantEvs := []string{
		"net.connection",
		"ioc.match ip:198.51.100.66 dst_ip=198.51.100.66 of +1",
		"net.connection",
		"ioc.match cidr:203.0.113.0/24 src_ip=203.0.113.9 of +3",
		"net.connection",
		"ioc.match sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 process.sha256=9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08 of +5",
		"net.connection",
	}
	if strings.Join(got, "\n") != strings.Join(wantEvs, "\n") {
		t.Fatalf("journal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantEvs, "\n"))
	}
	d.closeEvents()

	// Restart without the server: the cached set is in use at once.
	d2 := openDaemon(t, dir, IoCConfig{NFT: noNFT, Interval: time.Hour})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "https://" + ln.Addr().String()
	ln.Close()
	c, err := newClient(unreachable, d2.caPEM, d2.id)
	if err != nil {
		t.Fatal(err)
	}
	d2.client = c
	stop2 := d2.startIoC(ctx)
	defer stop2()
	if a := d2.iocs.active.Load(); a == nil || a.version != want || a.m.Len() != 4 {
		t.Fatalf("active set after an offline restart: %+v, want version %s", a, want)
	}
	waitFetched(t, d2) // and failed
	last = d2.ev.j.LastSeq()
	d2.recordEvent(events.TypeNetConnection, events.SeverityInformational, conns[0])
	if evs := journalEvents(t, d2, last); len(evs) != 2 || evs[1].Type != events.TypeIoCMatch {
		t.Fatalf("offline: journal after a matching connection: %d events", len(evs))
	}
	if a := d2.iocs.active.Load(); a.version != want {
		t.Fatalf("a failed fetch changed the set to %s", a.version)
	}
	stop2()
	d2.closeEvents()

	// A corrupt cache is refused: nothing is matched until the server
	// answers, and nothing breaks.
	if err := os.WriteFile(filepath.Join(dir, iocCacheFile), []byte(`{"version":"x","indicators":[{"t":"ip","v":"not an address"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d3 := openDaemon(t, dir, IoCConfig{NFT: noNFT, Interval: time.Hour})
	d3.client = c
	stop3 := d3.startIoC(ctx)
	defer stop3()
	if a := d3.iocs.active.Load(); a != nil {
		t.Fatalf("a corrupt cache was used: %+v", a)
	}
	last = d3.ev.j.LastSeq()
	d3.recordEvent(events.TypeNetConnection, events.SeverityInformational, conns[0])
	if evs := journalEvents(t, d3, last); len(evs) != 1 {
		t.Fatalf("without a set: %d events recorded for one connection", len(evs))
	}
}

// TestIoCFlagsRealConnection runs the whole agent, its network collector
// on, against a real server whose indicators list a loopback address: a
// real TCP connection to it is journalled, flagged by the agent, and the
// agent's ioc.match (matched_by agent) reaches the server.
func TestIoCFlagsRealConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("network connections are logged on Linux only")
	}
	ctx := context.Background()
	ts := servertest.Start(t, servertest.Options{})
	dir := filepath.Join(t.TempDir(), "state")
	st, err := Enroll(ctx, EnrollOptions{StateDir: dir, Server: ts.URL, Token: ts.EnrollToken(t, 1, ""), CAPEM: ts.CAPEM, TPM: "none"})
	if err != nil {
		t.Fatal(err)
	}
	// 127.0.0.2 is on the loopback interface of every Linux host, and is
	// not the server's address.
	importIoC(t, ts, "lab", "127.0.0.2\n")
	cfg := testConfig(dir)
	cfg.Collectors = CollectorsConfig{NetInterval: 100 * time.Millisecond, AuthLog: AuthLogOff}
	cfg.IoC = IoCConfig{NFT: noNFT}
	start(t, cfg)
	eventually(t, "the indicator set cached", func() bool {
		_, err := os.Stat(filepath.Join(dir, iocCacheFile))
		return err == nil
	})

	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.Read(make([]byte, 1)); c.Close() }()
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("no ioc.match from the agent reached the server within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
		var page api.EventPage
		if code := ts.Do(t, "GET", "/api/v1/events?limit=500&type="+events.TypeIoCMatch+"&device="+st.DeviceID, "", nil, &page); code != http.StatusOK {
			t.Fatalf("GET /api/v1/events: status %d", code)
		}
		found := false
		for _, se := range page.Events {
			ev, err := events.Decode(se.Event)
			if err != nil {
				t.Fatal(err)
			}
			if m := ev.Details.(*events.IoCMatch); m.MatchedBy == "agent" && m.Indicator == "127.0.0.2" && m.Source == "lab" &&
				(m.Field == "dst_ip" || m.Field == "src_ip") && m.Observed == "127.0.0.2" && m.EventSeq < ev.Seq {
				found = true
			}
		}
		if found {
			break
		}
	}
}

// TestIoCBlockFromCacheThenFlag (root): an agent whose cached set says
// block installs the nftables table at start, before reaching the server
// (in a network namespace, through the configurable nft command); when the
// server's set says flag, the table is removed and the change journalled.
func TestIoCBlockFromCacheThenFlag(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	ctx := context.Background()
	var rb [4]byte
	rand.Read(rb[:])
	ns := "bwioc-agent-" + hex.EncodeToString(rb[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	nft := []string{"ip", "netns", "exec", ns, "nft"}
	blocker := &iocblock.Blocker{Command: nft}

	ts := servertest.Start(t, servertest.Options{}) // policy: flag
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Enroll(ctx, EnrollOptions{StateDir: dir, Server: ts.URL, Token: ts.EnrollToken(t, 1, ""), CAPEM: ts.CAPEM, TPM: "none"}); err != nil {
		t.Fatal(err)
	}
	cache := `{"version":"cached-1","generated_at":"2026-11-26T21:00:00Z","action":"block","indicators":[` +
		`{"t":"cidr","v":"10.99.0.0/24","s":"lab"},{"t":"ip","v":"10.99.0.7","s":"lab"},{"t":"ip","v":"2001:db8::7","s":"lab"},{"t":"domain","v":"evil.example.com","s":"lab"}]}`
	if err := os.WriteFile(filepath.Join(dir, iocCacheFile), []byte(cache), 0o600); err != nil {
		t.Fatal(err)
	}
	d := openDaemon(t, dir, IoCConfig{NFT: nft, Interval: time.Hour})
	// Hold the fetch back until the table from the cache is checked.
	realClient := d.client
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	unreachable := "https://" + ln.Addr().String()
	ln.Close()
	c, err := newClient(unreachable, d.caPEM, d.id)
	if err != nil {
		t.Fatal(err)
	}
	d.client = c
	last := d.ev.j.LastSeq()
	stop := d.startIoC(ctx)
	defer stop()
	waitFetched(t, d)
	if ok, err := blocker.Installed(ctx); err != nil || !ok {
		t.Fatalf("table installed from the cache: %v %v", ok, err)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", iocblock.Table).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.99.0.0/24") || !strings.Contains(string(out), "2001:db8::7") ||
		!strings.Contains(string(out), "127.0.0.1") || strings.Contains(string(out), "10.99.0.7") {
		t.Fatalf("table (want 10.99.0.0/24 and 2001:db8::7 blocked, 127.0.0.1 (the server) exempt): %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, iocBlockMarker)); err != nil {
		t.Fatalf("block marker: %v", err)
	}
	stop()

	// The server says flag: the table goes.
	d.mu.Lock()
	d.client = realClient
	d.mu.Unlock()
	if changed, err := d.fetchIoC(ctx, d.iocs); !changed || err != nil {
		t.Fatalf("fetching the server's set: %v %v", changed, err)
	}
	d.enforceIoC(ctx, d.iocs, d.iocs.active.Load().action, false)
	if ok, err := blocker.Installed(ctx); err != nil || ok {
		t.Fatalf("table after the policy became flag: installed %v, %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, iocBlockMarker)); !os.IsNotExist(err) {
		t.Fatalf("block marker after removal: %v", err)
	}
	var change *events.ConfigChange
	for _, ev := range journalEvents(t, d, last) {
		if c, ok := ev.Details.(*events.ConfigChange); ok && c.Setting == "ioc_action" {
			change = c
		}
	}
	if change == nil || change.Old != api.IoCActionBlock || change.New != api.IoCActionFlag || change.Source != "server" {
		t.Fatalf("config.change of ioc_action: %+v", change)
	}
}

// TestIoCBlockUnavailable: when the policy says block and nft cannot run,
// the failure is journalled once as a config.change of ioc_block and
// matches are still flagged.
func TestIoCBlockUnavailable(t *testing.T) {
	ctx := context.Background()
	ts := servertest.Start(t, servertest.Options{})
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Enroll(ctx, EnrollOptions{StateDir: dir, Server: ts.URL, Token: ts.EnrollToken(t, 1, ""), CAPEM: ts.CAPEM, TPM: "none"}); err != nil {
		t.Fatal(err)
	}
	cache := `{"version":"cached-2","generated_at":"2026-11-26T21:00:00Z","action":"block","indicators":[{"t":"ip","v":"198.51.100.66","s":"lab"}]}`
	if err := os.WriteFile(filepath.Join(dir, iocCacheFile), []byte(cache), 0o600); err != nil {
		t.Fatal(err)
	}
	d := openDaemon(t, dir, IoCConfig{NFT: noNFT, Interval: time.Hour})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	unreachable := "https://" + ln.Addr().String()
	ln.Close()
	c, err := newClient(unreachable, d.caPEM, d.id)
	if err != nil {
		t.Fatal(err)
	}
	d.client = c
	last := d.ev.j.LastSeq()
	stop := d.startIoC(ctx)
	waitFetched(t, d)
	stop()
	d.enforceIoC(ctx, d.iocs, api.IoCActionBlock, false) // the same failure again: not journalled twice
	d.recordEvent(events.TypeNetConnection, events.SeverityInformational, events.NetConnection{
		Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: 40000, DstIP: "198.51.100.66", DstPort: 443, CommunityID: "1:x"})
	var got []string
	for _, ev := range journalEvents(t, d, last) {
		got = append(got, ev.Type)
		if c, ok := ev.Details.(*events.ConfigChange); ok && (c.Setting != "ioc_block" || !strings.Contains(c.New, "nft is not available")) {
			t.Errorf("config.change %+v", c)
		}
	}
	if want := "config.change net.connection ioc.match"; strings.Join(got, " ") != want {
		t.Fatalf("journal: %v, want %s", got, want)
	}
	if st := d.iocs.status(); st.Version != "cached-2" || st.Indicators != 1 || !strings.HasPrefix(st.Blocking, "failed: ") {
		t.Errorf("status: %+v, want the cached set with blocking failed", st)
	}
	if _, err := os.Stat(filepath.Join(dir, iocBlockMarker)); !os.IsNotExist(err) {
		t.Fatalf("block marker without a table: %v", err)
	}
}

// TestIoCBlockFromServer (root): under a server whose policy is block, the
// agent's first fetch installs the table (in a network namespace) with
// the server's IP and CIDR indicators, and the switch from flag is
// journalled.
func TestIoCBlockFromServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	ctx := context.Background()
	var rb [4]byte
	rand.Read(rb[:])
	ns := "bwioc-srv-" + hex.EncodeToString(rb[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	nft := []string{"ip", "netns", "exec", ns, "nft"}

	ts := servertest.Start(t, servertest.Options{Config: server.Config{IoC: server.IoCConfig{DeviceAction: api.IoCActionBlock}}})
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Enroll(ctx, EnrollOptions{StateDir: dir, Server: ts.URL, Token: ts.EnrollToken(t, 1, ""), CAPEM: ts.CAPEM, TPM: "none"}); err != nil {
		t.Fatal(err)
	}
	importIoC(t, ts, "lab", "198.51.100.66\n203.0.113.0/24\n2001:db8::/48\nevil.example.com\n")
	d := openDaemon(t, dir, IoCConfig{NFT: nft, Interval: time.Hour})
	last := d.ev.j.LastSeq()
	stop := d.startIoC(ctx)
	waitFetched(t, d)
	stop()
	if st := d.iocs.status(); st.Version == "" || st.Indicators != 4 || st.Action != api.IoCActionBlock || st.Blocking != "installed" {
		t.Errorf("status: %+v, want the set's version, 4 indicators, action block, blocking installed", st)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", iocblock.Table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	for _, want := range []string{"198.51.100.66", "203.0.113.0/24", "2001:db8::/48", "ip daddr @block4", "ip saddr @block4", "ip6 daddr @block6"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("table lacks %s:\n%s", want, out)
		}
	}
	var change *events.ConfigChange
	for _, ev := range journalEvents(t, d, last) {
		if c, ok := ev.Details.(*events.ConfigChange); ok {
			change = c
		}
	}
	if change == nil || change.Setting != "ioc_action" || change.Old != api.IoCActionFlag || change.New != api.IoCActionBlock {
		t.Fatalf("config.change: %+v", change)
	}
	// Removing the table (the policy back to flag) is TestIoCBlockFromCacheThenFlag's.
	if err := (&iocblock.Blocker{Command: nft}).Remove(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestIoCCheckinHint: a check-in answer names the set the server serves;
// an agent holding another fetches it at once rather than at its next
// poll (an hour here), so a new indicator reaches the fleet within a
// check-in interval.
func TestIoCCheckinHint(t *testing.T) {
	ctx := context.Background()
	ts := servertest.Start(t, servertest.Options{})
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Enroll(ctx, EnrollOptions{StateDir: dir, Server: ts.URL, Token: ts.EnrollToken(t, 1, ""), CAPEM: ts.CAPEM, TPM: "none"}); err != nil {
		t.Fatal(err)
	}
	importIoC(t, ts, "blocklist", "198.51.100.66\n")
	d := openDaemon(t, dir, IoCConfig{NFT: noNFT, Interval: time.Hour})
	stop := d.startIoC(ctx)
	defer stop()
	waitFetched(t, d)
	first := d.iocs.active.Load().version

	// What checkin does with the answer of a real check-in.
	checkin := func() {
		t.Helper()
		resp, err := d.currentClient().Checkin(ctx, &api.CheckinRequest{Inventory: d.inventory(), Health: d.Health()})
		if err != nil {
			t.Fatal(err)
		}
		if resp.IoCVersion == "" {
			t.Fatal("the check-in answer names no indicator set version")
		}
		d.iocs.hint(resp.IoCVersion)
	}
	// A check-in naming the set held changes nothing.
	checkin()
	time.Sleep(200 * time.Millisecond)
	if v := d.iocs.active.Load().version; v != first {
		t.Fatalf("version changed to %s without a new set", v)
	}

	importIoC(t, ts, "extra", "evil.example.com\n")
	want := serverIoCVersion(t, ts, d)
	if want == first {
		t.Fatal("the server's version did not change with the set")
	}
	checkin()
	deadline := time.Now().Add(10 * time.Second)
	for d.iocs.active.Load().version != want {
		if time.Now().After(deadline) {
			t.Fatalf("the agent still holds %s 10 s after a check-in named %s", d.iocs.active.Load().version, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := d.iocs.active.Load().m.Len(); n != 2 {
		t.Fatalf("the new set has %d indicators, want 2", n)
	}
}
