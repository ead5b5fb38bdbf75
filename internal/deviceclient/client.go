// Package deviceclient is the client side of Bulwark's device API, used by
// the agent and by the fleet simulator. A Client is safe for concurrent use;
// it keeps one HTTP/2 connection to the server alive so that check-ins and
// long polls share it.
package deviceclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Config describes how to reach the server.
type Config struct {
	// Server is the base URL, e.g. https://bulwark.example:8443.
	Server string
	// Roots verifies the server certificate. Required.
	Roots *x509.CertPool
	// Certificate is the device identity; nil before enrolment.
	Certificate *tls.Certificate
	// Timeout bounds each ordinary request; zero means 30 s. Long polls
	// use their own bound.
	Timeout time.Duration
}

// Client talks to the device API.
type Client struct {
	base    *url.URL
	timeout time.Duration
	mu      sync.Mutex
	cert    *tls.Certificate
	hc      *http.Client
	tr      *http.Transport
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("deviceclient: server %q must be an https:// URL", cfg.Server)
	}
	if cfg.Roots == nil {
		return nil, errors.New("deviceclient: no CA certificate to verify the server")
	}
	c := &Client{base: u, timeout: cfg.Timeout, cert: cfg.Certificate}
	if c.timeout == 0 {
		c.timeout = 30 * time.Second
	}
	c.tr = &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS13,
			RootCAs:    cfg.Roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				c.mu.Lock()
				defer c.mu.Unlock()
				if c.cert == nil {
					return &tls.Certificate{}, nil
				}
				return c.cert, nil
			},
		},
		ForceAttemptHTTP2:   true,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     5 * time.Minute,
		MaxIdleConnsPerHost: 2,
	}
	c.hc = &http.Client{Transport: c.tr}
	return c, nil
}

// SetCertificate replaces the client certificate (after enrolment or
// renewal) and drops connections made with the old one.
func (c *Client) SetCertificate(cert *tls.Certificate) {
	c.mu.Lock()
	c.cert = cert
	c.mu.Unlock()
	c.tr.CloseIdleConnections()
}

// Close releases idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// Error is an error answer from the server.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("server answered %d", e.Status)
	}
	return fmt.Sprintf("server refused (%d %s): %s", e.Status, e.Code, e.Message)
}

// IsStatus reports whether err is a server answer with the given status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

func (c *Client) do(ctx context.Context, method, path string, timeout time.Duration, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.base.JoinPath(path)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u = c.base.JoinPath(path[:i])
		u.RawQuery = path[i+1:]
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var ae api.Error
		_ = json.Unmarshal(data, &ae)
		return &Error{Status: resp.StatusCode, Code: ae.Code, Message: ae.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding %s answer: %w", path, err)
	}
	return nil
}

// Enroll exchanges an enrolment token and a CSR for a device certificate.
func (c *Client) Enroll(ctx context.Context, req api.EnrollRequest) (*api.EnrollResponse, error) {
	var out api.EnrollResponse
	if err := c.do(ctx, http.MethodPost, api.PathEnroll, c.timeout, req, &out); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return &out, nil
}

// Renew asks for a certificate for a new key, authenticating with the
// current one.
func (c *Client) Renew(ctx context.Context, csrPEM string) (*api.EnrollResponse, error) {
	var out api.EnrollResponse
	if err := c.do(ctx, http.MethodPost, api.PathRenew, c.timeout, api.RenewRequest{CSR: csrPEM}, &out); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return &out, nil
}

// Checkin reports inventory and health and returns pending work.
func (c *Client) Checkin(ctx context.Context, req *api.CheckinRequest) (*api.CheckinResponse, error) {
	var out api.CheckinResponse
	if err := c.do(ctx, http.MethodPost, api.PathCheckin, c.timeout, req, &out); err != nil {
		return nil, fmt.Errorf("check-in: %w", err)
	}
	return &out, nil
}

// WaitCommands long-polls for commands, returning early when one is queued
// for this device, or with none after wait.
func (c *Client) WaitCommands(ctx context.Context, wait time.Duration) ([]api.Command, error) {
	var out api.CommandsWaitResponse
	path := api.PathCommands + "?wait=" + strconv.Itoa(int(wait/time.Second))
	if err := c.do(ctx, http.MethodGet, path, wait+c.timeout, nil, &out); err != nil {
		return nil, fmt.Errorf("waiting for commands: %w", err)
	}
	return out.Commands, nil
}

// NewCSR builds a PEM certificate request for key. The server ignores the
// subject and sets the device ID itself.
func NewCSR(key crypto.Signer) (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "bulwark-device"},
	}, key)
	if err != nil {
		return "", fmt.Errorf("creating CSR: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// ReportUpdate reports progress on an update assignment.
func (c *Client) ReportUpdate(ctx context.Context, st api.UpdateStatus) error {
	if err := c.do(ctx, http.MethodPost, api.PathUpdateStatus, c.timeout, st, nil); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// SendEvents forwards a batch of journal records; the answer names the
// highest seq the server holds durably.
func (c *Client) SendEvents(ctx context.Context, b *api.EventBatch) (*api.EventBatchResponse, error) {
	var out api.EventBatchResponse
	if err := c.do(ctx, http.MethodPost, api.PathEvents, c.timeout, b, &out); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return &out, nil
}
