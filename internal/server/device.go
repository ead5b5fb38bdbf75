package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/auth"
	"github.com/bulwark-iot/bulwark/internal/pki"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// connAuth caches the device CA verification of a connection's client
// certificate: the chain is checked once per connection, not per request.
type connAuth struct {
	once     sync.Once
	deviceID string
	err      error
}

// deviceCtx is the authenticated device of a request.
type deviceCtx struct {
	id     string
	serial string
	group  string
	cert   *x509.Certificate
	trust  string
}

type deviceKey struct{}

// requireDevice admits requests carrying a valid, current, unrevoked
// device certificate.
func (s *Server) requireDevice(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return errf(http.StatusUnauthorized, "client_certificate_required", "this endpoint requires the device's client certificate (mutual TLS)")
		}
		cert := r.TLS.PeerCertificates[0]
		ca, _ := r.Context().Value(connKey{}).(*connAuth)
		if ca == nil {
			ca = &connAuth{}
		}
		ca.once.Do(func() { ca.deviceID, ca.err = s.ca.VerifyDevice(cert, s.now()) })
		err := ca.err
		if err == nil && !s.now().Before(cert.NotAfter) {
			err = pki.ErrCertExpired
		}
		switch {
		case errors.Is(err, pki.ErrForeignCert):
			return errf(http.StatusUnauthorized, "foreign_certificate", "the client certificate was not issued by this server's device CA")
		case errors.Is(err, pki.ErrCertExpired):
			return errf(http.StatusUnauthorized, "certificate_expired", "the device certificate has expired: enrol again")
		case err != nil:
			return &httpError{Status: http.StatusUnauthorized, Code: "bad_certificate", Msg: "the client certificate is not a valid device certificate", Err: err}
		}
		a, err := s.store.GetDeviceAuth(r.Context(), ca.deviceID)
		if errors.Is(err, store.ErrNotFound) {
			return errf(http.StatusUnauthorized, "unknown_device", "no device is enrolled with this certificate")
		}
		if err != nil {
			return internal(err)
		}
		if a.Status == api.DeviceRevoked {
			return errf(http.StatusForbidden, "device_revoked", "this device has been revoked by an administrator")
		}
		serial := cert.SerialNumber.Text(16)
		if a.CertSerial != serial {
			return errf(http.StatusUnauthorized, "certificate_superseded", "this certificate was replaced by a newer one for the device")
		}
		if a.Trust == api.TrustQuarantined && !quarantineAllowed[r.URL.Path] {
			return errf(http.StatusForbidden, "device_quarantined", "this device is quarantined after a failed attestation: only health, attestation, event and update traffic is allowed")
		}
		dc := &deviceCtx{id: ca.deviceID, serial: serial, group: a.Group, cert: cert, trust: a.Trust}
		return next(w, r.WithContext(context.WithValue(r.Context(), deviceKey{}, dc)))
	}
}

func deviceFrom(r *http.Request) *deviceCtx { return r.Context().Value(deviceKey{}).(*deviceCtx) }

