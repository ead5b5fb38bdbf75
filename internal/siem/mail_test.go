package siem

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// findPython returns a Python 3 that can import aiosmtpd (Debian's
// python3-aiosmtpd installs it for /usr/bin/python3).
func findPython(t *testing.T) string {
	t.Helper()
	cands := []string{os.Getenv("BULWARK_PYTHON"), "/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import aiosmtpd").Run() == nil {
			return p
		}
	}
	t.Skip("no python3 with aiosmtpd (apt-get install python3-aiosmtpd, or set BULWARK_PYTHON)")
	return ""
}

type smtpServer struct {
	addr    string
	maildir string
}

type smtpOptions struct {
	tls            bool
	user, password string
}

// startSMTP runs testdata/smtpd.py, a real aiosmtpd server.
func startSMTP(t *testing.T, pki *testPKI, opt smtpOptions) *smtpServer {
	t.Helper()
	py := findPython(t)
	s := &smtpServer{maildir: filepath.Join(t.TempDir(), "Maildir")}
	args := []string{"testdata/smtpd.py", "--maildir", s.maildir}
	if opt.tls {
		args = append(args, "--cert", pki.serverCert, "--key", pki.serverKey)
	}
	if opt.user != "" {
		args = append(args, "--user", opt.user, "--password", opt.password)
	}
	cmd := exec.Command(py, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("smtpd stderr:\n%s", stderr.String())
		}
	})
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		port <- strings.TrimSpace(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case p := <-port:
		if p == "" {
			t.Fatalf("smtpd did not start: %s", stderr.String())
		}
		s.addr = "127.0.0.1:" + p
	case <-time.After(20 * time.Second):
		t.Fatal("smtpd did not start")
	}
	return s
}

// messages returns the messages the server stored.
func (s *smtpServer) messages(t *testing.T) []*mail.Message {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.maildir, "new", "*"))
	var out []*mail.Message
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(fh)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(m.Body)
		fh.Close()
		m.Body = strings.NewReader(string(body))
		out = append(out, m)
	}
	return out
}

func testAlert(t *testing.T) Alert {
	evs := testEvents(t, "dev-m", 7, 2, 0)
	return Alert{ID: "al/42", Rule: "ssh-bruteforce", Severity: events.SeverityHigh, DeviceID: "dev-m",
		Summary: "5 failed SSH logins for root in 60 s — from 203.0.113.7", Time: testTime,
		Events: []EventRef{Ref(&evs[0]), Ref(&evs[1])}}
}

func TestMailSTARTTLSAndAuth(t *testing.T) {
	pki := newTestPKI(t)
	srv := startSMTP(t, pki, smtpOptions{tls: true, user: "bulwark", password: "s3cret"})
	m, err := NewMailer(MailConfig{Addr: srv.addr, From: "alerts@bulwark.example", To: []string{"soc@example.org", "Oncall <oncall@example.org>"},
		Username: "bulwark", Password: "s3cret", TLS: &tls.Config{RootCAs: pki.pool}, ConsoleURL: "https://console.example/"})
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert(t)
	if err := m.SendAlert(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages(t)
	if len(msgs) != 1 {
		t.Fatalf("server stored %d messages, want 1", len(msgs))
	}
	msg := msgs[0]
	h := msg.Header
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[Bulwark High] dev-m: " + a.Summary; subject != want {
		t.Errorf("Subject %q, want %q", subject, want)
	}
	if got := h.Get("X-RcptTo"); got != "soc@example.org, oncall@example.org" {
		t.Errorf("envelope recipients %q", got)
	}
	if h.Get("X-MailFrom") != "alerts@bulwark.example" || h.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("headers: %v", h)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(body), "\r\n", "\n")
	for _, want := range []string{a.Summary + "\n", "Severity: High\n", "Device:   dev-m\n", "Rule:     ssh-bruteforce\n",
		"Time:     2026-11-26T21:04:05Z\n", "dev-m seq 7 auth.login\n", "dev-m seq 8 policy.denial\n",
		"https://console.example/alerts/al%2F42\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("body lacks %q:\n%s", want, text)
		}
	}

	// A wrong password is refused and nothing more is stored.
	bad := *m
	bad.cfg.Password = "wrong"
	if err := bad.SendAlert(context.Background(), a); err == nil || !strings.Contains(err.Error(), "AUTH PLAIN") {
		t.Errorf("SendAlert with a wrong password = %v", err)
	}
	// A relay certificate from another CA fails STARTTLS.
	other := newTestPKI(t)
	m2, _ := NewMailer(MailConfig{Addr: srv.addr, From: "alerts@bulwark.example", To: []string{"soc@example.org"},
		Username: "bulwark", Password: "s3cret", TLS: &tls.Config{RootCAs: other.pool}})
	if err := m2.SendAlert(context.Background(), a); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("SendAlert to an untrusted relay = %v", err)
	}
	if n := len(srv.messages(t)); n != 1 {
		t.Errorf("server stored %d messages, want still 1", n)
	}
}

