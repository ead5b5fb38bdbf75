package siem

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// Sink delivers events to a SIEM. Send returns nil only once every event in
// the batch has been handed to the collector (see each sink for exactly what
// that means); on error the caller keeps the events and sends them again
// later, so delivery is at least once and a collector may see duplicates,
// which it can recognise by device_id and seq.
type Sink interface {
	Send(ctx context.Context, evs []events.Event) error
	Close() error
}

var (
	_ Sink = (*Syslog)(nil)
	_ Sink = (*Webhook)(nil)
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("siem: sink closed")

// InvalidEventError reports an event that cannot be encoded; nothing of the
// batch was sent. The caller should set the event aside (it will never
// encode) and send the rest.
type InvalidEventError struct {
	Index int // position in the batch
	Err   error
}

func (e *InvalidEventError) Error() string {
	return fmt.Sprintf("siem: event %d of the batch: %v", e.Index, e.Err)
}

func (e *InvalidEventError) Unwrap() error { return e.Err }

// SyslogConfig configures a Syslog sink. The zero value of every optional
// field is documented and sensible.
type SyslogConfig struct {
	// Addr is the collector's host:port (RFC 5425 registers port 6514).
	Addr string
	// ServerName is the name the collector's certificate must carry; empty
	// means the host part of Addr.
	ServerName string
	// RootCAs verify the collector's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Certificate, if set, is presented to collectors that ask for a client
	// certificate.
	Certificate *tls.Certificate
	// AllowTLS12 permits TLS 1.2 for collectors that cannot speak TLS 1.3;
	// by default only TLS 1.3 is accepted.
	AllowTLS12 bool

	// Facility is the syslog facility of most events, by name ("local0" ..
	// "local7", "daemon", "user", ...); empty means "local0".
	Facility string
	// AuthFacility is the facility of authentication events (auth.login);
	// empty means "authpriv", which syslog daemons keep out of world-readable
	// files.
	AuthFacility string
	// Hostname maps a device ID to the HOSTNAME field; nil, or an empty
	// result, means the device ID. Characters outside printable US-ASCII are
	// replaced by '_' and the result is cut to 255 bytes.
	Hostname func(deviceID string) string

	// DialTimeout bounds a connection attempt including the TLS handshake;
	// zero means 10s.
	DialTimeout time.Duration
	// WriteTimeout bounds writing one batch when ctx has no earlier
	// deadline; zero means 30s.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed connection
	// attempts, which doubles after each failure (with ±25% jitter); zero
	// means 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Probation is how long a new connection must stay up before a Send on
	// it reports success; zero means 1s. A collector that checks the
	// client certificate (or anything else) only after the TLS 1.3
	// handshake has finished, as rsyslog does, refuses a client by closing
	// the connection, and everything written before that is lost; without
	// this wait the first batch on every connection to a collector that
	// refuses us could be reported delivered.
	Probation time.Duration
}

// Syslog is a Sink that sends RFC 5424 messages over one TLS connection to a
// syslog collector, framed by octet counting as RFC 5425 specifies. It is
// safe for concurrent use; concurrent Sends are serialised.
//
// RFC 5425 has no application-level acknowledgement, so Send reports the
// strongest thing a sender can know: it returns nil only after every byte
// of the batch was written, the collector's TCP stack acknowledged all of it
// (Linux; elsewhere: written to the socket), the connection was at least
// SyslogConfig.Probation old, and it had not been closed or reset by then.
// A collector that reads what it was sent before it stops (rsyslogd does on
// SIGTERM) loses nothing; a collector process that dies with unread data in
// its socket buffer loses that data, which no RFC 5425 sender can detect.
// Where that matters, use the Webhook, which a receiver acknowledges.
type Syslog struct {
	cfg                    SyslogConfig
	tls                    *tls.Config
	facility, authFacility int

	sem      chan struct{} // held by the one Send (or Close) using the connection
	conn     *syslogConn
	closed   bool
	failures int       // consecutive failed connection attempts
	nextDial time.Time // no connection attempt before this
	lastErr  error
}

// NewSyslog checks the configuration and returns a sink. It does not
// connect; the first Send does.
func NewSyslog(cfg SyslogConfig) (*Syslog, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("siem: syslog address %q: %w", cfg.Addr, err)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.Facility == "" {
		cfg.Facility = "local0"
	}
	if cfg.AuthFacility == "" {
		cfg.AuthFacility = "authpriv"
	}
	fac, ok := facilities[cfg.Facility]
	if !ok {
		return nil, fmt.Errorf("siem: unknown syslog facility %q", cfg.Facility)
	}
	authFac, ok := facilities[cfg.AuthFacility]
	if !ok {
		return nil, fmt.Errorf("siem: unknown syslog facility %q", cfg.AuthFacility)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.Probation <= 0 {
		cfg.Probation = time.Second
	}
	tc := &tls.Config{
		ServerName: cfg.ServerName,
		RootCAs:    cfg.RootCAs,
		MinVersion: tls.VersionTLS13,
	}
	if cfg.AllowTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	if cfg.Certificate != nil {
		cert := cfg.Certificate
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &Syslog{cfg: cfg, tls: tc, facility: fac, authFacility: authFac, sem: make(chan struct{}, 1)}, nil
}

// Send encodes the batch and writes it to the collector in as few TLS
// writes as fit, connecting first if needed. If the last connection attempt
// failed, Send waits out the backoff (or returns when ctx ends first).
func (s *Syslog) Send(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	buf := make([]byte, 0, 1024*len(evs))
	for i := range evs {
		var err error
		if buf, err = s.appendFrame(buf, &evs[i]); err != nil {
			return &InvalidEventError{Index: i, Err: err}
		}
	}
	return s.send(ctx, buf)
}

// SendAlert sends one alert as an RFC 5424 message (see the package
// documentation), with the same guarantee as Send.
func (s *Syslog) SendAlert(ctx context.Context, a Alert) error {
	if err := a.Validate(); err != nil {
		return err
	}
	host := ""
	if s.cfg.Hostname != nil {
		host = s.cfg.Hostname(a.DeviceID)
	}
	if host == "" {
		host = a.DeviceID
	}
	a.Time = a.Time.UTC()
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("siem: encode alert: %w", err)
	}
	var msg []byte
	msg = appendHeader(msg, s.facility, syslogSeverity(a.Severity), a.Time, host, "alert")
	msg = append(msg, " ["...)
	msg = append(msg, SDID...)
	msg = appendParam(msg, "alert", a.ID)
	msg = appendParam(msg, "rule", a.Rule)
	msg = appendParam(msg, "device", a.DeviceID)
	msg = appendParam(msg, "severity", events.SeverityName(a.Severity))
	msg = append(msg, "] \xEF\xBB\xBF"...)
	msg = append(msg, body...)
	frame := strconv.AppendInt(nil, int64(len(msg)), 10)
	frame = append(frame, ' ')
	return s.send(ctx, append(frame, msg...))
}

func (s *Syslog) send(ctx context.Context, buf []byte) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("siem: syslog send: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	if s.closed {
		return ErrClosed
	}
	if s.conn != nil && s.conn.isDead() {
		s.dropConn()
	}
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return err
		}
	}
	if err := s.conn.write(ctx, buf, s.cfg.WriteTimeout, s.cfg.Probation); err != nil {
		s.dropConn()
		return fmt.Errorf("siem: syslog send to %s: %w", s.cfg.Addr, err)
	}
	return nil
}

