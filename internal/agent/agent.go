// Package agent is the Bulwark device agent daemon and its enrolment.
//
// Run is the daemon: it loads the identity from the state directory, checks
// in with the server, long-polls for commands, renews the certificate before
// it expires and serves status and health on a local Unix socket. Enroll
// creates the identity in the first place. Several daemons may run on one
// host as long as their state directories differ.
//
// The daemon's types are internal; Run and Enroll are safe to call from any
// goroutine, one Run per state directory (Run takes a lock to enforce it).
package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/agent/localapi"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	tpmdev "github.com/bulwark-iot/bulwark/internal/tpm"
)

// version is set at link time with
// -ldflags "-X github.com/bulwark-iot/bulwark/internal/agent.version=1.2.3".
var version string

// Version is the agent's version: the link-time version, else the module
// version recorded in the binary, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Config configures the daemon. The zero value of every field is the
// production default.
type Config struct {
	// StateDir holds the identity, the enrolment record and the socket;
	// empty means state.DefaultDir (/var/lib/bulwark-agent).
	StateDir string
	// Interval is the check-in interval; zero means the interval the server
	// asks for (60 s until it has said). A ±10 % jitter is always applied.
	Interval time.Duration
	// CommandWait is how long each command long poll waits; zero means 50 s.
	CommandWait time.Duration
	// RetryMin is the first retry delay after a failure; zero means 2 s.
	// Delays double per failure, with jitter, up to RetryMax.
	RetryMin time.Duration
	// RetryMax caps the retry delay; zero means 5 min.
	RetryMax time.Duration
	// RevokedRetry is how often a revoked device tries again; zero means
	// 1 h.
	RevokedRetry time.Duration
	// InstallRoot holds one directory per product the agent installs
	// (versions and the current symlink); empty means <StateDir>/apps.
	InstallRoot string
	// HealthCheck is run after an update switches versions (argv, no
	// shell); a non-zero exit rolls the update back. Empty: none.
	HealthCheck []string
	// Hardware names the device's hardware model; releases limited to
	// other hardware are refused. Empty matches only releases for any
	// hardware.
	Hardware string
	// IntegrityPaths are the files and directories the integrity monitor
	// hashes (internal/agent/integrity; for devices without IMA). Empty:
	// the integrity health check is unknown.
	IntegrityPaths []string
	// ManagedBinaries are ELF files whose hardening is reported besides
	// the agent's own (internal/agent/hardening). Empty: the agent only.
	ManagedBinaries []string

	// TPM overrides the TPM recorded at enrolment ("swtpm:HOST:PORT", a
	// device path, or "sim" in tests); empty uses the recorded one.
	TPM string
	// PlatformRoot is prepended to the paths the measured-boot event log,
	// the IMA list and the SecureBoot variable are read from; empty reads
	// the real ones. It lets a device whose firmware does not measure (a
	// software TPM) present an emulated boot log.
	PlatformRoot string

	// Events configures the security event journal and its forwarding to
	// the server (events.go); the zero value is the default.
	Events EventsConfig
	// Collectors configures the network connection and authentication
	// event collectors (collectors.go); the zero value runs both.
	Collectors CollectorsConfig
	// IoC configures the fleet's indicators of compromise on the device
	// (ioc.go); the zero value fetches, flags and, by the server's policy,
	// blocks.
	IoC IoCConfig

	// hardeningRoot is where the hardening facts are read; empty means
	// "/". Tests point it at a fake tree.
	hardeningRoot string
}

