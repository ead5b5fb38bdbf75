package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/siem"
)

// This file holds the rig of TestSecurityEventsUnderFailure: a network
// namespace for the agent, a real rsyslogd receiving syslog over TLS, a
// webhook receiver checking signatures, processes that can be killed and
// restarted, and a reader of the agent's on-disk journal.

// syncBuf is a bytes.Buffer safe for concurrent writers and readers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sh runs a command that must succeed (network set-up).
func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// netTopo is a network namespace holding the agent, joined to the host by
// a veth pair on a private /29: the host side has HostIP (the server) and
// ExtraIP (a second host address, the test's "malicious" peer), the
// namespace side NSIP.
type netTopo struct {
	NS                    string
	HostIf, NSIf          string
	HostIP, NSIP, ExtraIP string
}

func newNetTopo(t *testing.T) *netTopo {
	t.Helper()
	id := fmt.Sprintf("%05x", mrand.IntN(1<<20))
	n := &netTopo{NS: "bwev-" + id, HostIf: "bwh" + id, NSIf: "bwn" + id}
	// A /29 in 10.64.0.0/10 not routed on this machine.
	for attempt := 0; ; attempt++ {
		a, b := 64+mrand.IntN(64), mrand.IntN(256)
		c := mrand.IntN(32) * 8
		pfx := fmt.Sprintf("10.%d.%d.", a, b)
		out, _ := exec.Command("ip", "-4", "route", "get", pfx+strconv.Itoa(c+1)).CombinedOutput()
		addrs, _ := exec.Command("ip", "-4", "-o", "addr").CombinedOutput()
		if !strings.Contains(string(out), " dev bw") && !strings.Contains(string(addrs), pfx) || attempt > 20 {
			n.HostIP, n.NSIP, n.ExtraIP = pfx+strconv.Itoa(c+1), pfx+strconv.Itoa(c+2), pfx+strconv.Itoa(c+3)
			break
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.NS).Run()
		exec.Command("ip", "link", "del", n.HostIf).Run()
	})
	sh(t, "ip", "netns", "add", n.NS)
	sh(t, "ip", "link", "add", n.HostIf, "type", "veth", "peer", "name", n.NSIf)
	sh(t, "ip", "link", "set", n.NSIf, "netns", n.NS)
	sh(t, "ip", "addr", "add", n.HostIP+"/29", "dev", n.HostIf)
	sh(t, "ip", "addr", "add", n.ExtraIP+"/29", "dev", n.HostIf)
	sh(t, "ip", "link", "set", n.HostIf, "up")
	sh(t, "ip", "-n", n.NS, "addr", "add", n.NSIP+"/29", "dev", n.NSIf)
	sh(t, "ip", "-n", n.NS, "link", "set", "lo", "up")
	sh(t, "ip", "-n", n.NS, "link", "set", n.NSIf, "up")
	return n
}

// partition cuts the namespace off the host (its end of the veth down:
// its route to the host goes, so connections fail at once); heal undoes it.
func (n *netTopo) partition(t *testing.T) { sh(t, "ip", "-n", n.NS, "link", "set", n.NSIf, "down") }
func (n *netTopo) heal(t *testing.T)      { sh(t, "ip", "-n", n.NS, "link", "set", n.NSIf, "up") }

// dialFromNS opens a TCP connection to addr from inside the namespace: the
// socket is created on an OS thread that joined the namespace, and is
// used from any goroutine afterwards.
func (n *netTopo) dialFromNS(addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked: it dies with the goroutine
		// rather than going back to the scheduler in another namespace.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.NS)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", n.NS, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// proc is a long-running binary the test can kill (SIGKILL) and start
// again with the same arguments; its output over every run is kept.
type proc struct {
	t    *testing.T
	name string
	argv []string
	logs syncBuf
	cmd  *exec.Cmd
	done chan struct{}
	runs int
	// stopSignal asks the process to stop; nil means SIGINT.
	stopSignal os.Signal
}

func newProc(t *testing.T, name string, argv ...string) *proc {
	p := &proc{t: t, name: name, argv: argv}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.logs.String())
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.runs++
	fmt.Fprintf(&p.logs, "=== start %d\n", p.runs)
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(&p.logs, "=== exit: %v\n", err)
		close(done)
	}()
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL, as a crash or power loss would.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// stop asks the process to stop (stopSignal), killing it after 20 s.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	sig := p.stopSignal
	if sig == nil {
		sig = os.Interrupt
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Errorf("%s did not stop on %v within 20 s", p.name, sig)
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// tlsPKI is a throwaway CA and a server certificate for 127.0.0.1, as PEM
// files.
type tlsPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
}