// connect dials the collector, respecting the backoff.
func (s *Syslog) connect(ctx context.Context) error {
	if wait := time.Until(s.nextDial); wait > 0 {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("siem: syslog collector %s unavailable, next attempt in %v: %w", s.cfg.Addr, wait.Round(time.Millisecond), s.lastErr)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("siem: syslog connect: %w", ctx.Err())
		}
	}
	c, err := dialSyslog(ctx, s.cfg.Addr, s.tls, s.cfg.DialTimeout)
	if err != nil {
		s.failures++
		b := s.cfg.MinBackoff << min(s.failures-1, 20)
		if b > s.cfg.MaxBackoff || b <= 0 {
			b = s.cfg.MaxBackoff
		}
		b = time.Duration(float64(b) * (0.75 + 0.5*rand.Float64()))
		s.nextDial = time.Now().Add(b)
		s.lastErr = err
		return fmt.Errorf("siem: syslog connect to %s: %w", s.cfg.Addr, err)
	}
	s.failures, s.nextDial, s.lastErr = 0, time.Time{}, nil
	s.conn = c
	return nil
}

func (s *Syslog) dropConn() {
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
}

// Close closes the connection (sending a TLS close_notify); Sends after it
// return ErrClosed. It waits for a Send in progress to finish.
func (s *Syslog) Close() error {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.close()
	s.conn = nil
	return err
}

// tlsVersion is the negotiated TLS version of the current connection, 0 if
// there is none.
func (s *Syslog) tlsVersion() uint16 {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.conn == nil {
		return 0
	}
	return s.conn.tc.ConnectionState().Version
}

// syslogConn is one TLS connection and the goroutine that reads from it:
// collectors send nothing on an RFC 5425 connection, so anything the reader
// sees (EOF, close_notify, a reset) means the connection is gone.
type syslogConn struct {
	tcp  *net.TCPConn
	tc   *tls.Conn
	up   time.Time     // when the handshake completed
	dead chan struct{} // closed when the reader stops
	done chan struct{} // closed when the reader goroutine has returned
}

