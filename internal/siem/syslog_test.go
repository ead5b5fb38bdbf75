package siem

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

func TestSyslogMessageFormat(t *testing.T) {
	evs := testEvents(t, `dev"7]`, 41, 3, 0)
	s, err := NewSyslog(SyslogConfig{Addr: "127.0.0.1:6514"})
	if err != nil {
		t.Fatal(err)
	}
	var frames []byte
	for i := range evs {
		if frames, err = s.appendFrame(frames, &evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	body0, _ := evs[0].Marshal()
	want0 := `<84>1 2026-11-26T21:04:05.123456Z dev"7] bulwark - auth.login [bulwark@32473 device="dev\"7\]" seq="41" type="auth.login" severity="Medium"] ` + "\xEF\xBB\xBF" + string(body0)
	tests := []struct {
		pri              int
		host, msgid, sev string
		seq              string
		wantExact        string
	}{
		{84, `dev"7]`, "auth.login", "Medium", "41", want0}, // authpriv(10)*8 + warning(4)
		{131, `dev"7]`, "policy.denial", "High", "42", ""},  // local0(16)*8 + error(3)
		{134, `dev"7]`, "integrity.result", "Informational", "43", ""},
	}
	rest := frames
	for i, tt := range tests {
		var raw []byte
		if raw, rest, err = splitFrame(rest); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if tt.wantExact != "" && string(raw) != tt.wantExact {
			t.Errorf("frame %d:\n got %s\nwant %s", i, raw, tt.wantExact)
		}
		m, err := parseRFC5424(raw)
		if err != nil {
			t.Fatalf("frame %d: %v\n%s", i, err, raw)
		}
		if m.Pri != tt.pri || m.Hostname != tt.host || m.MsgID != tt.msgid || m.AppName != "bulwark" || m.ProcID != "-" || !m.BOM {
			t.Errorf("frame %d: header %+v", i, m)
		}
		if !m.Time.Equal(evs[i].DeviceTime.Truncate(time.Microsecond)) {
			t.Errorf("frame %d: time %v, want %v", i, m.Time, evs[i].DeviceTime)
		}
		for name, want := range map[string]string{"device": `dev"7]`, "seq": tt.seq, "type": tt.msgid, "severity": tt.sev} {
			if got, _ := m.param(SDID, name); got != want {
				t.Errorf("frame %d: %s=%q, want %q", i, name, got, want)
			}
		}
		ev, err := events.Decode(m.Msg)
		if err != nil {
			t.Fatalf("frame %d: MSG is not an event: %v", i, err)
		}
		if !reflect.DeepEqual(ev, &evs[i]) {
			t.Errorf("frame %d: decoded %+v, want %+v", i, ev, evs[i])
		}
	}
	if len(rest) != 0 {
		t.Errorf("%d trailing bytes", len(rest))
	}
}

func TestSyslogConfigHostnameAndFacility(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Addr: "127.0.0.1:6514", Facility: "daemon", AuthFacility: "auth",
		Hostname: func(id string) string { return "host name\x00with\u00e9" }})
	if err != nil {
		t.Fatal(err)
	}
	evs := testEvents(t, "dev-1", 1, 2, 0)
	for i, wantPri := range []int{4*8 + 4, 3*8 + 3} {
		raw, err := s.appendFrame(nil, &evs[i])
		if err != nil {
			t.Fatal(err)
		}
		msg, _, err := splitFrame(raw)
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseRFC5424(msg)
		if err != nil {
			t.Fatal(err)
		}
		if m.Pri != wantPri || m.Hostname != "host_name_with__" {
			t.Errorf("event %d: pri %d hostname %q", i, m.Pri, m.Hostname)
		}
	}
	if _, err := NewSyslog(SyslogConfig{Addr: "127.0.0.1:6514", Facility: "local9"}); err == nil {
		t.Error("unknown facility accepted")
	}
	if _, err := NewSyslog(SyslogConfig{Addr: "no-port"}); err == nil {
		t.Error("address without port accepted")
	}
}

func TestSyslogInvalidEventSendsNothing(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := testEvents(t, "dev-1", 1, 3, 0)
	evs[1].Seq = 0
	err = s.Send(context.Background(), evs)
	var ie *InvalidEventError
	if !errors.As(err, &ie) || ie.Index != 1 {
		t.Fatalf("Send = %v, want InvalidEventError for index 1", err)
	}
}

