package siem

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rsyslogd is a real rsyslog daemon (Debian's rsyslog and rsyslog-gnutls)
// listening for RFC 5425 syslog over TLS on a loopback port and writing
// every message it receives from Bulwark, raw, one per line, to out.
type rsyslogd struct {
	t        testing.TB
	bin      string
	dir      string
	conf     string
	port     int
	out      string
	internal string
	pki      *testPKI
	cmd      *exec.Cmd
	exited   chan struct{}
}

type rsyslogOptions struct {
	authMode      string // "anon" (default) or "x509/name"
	permittedPeer string
	// priority is the GnuTLS priority string; "" means "NORMAL", and
	// "default" leaves rsyslog's own, which in anon mode (NORMAL:+ANON-DH
	// and friends) makes GnuTLS 3.7 refuse TLS 1.3.
	priority string
	// queue is the main queue type; "" means "Direct", so a message is in
	// the output file before rsyslogd reads the next, and "default" leaves
	// rsyslog's in-memory queue.
	queue string
}

func findRsyslogd(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BULWARK_RSYSLOGD"), "/usr/sbin/rsyslogd"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so"); err != nil {
				if m, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(m) == 0 {
					t.Skip("rsyslogd is installed but its GnuTLS driver is not (apt-get install rsyslog-gnutls)")
				}
			}
			return p
		}
	}
	if p, err := exec.LookPath("rsyslogd"); err == nil {
		return p
	}
	t.Skip("rsyslogd not found (apt-get install rsyslog rsyslog-gnutls, or set BULWARK_RSYSLOGD)")
	return ""
}

func startRsyslogd(t testing.TB, pki *testPKI, opt rsyslogOptions) *rsyslogd {
	t.Helper()
	r := &rsyslogd{t: t, bin: findRsyslogd(t), dir: t.TempDir(), pki: pki}
	r.out = filepath.Join(r.dir, "received.log")
	r.internal = filepath.Join(r.dir, "rsyslogd.log")
	r.conf = filepath.Join(r.dir, "rsyslog.conf")
	if opt.authMode == "" {
		opt.authMode = "anon"
	}
	var extra string
	if opt.permittedPeer != "" {
		extra += fmt.Sprintf(" PermittedPeer=[%q]", opt.permittedPeer)
	}
	mainQueue := `main_queue(queue.type="Direct")`
	switch opt.queue {
	case "":
	case "default":
		mainQueue = ""
	default:
		mainQueue = fmt.Sprintf("main_queue(queue.type=%q)", opt.queue)
	}
	if opt.priority == "" {
		opt.priority = "NORMAL"
	}
	if opt.priority != "default" {
		extra += fmt.Sprintf(" gnutlsPriorityString=%q", opt.priority)
	}
	conf := fmt.Sprintf(`global(
  workDirectory=%q
  maxMessageSize="128k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q
)
%s
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode=%q%s)
input(type="imtcp" address="127.0.0.1" port="%d")
template(name="raw" type="string" string="%%rawmsg%%\n")
if $app-name == "bulwark" then {
  action(type="omfile" file=%q template="raw")
  stop
}
action(type="omfile" file=%q)
`, r.dir, pki.caFile, pki.serverCert, pki.serverKey, mainQueue, opt.authMode, extra, 0, r.out, r.internal)
	t.Cleanup(r.stop)
	// The port freePort found may be taken before rsyslogd binds it (the
	// machine is shared); then try another.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		r.port = freePort(t)
		c := strings.Replace(conf, `port="0"`, fmt.Sprintf(`port="%d"`, r.port), 1)
		if err := os.WriteFile(r.conf, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		if err = r.tryStart(); err == nil {
			return r
		}
		t.Logf("rsyslogd failed to start, trying another port: %v", err)
		r.stop()
	}
	t.Fatal(err)
	return nil
}

func (r *rsyslogd) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// start starts rsyslogd again on the same port.
func (r *rsyslogd) start() {
	r.t.Helper()
	if err := r.tryStart(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rsyslogd) tryStart() error {
	var stderr syncBuffer
	cmd := exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rsyslogd: %v", err)
	}
	r.cmd = cmd
	r.exited = make(chan struct{})
	go func() { cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-r.exited:
			r.cmd = nil
			return fmt.Errorf("rsyslogd exited at start: %s\n%s", cmd.ProcessState, stderr.String())
		default:
		}
		// Ready once a TLS handshake with our rsyslogd's certificate works.
		d := &net.Dialer{Timeout: time.Second}
		c, err := tls.DialWithDialer(d, "tcp", r.addr(), &tls.Config{RootCAs: r.pki.pool, ServerName: r.pki.serverName})
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || strings.Contains(stderr.String(), "Address already in use") {
			return fmt.Errorf("rsyslogd did not listen on %s: %v\n%s\n%s", r.addr(), err, stderr.String(), r.internalLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends rsyslogd gracefully (SIGTERM) and waits for it.
func (r *rsyslogd) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(15 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// received returns the raw messages written so far.
func (r *rsyslogd) received() []string {
	b, err := os.ReadFile(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitReceived waits until at least n messages were written.
func (r *rsyslogd) waitReceived(n int, timeout time.Duration) []string {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.received()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (r *rsyslogd) internalLog() string {
	b, _ := os.ReadFile(r.internal)
	return string(b)
}
