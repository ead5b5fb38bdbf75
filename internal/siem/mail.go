package siem

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// MailConfig configures a Mailer.
type MailConfig struct {
	// Addr is the SMTP relay's host:port (submission is usually port 587).
	Addr string
	// From is the envelope and header sender address.
	From string
	// To lists the recipients; at least one.
	To []string
	// Username and Password, if Username is set, authenticate with AUTH
	// PLAIN, which is only ever sent inside TLS.
	Username, Password string
	// TLS configures STARTTLS; nil means the system roots and the host part
	// of Addr as the server name. TLS 1.2 is the minimum.
	TLS *tls.Config
	// InsecureNoTLS sends without STARTTLS. It is accepted only when Addr is
	// a loopback address (a local relay); by default STARTTLS is required
	// and a server that does not offer it is refused.
	InsecureNoTLS bool
	// ConsoleURL is the console's base URL; the mail links to
	// ConsoleURL + "/alerts/" + alert ID. Empty means no link.
	ConsoleURL string
	// HelloName is the name given in EHLO; empty means "localhost".
	HelloName string
	// Timeout bounds one delivery when ctx has no earlier deadline; zero
	// means 30s.
	Timeout time.Duration
}

// Mailer sends alerts as plain-text mail through an SMTP relay, one
// connection per alert. It is safe for concurrent use.
type Mailer struct {
	cfg  MailConfig
	host string
	from string
	to   []string
}

// NewMailer checks the configuration.
func NewMailer(cfg MailConfig) (*Mailer, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("siem: mail relay address %q: %w", cfg.Addr, err)
	}
	if cfg.InsecureNoTLS && !isLoopback(host) {
		return nil, fmt.Errorf("siem: mail relay %s is not a loopback address: STARTTLS is required", cfg.Addr)
	}
	if cfg.InsecureNoTLS && cfg.Username != "" {
		return nil, errors.New("siem: mail: AUTH needs TLS; do not combine Username with InsecureNoTLS")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("siem: mail From %q: %w", cfg.From, err)
	}
	if len(cfg.To) == 0 {
		return nil, errors.New("siem: mail: no recipients")
	}
	m := &Mailer{cfg: cfg, host: host, from: from.Address}
	for _, t := range cfg.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("siem: mail recipient %q: %w", t, err)
		}
		m.to = append(m.to, a.Address)
	}
	if cfg.ConsoleURL != "" {
		u, err := url.Parse(cfg.ConsoleURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("siem: mail ConsoleURL %q is not an http(s) URL", cfg.ConsoleURL)
		}
	}
	if m.cfg.TLS == nil {
		m.cfg.TLS = &tls.Config{}
	} else {
		m.cfg.TLS = m.cfg.TLS.Clone()
	}
	if m.cfg.TLS.ServerName == "" {
		m.cfg.TLS.ServerName = host
	}
	if m.cfg.TLS.MinVersion < tls.VersionTLS12 {
		m.cfg.TLS.MinVersion = tls.VersionTLS12
	}
	if m.cfg.HelloName == "" {
		m.cfg.HelloName = "localhost"
	}
	if m.cfg.Timeout <= 0 {
		m.cfg.Timeout = 30 * time.Second
	}
	return m, nil
}

// SendAlert mails one alert to every recipient. It returns nil only once the
// relay accepted the message (its answer to the end of DATA).
func (m *Mailer) SendAlert(ctx context.Context, a Alert) (err error) {
	if err := a.Validate(); err != nil {
		return err
	}
	msg := m.compose(a, time.Now())
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("siem: mail relay %s: %w", m.cfg.Addr, err)
	}
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
	}()
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("siem: mail relay %s: %w", m.cfg.Addr, err)
	}
	defer c.Close()
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("siem: mail relay %s: %s: %w", m.cfg.Addr, what, err)
		}
		return nil
	}
	if err := step("EHLO", c.Hello(m.cfg.HelloName)); err != nil {
		return err
	}
	if !m.cfg.InsecureNoTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("siem: mail relay %s does not offer STARTTLS", m.cfg.Addr)
		}
		if err := step("STARTTLS", c.StartTLS(m.cfg.TLS)); err != nil {
			return err
		}
	}
	if m.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return fmt.Errorf("siem: mail relay %s does not offer AUTH", m.cfg.Addr)
		}
		if err := step("AUTH PLAIN", c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.host))); err != nil {
			return err
		}
	}
	if err := step("MAIL FROM", c.Mail(m.from)); err != nil {
		return err
	}
	for _, to := range m.to {
		if err := step("RCPT TO "+to, c.Rcpt(to)); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err := step("DATA", err); err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return step("DATA", err)
	}
	if err := step("end of DATA", w.Close()); err != nil {
		return err
	}
	c.Quit() // the message is accepted; a failed QUIT changes nothing
	return nil
}

// AlertURL is the console link for an alert, "" without a ConsoleURL.
func (m *Mailer) AlertURL(a Alert) string {
	if m.cfg.ConsoleURL == "" {
		return ""
	}
	return strings.TrimRight(m.cfg.ConsoleURL, "/") + "/alerts/" + url.PathEscape(a.ID)
}

// compose builds the RFC 5322 message: plain text, UTF-8, quoted-printable.
func (m *Mailer) compose(a Alert, now time.Time) []byte {
	sev := events.SeverityName(a.Severity)
	var id [12]byte
	rand.Read(id[:])
	domain := m.from[strings.LastIndexByte(m.from, '@')+1:]
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", (&mail.Address{Name: "Bulwark", Address: m.from}).String())
	to := make([]string, len(m.to))
	for i, t := range m.to {
		to[i] = (&mail.Address{Address: t}).String()
	}
	header("To", strings.Join(to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(fmt.Sprintf("[Bulwark %s] %s: %s", sev, a.DeviceID, a.Summary), 200)))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	header("X-Bulwark-Alert", oneLine(a.ID, 128))
	b.WriteString("\r\n")

	var text strings.Builder
	fmt.Fprintf(&text, "%s\n\n", a.Summary)
	fmt.Fprintf(&text, "Severity: %s\n", sev)
	fmt.Fprintf(&text, "Device:   %s\n", a.DeviceID)
	fmt.Fprintf(&text, "Rule:     %s\n", a.Rule)
	fmt.Fprintf(&text, "Time:     %s\n", a.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(&text, "Alert:    %s\n", a.ID)
	if len(a.Events) > 0 {
		text.WriteString("\nEvents:\n")
		for i, e := range a.Events {
			if i == 20 {
				fmt.Fprintf(&text, "  ... and %d more\n", len(a.Events)-20)
				break
			}
			fmt.Fprintf(&text, "  %s seq %d %s\n", e.DeviceID, e.Seq, e.Type)
		}
	}
	if link := m.AlertURL(a); link != "" {
		fmt.Fprintf(&text, "\n%s\n", link)
	}
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(text.String(), "\r", ""), "\n", "\r\n")))
	qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// oneLine removes control characters (so nothing can start a new header)
// and cuts s to at most max bytes on a rune boundary.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