func (c Config) withDefaults() Config {
	if c.StateDir == "" {
		c.StateDir = state.DefaultDir
	}
	if c.CommandWait <= 0 {
		c.CommandWait = 50 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 2 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.RevokedRetry <= 0 {
		c.RevokedRetry = time.Hour
	}
	if c.InstallRoot == "" {
		c.InstallRoot = filepath.Join(c.StateDir, "apps")
	}
	return c
}

const (
	defaultInterval = 60 * time.Second
	minInterval     = 5 * time.Second
	maxInterval     = 24 * time.Hour
)

// daemon is the running agent. Fields under mu change at run time; the
// rest are set once.
type daemon struct {
	cfg     Config
	log     *slog.Logger
	dir     string
	started time.Time
	acks    *ackQueue
	seen    *idSet
	updates *updates
	// checkinNow asks the check-in loop for an immediate check-in.
	checkinNow chan struct{}
	// acksDelivered tells the command loop that a check-in delivered acks.
	acksDelivered chan struct{}

	mu          sync.Mutex
	client      *deviceclient.Client
	pollCancel  context.CancelFunc // ends the command long poll in flight
	caPEM       []byte
	st          *state.State
	id          identity.Identity
	interval    time.Duration // current check-in interval, before jitter
	lastAttempt time.Time
	lastSuccess time.Time
	lastResult  string
	lastErr     string
	lastErrAt   time.Time
	revoked     bool
	unrevoked   chan struct{} // closed when revoked is cleared
	certStamp   fileStamp     // device.crt as last loaded or written
	lastRenewal time.Time
	renewFails  int
	renewAfter  time.Time // no automatic renewal attempt before this

	// health holds the inputs of the health checks (health.go); it has
	// its own locks.
	health healthState
	// ev is the security event journal, its forwarder and the clock
	// offset (events.go); set before the loops start.
	ev *eventsState
	// iocs is the indicator set in use (ioc.go); nil when off. Set
	// before the collectors start.
	iocs *iocState
	// att serializes attestations (attest.go).
	att attestState
	// tpm is the open TPM of a hardware identity, nil otherwise.
	tpm *tpmdev.TPM
}

// Run runs the agent until ctx ends, then stops the local API, the command
// loop and the check-in loop, in that order, and waits for them. It fails
// at once if the state directory holds no enrolment or another daemon is
// using it.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := state.EnsureDir(cfg.StateDir); err != nil {
		return err
	}
	unlock, err := lockDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()

	d := &daemon{
		cfg:           cfg,
		log:           logger,
		dir:           cfg.StateDir,
		started:       time.Now(),
		seen:          newIDSet(4096),
		checkinNow:    make(chan struct{}, 1),
		acksDelivered: make(chan struct{}, 1),
	}
	d.att.platform = tpmdev.Platform{Root: cfg.PlatformRoot}
	if err := d.load(); err != nil {
		return err
	}
	defer func() { d.currentClient().Close() }()
	if err := d.openEvents(); err != nil {
		return err
	}
	defer d.closeEvents()
	defer d.closeTPM()
	d.updates = &updates{d: d}
	d.updates.resume(ctx)

	acks, err := state.LoadAcks(d.dir)
	if err != nil {
		logger.Error("pending acks unreadable; starting without them", "err", err)
	}
	d.acks = &ackQueue{dir: d.dir, acks: acks, log: logger}
	for _, a := range acks {
		d.seen.add(a.ID)
	}

	ln, err := localapi.Listen(filepath.Join(d.dir, state.SocketFile))
	if err != nil {
		return err
	}
	srv := localapi.NewServer(d, logger)
	apiDone := make(chan error, 1)
	go func() { apiDone <- srv.Serve(ln) }()

	// The loops get contexts of their own so that they stop one by one.
	base := context.WithoutCancel(ctx)
	cmdCtx, stopCmd := context.WithCancel(base)
	ckCtx, stopCk := context.WithCancel(base)
	defer stopCmd()
	defer stopCk()
	// Before any loop that records events: recordEvent reads d.iocs.
	stopIoC := d.startIoC(base)
	var cmdWG, ckWG sync.WaitGroup
	ckWG.Go(func() { d.checkinLoop(ckCtx) })
	cmdWG.Go(func() { d.commandLoop(cmdCtx) })
	stopEvents := d.runEvents(base)
	stopCollectors := d.runCollectors(base)

	d.mu.Lock()
	logger.Info("agent started", "version", Version(), "device_id", d.st.DeviceID, "server", d.st.Server,
		"state_dir", d.dir, "key_assurance", d.id.KeyAssurance(), "pending_acks", len(acks))
	d.mu.Unlock()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-apiDone:
		runErr = fmt.Errorf("local API stopped: %w", err)
		apiDone <- nil
	}
	shutCtx, cancel := context.WithTimeout(base, 5*time.Second)
	srv.Shutdown(shutCtx)
	cancel()
	<-apiDone
	stopCmd()
	cmdWG.Wait()
	stopCk()
	ckWG.Wait()
	d.updates.wg.Wait()
	stopCollectors()
	stopIoC()
	stopEvents()
	logger.Info("agent stopped")
	return runErr
}