func newTLSPKI(t *testing.T) *tlsPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Bulwark e2e syslog CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(name, typ string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p := &tlsPKI{caFile: write("ca.pem", "CERTIFICATE", caDER), certFile: write("server.pem", "CERTIFICATE", der),
		keyFile: write("server.key", "PRIVATE KEY", keyDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	return p
}

// collector is a real rsyslogd (Debian's rsyslog with rsyslog-gnutls)
// receiving RFC 5425 syslog over TLS on a loopback port and writing every
// message from Bulwark raw, one per line, to a file.
type collector struct {
	addr string
	out  string
	pki  *tlsPKI
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	bin := "/usr/sbin/rsyslogd"
	if v := os.Getenv("BULWARK_RSYSLOGD"); v != "" {
		bin = v
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("rsyslogd: %v (apt-get install rsyslog rsyslog-gnutls, or set BULWARK_RSYSLOGD)", err)
	}
	if m, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(m) == 0 {
		t.Fatal("rsyslog's GnuTLS driver is not installed (apt-get install rsyslog-gnutls)")
	}
	pki := newTLSPKI(t)
	dir := t.TempDir()
	c := &collector{out: filepath.Join(dir, "received.log"), pki: pki}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		_, portStr, _ := net.SplitHostPort(port)
		c.addr = port
		// gnutlsPriorityString NORMAL: rsyslog's anon-mode default
		// priorities offer TLS 1.2 only, and Bulwark speaks TLS 1.3.
		conf := fmt.Sprintf(`global(
  workDirectory=%q
  maxMessageSize="128k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q
)
main_queue(queue.type="Direct")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon" gnutlsPriorityString="NORMAL")
input(type="imtcp" address="127.0.0.1" port=%q)
template(name="raw" type="string" string="%%rawmsg%%\n")
if $app-name == "bulwark" then {
  action(type="omfile" file=%q template="raw")
  stop
}
action(type="omfile" file=%q)
`, dir, pki.caFile, pki.certFile, pki.keyFile, portStr, c.out, filepath.Join(dir, "other.log"))
		confFile := filepath.Join(dir, "rsyslog.conf")
		if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		p := newProc(t, "rsyslogd", bin, "-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid"))
		p.stopSignal = syscall.SIGTERM
		p.start()
		deadline := time.Now().Add(20 * time.Second)
		for {
			d := &net.Dialer{Timeout: time.Second}
			conn, err := tls.DialWithDialer(d, "tcp", c.addr, &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
			if err == nil {
				conn.Close()
				return c
			}
			lastErr = err
			if !p.running() || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("rsyslogd did not listen on %s (%v); trying another port\n%s", c.addr, lastErr, p.logs.String())
		p.stop()
	}
	t.Fatalf("rsyslogd: %v", lastErr)
	return nil
}

// messages returns the raw messages received so far.
func (c *collector) messages(t *testing.T) []string {
	b, err := os.ReadFile(c.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// hookRecv is an HTTP webhook receiver that keeps every POST whose
// Bulwark-Signature verifies, and counts the ones that do not.
type hookRecv struct {
	url    string
	secret []byte

	mu  sync.Mutex
	got []hookMsg
	bad []string
}

type hookMsg struct {
	Kind string
	Body []byte
}

func startHookRecv(t *testing.T) *hookRecv {
	t.Helper()
	h := &hookRecv{secret: []byte(fmt.Sprintf("%x", siem.NewWebhookSecret()))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String() + "/bulwark"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := siem.VerifyWebhook(h.secret, r.Header.Get(siem.SignatureHeader), body, time.Now(), 0); err != nil {
			h.mu.Lock()
			h.bad = append(h.bad, err.Error())
			h.mu.Unlock()
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, hookMsg{Kind: r.Header.Get(siem.KindHeader), Body: body})
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return h
}

func (h *hookRecv) received() (good []hookMsg, bad []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookMsg(nil), h.got...), append([]string(nil), h.bad...)
}

// journalFiles reads the agent's journal directory as it is on disk: the
// records of every segment in seq order (lines that do not parse apart),
// and meta.json's acknowledged seq and anchor. The agent may be writing; a
// partial last line is left out.
type journalDisk struct {
	records []journal.Record
	corrupt []string // lines that do not parse
	acked   uint64
	anchor  uint64
}

func readJournalDir(t *testing.T, dir string) journalDisk {
	t.Helper()
	var jd journalDisk
	if b, err := os.ReadFile(filepath.Join(dir, "meta.json")); err == nil {
		var m struct {
			Acked     uint64 `json:"acked"`
			AnchorSeq uint64 `json:"anchor_seq"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("journal meta.json: %v", err)
		}
		jd.acked, jd.anchor = m.Acked, m.AnchorSeq
	}
	names, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	sort.Strings(names)
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(f)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				break // EOF, possibly after a partial line being written
			}
			var rec journal.Record
			if err := json.Unmarshal(line, &rec); err != nil {
				jd.corrupt = append(jd.corrupt, string(line))
				continue
			}
			jd.records = append(jd.records, rec)
		}
		f.Close()
	}
	return jd
}

func (jd journalDisk) lastSeq() uint64 {
	if len(jd.records) == 0 {
		return jd.anchor
	}
	return jd.records[len(jd.records)-1].Seq
}

// rewriteRecord replaces the record with seq in the journal directory's
// segment files through edit, which gets and returns the whole line
// (without its newline).
func rewriteRecord(t *testing.T, dir string, seq uint64, edit func(line []byte) []byte) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	prefix := []byte(fmt.Sprintf(`{"seq":%d,`, seq))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(b, []byte("\n"))
		for i, l := range lines {
			if bytes.HasPrefix(l, prefix) && bytes.HasSuffix(l, []byte("\n")) {
				lines[i] = append(edit(bytes.TrimSuffix(l, []byte("\n"))), '\n')
				if err := os.WriteFile(name, bytes.Join(lines, nil), 0o600); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
	}
	t.Fatalf("journal record %d not found in %s", seq, dir)
}