func dialSyslog(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (*syslogConn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	c := &syslogConn{tcp: nc.(*net.TCPConn), tc: tc, up: time.Now(), dead: make(chan struct{}), done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *syslogConn) read() {
	defer close(c.done)
	defer close(c.dead)
	var b [512]byte
	for {
		if _, err := c.tc.Read(b[:]); err != nil {
			return
		}
	}
}

func (c *syslogConn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// write writes b, then waits until the peer's TCP stack has acknowledged
// every byte and the connection is at least probation old, and checks the
// connection is still up.
func (c *syslogConn) write(ctx context.Context, b []byte, timeout, probation time.Duration) error {
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.tc.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.tc.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := c.tc.Write(b)
	if !stop() {
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	if err := waitAcked(ctx, c.tcp, deadline, c.dead); err != nil {
		return err
	}
	if wait := probation - time.Since(c.up); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.dead:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if c.isDead() {
		return errors.New("connection closed by the collector")
	}
	return nil
}

func (c *syslogConn) close() error {
	c.tc.SetWriteDeadline(time.Now().Add(time.Second))
	err := c.tc.Close()
	<-c.done
	return err
}

// waitAcked polls the socket's send queue until it is empty: every byte was
// acknowledged by the peer.
func waitAcked(ctx context.Context, tcp *net.TCPConn, deadline time.Time, dead <-chan struct{}) error {
	pause := 20 * time.Microsecond
	for {
		n, err := unackedBytes(tcp)
		if err != nil || n == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d bytes still unacknowledged by the collector", n)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-dead:
			t.Stop()
			return errors.New("connection closed by the collector")
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// Facility numbers (RFC 5424 section 6.2.1), by the names syslog daemons use.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// syslogSeverity maps an OCSF severity id to a syslog severity (RFC 5424
// section 6.2.1). Emergency (0) is never used: it means the system is
// unusable, which a security event about a device does not say of the
// collector's host.
func syslogSeverity(ocsf int) int {
	switch ocsf {
	case events.SeverityInformational:
		return 6 // Informational
	case events.SeverityLow:
		return 5 // Notice
	case events.SeverityMedium:
		return 4 // Warning
	case events.SeverityHigh:
		return 3 // Error
	case events.SeverityCritical:
		return 2 // Critical
	case events.SeverityFatal:
		return 1 // Alert
	default:
		return 5 // Unknown: Notice
	}
}

// SDID is the structured-data element every message carries. 32473 is the
// private enterprise number RFC 5612 reserves for documentation and examples.
const SDID = "bulwark@32473"

// AppName is the APP-NAME of every message.
const AppName = "bulwark"

// appendMessage appends the RFC 5424 message for an event (without
// the RFC 5425 length prefix) to b. facility is a facility number; hostname
// is used as given after replacing characters not allowed in HOSTNAME.
func appendMessage(b []byte, e *events.Event, facility int, hostname string) ([]byte, error) {
	body, err := e.Marshal()
	if err != nil {
		return b, err
	}
	b = appendHeader(b, facility, syslogSeverity(e.SeverityID), e.DeviceTime, hostname, e.Type)
	b = append(b, " ["...)
	b = append(b, SDID...)
	b = appendParam(b, "device", e.DeviceID)
	b = appendParam(b, "seq", strconv.FormatUint(e.Seq, 10))
	b = appendParam(b, "type", e.Type)
	b = appendParam(b, "severity", e.Severity)
	b = append(b, "] \xEF\xBB\xBF"...)
	b = append(b, body...)
	return b, nil
}

// appendHeader appends PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP
// PROCID SP MSGID.
func appendHeader(b []byte, facility, severity int, t time.Time, hostname, msgid string) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facility*8+severity), 10)
	b = append(b, ">1 "...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = appendHeaderField(b, hostname, 255)
	b = append(b, ' ')
	b = append(b, AppName...)
	b = append(b, " - "...)
	return appendHeaderField(b, msgid, 32)
}

func (s *Syslog) appendFrame(b []byte, e *events.Event) ([]byte, error) {
	fac := s.facility
	if e.Type == events.TypeAuthLogin {
		fac = s.authFacility
	}
	host := ""
	if s.cfg.Hostname != nil {
		host = s.cfg.Hostname(e.DeviceID)
	}
	if host == "" {
		host = e.DeviceID
	}
	// Encode the message after room for its length, then move it into place.
	start := len(b)
	msg, err := appendMessage(b, e, fac, host)
	if err != nil {
		return b[:start], err
	}
	n := len(msg) - start
	prefix := strconv.AppendInt(nil, int64(n), 10)
	prefix = append(prefix, ' ')
	msg = append(msg, prefix...)
	copy(msg[start+len(prefix):], msg[start:start+n])
	copy(msg[start:], prefix)
	return msg, nil
}

// appendHeaderField appends s as an RFC 5424 header field: 1..max printable
// US-ASCII characters; others become '_', and empty becomes "-".
func appendHeaderField(b []byte, s string, max int) []byte {
	if s == "" {
		return append(b, '-')
	}
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// appendParam appends ` name="value"`, escaping '"', '\' and ']' as RFC 5424
// section 6.3.3 requires. Invalid UTF-8 is replaced so PARAM-VALUE stays
// UTF-8.
func appendParam(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=', '"')
	value = strings.ToValidUTF8(value, "\uFFFD")
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '"', '\\', ']':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
