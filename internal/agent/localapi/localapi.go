// Package localapi is the agent's local API: HTTP over a Unix socket in the
// state directory, serving the daemon's status and health to local tools
// (bulwark-agent status, health). Only root and the daemon's own user may
// use it: the socket is mode 0600 in a 0700 directory, and every connection
// is checked with SO_PEERCRED.
//
// Server and Client are safe for concurrent use.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Status is the answer of GET /status.
type Status struct {
	// DaemonRunning is false when the CLI built the status from the state
	// files because no daemon answered.
	DaemonRunning bool       `json:"daemon_running"`
	AgentVersion  string     `json:"agent_version"`
	PID           int        `json:"pid,omitempty"`
	StartedAt     *time.Time `json:"started_at,omitempty"`

	Enrolled     bool       `json:"enrolled"`
	DeviceID     string     `json:"device_id,omitempty"`
	Server       string     `json:"server,omitempty"`
	EnrolledAt   *time.Time `json:"enrolled_at,omitempty"`
	KeyAssurance string     `json:"key_assurance,omitempty"`

	// LastCheckin is the time of the last check-in attempt and
	// LastCheckinResult its outcome: "ok" or "failed".
	LastCheckin        *time.Time `json:"last_checkin,omitempty"`
	LastCheckinResult  string     `json:"last_checkin_result,omitempty"`
	LastCheckinSuccess *time.Time `json:"last_checkin_success,omitempty"`
	CheckinInterval    float64    `json:"checkin_interval_seconds,omitempty"`
	LastError          string     `json:"last_error,omitempty"`
	LastErrorAt        *time.Time `json:"last_error_at,omitempty"`
	PendingAcks        int        `json:"pending_acks"`

	CertificateSerial   string     `json:"certificate_serial,omitempty"`
	CertificateNotAfter *time.Time `json:"certificate_not_after,omitempty"`
	LastRenewal         *time.Time `json:"last_renewal,omitempty"`

	// Revoked is true once the server has answered device_revoked.
	Revoked bool        `json:"revoked"`
	Health  *api.Health `json:"health,omitempty"`

	// Installed lists the active version of each product the agent
	// installs; LastUpdate is the outcome of the last update.
	Installed  []Installed   `json:"installed,omitempty"`
	LastUpdate *UpdateReport `json:"last_update,omitempty"`

	// IoC is the indicator set the agent matches events against; nil
	// when matching is off.
	IoC *IoCStatus `json:"ioc,omitempty"`
}

// IoCStatus describes the agent's indicator set (docs/ioc.md, "On the
// device").
type IoCStatus struct {
	// Version of the set in use ("" before the first set).
	Version    string `json:"version,omitempty"`
	Indicators int    `json:"indicators"`
	// Action is the fleet's policy: "flag" or "block".
	Action string `json:"action,omitempty"`
	// Blocking is "off", "installed" (nftables rules in place) or
	// "failed: <reason>" (matches are flagged only).
	Blocking string `json:"blocking"`
}

// Installed is a product's active version.
type Installed struct {
	Product string `json:"product"`
	Version string `json:"version"`
}

// UpdateReport is how an update assignment ended.
type UpdateReport struct {
	Deployment string    `json:"deployment_id"`
	Version    string    `json:"version"`
	Status     string    `json:"status"` // success, failed, rolled-back
	Detail     string    `json:"detail,omitempty"`
	At         time.Time `json:"at"`
}

// Provider is what the daemon gives the local API.
type Provider interface {
	Status() Status
	Health() api.Health
}

// Paths served.
const (
	PathStatus = "/status"
	PathHealth = "/health"
	PathEvents = "/events"
)

// EventsProvider is implemented by a daemon that keeps a security event
// journal; GET PathEvents is served when the Provider implements it.
type EventsProvider interface {
	// Events returns up to limit journal records after seq after, or the
	// newest limit when after is negative.
	Events(after int64, limit int) (EventsPage, error)
}

// MaxEventsPage bounds a page of GET PathEvents.
const MaxEventsPage = 1000

// EventsPage is the answer of GET PathEvents?after=N&limit=M: event
// envelopes (docs/events.md) oldest first. Next is the seq to pass as
// after to follow the journal. The journal holds the records not yet
// acknowledged by the server and the newest acknowledged ones; older ones
// are on the server (bulwark events list).
type EventsPage struct {
	Events     []json.RawMessage `json:"events"`
	Next       uint64            `json:"next"`
	FirstSeq   uint64            `json:"first_seq"`
	LastSeq    uint64            `json:"last_seq"`
	AckedSeq   uint64            `json:"acked_seq"`
	Forwarding *ForwardingStatus `json:"forwarding,omitempty"`
}