// parseReceived parses what the collector wrote and returns the seqs seen,
// failing the test on any malformed message.
func parseReceived(t *testing.T, lines []string, byDevice map[string]map[uint64]events.Event) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, line := range lines {
		m, err := parseRFC5424([]byte(line))
		if err != nil {
			t.Fatalf("collector received a malformed message: %v\n%q", err, line)
		}
		dev, _ := m.param(SDID, "device")
		seq, _ := m.param(SDID, "seq")
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			t.Fatalf("bad seq %q", seq)
		}
		want, ok := byDevice[dev][n]
		if !ok {
			t.Fatalf("received an event never sent: %s/%s", dev, seq)
		}
		got, err := events.Decode(m.Msg)
		if err != nil {
			t.Fatalf("MSG of %s/%s is not an event: %v", dev, seq, err)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("%s/%s arrived changed:\n got %+v\nwant %+v", dev, seq, got, want)
		}
		if m.Hostname != dev || m.MsgID != want.Type || !m.BOM {
			t.Fatalf("%s/%s header: %+v", dev, seq, m)
		}
		seen[dev+"/"+seq]++
	}
	return seen
}

func index(evs []events.Event) map[string]map[uint64]events.Event {
	out := map[string]map[uint64]events.Event{}
	for _, e := range evs {
		if out[e.DeviceID] == nil {
			out[e.DeviceID] = map[uint64]events.Event{}
		}
		out[e.DeviceID][e.Seq] = e
	}
	return out
}

