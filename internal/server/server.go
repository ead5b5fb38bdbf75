// Package server is Bulwark's control plane: the device API (mutual TLS),
// the admin API, the console and the public pages, all served over TLS 1.3
// on one listener, with every piece of state in the store.
//
// A Server is safe for concurrent use. Run serves until its context ends
// and then shuts down in order: listener, in-flight requests, long polls,
// the check-in writer, and the store last.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/auth"
	"github.com/bulwark-iot/bulwark/internal/disclosure"
	"github.com/bulwark-iot/bulwark/internal/pki"
	"github.com/bulwark-iot/bulwark/internal/rollout"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/tufrepo"
)

// Config configures a server. Zero values are documented per field.
type Config struct {
	// DataDir holds the key-encryption key, ca.pem, config.json and, on
	// the default backend, the SQLite database. Required.
	DataDir string
	// Listen is the HOST:PORT to serve on; empty means 127.0.0.1:8443.
	Listen string
	// DB selects the store: a postgres:// DSN, or empty for SQLite in
	// DataDir. Once set at first start it is remembered in config.json.
	DB string
	// Hosts are extra names and addresses for the TLS certificate, besides
	// the listen host, localhost, 127.0.0.1, ::1 and the machine's name.
	Hosts []string
	// CheckinInterval is what devices are told; zero means 60 s.
	CheckinInterval time.Duration
	// DeviceCertLifetime is the validity of device certificates; zero
	// means 90 days. Devices renew when a third of it is left.
	DeviceCertLifetime time.Duration
	// OnlineWindow is how recently a device must have checked in to count
	// as online; zero means three check-in intervals.
	OnlineWindow time.Duration
	// Logger receives the server log; nil means JSON to stderr.
	Logger *slog.Logger
	// Console, when set, serves the web console under /ui/.
	Console func(*Server) http.Handler
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxArtifact bounds an uploaded release artifact; zero means 8 GiB.
	MaxArtifact int64
	// EventRetentionDays is how long security events are kept after
	// receipt; zero means 90 days. A background task prunes older ones.
	EventRetentionDays int
	// Disclosure configures the public vulnerability-disclosure pages
	// (security.txt contacts, public URL); the zero value names the
	// server's own report form as the contact.
	Disclosure disclosure.Config
	// Attestation configures TPM attestation and what a failure does.
	Attestation AttestConfig
	// Forward sends every stored security event to a SIEM.
	Forward ForwardConfig
	// Alerts says where alerts are delivered (docs/alerts.md); the zero
	// value stores and serves them without delivering any.
	Alerts AlertsConfig
	// IoC configures indicators of compromise (docs/ioc.md); the zero
	// value is usable.
	IoC IoCConfig
}

// Server is a running control plane.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	kek     pki.KEK // seals secrets kept in the store (TOTP seeds)
	ca      *pki.CA
	caPool  *x509.CertPool
	tlsCert atomic.Pointer[tls.Certificate]
	renewMu sync.Mutex
	now     func() time.Time

	hasher       *auth.Hasher
	loginLimiter *auth.Limiter
	enrollFails  *penaltyBox
	checkins     *groupCommit[store.Checkin]
	attestations *groupCommit[store.AttestationWrite]
	hub          *hub

	tuf          *tufrepo.Repo // the update repository, served under /tuf/
	tufArtifacts tufrepo.DirArtifacts

	rollout *rollout.Engine
	running runningCache
	attest  *attestor
	forward *forwarder // nil when no SIEM is configured
	alerts  *alerter
	ioc     *iocState

	handler http.Handler
	routes  []route

	// InitialAdminPassword is set when this start created the first admin.
	InitialAdminPassword string

	closeOnce sync.Once
}

// Store returns the server's store (for the console and tests).
func (s *Server) Store() *store.Store { return s.store }

// CACertPEM returns the CA certificate clients trust.
func (s *Server) CACertPEM() []byte { return s.ca.CertPEM }

// Logger returns the server logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Now returns the server's current time.
func (s *Server) Now() time.Time { return s.now() }

// OnlineWindow is how recently a device must have checked in to be online.
func (s *Server) OnlineWindow() time.Duration { return s.cfg.OnlineWindow }

// fileConfig is DataDir/config.json: what later starts and the local CLI
// need to find the same store.
type fileConfig struct {
	DB string `json:"db"`
}