// ClientIP is the address a request came from, used for throttling and
// the audit log. Proxy headers are not trusted.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// handleEnroll exchanges an enrolment token and a CSR for a device
// certificate. Nothing is written unless everything checks out.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) error {
	ip := ClientIP(r)
	if s.enrollFails.blocked(ip, s.now()) {
		return errf(http.StatusTooManyRequests, "rate_limited", "too many failed enrolment attempts from this address; wait a minute")
	}
	var req api.EnrollRequest
	if err := decode(r, api.MaxEnrollBody, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return badRequest(err.Error())
	}
	fail := func(e *httpError) error {
		s.enrollFails.fail(ip, s.now())
		s.audit(r.Context(), auditRecord{actor: "device", action: "device.enroll", remote: ip, outcome: "refused: " + e.Code})
		return e
	}
	switch {
	case req.TPM != nil:
		return s.enrollTPMStart(w, r, &req, fail)
	case req.Activation != nil:
		return s.enrollTPMFinish(w, r, &req, fail)
	}
	tokID, hash, err := auth.ParseSecretToken(auth.PrefixEnrolmentToken, req.Token)
	if err != nil {
		return fail(errf(http.StatusUnauthorized, "invalid_token", "the enrolment token is malformed"))
	}
	now := s.now()
	tok, err := s.store.CheckEnrollToken(r.Context(), tokID, hash, now)
	if herr := tokenError(err); herr != nil {
		return fail(herr)
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		return fail(errf(http.StatusBadRequest, "bad_csr", err.Error()))
	}
	d := &store.Device{
		ID: pki.NewDeviceID(), Status: api.DeviceActive, Group: tok.Group, KeyAssurance: "software",
		EnrolledAt: now,
	}
	// A key_assurance the agent claims is not evidence: only a TPM
	// enrolment (credential activation) makes a device "hardware".
	if req.Inventory != nil {
		d.Hostname = req.Inventory.Hostname
		b, _ := json.Marshal(req.Inventory)
		d.Inventory = string(b)
	}
	reenrol := req.PreviousDeviceID != ""
	if reenrol {
		prev, err := s.store.GetDevice(r.Context(), req.PreviousDeviceID)
		if err != nil || prev.Status != api.DeviceActive {
			return fail(errf(http.StatusForbidden, "reenrolment_refused", "the previous device identity is unknown or revoked"))
		}
		if err := verifyProof(prev.CertPEM, csr.Raw, req.PreviousProof); err != nil {
			return fail(errf(http.StatusForbidden, "reenrolment_refused", "previous_proof is not a signature by the previous device key"))
		}
		d.ID, d.Group, d.Status, d.EnrolledAt = prev.ID, prev.Group, prev.Status, now
	}
	cert, der, err := s.ca.IssueDevice(csr, d.ID, s.cfg.DeviceCertLifetime, now)
	if err != nil {
		return fail(errf(http.StatusBadRequest, "bad_csr", err.Error()))
	}
	d.CertSerial = cert.SerialNumber.Text(16)
	d.CertNotBefore, d.CertNotAfter = cert.NotBefore, cert.NotAfter
	d.CertPEM = string(pki.EncodeCertPEM(der))
	if reenrol {
		err = s.store.ReEnrollDevice(r.Context(), tokID, hash, d)
	} else {
		err = s.store.EnrollDevice(r.Context(), tokID, hash, d)
	}
	if herr := tokenError(err); herr != nil {
		return fail(herr)
	}
	action := "device.enroll"
	if reenrol {
		action = "device.reenroll"
	}
	s.audit(r.Context(), auditRecord{actor: "enroll-token:" + tokID, action: action, target: "device:" + d.ID, remote: ip,
		detail: "group=" + d.Group + " serial=" + d.CertSerial, outcome: "ok"})
	s.alertEnrolled(r.Context(), d, reenrol)
	writeJSON(w, http.StatusCreated, api.EnrollResponse{
		DeviceID: d.ID, Certificate: d.CertPEM, CACert: string(s.ca.CertPEM), NotAfter: cert.NotAfter,
		Group: d.Group, CheckinInterval: int(s.cfg.CheckinInterval / time.Second),
	})
	return nil
}

func tokenError(err error) *httpError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrTokenInvalid):
		return errf(http.StatusUnauthorized, "invalid_token", "the enrolment token is not valid")
	case errors.Is(err, store.ErrTokenRevoked):
		return errf(http.StatusUnauthorized, "token_revoked", "the enrolment token has been revoked")
	case errors.Is(err, store.ErrTokenExpired):
		return errf(http.StatusUnauthorized, "token_expired", "the enrolment token has expired")
	case errors.Is(err, store.ErrTokenUsedUp):
		return errf(http.StatusUnauthorized, "token_used_up", "the enrolment token has no uses left")
	case errors.Is(err, store.ErrNotFound):
		return errf(http.StatusForbidden, "reenrolment_refused", "the previous device identity is unknown or revoked")
	}
	return internal(err)
}

// verifyProof checks sig (base64) is the previous key's signature over
// SHA-256 of the new CSR.
func verifyProof(certPEM string, csrDER []byte, sig string) error {
	cert, err := pki.ParseCertPEM([]byte(certPEM))
	if err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(csrDER)
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(pub, digest[:], raw) {
			return nil
		}
	case ed25519.PublicKey:
		if ed25519.Verify(pub, digest[:], raw) {
			return nil
		}
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], raw)
	}
	return errors.New("signature does not verify")
}

