package e2e

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// TestSecurityEventsUnderFailure runs the real server and agent binaries,
// the agent in its own network namespace behind a veth pair, with alerts
// and events delivered to a real rsyslogd over TLS and alerts to a webhook
// receiver that checks signatures (issue 5, "Done when"). While the agent
// records a steady stream of authentication events (lines appended to the
// auth log it follows):
//
//  1. and 2. the agent and the server are SIGKILLed and restarted (the
//     server on the same data directory), three times each, a few random
//     milliseconds after a record is appended;
//  3. the network is partitioned; meanwhile the agent is stopped and two
//     records the server has not received are tampered with: one byte
//     changed (the record no longer matches its hash: refused, stored as a
//     gap) and one altered and re-hashed as an attacker who knows the
//     format would (the next record no longer links: journal.chain_broken);
//     journal.tamper and journal.gap alerts are raised and delivered;
//  4. in a second partition the last record is corrupted so that the
//     journal no longer opens: the agent keeps it aside and starts a new
//     one past its seqs, and a new journal.tamper alert is delivered;
//  5. an outbound TCP connection from the agent's namespace to an address
//     of an imported indicator list is matched by the server and by the
//     agent, and raises an alert delivered by webhook and as a well-formed
//     RFC 5424 message;
//  6. every record of both journals is in the store exactly once by
//     (device, seq) with the same hash, and the only holes and broken
//     links the server recorded are the ones the tampering made;
//  7. the SIEM has every stored event.
func TestSecurityEventsUnderFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds binaries; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("[%5.1fs] %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	tmp := t.TempDir()
	bulwark := build(t, tmp, "cmd/bulwark")
	agentBin := build(t, tmp, "cmd/bulwark-agent")
	step("built the binaries")

	topo := newNetTopo(t)
	coll := startCollector(t)
	hook := startHookRecv(t)
	step("namespace %s (agent %s, server %s, indicator %s), rsyslogd on %s, webhook on %s",
		topo.NS, topo.NSIP, topo.HostIP, topo.ExtraIP, coll.addr, hook.url)

	secretFile := filepath.Join(tmp, "webhook.secret")
	if err := os.WriteFile(secretFile, append(hook.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(topo.HostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "https://" + addr
	data := filepath.Join(tmp, "data")
	srv := newProc(t, "server", bulwark, "server", "--data", data, "--listen", addr, "--host", topo.HostIP,
		"--checkin-interval", "5s",
		"--alert-webhook", hook.url, "--alert-webhook-secret-file", secretFile,
		"--alert-syslog", coll.addr, "--alert-syslog-ca", coll.pki.caFile,
		"--siem-syslog", coll.addr, "--siem-syslog-ca", coll.pki.caFile)
	startServer := func() {
		srv.start()
		eventually(t, "the server to listen on "+addr, 30*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	startServer()
	r := &runner{t: t}
	token := strings.TrimSpace(r.ok(bulwark, "token", "create", "--data", data, "--role", "admin", "--name", "e2e"))
	r.env = []string{"BULWARK_ADDR=" + base, "BULWARK_TOKEN=" + token, "BULWARK_CACERT=" + filepath.Join(data, "ca.pem")}

	enrollToken := strings.TrimSpace(r.ok(bulwark, "enroll-token", "create", "--uses", "1", "--ttl", "1h"))
	state := filepath.Join(tmp, "agent")
	r.ok(agentBin, "enroll", "--server", base, "--token", enrollToken, "--ca-cert", filepath.Join(data, "ca.pem"), "--state", state)
	var list api.DeviceList
	if err := json.Unmarshal([]byte(r.ok(bulwark, "devices", "list", "--json")), &list); err != nil || list.Total != 1 {
		t.Fatalf("devices list: %v %+v", err, list)
	}
	dev := list.Devices[0].ID
	jdir := filepath.Join(state, "events-"+dev)

	// The indicator list names the second host address, which only the
	// test's own connection (step 5) reaches; the agent fetches the set at
	// start and matches on the device too.
	indicators := filepath.Join(tmp, "e2e-blocklist.txt")
	if err := os.WriteFile(indicators, []byte("# e2e test indicators\n"+topo.ExtraIP+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.ok(bulwark, "ioc", "import", "--name", "e2e-blocklist", "--format", "list", indicators)

	// The agent runs in the namespace and follows an auth log the test
	// writes: one sshd line every 400 ms, below its 120 a minute limit.
	authLog := filepath.Join(tmp, "auth.log")
	if err := os.WriteFile(authLog, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	agent := newProc(t, "agent", "ip", "netns", "exec", topo.NS, agentBin, "run", "--state", state,
		"--interval", "1s", "--auth-log", authLog, "--ioc-interval", "10s")
	agent.start()
	var lines atomic.Int64
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		f, err := os.OpenFile(authLog, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		tick := time.NewTicker(400 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopWriter:
				return
			case now := <-tick.C:
				n := lines.Add(1)
				fmt.Fprintf(f, "%s gw sshd[%d]: Accepted password for e2e%06d from 192.0.2.10 port %d ssh2\n",
					now.Format(time.Stamp), 1000+n, n, 40000+n)
			}
		}
	}()
	stopStream := func() {
		select {
		case <-stopWriter:
		default:
			close(stopWriter)
			<-writerDone
		}
	}
	t.Cleanup(stopStream)

	jnl := func() journalDisk { return readJournalDir(t, jdir) }
	// acked waits until the server acknowledged at least seq.
	acked := func(what string, seq uint64, timeout time.Duration) {
		t.Helper()
		eventually(t, what, timeout, func() bool { return jnl().acked >= seq })
	}
	acked("the first events to be acknowledged", 5, 60*time.Second)
	step("streaming: journal at seq %d, lines written %d", jnl().lastSeq(), lines.Load())

	// unacked waits (briefly) until the journal holds a record the server
	// has not acknowledged, so that a crash comes mid-stream: with a
	// record being written, sent or acknowledged.
	unacked := func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if jd := jnl(); jd.lastSeq() > jd.acked {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// maxStored is the highest journal seq the server stores.
	maxStored := func() uint64 {
		var m uint64
		for _, se := range listEvents(t, r, bulwark, dev, "") {
			if se.Source == "device" {
				m = max(m, se.Seq)
			}
		}
		return m
	}

	// 1 and 2. The agent crashes and comes back; the server crashes and
	// comes back on the same data directory. Three rounds, each crash a
	// random few milliseconds after a record was appended, so that some
	// land while a batch is in flight: stored by the server but not yet
	// acknowledged in the journal, to be sent again.
	for round := 1; round <= 3; round++ {
		unacked()
		time.Sleep(time.Duration(mrand.IntN(20)) * time.Millisecond)
		agent.kill()
		killedAt := jnl()
		step("round %d: agent SIGKILLed at seq %d (acked %d; the server holds up to %d)", round, killedAt.lastSeq(), killedAt.acked, maxStored())
		time.Sleep(time.Duration(300+mrand.IntN(700)) * time.Millisecond)
		agent.start()
		acked("events after the agent's restart to be acknowledged", killedAt.lastSeq()+2, 60*time.Second)

		unacked()
		time.Sleep(time.Duration(mrand.IntN(20)) * time.Millisecond)
		srv.kill()
		killedAt = jnl()
		step("round %d: server SIGKILLed at seq %d (acked %d)", round, killedAt.lastSeq(), killedAt.acked)
		time.Sleep(time.Duration(500+mrand.IntN(1500)) * time.Millisecond)
		startServer()
		acked("events after the server's restart to be acknowledged", killedAt.lastSeq()+2, 60*time.Second)
		step("round %d: both back, acked %d", round, jnl().acked)
	}

	// 3. The network is partitioned; events keep being written. The agent
	// is stopped mid-partition and two records the server has not seen
	// are tampered with.
	topo.partition(t)
	parted := jnl()
	step("partitioned at seq %d (acked %d)", parted.lastSeq(), parted.acked)
	var naive, rehashed uint64
	eventually(t, "unacknowledged auth.login records during the partition", 30*time.Second, func() bool {
		jd := jnl()
		var cands []uint64
		for _, rec := range jd.records[:max(len(jd.records)-1, 0)] {
			if rec.Seq > jd.acked+1 && bytes.Contains(rec.Event, []byte(`"user":"e2e`)) {
				cands = append(cands, rec.Seq)
			}
		}
		for _, s := range cands[min(1, len(cands)):] {
			if len(cands) > 0 && s >= cands[0]+2 {
				naive, rehashed = cands[0], s
				return true
			}
		}
		return false
	})
	agent.kill()
	before := jnl()
	if before.acked >= naive {
		t.Fatalf("the server acknowledged seq %d during the partition", before.acked)
	}
	// A byte changed: the record no longer matches its hash.
	rewriteRecord(t, jdir, naive, func(line []byte) []byte {
		return bytes.Replace(line, []byte(`"user":"e2e`), []byte(`"user":"e3e`), 1)
	})
	// Altered and re-hashed: the next record no longer links to it.
	rewriteRecord(t, jdir, rehashed, func(line []byte) []byte {
		var rec journal.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		ev := bytes.Replace(rec.Event, []byte(`"user":"e2e`), []byte(`"user":"mallory-e2e`), 1)
		return fmt.Appendf(nil, `{"seq":%d,"prev_hash":%q,"hash":%q,"event":%s}`, rec.Seq, rec.PrevHash, journal.RecordHash(rec.Seq, rec.PrevHash, ev), ev)
	})
	step("agent stopped in the partition at seq %d (acked %d); tampered with records %d (byte changed) and %d (altered, re-hashed)",
		before.lastSeq(), before.acked, naive, rehashed)
	agent.start()
	time.Sleep(3 * time.Second)
	topo.heal(t)
	step("healed at seq %d", jnl().lastSeq())
	acked("the backlog to be acknowledged after the partition", before.lastSeq()+3, 60*time.Second)
	step("caught up: acked %d", jnl().acked)
	tamperAlert := waitAlert(t, r, bulwark, dev, "journal.tamper", "", "")
	gapAlert := waitAlert(t, r, bulwark, dev, "journal.gap", "", "")
	step("alerts raised: %s (journal.tamper), %s (journal.gap)", tamperAlert.ID, gapAlert.ID)
	checkAlertDelivered(t, hook, coll, tamperAlert)
	// Acknowledged, so that the next tampering opens a new alert.
	r.ok(bulwark, "alerts", "ack", tamperAlert.ID)

	// 4. The journal is corrupted where the agent reads it at start: one
	// byte of the last record, so that it no longer parses. The agent
	// keeps the journal aside, starts a new one and records why; the
	// records the server had not received are lost, and the server must
	// say so.
	topo.partition(t)
	eventually(t, "unacknowledged records during the second partition", 30*time.Second, func() bool {
		jd := jnl()
		return jd.lastSeq() >= jd.acked+2
	})
	agent.kill()
	old := jnl()
	corrupt := old.lastSeq()
	rewriteRecord(t, jdir, corrupt, func(line []byte) []byte {
		line[len(line)-1] = '!' // the closing brace
		return line
	})
	step("agent stopped in a partition at seq %d (acked %d); corrupted record %d", corrupt, old.acked, corrupt)
	agent.start()
	var asideDir string
	eventually(t, "the agent to keep its corrupt journal aside", 30*time.Second, func() bool {
		m, _ := filepath.Glob(jdir + ".broken-*")
		if len(m) == 1 {
			asideDir = m[0]
		}
		return asideDir != "" && len(jnl().records) > 0
	})
	topo.heal(t)
	step("journal kept aside in %s; new journal from seq %d; healed", filepath.Base(asideDir), jnl().records[0].Seq)
	acked("the new journal to be acknowledged", jnl().records[0].Seq, 60*time.Second)
	tamper2 := waitAlert(t, r, bulwark, dev, "journal.tamper", "", tamperAlert.ID)
	checkAlertDelivered(t, hook, coll, tamper2)
	if !slices.ContainsFunc(tamper2.Events, func(e api.AlertEventRef) bool { return e.Type == events.TypeIntegrityResult }) {
		t.Fatalf("the second journal.tamper alert is not about the agent's integrity.result: %+v", tamper2)
	}
	step("alert %s (journal.tamper) raised for the corrupt journal and delivered", tamper2.ID)

	// 5. An IoC hit on a real outbound connection from the agent's
	// namespace.
	peer, err := net.Listen("tcp", net.JoinHostPort(topo.ExtraIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	go func() {
		for {
			c, err := peer.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 64)
				c.Read(buf)
			}()
		}
	}()
	peerPort := peer.Addr().(*net.TCPAddr).Port
	conn, err := topo.dialFromNS(peer.Addr().String())
	if err != nil {
		t.Fatalf("connecting from the agent's namespace to %s: %v", peer.Addr(), err)
	}
	step("connected %s -> %s from the agent's namespace", conn.LocalAddr(), conn.RemoteAddr())
	time.Sleep(2500 * time.Millisecond) // the connection collector polls once a second
	conn.Write([]byte("bye\n"))
	conn.Close()

	// The server matches the stored connection; the agent matched it too,
	// against the set it fetched, and journalled its own ioc.match.
	var match, agentMatch *events.IoCMatch
	eventually(t, "ioc.match events for "+topo.ExtraIP+" by the server and the agent", 60*time.Second, func() bool {
		match, agentMatch = nil, nil
		for _, se := range listEvents(t, r, bulwark, dev, "ioc.match") {
			_, d := decodeStored[events.IoCMatch](t, se)
			switch {
			case d.Indicator != topo.ExtraIP:
			case se.Source == "server" && d.MatchedBy != "agent":
				match = &d
			case se.Source == "device" && d.MatchedBy == "agent":
				agentMatch = &d
			}
		}
		return match != nil && agentMatch != nil
	})
	for _, m := range []*events.IoCMatch{match, agentMatch} {
		if m.IndicatorType != "ip" || m.Observed != topo.ExtraIP || m.EventType != events.TypeNetConnection || m.EventSeq != match.EventSeq {
			t.Fatalf("ioc.match details %+v (server's %+v)", m, match)
		}
	}
	if match.Source != "e2e-blocklist" {
		t.Fatalf("the server's ioc.match names source %q", match.Source)
	}
	var matched *events.NetConnection
	for _, se := range listEvents(t, r, bulwark, dev, "net.connection") {
		if se.Source == "device" && se.Seq == match.EventSeq {
			_, d := decodeStored[events.NetConnection](t, se)
			matched = &d
		}
	}
	if matched == nil || matched.Direction != "outbound" || matched.DstIP != topo.ExtraIP || matched.DstPort != peerPort || matched.SrcIP != topo.NSIP {
		t.Fatalf("the ioc.match names event %d, which is %+v; want the outbound connection %s -> %s:%d", match.EventSeq, matched, topo.NSIP, topo.ExtraIP, peerPort)
	}
	step("ioc.match by the server and by the agent for seq %d (%s -> %s:%d)", match.EventSeq, matched.SrcIP, matched.DstIP, matched.DstPort)

	iocAlert := waitAlert(t, r, bulwark, dev, "ioc.match", topo.ExtraIP, "")
	step("alert %s (ioc.match) raised", iocAlert.ID)
	checkAlertDelivered(t, hook, coll, iocAlert)
	// The SIEM forwarding sends the ioc.match event itself to the collector.
	eventually(t, "the ioc.match event in the collector", 30*time.Second, func() bool {
		for _, line := range coll.messages(t) {
			m, err := parseSyslog(line)
			if err == nil && m.MsgID == "ioc.match" && m.Params["device"] == dev && m.Params["seq"] == strconv.FormatUint(match.EventSeq, 10) {
				ev, err := events.Decode(m.Msg)
				if err != nil {
					t.Fatalf("ioc.match syslog message: %v\n%s", err, line)
				}
				return ev.Type == events.TypeIoCMatch
			}
		}
		return false
	})
	step("alerts delivered by webhook and syslog; ioc.match forwarded to the SIEM")

	// 6. Every record of both journals is in the store exactly once.
	stopStream()
	var final journalDisk
	eventually(t, "the agent to have nothing unacknowledged", 60*time.Second, func() bool {
		final = jnl()
		return final.acked == final.lastSeq()
	})
	step("journal at seq %d, all acknowledged; %d auth lines written", final.lastSeq(), lines.Load())
	// The auth collector read each line once, across restarts (it starts
	// at the end of the file; lines written while it was down are not
	// read, as documented).
	aside := readJournalDir(t, asideDir)
	userRE := regexp.MustCompile(`"user":"(?:mallory-)?e[23]e([0-9]{6})"`)
	seen := map[string]uint64{}
	for _, rec := range append(slices.Clip(aside.records), final.records...) {
		if m := userRE.FindSubmatch(rec.Event); m != nil {
			if prev, dup := seen[string(m[1])]; dup {
				t.Errorf("auth log line %s recorded twice, at seq %d and %d", m[1], prev, rec.Seq)
			}
			seen[string(m[1])] = rec.Seq
		}
	}
	if len(seen) == 0 {
		t.Fatal("no auth.login event from the auth log in the journals")
	}
	step("%d of the %d auth log lines recorded, each once", len(seen), lines.Load())
	stored := listEvents(t, r, bulwark, dev, "")
	checkExactlyOnce(t, aside, final, stored, naive, rehashed, corrupt)

	// 7. The SIEM has every stored event, the server's own included, at
	// least once (delivery is at least once; a crash may repeat some).
	type key struct {
		seq string
		typ string
	}
	want := map[key]int{}
	for _, se := range stored {
		ev, _ := decodeStored[json.RawMessage](t, se)
		want[key{strconv.FormatUint(ev.Seq, 10), ev.Type}]++
	}
	var missing []key
	defer func() {
		if t.Failed() && len(missing) > 0 {
			t.Logf("(seq, type) of stored events missing at the collector: %v", missing)
		}
	}()
	eventually(t, "every stored event at the syslog collector", 60*time.Second, func() bool {
		got := map[key]int{}
		for _, line := range coll.messages(t) {
			m, err := parseSyslog(line)
			if err != nil {
				t.Fatalf("the collector wrote a malformed RFC 5424 message (%v):\n%s", err, line)
			}
			if m.MsgID != "alert" && m.Params["device"] == dev {
				if m.Params["type"] != m.MsgID {
					t.Fatalf("syslog message of type %q has MSGID %q", m.Params["type"], m.MsgID)
				}
				got[key{m.Params["seq"], m.MsgID}]++
			}
		}
		missing = missing[:0]
		for k, n := range want {
			if got[k] < n {
				missing = append(missing, k)
			}
		}
		return len(missing) == 0
	})
	step("all %d stored events forwarded to the SIEM over TLS", len(stored))
}

// listEvents pages through every stored event of a device (of one type,
// if typ is set).
func listEvents(t *testing.T, r *runner, bulwark, dev, typ string) []api.StoredEvent {
	t.Helper()
	args := []string{"events", "list", "--device", dev, "--limit", "1000000", "--json"}
	if typ != "" {
		args = append(args, "--type", typ)
	}
	var out []api.StoredEvent
	if err := json.Unmarshal([]byte(r.ok(bulwark, args...)), &out); err != nil {
		t.Fatalf("events list --json: %v", err)
	}
	return out
}

// envelope is the part of a stored event's envelope the test reads.
type envelope struct {
	Type     string          `json:"type"`
	DeviceID string          `json:"device_id"`
	Seq      uint64          `json:"seq"`
	Details  json.RawMessage `json:"details"`
}

func decodeStored[D any](t *testing.T, se api.StoredEvent) (envelope, D) {
	t.Helper()
	var ev envelope
	var d D
	if err := json.Unmarshal(se.Event, &ev); err != nil {
		t.Fatalf("stored event %d: %v", se.ID, err)
	}
	if err := json.Unmarshal(ev.Details, &d); err != nil {
		t.Fatalf("stored event %d details: %v", se.ID, err)
	}
	return ev, d
}

// waitAlert waits for an open alert of rule on the device (with dedup key
// key, when set; other than the alert notID, when set).
func waitAlert(t *testing.T, r *runner, bulwark, dev, rule, key, notID string) api.Alert {
	t.Helper()
	var found api.Alert
	eventually(t, "a "+rule+" alert", 60*time.Second, func() bool {
		var alerts []api.Alert
		if err := json.Unmarshal([]byte(r.ok(bulwark, "alerts", "list", "--device", dev, "--json")), &alerts); err != nil {
			t.Fatalf("alerts list --json: %v", err)
		}
		for _, a := range alerts {
			if a.Rule == rule && (key == "" || a.Key == key) && a.ID != notID {
				found = a
				return true
			}
		}
		return false
	})
	if found.Status != api.AlertOpen || found.DeviceID != dev {
		t.Fatalf("%s alert %+v", rule, found)
	}
	return found
}

// checkAlertDelivered waits for the alert at the webhook receiver (its
// signature verified on receipt) and at the syslog collector as a
// well-formed RFC 5424 message.
func checkAlertDelivered(t *testing.T, hook *hookRecv, coll *collector, a api.Alert) {
	t.Helper()
	type hookAlert struct {
		ID         string `json:"id"`
		Rule       string `json:"rule"`
		SeverityID int    `json:"severity_id"`
		DeviceID   string `json:"device_id"`
		Summary    string `json:"summary"`
		Events     []struct {
			DeviceID string `json:"device_id"`
			Seq      uint64 `json:"seq"`
			Type     string `json:"type"`
		} `json:"events"`
	}
	var got hookAlert
	eventually(t, "alert "+a.ID+" at the webhook", 60*time.Second, func() bool {
		good, bad := hook.received()
		if len(bad) > 0 {
			t.Fatalf("webhook deliveries with bad signatures: %v", bad)
		}
		for _, m := range good {
			var ha hookAlert
			if m.Kind == "alert" && json.Unmarshal(m.Body, &ha) == nil && ha.ID == a.ID {
				got = ha
				return true
			}
		}
		return false
	})
	if got.Rule != a.Rule || got.DeviceID != a.DeviceID || got.SeverityID != a.SeverityID || len(got.Events) == 0 {
		t.Fatalf("webhook alert %+v, stored %+v", got, a)
	}
	var msg *syslogMsg
	eventually(t, "alert "+a.ID+" at the syslog collector", 60*time.Second, func() bool {
		for _, line := range coll.messages(t) {
			if !strings.Contains(line, a.ID) {
				continue
			}
			m, err := parseSyslog(line)
			if err != nil {
				t.Fatalf("the collector wrote a malformed RFC 5424 message (%v):\n%s", err, line)
			}
			if m.MsgID == "alert" {
				msg = m
				return true
			}
		}
		return false
	})
	var sa hookAlert
	if err := json.Unmarshal(msg.Msg, &sa); err != nil {
		t.Fatalf("syslog alert MSG: %v\n%s", err, msg.Msg)
	}
	if msg.AppName != "bulwark" || msg.SDID != "bulwark@32473" || msg.Params["alert"] != a.ID || msg.Params["rule"] != a.Rule ||
		msg.Params["device"] != a.DeviceID || msg.Params["severity"] != a.Severity || sa.ID != a.ID || sa.Rule != a.Rule {
		t.Fatalf("syslog alert message %+v (MSG %s), stored %+v", msg, msg.Msg, a)
	}
	if sev := msg.Pri % 8; a.SeverityID >= events.SeverityHigh && sev != 3 {
		t.Fatalf("syslog severity %d for a %s alert", sev, a.Severity)
	}
}

// checkExactlyOnce compares the agent's journals on disk, the one kept
// aside (old) and the one that replaced it (cur), with what the server
// stores: every record exactly once with the same hash, none the journals
// do not hold, and no hole or broken link but those the tampering made:
// the record with a byte changed (refused, recorded as a missing gap), the
// link after the re-hashed record, and the records of the old journal
// from the first the server did not have to the corrupted one, which were
// never sent (a missing gap).
func checkExactlyOnce(t *testing.T, old, cur journalDisk, stored []api.StoredEvent, naive, rehashed, corrupt uint64) {
	t.Helper()
	if old.anchor != 0 || cur.anchor != 0 && cur.anchor != corrupt {
		t.Fatalf("the journals were compacted (anchors %d, %d); the test cannot see those records", old.anchor, cur.anchor)
	}
	if len(old.corrupt) != 1 || len(old.records) == 0 || old.lastSeq() != corrupt-1 {
		t.Fatalf("the journal kept aside has %d records up to %d and %d corrupt lines; want records up to %d, then the corrupted one",
			len(old.records), old.lastSeq(), len(old.corrupt), corrupt-1)
	}
	if len(cur.records) == 0 || cur.records[0].Seq <= corrupt {
		t.Fatalf("the new journal starts at seq %d, reusing the seqs of the journal kept aside (up to %d): the server takes its records for resends of those and drops them",
			cur.records[0].Seq, corrupt)
	}
	last := cur.lastSeq()
	bySeq := map[uint64]api.StoredEvent{}
	var gaps []events.JournalGap
	var broken []events.JournalChainBroken
	for _, se := range stored {
		if se.Source == "server" {
			ev, _ := decodeStored[json.RawMessage](t, se)
			switch ev.Type {
			case events.TypeJournalGap:
				_, d := decodeStored[events.JournalGap](t, se)
				gaps = append(gaps, d)
			case events.TypeJournalChainBroken:
				_, d := decodeStored[events.JournalChainBroken](t, se)
				broken = append(broken, d)
			}
			continue
		}
		if se.Seq > last {
			continue // recorded after the snapshot
		}
		if prev, dup := bySeq[se.Seq]; dup {
			t.Errorf("seq %d is stored twice (ids %d and %d)", se.Seq, prev.ID, se.ID)
		}
		bySeq[se.Seq] = se
	}
	// The server had the old journal up to held when it was set aside.
	var held uint64
	for seq := range bySeq {
		if seq < corrupt {
			held = max(held, seq)
		}
	}
	want := uint64(1)
	for _, rec := range append(slices.Clip(old.records), cur.records...) {
		if rec.Seq != want && !(want == corrupt && rec.Seq == corrupt+1) {
			t.Errorf("the journals skip from %d to %d", want, rec.Seq)
		}
		want = rec.Seq + 1
		se, ok := bySeq[rec.Seq]
		delete(bySeq, rec.Seq)
		switch {
		case rec.Seq == naive:
			if ok {
				t.Errorf("record %d, altered so it no longer matches its hash, was stored", rec.Seq)
			}
		case rec.Seq > held && rec.Seq < corrupt:
			// never sent: the journal was set aside
		case !ok:
			t.Errorf("journal record %d (%.120s) is not in the store", rec.Seq, rec.Event)
		case se.Hash != rec.Hash || se.PrevHash != rec.PrevHash:
			t.Errorf("record %d stored with hash %s prev %s, journal has %s prev %s", rec.Seq, se.Hash, se.PrevHash, rec.Hash, rec.PrevHash)
		}
	}
	for seq := range bySeq {
		t.Errorf("the store holds seq %d, which the journals do not", seq)
	}
	slices.SortFunc(gaps, func(a, b events.JournalGap) int { return cmp.Compare(a.FromSeq, b.FromSeq) })
	wantGaps := []events.JournalGap{{FromSeq: naive, ToSeq: naive, Reason: "missing"}, {FromSeq: held + 1, ToSeq: corrupt, Reason: "missing"}}
	if !slices.Equal(gaps, wantGaps) {
		t.Errorf("the server recorded gaps %+v; want only %+v", gaps, wantGaps)
	}
	if len(broken) != 1 || broken[0].Seq != rehashed+1 || broken[0].Reason != "prev_hash_mismatch" {
		t.Errorf("the server recorded broken links %+v; want only prev_hash_mismatch at %d", broken, rehashed+1)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d + %d journal records, %d stored events checked; holes at %d and %d..%d, broken link at %d",
		len(old.records), len(cur.records), len(stored), naive, held+1, corrupt, rehashed+1)
}