// New initialises DataDir on first start (KEK, CA, first admin) and opens
// the store. The caller must Run or Close the server.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: --data directory is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8443"
	}
	if cfg.CheckinInterval == 0 {
		cfg.CheckinInterval = 60 * time.Second
	}
	if cfg.DeviceCertLifetime == 0 {
		cfg.DeviceCertLifetime = 90 * 24 * time.Hour
	}
	if cfg.OnlineWindow == 0 {
		cfg.OnlineWindow = 3 * cfg.CheckinInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Disclosure.Check(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: creating data directory: %w", err)
	}
	dsn, err := resolveDB(cfg.DataDir, cfg.DB)
	if err != nil {
		return nil, err
	}
	kek, err := pki.LoadOrCreateKEK(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger,
		store:        st,
		kek:          kek,
		now:          cfg.Now,
		hasher:       auth.NewHasher(4),
		loginLimiter: auth.NewLimiter(0.5, 10, 100000),
		enrollFails:  newPenaltyBox(),
		hub:          newHub(),
	}
	if s.alerts, err = newAlerter(s); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.initPKI(ctx, kek); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.initAdmin(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.initTUF(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.initAttest(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.initForward(); err != nil {
		st.Close()
		return nil, err
	}
	if s.ioc, err = newIoC(ctx, s); err != nil {
		st.Close()
		return nil, err
	}
	s.checkins = newCheckinWriter(st, s.log)
	s.attestations = newGroupCommit("attestation results", maxAttestBatch, s.log, st.RecordAttestations)
	s.attestations.one = true
	s.rollout = &rollout.Engine{Store: st, Now: cfg.Now}
	s.handler = s.routesHandler()
	return s, nil
}

// resolveDB returns the store DSN: the flag, else what config.json
// remembers, else SQLite in the data directory; it records the choice.
func resolveDB(dataDir, flag string) (string, error) {
	path := filepath.Join(dataDir, "config.json")
	var fc fileConfig
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &fc); err != nil {
			return "", fmt.Errorf("server: %s is not valid JSON: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("server: %w", err)
	}
	switch {
	case flag != "":
		fc.DB = flag
	case fc.DB == "":
		fc.DB = filepath.Join(dataDir, "bulwark.db")
	}
	b, _ := json.MarshalIndent(fc, "", "  ")
	if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("server: %w", err)
	}
	return fc.DB, nil
}

// OpenStore opens the store of an initialised data directory, for the
// local break-glass CLI commands that run on the server host.
func OpenStore(ctx context.Context, dataDir, db string) (*store.Store, error) {
	if _, err := os.Stat(filepath.Join(dataDir, "config.json")); err != nil {
		return nil, fmt.Errorf("%s is not an initialised Bulwark data directory (start the server with --data %s first)", dataDir, dataDir)
	}
	dsn, err := resolveDB(dataDir, db)
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, dsn)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

const (
	stateCACert = "ca.cert.pem"
	stateCAKey  = "ca.key.sealed"
)

// initPKI loads the device CA from the store, creating it on first start,
// and issues this process's TLS server certificate.
func (s *Server) initPKI(ctx context.Context, kek pki.KEK) error {
	certPEM, err := s.store.GetState(ctx, stateCACert)
	if errors.Is(err, store.ErrNotFound) {
		ca, err := pki.NewCA("Bulwark Device CA", s.now())
		if err != nil {
			return fmt.Errorf("server: creating CA: %w", err)
		}
		sealed, err := ca.SealKey(kek)
		if err != nil {
			return fmt.Errorf("server: sealing CA key: %w", err)
		}
		// Key first, then certificate: a reader that finds the
		// certificate always finds its key.
		if ok, err := s.store.PutStateIfAbsent(ctx, stateCAKey, sealed); err != nil {
			return err
		} else if ok {
			if _, err := s.store.PutStateIfAbsent(ctx, stateCACert, ca.CertPEM); err != nil {
				return err
			}
			s.log.Info("created device CA", "subject", ca.Cert.Subject.String())
		}
		// A server that lost the race waits for the winner's certificate.
		for i := 0; ; i++ {
			certPEM, err = s.store.GetState(ctx, stateCACert)
			if err == nil {
				break
			}
			if !errors.Is(err, store.ErrNotFound) || i == 100 {
				return fmt.Errorf("server: reading CA certificate: %w", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	} else if err != nil {
		return fmt.Errorf("server: reading CA certificate: %w", err)
	}
	sealed, err := s.store.GetState(ctx, stateCAKey)
	if err != nil {
		return fmt.Errorf("server: reading CA key: %w", err)
	}
	s.ca, err = pki.LoadCA(certPEM, sealed, kek)
	if err != nil {
		return fmt.Errorf("server: loading CA (is this the right key-encryption key?): %w", err)
	}
	s.caPool = s.ca.Pool()
	if err := writeFileAtomic(filepath.Join(s.cfg.DataDir, "ca.pem"), s.ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("server: writing ca.pem: %w", err)
	}
	cert, err := s.issueTLSCert()
	if err != nil {
		return err
	}
	s.tlsCert.Store(cert)
	return nil
}

// serverCertLifetime is the validity of the TLS server certificate; a
// running server replaces it when a third is left.
const serverCertLifetime = 90 * 24 * time.Hour

func (s *Server) issueTLSCert() (*tls.Certificate, error) {
	key, err := pki.GenerateKey()
	if err != nil {
		return nil, err
	}
	cert, der, err := s.ca.IssueServer(key.Public(), s.serverHosts(), serverCertLifetime, s.now())
	if err != nil {
		return nil, fmt.Errorf("server: issuing TLS certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, nil
}

// getCertificate serves the TLS certificate, renewing it in place when it
// nears expiry so that a long-running server never serves an expired one.
func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cur := s.tlsCert.Load()
	if s.now().Before(cur.Leaf.NotAfter.Add(-serverCertLifetime / 3)) {
		return cur, nil
	}
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	if cur = s.tlsCert.Load(); s.now().Before(cur.Leaf.NotAfter.Add(-serverCertLifetime / 3)) {
		return cur, nil
	}
	next, err := s.issueTLSCert()
	if err != nil {
		s.log.Error("renewing the TLS server certificate", "err", err)
		return cur, nil
	}
	s.tlsCert.Store(next)
	s.log.Info("renewed the TLS server certificate", "not_after", next.Leaf.NotAfter)
	return next, nil
}

func (s *Server) serverHosts() []string {
	seen := map[string]bool{}
	var hosts []string
	add := func(h string) {
		h = strings.Trim(h, "[]")
		if h == "" || h == "0.0.0.0" || h == "::" || seen[h] {
			return
		}
		seen[h] = true
		hosts = append(hosts, h)
	}
	if h, _, err := net.SplitHostPort(s.cfg.Listen); err == nil {
		add(h)
	}
	for _, h := range s.cfg.Hosts {
		add(h)
	}
	add("localhost")
	add("127.0.0.1")
	add("::1")
	if hn, err := os.Hostname(); err == nil {
		add(hn)
	}
	return hosts
}

// initAdmin creates the first admin with a generated password when the
// store has no users. The password is printed once and left in
// DataDir/initial-admin-password (0600) for the operator to read and delete.
func (s *Server) initAdmin(ctx context.Context) error {
	n, err := s.store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	pw, err := auth.GeneratePassword()
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	u := &store.User{ID: newID("usr"), Username: "admin", PasswordHash: hash, CreatedAt: s.now(),
		Grants: []store.Grant{{Role: api.RoleAdmin}}}
	if err := s.store.CreateUser(ctx, u); errors.Is(err, store.ErrConflict) {
		return nil // another server created it first
	} else if err != nil {
		return err
	}
	path := filepath.Join(s.cfg.DataDir, "initial-admin-password")
	if err := writeFileAtomic(path, []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	s.InitialAdminPassword = pw
	s.audit(ctx, auditRecord{actor: "system", action: "user.create", target: "user:admin", detail: "first admin created at initialisation", outcome: "ok"})
	return nil
}

// TLSConfig is the listener's TLS configuration: TLS 1.3 only; client
// certificates are requested (never required at the handshake, so that a
// missing or foreign one gets a JSON error that names the problem) and
// checked against the device CA by the device API.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: s.getCertificate,
		ClientAuth:     tls.RequestClientCert,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// connKey holds the per-connection device authentication cache.
type connKey struct{}

// Serve serves on ln until ctx ends, then shuts down in order.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, &connAuth{})
		},
	}
	wctx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		var wg sync.WaitGroup
		wg.Go(func() { s.checkins.run(wctx) })
		wg.Go(func() { s.attestations.run(wctx) })
		wg.Wait()
	}()
	maintDone := make(chan struct{})
	mctx, stopMaint := context.WithCancel(ctx)
	go func() {
		defer close(maintDone)
		s.maintain(mctx)
	}()
	alertsDone := make(chan struct{})
	go func() {
		defer close(alertsDone)
		s.alerts.run(mctx)
	}()
	forwardDone := make(chan struct{})
	go func() {
		defer close(forwardDone)
		s.forward.run(mctx)
	}()
	iocDone := make(chan struct{})
	go func() {
		defer close(iocDone)
		s.ioc.run(mctx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(tls.NewListener(ln, hs.TLSConfig)) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "db", string(s.store.Dialect()))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Listener and requests first; long polls end with the hub.
	s.hub.close()
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	stopMaint()
	<-maintDone
	<-alertsDone
	<-forwardDone
	<-iocDone
	// The check-in and attestation writers drain what was accepted before
	// they stop.
	stopWriter()
	<-writerDone
	s.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Run listens on the configured address and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.Close()
		return fmt.Errorf("server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Close closes the store. Serve calls it on shutdown.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.store.Close() })
	return err
}

// maintain runs periodic housekeeping until ctx ends.
func (s *Server) maintain(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if _, err := s.store.DeleteExpiredSessions(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.log.Warn("deleting expired sessions", "err", err)
		}
		s.refreshTUF(ctx)
		s.pruneEvents(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