// handleRenew issues a certificate for a new key to an authenticated
// device; the old certificate stops working once the new one is recorded.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) error {
	dc := deviceFrom(r)
	var req api.RenewRequest
	if err := decode(r, api.MaxEnrollBody, &req); err != nil {
		return err
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		return errf(http.StatusBadRequest, "bad_csr", err.Error())
	}
	now := s.now()
	cert, der, err := s.ca.IssueDevice(csr, dc.id, s.cfg.DeviceCertLifetime, now)
	if err != nil {
		return errf(http.StatusBadRequest, "bad_csr", err.Error())
	}
	d := &store.Device{ID: dc.id, CertSerial: cert.SerialNumber.Text(16), CertNotBefore: cert.NotBefore, CertNotAfter: cert.NotAfter,
		CertPEM: string(pki.EncodeCertPEM(der)), KeyAssurance: "software", EnrolledAt: now}
	if cur, err := s.store.GetDevice(r.Context(), dc.id); err == nil {
		d.KeyAssurance = cur.KeyAssurance
	}
	if err := s.store.RenewDeviceCert(r.Context(), dc.serial, d); errors.Is(err, store.ErrConflict) {
		return errf(http.StatusConflict, "certificate_superseded", "the certificate was already renewed")
	} else if errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusForbidden, "device_revoked", "this device has been revoked by an administrator")
	} else if err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: "device:" + dc.id, action: "device.renew", target: "device:" + dc.id, remote: ClientIP(r),
		detail: "serial=" + d.CertSerial, outcome: "ok"})
	writeJSON(w, http.StatusOK, api.EnrollResponse{
		DeviceID: dc.id, Certificate: d.CertPEM, CACert: string(s.ca.CertPEM), NotAfter: cert.NotAfter,
		Group: dc.group, CheckinInterval: int(s.cfg.CheckinInterval / time.Second),
	})
	return nil
}