// load reads the enrolment, identity and trust anchor and builds the
// device API client.
func (d *daemon) load() error {
	if err := state.Recover(d.dir); err != nil {
		return err
	}
	st, err := state.Load(d.dir)
	if err != nil {
		if errors.Is(err, state.ErrNotEnrolled) {
			return fmt.Errorf("not enrolled (state dir %s): run bulwark-agent enroll first", d.dir)
		}
		return err
	}
	id, dev, err := loadIdentity(d.dir, st, d.cfg.TPM, nil)
	if err != nil {
		return err
	}
	d.tpm = dev
	caPEM, err := os.ReadFile(filepath.Join(d.dir, state.CAFile))
	if err != nil {
		return fmt.Errorf("reading trust anchor: %w", err)
	}
	c, err := newClient(st.Server, caPEM, id)
	if err != nil {
		return err
	}
	d.st, d.id, d.caPEM, d.client = st, id, caPEM, c
	d.certStamp = stampOf(filepath.Join(d.dir, state.CertFile))
	d.interval = defaultInterval
	if st.CheckinInterval > 0 {
		d.interval = clampInterval(time.Duration(st.CheckinInterval) * time.Second)
	}
	return nil
}

func newClient(server string, caPEM []byte, id identity.Identity) (*deviceclient.Client, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("trust anchor holds no PEM certificate")
	}
	cfg := deviceclient.Config{Server: server, Roots: roots}
	if id != nil {
		cfg.Certificate = id.Certificate()
	}
	return deviceclient.New(cfg)
}

// fileStamp identifies a version of a file cheaply.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime(), fi.Size()}
}

// identityChangedOnDisk reports whether device.crt changed since the
// daemon last loaded or wrote it (enroll --force while running).
func (d *daemon) identityChangedOnDisk() bool {
	now := stampOf(filepath.Join(d.dir, state.CertFile))
	d.mu.Lock()
	defer d.mu.Unlock()
	return now != d.certStamp
}

// reloadIdentity picks up an identity written by "enroll --force" while
// the daemon runs. It reports whether anything changed.
func (d *daemon) reloadIdentity() bool {
	if err := state.Recover(d.dir); err != nil {
		return false
	}
	st, err := state.Load(d.dir)
	if err != nil {
		return false
	}
	d.mu.Lock()
	open := d.tpm
	d.mu.Unlock()
	id, dev, err := loadIdentity(d.dir, st, d.cfg.TPM, open)
	if err != nil {
		return false
	}
	if dev != nil && dev != open {
		d.mu.Lock()
		d.tpm = dev
		d.mu.Unlock()
	}
	caPEM, err := os.ReadFile(filepath.Join(d.dir, state.CAFile))
	if err != nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if string(id.Certificate().Certificate[0]) == string(d.id.Certificate().Certificate[0]) {
		d.certStamp = stampOf(filepath.Join(d.dir, state.CertFile))
		return false
	}
	c, err := newClient(st.Server, caPEM, id)
	if err != nil {
		d.log.Error("new identity on disk is unusable", "err", err)
		return false
	}
	d.swapClientLocked(c)
	d.caPEM = caPEM
	if st.DeviceID != d.st.DeviceID {
		d.acks.clear()
	}
	d.log.Info("loaded new identity from disk", "device_id", st.DeviceID, "not_after", id.Certificate().Leaf.NotAfter)
	d.st, d.id = st, id
	d.certStamp = stampOf(filepath.Join(d.dir, state.CertFile))
	d.renewFails, d.renewAfter = 0, time.Time{}
	d.setRevokedLocked(false)
	return true
}

// swapClientLocked makes c the client for every new request and retires
// the old one. A client keeps its HTTP/2 connection, and with it the
// certificate of its TLS handshake, for as long as requests use it, so a
// new identity needs new connections: the long poll in flight is cut short
// and the old client closes its connections once that poll has returned.
// d.mu is held.
func (d *daemon) swapClientLocked(c *deviceclient.Client) {
	old := d.client
	d.client = c
	if d.pollCancel != nil {
		d.pollCancel()
	}
	old.Close()
}

// pollClient returns the client for a long poll and the context it must
// use, which swapClientLocked cancels.
func (d *daemon) pollClient(ctx context.Context) (*deviceclient.Client, context.Context, context.CancelFunc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	pctx, cancel := context.WithCancel(ctx)
	d.pollCancel = cancel
	return d.client, pctx, cancel
}

func (d *daemon) currentClient() *deviceclient.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.client
}

func (d *daemon) currentIdentity() identity.Identity {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.id
}

func (d *daemon) isRevoked() (bool, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revoked, d.unrevoked
}