func TestMailRequiresSTARTTLS(t *testing.T) {
	pki := newTestPKI(t)
	srv := startSMTP(t, pki, smtpOptions{}) // no TLS offered
	cfg := MailConfig{Addr: srv.addr, From: "alerts@bulwark.example", To: []string{"soc@example.org"}}
	m, err := NewMailer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert(t)
	if err := m.SendAlert(context.Background(), a); err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("SendAlert without STARTTLS = %v", err)
	}
	// Opting out is allowed for a loopback relay, and the mail goes through.
	cfg.InsecureNoTLS = true
	m, err = NewMailer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SendAlert(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.messages(t)); n != 1 {
		t.Errorf("server stored %d messages, want 1", n)
	}
}

func TestNewMailerChecks(t *testing.T) {
	ok := MailConfig{Addr: "smtp.example.org:587", From: "a@example.org", To: []string{"b@example.org"}}
	tests := []struct {
		name string
		edit func(*MailConfig)
		ok   bool
	}{
		{"valid", func(*MailConfig) {}, true},
		{"no TLS to a remote relay", func(c *MailConfig) { c.InsecureNoTLS = true }, false},
		{"no TLS to loopback", func(c *MailConfig) { c.Addr = "127.0.0.1:25"; c.InsecureNoTLS = true }, true},
		{"no TLS with AUTH", func(c *MailConfig) { c.Addr = "127.0.0.1:25"; c.InsecureNoTLS = true; c.Username = "u" }, false},
		{"no port", func(c *MailConfig) { c.Addr = "smtp.example.org" }, false},
		{"bad from", func(c *MailConfig) { c.From = "not an address" }, false},
		{"no recipients", func(c *MailConfig) { c.To = nil }, false},
		{"bad recipient", func(c *MailConfig) { c.To = []string{"x"} }, false},
		{"bad console URL", func(c *MailConfig) { c.ConsoleURL = "javascript:alert(1)" }, false},
	}
	for _, tt := range tests {
		cfg := ok
		tt.edit(&cfg)
		if _, err := NewMailer(cfg); (err == nil) != tt.ok {
			t.Errorf("%s: NewMailer = %v", tt.name, err)
		}
	}
}

func TestMailNoHeaderInjection(t *testing.T) {
	m, err := NewMailer(MailConfig{Addr: "127.0.0.1:25", From: "a@example.org", To: []string{"b@example.org"}, InsecureNoTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert(t)
	a.Summary = "hello\r\nBcc: victim@example.net\r\n\r\nforged body"
	a.ID = "id\nX-Evil: 1"
	raw := m.compose(a, testTime)
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Bcc") != "" || msg.Header.Get("X-Evil") != "" {
		t.Errorf("injected headers: %v", msg.Header)
	}
	long := strings.Repeat("é", 300)
	if got := oneLine(long, 200); len(got) > 200+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("oneLine cut to %d bytes", len(got))
	}
}
