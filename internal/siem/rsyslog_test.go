package siem

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	r := &rsyslogd{t: t, bin: findRsyslogd(t), dir: t.TempDir(), port: freePort(t)}
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
main_queue(queue.type="Direct")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode=%q%s)
input(type="imtcp" address="127.0.0.1" port="%d")
template(name="raw" type="string" string="%%rawmsg%%\n")
if $app-name == "bulwark" then {
  action(type="omfile" file=%q template="raw")
  stop
}
action(type="omfile" file=%q)
`, r.dir, pki.caFile, pki.serverCert, pki.serverKey, opt.authMode, extra, r.port, r.out, r.internal)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslogd) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *rsyslogd) start() {
	r.t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start rsyslogd: %v", err)
	}
	r.cmd = cmd
	r.exited = make(chan struct{})
	go func() { cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-r.exited:
			r.t.Fatalf("rsyslogd exited at start: %s\n%s", cmd.ProcessState, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", r.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd did not listen on %s: %v\n%s", r.addr(), err, stderr.String())
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

func (r *rsyslogd) internalLog() string {
	b, _ := os.ReadFile(r.internal)
	return string(b)
}
