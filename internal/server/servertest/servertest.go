// Package servertest starts a real Bulwark server on a loopback port for
// tests, over the SQLite backend by default, with an admin API token.
package servertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// Server is a running test server.
type Server struct {
	*server.Server
	URL        string
	DataDir    string
	CAPEM      []byte
	Roots      *x509.CertPool
	AdminToken string
	// HTTP is a client that trusts the server and sends no client cert.
	HTTP *http.Client
}

// Options adjust the server.
type Options struct {
	// DB is a store DSN; empty is SQLite in the data directory.
	DB string
	// Config is applied on top of the defaults (DataDir, Listen, DB and
	// Logger are set by Start).
	Config server.Config
}

// Start starts a server that stops when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := t.TempDir()
	cfg := opts.Config
	cfg.DataDir = dir
	cfg.DB = opts.DB
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = ln.Addr().String()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("server did not stop within 20 s")
		}
	})
	ts := &Server{Server: srv, URL: "https://" + cfg.Listen, DataDir: dir, CAPEM: srv.CACertPEM()}
	ts.Roots = x509.NewCertPool()
	ts.Roots.AppendCertsFromPEM(ts.CAPEM)
	ts.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ts.Roots, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}}
	tok, err := server.CreateAPITokenLocal(ctx, srv.Store(), "local:test", api.APITokenCreate{Name: "test-admin", Role: api.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	ts.AdminToken = tok.Token
	return ts
}

// Store returns the server's store.
func (s *Server) Store() *store.Store { return s.Server.Store() }

// Do sends an admin API request with token (the admin token when empty)
// and decodes a JSON answer into out when out is non-nil. It returns the
// status code.
func (s *Server) Do(t testing.TB, method, path, token string, in, out any) int {
	t.Helper()
	if token == "" {
		token = s.AdminToken
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "-" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decoding %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// EnrollToken creates an enrolment token with the given uses.
func (s *Server) EnrollToken(t testing.TB, uses int, group string) string {
	t.Helper()
	var out api.EnrollToken
	if code := s.Do(t, "POST", "/api/v1/enroll-tokens", "", api.EnrollTokenCreate{Uses: uses, TTL: "1h", Group: group}, &out); code != http.StatusCreated {
		t.Fatalf("creating enrolment token: status %d", code)
	}
	return out.Token
}

// String describes the server.
func (s *Server) String() string { return fmt.Sprintf("bulwark test server at %s", s.URL) }