// ForwardingStatus is the progress of forwarding the journal to the
// server.
type ForwardingStatus struct {
	Forwarded   uint64     `json:"forwarded"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Failures    int        `json:"consecutive_failures"`
}

// Listen removes a stale socket at path and listens there with mode 0600.
// The caller must hold the state directory's lock, so that a socket found
// at path belongs to no running daemon.
func Listen(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("local API: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("local API: %w", err)
	}
	return ln, nil
}

// Server serves the local API.
type Server struct {
	p     Provider
	log   *slog.Logger
	hs    *http.Server
	allow func(peer Peer) bool
}

// NewServer returns a server for p. Only peers running as root or as the
// daemon's own user are served.
func NewServer(p Provider, logger *slog.Logger) *Server {
	self := uint32(os.Getuid())
	s := &Server{p: p, log: logger, allow: func(peer Peer) bool { return Allowed(peer, self) }}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.p.Status())
	})
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.p.Health())
	})
	if ep, ok := p.(EventsProvider); ok {
		mux.HandleFunc("GET "+PathEvents, func(w http.ResponseWriter, r *http.Request) { serveEvents(w, r, ep) })
	}
	s.hs = &http.Server{
		Handler:           s.checkPeer(mux),
		ConnContext:       connContext,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return s
}

// Serve serves on ln until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.hs.Shutdown(ctx) }

// Peer is the process at the other end of a connection.
type Peer struct {
	Known    bool // false when SO_PEERCRED could not be read
	PID      int32
	UID, GID uint32
}

// Allowed reports whether peer may use the local API of a daemon running
// as selfUID: root or the same user, and never an unidentified peer.
func Allowed(peer Peer, selfUID uint32) bool {
	return peer.Known && (peer.UID == 0 || peer.UID == selfUID)
}

type peerKey struct{}

func connContext(ctx context.Context, c net.Conn) context.Context {
	var p Peer
	if uc, ok := c.(*net.UnixConn); ok {
		p, _ = peerCred(uc)
	}
	return context.WithValue(ctx, peerKey{}, p)
}

func (s *Server) checkPeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(Peer)
		if !s.allow(p) {
			s.log.Warn("local API: refused peer", "uid", p.UID, "pid", p.PID, "known", p.Known, "path", r.URL.Path)
			writeJSON(w, http.StatusForbidden, api.Error{Code: "forbidden", Message: "only root or the agent's user may use the agent socket"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// ErrNotRunning is returned by Client calls when no daemon listens on the
// socket.
var ErrNotRunning = errors.New("the bulwark-agent daemon is not running")

// ErrForbidden is returned when the daemon refuses the caller.
var ErrForbidden = errors.New("permission denied: only root or the agent's user may use the agent socket")

// Client queries a daemon's local API.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// Status asks for the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.get(ctx, PathStatus, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Health asks for the daemon's health summary.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	if err := c.get(ctx, PathHealth, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Events asks for journal records after seq after (the newest limit when
// after is negative).
func (c *Client) Events(ctx context.Context, after int64, limit int) (*EventsPage, error) {
	var page EventsPage
	if err := c.get(ctx, PathEvents+"?after="+strconv.FormatInt(after, 10)+"&limit="+strconv.Itoa(limit), &page); err != nil {
		return nil, err
	}
	return &page, nil
}

func serveEvents(w http.ResponseWriter, r *http.Request, ep EventsProvider) {
	q := r.URL.Query()
	after, limit := int64(-1), 50
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < -1 {
			writeJSON(w, http.StatusBadRequest, api.Error{Code: "bad_request", Message: "after must be a seq (or -1 for the newest)"})
			return
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxEventsPage {
			writeJSON(w, http.StatusBadRequest, api.Error{Code: "bad_request", Message: "limit must be from 1 to " + strconv.Itoa(MaxEventsPage)})
			return
		}
		limit = n
	}
	page, err := ep.Events(after, limit)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, api.Error{Code: "internal", Message: "reading the event journal: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://bulwark-agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, errConnRefused):
			return fmt.Errorf("%w (no daemon on %s)", ErrNotRunning, c.socket)
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("%w (%s)", ErrForbidden, c.socket)
		}
		return fmt.Errorf("local API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 80<<20))
	if err != nil {
		return fmt.Errorf("local API: %w", err)
	}
	if resp.StatusCode == http.StatusForbidden {
		return ErrForbidden
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		json.Unmarshal(data, &e)
		return fmt.Errorf("local API: %s answered %d %s", path, resp.StatusCode, e.Message)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("local API: decoding %s: %w", path, err)
	}
	return nil
}