func TestSyslogToRsyslog(t *testing.T) {
	pki := newTestPKI(t)
	r := startRsyslogd(t, pki, rsyslogOptions{})
	s, err := NewSyslog(SyslogConfig{Addr: r.addr(), ServerName: pki.serverName, RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var all []events.Event
	seq := uint64(1)
	for _, size := range []int{1, 7, 50, 300, 2} {
		batch := testEvents(t, "dev-a", seq, size, 200)
		seq += uint64(size)
		if err := s.Send(ctx, batch); err != nil {
			t.Fatalf("Send(%d events): %v\nrsyslogd: %s", size, err, r.internalLog())
		}
		all = append(all, batch...)
	}
	// One large event (about 24 KB, well over the 8 KB RFC 5425 asks
	// collectors to accept by default).
	x := strings.Repeat("x", 4000)
	big, err := events.New(events.TypeNetConnection, "dev-b", events.SeverityLow, testTime, events.NetConnection{
		Protocol: "tcp", Direction: "outbound", SrcIP: x, DstIP: x, CommunityID: x,
		Process: &events.ProcessRef{Path: x, SHA256: x, User: x}})
	if err != nil {
		t.Fatal(err)
	}
	big.Seq = 1
	if err := s.Send(ctx, []events.Event{*big}); err != nil {
		t.Fatal(err)
	}
	all = append(all, *big)
	// Concurrent senders share the one connection.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := 0; g < 4; g++ {
		dev := fmt.Sprintf("dev-conc-%d", g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < 25; b++ {
				batch := testEvents(t, dev, uint64(b*5+1), 5, 100)
				if err := s.Send(ctx, batch); err != nil {
					t.Errorf("%s: %v", dev, err)
					return
				}
				mu.Lock()
				all = append(all, batch...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if v := s.tlsVersion(); v != tls.VersionTLS13 {
		t.Errorf("negotiated %s with rsyslog's GnuTLS, want TLS 1.3", tls.VersionName(v))
	}
	lines := r.waitReceived(len(all), 10*time.Second)
	seen := parseReceived(t, lines, index(all))
	for _, e := range all {
		if n := seen[fmt.Sprintf("%s/%d", e.DeviceID, e.Seq)]; n != 1 {
			t.Errorf("%s/%d received %d times, want exactly once", e.DeviceID, e.Seq, n)
		}
	}
	if len(lines) != len(all) {
		t.Errorf("rsyslogd wrote %d messages, sent %d", len(lines), len(all))
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "(*syslogConn).read") {
		t.Errorf("connection reader still running after Close:\n%s", stacks)
	}
}

func TestSyslogTLSChecks(t *testing.T) {
	pki := newTestPKI(t)
	r := startRsyslogd(t, pki, rsyslogOptions{})
	other := newTestPKI(t)
	tests := []struct {
		name string
		cfg  SyslogConfig
	}{
		{"wrong server name", SyslogConfig{ServerName: "other.bulwark.test", RootCAs: pki.pool}},
		{"untrusted CA", SyslogConfig{ServerName: pki.serverName, RootCAs: other.pool}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Addr = r.addr()
			s, err := NewSyslog(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Send(context.Background(), testEvents(t, "dev-x", 1, 1, 0))
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Fatalf("Send = %v, want a certificate verification error", err)
			}
		})
	}
	// A TLS 1.2-only collector is refused unless AllowTLS12 is set.
	r12 := startRsyslogd(t, pki, rsyslogOptions{priority: "NORMAL:-VERS-ALL:+VERS-TLS1.2"})
	for _, allow := range []bool{false, true} {
		s, err := NewSyslog(SyslogConfig{Addr: r12.addr(), ServerName: pki.serverName, RootCAs: pki.pool, AllowTLS12: allow})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(context.Background(), testEvents(t, "dev-12", 1, 1, 0))
		if allow && (err != nil || s.tlsVersion() != tls.VersionTLS12) {
			t.Errorf("AllowTLS12: Send = %v, version %s", err, tls.VersionName(s.tlsVersion()))
		}
		if !allow && err == nil {
			t.Errorf("TLS 1.2-only collector accepted without AllowTLS12")
		}
		s.Close()
	}
	if got := r12.waitReceived(1, 5*time.Second); len(got) != 1 {
		t.Errorf("TLS 1.2 collector received %d messages, want 1", len(got))
	}
	// rsyslog's own anon-mode priority string (no gnutlsPriorityString set)
	// is, with Debian 12's GnuTLS 3.7, TLS 1.2 only: such a collector needs
	// AllowTLS12 or, better, gnutlsPriorityString="NORMAL".
	rdef := startRsyslogd(t, pki, rsyslogOptions{priority: "default"})
	s, err := NewSyslog(SyslogConfig{Addr: rdef.addr(), ServerName: pki.serverName, RootCAs: pki.pool, AllowTLS12: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), testEvents(t, "dev-def", 1, 1, 0)); err != nil {
		t.Errorf("Send to rsyslog with its default anon priorities: %v", err)
	}
	t.Logf("rsyslog anon mode with its default GnuTLS priorities negotiates %s", tls.VersionName(s.tlsVersion()))
	s.Close()
	if got := r.received(); len(got) != 0 {
		t.Errorf("collector received %d messages from senders that should have refused it", len(got))
	}
}

func TestSyslogClientCertificate(t *testing.T) {
	pki := newTestPKI(t)
	r := startRsyslogd(t, pki, rsyslogOptions{authMode: "x509/name", permittedPeer: pki.clientName})
	s, err := NewSyslog(SyslogConfig{Addr: r.addr(), ServerName: pki.serverName, RootCAs: pki.pool, Certificate: &pki.client})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := testEvents(t, "dev-c", 1, 5, 0)
	if err := s.Send(context.Background(), evs); err != nil {
		t.Fatalf("Send with client certificate: %v\n%s", err, r.internalLog())
	}
	lines := r.waitReceived(len(evs), 5*time.Second)
	if seen := parseReceived(t, lines, index(evs)); len(seen) != len(evs) {
		t.Fatalf("received %d of %d events", len(seen), len(evs))
	}
}

// TestSyslogRsyslogRestart restarts the collector while a sender is
// streaming batches, and checks that every event Send acknowledged arrived,
// and that duplicates are only of events whose Send reported an error.
func TestSyslogRsyslogRestart(t *testing.T) {
	pki := newTestPKI(t)
	r := startRsyslogd(t, pki, rsyslogOptions{})
	s, err := NewSyslog(SyslogConfig{Addr: r.addr(), ServerName: pki.serverName, RootCAs: pki.pool,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Probation: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const batches, size = 400, 10
	all := testEvents(t, "dev-r", 1, batches*size, 300)
	var (
		mu       sync.Mutex
		sentOK   int
		failures int
		retried  = map[uint64]bool{}
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := 0; b < batches; b++ {
			batch := all[b*size : (b+1)*size]
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := s.Send(ctx, batch)
				cancel()
				mu.Lock()
				if err == nil {
					sentOK++
					mu.Unlock()
					break
				}
				failures++
				for _, e := range batch {
					retried[e.Seq] = true
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	// Restart twice while the stream runs.
	for i := 0; i < 2; i++ {
		for {
			mu.Lock()
			n := sentOK
			mu.Unlock()
			if n >= (i+1)*batches/3 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		r.stop()
		time.Sleep(300 * time.Millisecond)
		r.start()
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("sender did not finish")
	}
	lines := r.waitReceived(len(all), 10*time.Second)
	seen := parseReceived(t, lines, index(all))
	var missing, dups []uint64
	for _, e := range all {
		n := seen[fmt.Sprintf("dev-r/%d", e.Seq)]
		if n == 0 {
			missing = append(missing, e.Seq)
		}
		if n > 1 && !retried[e.Seq] {
			dups = append(dups, e.Seq)
		}
	}
	t.Logf("%d events in %d batches, %d failed Sends during 2 restarts, %d messages received", len(all), batches, failures, len(lines))
	if failures == 0 {
		t.Error("no Send failed: the restarts did not interrupt the stream")
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged events lost: %v", len(missing), missing[:min(len(missing), 20)])
	}
	if len(dups) > 0 {
		t.Errorf("events duplicated though their Send succeeded first time: %v", dups)
	}
}

func TestSyslogBackoff(t *testing.T) {
	port := freePort(t) // nothing listens
	s, err := NewSyslog(SyslogConfig{Addr: fmt.Sprintf("127.0.0.1:%d", port), RootCAs: x509.NewCertPool(),
		MinBackoff: 2 * time.Second, MaxBackoff: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := testEvents(t, "dev-1", 1, 1, 0)
	if err := s.Send(context.Background(), evs); err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
	// Within the backoff, a Send with a short deadline fails at once
	// without dialling.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Send(ctx, evs)
	if err == nil || !strings.Contains(err.Error(), "unavailable, next attempt in") {
		t.Fatalf("Send during backoff = %v", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("Send during backoff took %v", d)
	}
	// A listener appears; the next Send after the backoff connects (and
	// fails the handshake, as this listener speaks no TLS).
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d was taken meanwhile: %v", port, err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	start = time.Now()
	err = s.Send(ctx2, evs)
	if err == nil || strings.Contains(err.Error(), "refused") {
		t.Errorf("Send after backoff = %v, want a handshake failure", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Send after backoff returned after %v, before the backoff ended", d)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Send(context.Background(), evs); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
}

// BenchmarkRsyslogTLS measures how many 1 KB records per second rsyslogd
// receives and writes to a file from one TLS 1.3 connection on this
// machine: the baseline Bulwark's own event ingestion is compared with.
// Each iteration sends a batch of 100 records; the clock stops once
// rsyslogd has written them all. queue=direct writes each record before
// reading the next; queue=default is rsyslog's own in-memory main queue.
func BenchmarkRsyslogTLS(b *testing.B) {
	for _, q := range []string{"direct", "default"} {
		b.Run("queue="+q, func(b *testing.B) {
			opt := rsyslogOptions{queue: q}
			if q == "direct" {
				opt.queue = ""
			}
			benchmarkRsyslog(b, opt)
		})
	}
}

func benchmarkRsyslog(b *testing.B, opt rsyslogOptions) {
	pki := newTestPKI(b)
	r := startRsyslogd(b, pki, opt)
	s, err := NewSyslog(SyslogConfig{Addr: r.addr(), ServerName: pki.serverName, RootCAs: pki.pool})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch = 100
	recs := make([][]events.Event, 3)
	for k := range recs {
		recs[k] = make([]events.Event, batch)
		for i := range recs[k] {
			recs[k][i] = testIntegrity(b, "dev-bench", uint64(k*batch+i+1))
		}
	}
	ctx := context.Background()
	if err := s.Send(ctx, recs[0][:1]); err != nil { // connect outside the timing
		b.Fatal(err)
	}
	before := len(r.waitReceived(1, 5*time.Second))
	b.SetBytes(1024 * batch)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := s.Send(ctx, recs[i%3]); err != nil {
			b.Fatal(err)
		}
	}
	want := before + b.N*batch
	got := r.waitReceived(want, time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	if len(got) < want {
		b.Fatalf("rsyslogd wrote %d of %d records", len(got), want)
	}
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// testIntegrity is an integrity.result event whose framed syslog record is
// exactly 1,024 bytes.
func testIntegrity(t testing.TB, device string, seq uint64) events.Event {
	mk := func(pad int) events.Event {
		e, err := events.New(events.TypeIntegrityResult, device, events.SeverityInformational, testTime, events.IntegrityResult{
			Check: "agent-binary", Outcome: "pass", Path: "/usr/bin/bulwark-agent", Expected: strings.Repeat("a", pad)})
		if err != nil {
			t.Fatal(err)
		}
		e.Seq = seq
		return *e
	}
	s := &Syslog{facility: 16, authFacility: 10}
	pad := 1
	for range 5 {
		e := mk(pad)
		raw, _ := s.appendFrame(nil, &e)
		if len(raw) == 1024 {
			return e
		}
		pad += 1024 - len(raw)
		if pad < 1 {
			break
		}
	}
	t.Fatalf("cannot pad a record to 1,024 bytes")
	return events.Event{}
}

// TestSyslogClientRejected: a collector that refuses the client certificate
// after the handshake (rsyslog checks the peer name then) must not make
// Send report success.
func TestSyslogClientRejected(t *testing.T) {
	pki := newTestPKI(t)
	r := startRsyslogd(t, pki, rsyslogOptions{authMode: "x509/name", permittedPeer: "someone-else.bulwark.test"})
	for _, withCert := range []bool{true, false} {
		cfg := SyslogConfig{Addr: r.addr(), ServerName: pki.serverName, RootCAs: pki.pool, MinBackoff: time.Millisecond}
		if withCert {
			cfg.Certificate = &pki.client
		}
		s, err := NewSyslog(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			err := s.Send(context.Background(), testEvents(t, "dev-rej", uint64(i+1), 1, 0))
			t.Logf("%v client certificate %v, Send %d: %v", time.Now().Format("15:04:05.000"), withCert, i, err)
			if err == nil {
				t.Errorf("client certificate %v: Send %d succeeded though the collector refuses the client", withCert, i)
			}
		}
		s.Close()
	}
	if got := r.received(); len(got) != 0 {
		t.Errorf("collector accepted %d messages", len(got))
	}
}

func TestSyslogAlertToRsyslog(t *testing.T) {
	pki := newTestPKI(t)
	r := startRsyslogd(t, pki, rsyslogOptions{})
	s, err := NewSyslog(SyslogConfig{Addr: r.addr(), ServerName: pki.serverName, RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := testEvents(t, "dev-al", 3, 2, 0)
	a := Alert{ID: `al-"1"`, Rule: "ssh]bruteforce", Severity: events.SeverityCritical, DeviceID: "dev-al",
		Summary: "5 failed SSH logins", Time: testTime, Events: []EventRef{Ref(&evs[0]), Ref(&evs[1])}}
	if err := s.SendAlert(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	bad := a
	bad.Rule = ""
	if err := s.SendAlert(context.Background(), bad); err == nil {
		t.Error("invalid alert sent")
	}
	lines := r.waitReceived(1, 5*time.Second)
	if len(lines) != 1 {
		t.Fatalf("received %d messages", len(lines))
	}
	m, err := parseRFC5424([]byte(lines[0]))
	if err != nil {
		t.Fatal(err)
	}
	if m.Pri != 16*8+2 || m.MsgID != "alert" || m.Hostname != "dev-al" || m.Timestamp != "2026-11-26T21:04:05.123456Z" || !m.BOM {
		t.Errorf("header %+v", m)
	}
	for name, want := range map[string]string{"alert": a.ID, "rule": a.Rule, "device": "dev-al", "severity": "Critical"} {
		if got, _ := m.param(SDID, name); got != want {
			t.Errorf("%s=%q, want %q", name, got, want)
		}
	}
	var got Alert
	if err := json.Unmarshal(m.Msg, &got); err != nil || !reflect.DeepEqual(got, a) {
		t.Errorf("MSG %s: %v", m.Msg, err)
	}
}

// BenchmarkSyslogSender is the sender's own ceiling: the same 1 KB records
// and batches as BenchmarkRsyslogTLS, to a Go TLS 1.3 server that reads and
// discards them.
func BenchmarkSyslogSender(b *testing.B) {
	pki := newTestPKI(b)
	cert, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		b.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var received sync.WaitGroup
	received.Add(1)
	var n int64
	go func() {
		defer received.Done()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				return
			}
		}
	}()
	s, err := NewSyslog(SyslogConfig{Addr: l.Addr().String(), ServerName: pki.serverName, RootCAs: pki.pool, Probation: time.Nanosecond})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 100
	recs := make([]events.Event, batch)
	for i := range recs {
		recs[i] = testIntegrity(b, "dev-bench", uint64(i+1))
	}
	ctx := context.Background()
	if err := s.Send(ctx, recs[:1]); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024 * batch)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := s.Send(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	s.Close()
	received.Wait()
	if want := int64(1024 * (b.N*batch + 1)); n != want {
		b.Fatalf("server read %d bytes, want %d", n, want)
	}
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}