// setRevokedLocked records the revocation state; d.mu is held.
func (d *daemon) setRevokedLocked(r bool) {
	switch {
	case r && !d.revoked:
		d.revoked = true
		d.unrevoked = make(chan struct{})
	case !r && d.revoked:
		d.revoked = false
		close(d.unrevoked)
		d.unrevoked = nil
	}
}

func (d *daemon) triggerCheckin() {
	select {
	case d.checkinNow <- struct{}{}:
	default:
	}
}

// Status implements localapi.Provider.
func (d *daemon) Status() localapi.Status {
	h := d.Health()
	d.mu.Lock()
	defer d.mu.Unlock()
	leaf := d.id.Certificate().Leaf
	st := localapi.Status{
		DaemonRunning:       true,
		AgentVersion:        Version(),
		PID:                 os.Getpid(),
		StartedAt:           timePtr(d.started),
		Enrolled:            true,
		DeviceID:            d.st.DeviceID,
		Server:              d.st.Server,
		EnrolledAt:          timePtr(d.st.EnrolledAt),
		KeyAssurance:        d.id.KeyAssurance(),
		LastCheckin:         timePtr(d.lastAttempt),
		LastCheckinResult:   d.lastResult,
		LastCheckinSuccess:  timePtr(d.lastSuccess),
		CheckinInterval:     d.effectiveIntervalLocked().Seconds(),
		LastError:           d.lastErr,
		LastErrorAt:         timePtr(d.lastErrAt),
		PendingAcks:         d.acks.len(),
		CertificateSerial:   leaf.SerialNumber.Text(16),
		CertificateNotAfter: timePtr(leaf.NotAfter),
		LastRenewal:         timePtr(d.lastRenewal),
		Revoked:             d.revoked,
		Health:              &h,
	}
	if d.updates != nil {
		st.Installed = d.updates.installed()
		st.LastUpdate = d.updates.lastReport()
	}
	if d.iocs != nil {
		st.IoC = d.iocs.status()
	}
	return st
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (d *daemon) effectiveIntervalLocked() time.Duration {
	if d.cfg.Interval > 0 {
		return d.cfg.Interval
	}
	return d.interval
}

func clampInterval(iv time.Duration) time.Duration {
	return min(max(iv, minInterval), maxInterval)
}

// jitter spreads d by ±10 %.
func jitter(d time.Duration) time.Duration {
	span := int64(d) / 5
	if span <= 0 {
		return d
	}
	return d - time.Duration(span/2) + time.Duration(rand.Int64N(span+1))
}

// backoff is the delay before retry number n (1-based): RetryMin doubled
// per failure, capped at RetryMax, then drawn uniformly from its upper half.
func (d *daemon) backoff(n int) time.Duration {
	delay := d.cfg.RetryMax
	if n < 30 {
		if b := d.cfg.RetryMin << (n - 1); b > 0 && b < delay {
			delay = b
		}
	}
	half := int64(delay) / 2
	return time.Duration(half + rand.Int64N(half+1))
}

// sleep waits for delay or until ctx ends, reporting whether ctx is alive.
func sleep(ctx context.Context, delay time.Duration) bool {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// serverError returns the status and code of a device API error answer.
func serverError(err error) (int, string) {
	var e *deviceclient.Error
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	return 0, ""
}

// Error codes of the device API the agent acts on.
const (
	codeRevoked       = "device_revoked"
	codeCertExpired   = "certificate_expired"
	codeUnknownDevice = "unknown_device"
	codeForeignCert   = "foreign_certificate"
	codeCertRequired  = "client_certificate_required"
	codeRateLimited   = "rate_limited"
	codeBadRequest    = "bad_request"
	codeInvalidToken  = "invalid_token"
)

// identityProblem says whether err means the server does not accept the
// device's identity, with advice for the operator.
func identityProblem(err error) (string, bool) {
	_, code := serverError(err)
	switch code {
	case codeCertExpired:
		return "the device certificate has expired: re-enrol with bulwark-agent enroll --force", true
	case codeUnknownDevice:
		return "the server does not know this device: re-enrol with bulwark-agent enroll --force", true
	case codeForeignCert:
		return "the server did not issue this device certificate: check --server or re-enrol", true
	case codeCertRequired:
		return "the server did not receive the device certificate", true
	}
	return "", false
}

// closeTPM flushes a TPM identity's keys and closes the TPM.
func (d *daemon) closeTPM() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.id.(*identity.TPM); ok {
		t.Close()
	}
	if d.tpm != nil {
		d.tpm.Close()
		d.tpm = nil
	}
}