// handleCheckin records inventory, health and acks (durably, in a group
// commit with other check-ins) and answers with pending work.
func (s *Server) handleCheckin(w http.ResponseWriter, r *http.Request) error {
	dc := deviceFrom(r)
	var req api.CheckinRequest
	if err := decode(r, api.MaxCheckinBody, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return badRequest(err.Error())
	}
	now := s.now()
	// Uptime is kept as a boot time so that the stored inventory only
	// changes when the device does.
	boot := now.Add(-time.Duration(req.Inventory.UptimeSeconds) * time.Second).Truncate(time.Second)
	req.Inventory.UptimeSeconds = 0
	inv, _ := json.Marshal(req.Inventory)
	health, _ := json.Marshal(req.Health)
	c := store.Checkin{DeviceID: dc.id, At: now, Hostname: req.Inventory.Hostname, Inventory: string(inv),
		Health: string(health), HealthStatus: req.Health.Status, BootTime: boot}
	for _, a := range req.Acks {
		c.Acks = append(c.Acks, store.Ack{CommandID: a.ID, Status: a.Status, Detail: a.Detail})
	}
	s.alertHealth(r.Context(), dc.id, req.Health.Status)
	if err := s.checkins.write(r.Context(), c); err != nil {
		return internal(err)
	}
	cmds, err := s.deliverCommands(r.Context(), dc.id, req.Acks)
	if err != nil {
		return internal(err)
	}
	update, err := s.updateAssignment(r.Context(), dc)
	if err != nil {
		return internal(err)
	}
	lifetime := dc.cert.NotAfter.Sub(dc.cert.NotBefore)
	resp := api.CheckinResponse{
		ServerTime:       now.UTC(),
		CheckinInterval:  int(s.cfg.CheckinInterval / time.Second),
		Commands:         cmds,
		Update:           update,
		RenewCertificate: dc.cert.NotAfter.Sub(now) < lifetime/3,
		Trust:            dc.trust,
		IoCVersion:       s.ioc.deviceVersion(),
	}
	if n := s.attestDue(r.Context(), dc.id, now); n != nil {
		resp.AttestNonce = n
		resp.AttestInterval = int(s.cfg.Attestation.Interval / time.Second)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// deliverCommands returns the device's open commands (except those it has
// just acknowledged) and marks queued ones delivered.
func (s *Server) deliverCommands(ctx context.Context, deviceID string, acks []api.CommandAck) ([]api.Command, error) {
	open, err := s.store.OpenCommands(ctx, deviceID, 50)
	if err != nil {
		return nil, err
	}
	acked := map[string]bool{}
	for _, a := range acks {
		acked[a.ID] = true
	}
	out := []api.Command{}
	var queued []string
	for _, c := range open {
		if acked[c.ID] {
			continue
		}
		out = append(out, api.Command{ID: c.ID, Kind: c.Kind, Payload: c.Payload, CreatedAt: c.CreatedAt})
		if c.Status == "queued" {
			queued = append(queued, c.ID)
		}
	}
	if err := s.store.MarkDelivered(ctx, queued, s.now()); err != nil {
		return nil, err
	}
	return out, nil
}

// handleCommandsWait is the long poll that delivers commands to online
// devices within moments of being queued. A command queued on this server
// wakes the poll at once; one queued through another server sharing the
// store is seen at the next store check (every few seconds).
func (s *Server) handleCommandsWait(w http.ResponseWriter, r *http.Request) error {
	dc := deviceFrom(r)
	wait := 50 * time.Second
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 55 {
			return badRequest("wait must be a number of seconds from 0 to 55")
		}
		wait = time.Duration(n) * time.Second
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(3 * time.Second)
	defer poll.Stop()
	for {
		ch := s.hub.subscribe(dc.id)
		cmds, err := s.deliverCommands(r.Context(), dc.id, nil)
		if err != nil {
			s.hub.unsubscribe(dc.id, ch)
			return internal(err)
		}
		if len(cmds) > 0 {
			s.hub.unsubscribe(dc.id, ch)
			writeJSON(w, http.StatusOK, api.CommandsWaitResponse{Commands: cmds})
			return nil
		}
		select {
		case <-ch:
		case <-poll.C:
		case <-deadline.C:
			s.hub.unsubscribe(dc.id, ch)
			writeJSON(w, http.StatusOK, api.CommandsWaitResponse{Commands: []api.Command{}})
			return nil
		case <-r.Context().Done():
			s.hub.unsubscribe(dc.id, ch)
			return nil
		case <-s.hub.done:
			s.hub.unsubscribe(dc.id, ch)
			writeJSON(w, http.StatusOK, api.CommandsWaitResponse{Commands: []api.Command{}})
			return nil
		}
		s.hub.unsubscribe(dc.id, ch)
		// A wake-up may be a revocation: end the poll at once.
		if a, err := s.store.GetDeviceAuth(r.Context(), dc.id); err == nil {
			if a.Status == api.DeviceRevoked {
				return errf(http.StatusForbidden, "device_revoked", "this device has been revoked by an administrator")
			}
			if a.CertSerial != dc.serial {
				return errf(http.StatusUnauthorized, "certificate_superseded", "this certificate was replaced by a newer one for the device")
			}
		}
	}
}

// hub wakes long polls when a command is queued for their device.
type hub struct {
	mu       sync.Mutex
	waiters  map[string]map[chan struct{}]bool
	done     chan struct{}
	doneOnce sync.Once
}

func newHub() *hub {
	return &hub{waiters: map[string]map[chan struct{}]bool{}, done: make(chan struct{})}
}

func (h *hub) subscribe(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters[id] == nil {
		h.waiters[id] = map[chan struct{}]bool{}
	}
	h.waiters[id][ch] = true
	return ch
}

func (h *hub) unsubscribe(id string, ch chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.waiters[id], ch)
	if len(h.waiters[id]) == 0 {
		delete(h.waiters, id)
	}
}

func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.waiters[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (h *hub) close() { h.doneOnce.Do(func() { close(h.done) }) }

// maxCheckinBatch caps the check-ins committed in one transaction.
const maxCheckinBatch = 1000

// newCheckinWriter group-commits check-ins (groupcommit.go).
func newCheckinWriter(st *store.Store, log interface{ Error(string, ...any) }) *groupCommit[store.Checkin] {
	return newGroupCommit("check-ins", maxCheckinBatch, log, st.ApplyCheckins)
}

// penaltyBox blocks addresses after repeated failed enrolments.
type penaltyBox struct {
	mu      sync.Mutex
	limiter *auth.Limiter
	until   map[string]time.Time
}

func newPenaltyBox() *penaltyBox {
	return &penaltyBox{limiter: auth.NewLimiter(1, 20, 100000), until: map[string]time.Time{}}
}

func (p *penaltyBox) fail(ip string, now time.Time) {
	if p.limiter.Allow(ip, now) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.until) > 100000 {
		for k, t := range p.until {
			if now.After(t) {
				delete(p.until, k)
			}
		}
	}
	p.until[ip] = now.Add(time.Minute)
}

func (p *penaltyBox) blocked(ip string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.until[ip]
	if ok && now.After(t) {
		delete(p.until, ip)
		return false
	}
	return ok
}
