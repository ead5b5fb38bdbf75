package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/auth"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/pki"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// AttestConfig configures device attestation.
type AttestConfig struct {
	// Interval is how often devices with a TPM attest; zero means 10
	// minutes.
	Interval time.Duration
	// FailureAction is what a failed (contraindicated) attestation does to
	// the device: "untrusted" marks it, "quarantine" (the default) also
	// limits its device API to health, attestation, events and update
	// traffic, and "revoke" revokes its certificate.
	FailureAction string
	// EKRootsFile is a PEM file of TPM manufacturer CA certificates; when
	// set, an EK certificate must chain to one of them, and TPMs without
	// an EK certificate are refused. Empty: EK certificates are parsed and
	// recorded but not chain-checked.
	EKRootsFile string
}

// Failure actions.
const (
	ActionUntrusted  = "untrusted"
	ActionQuarantine = "quarantine"
	ActionRevoke     = "revoke"
)

const (
	activationTTL   = 5 * time.Minute
	nonceTTL        = 10 * time.Minute
	maxPending      = 100000 // nonces and activation sessions held at once
	attestRetryWait = 2 * time.Minute
	earKeyState     = "attest/ear-key"
)

// attestor holds the attestation state that lives in memory: nonces
// handed out, TPM enrolments awaiting activation, and when each device is
// next due to attest. Losing it (a restart) only costs devices a retry.
type attestor struct {
	mu       sync.Mutex
	nonces   map[string]pendingNonce // by string(nonce)
	byDevice map[string][]string     // a device's outstanding nonces, oldest first
	sessions map[string]*activation  // by session ID
	due      map[string]time.Time    // device → next attestation; zero time: no TPM

	ekRoots *x509.CertPool
	earKey  *ecdsa.PrivateKey
	earKid  string
}

type pendingNonce struct {
	device  string
	reason  string
	expires time.Time
}

// activation is a TPM enrolment waiting for the device to prove its AK
// and EK live in one TPM.
type activation struct {
	secret   []byte
	csr      string
	req      api.EnrollRequest
	enr      *attest.Enrollment
	ekHash   string
	tokenID  string
	hash     []byte
	group    string
	nonce    []byte
	expires  time.Time
	remoteIP string
}

func (s *Server) initAttest(ctx context.Context) error {
	a := &attestor{nonces: map[string]pendingNonce{}, byDevice: map[string][]string{}, sessions: map[string]*activation{}, due: map[string]time.Time{}}
	switch s.cfg.Attestation.FailureAction {
	case "":
		s.cfg.Attestation.FailureAction = ActionQuarantine
	case ActionUntrusted, ActionQuarantine, ActionRevoke:
	default:
		return fmt.Errorf("server: attestation failure action %q: want untrusted, quarantine or revoke", s.cfg.Attestation.FailureAction)
	}
	if s.cfg.Attestation.Interval <= 0 {
		s.cfg.Attestation.Interval = 10 * time.Minute
	}
	if f := s.cfg.Attestation.EKRootsFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("server: EK roots: %w", err)
		}
		a.ekRoots = x509.NewCertPool()
		if !a.ekRoots.AppendCertsFromPEM(b) {
			return fmt.Errorf("server: EK roots: %s holds no PEM certificate", f)
		}
	}
	key, err := s.loadEARKey(ctx)
	if err != nil {
		return err
	}
	a.earKey = key
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256(pub)
	a.earKid = hex.EncodeToString(sum[:8])
	s.attest = a
	return nil
}

// loadEARKey loads (or makes, at first start) the key that signs
// attestation results, sealed with the KEK in the store.
func (s *Server) loadEARKey(ctx context.Context) (*ecdsa.PrivateKey, error) {
	aad := []byte("bulwark-ear-key")
	sealed, err := s.store.GetState(ctx, earKeyState)
	if errors.Is(err, store.ErrNotFound) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		b, err := s.kek.Seal(der, aad)
		if err != nil {
			return nil, err
		}
		if _, err := s.store.PutStateIfAbsent(ctx, earKeyState, b); err != nil {
			return nil, err
		}
		sealed, err = s.store.GetState(ctx, earKeyState)
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("server: loading attestation signing key: %w", err)
	}
	der, err := s.kek.Open(sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("server: attestation signing key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("server: attestation signing key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("server: attestation signing key is not ECDSA")
	}
	return ek, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}

// sweepLocked drops expired nonces and sessions.
func (a *attestor) sweepLocked(now time.Time) {
	if len(a.nonces)+len(a.sessions) < maxPending/2 {
		return
	}
	for k, n := range a.nonces {
		if now.After(n.expires) {
			delete(a.nonces, k)
		}
	}
	for dev, list := range a.byDevice {
		kept := list[:0]
		for _, k := range list {
			if _, ok := a.nonces[k]; ok {
				kept = append(kept, k)
			}
		}
		if len(kept) == 0 {
			delete(a.byDevice, dev)
		} else {
			a.byDevice[dev] = kept
		}
	}
	for k, v := range a.sessions {
		if now.After(v.expires) {
			delete(a.sessions, k)
		}
	}
}

// issueNonce hands out a fresh nonce for a device.
func (a *attestor) issueNonce(device, reason string, now time.Time) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sweepLocked(now)
	if len(a.nonces) >= maxPending {
		return nil, errf(http.StatusServiceUnavailable, "busy", "too many attestations in flight; retry later")
	}
	n := randomBytes(api.NonceSize)
	a.addNonceLocked(string(n), pendingNonce{device: device, reason: reason, expires: now.Add(nonceTTL)})
	return n, nil
}

// maxNoncesPerDevice bounds a device's outstanding nonces, so that one
// device asking again and again cannot fill the table for the fleet: the
// oldest is dropped.
const maxNoncesPerDevice = 4

// maxAttestBatch caps the attestation results committed in one
// transaction (groupcommit.go).
const maxAttestBatch = 500

func (a *attestor) addNonceLocked(n string, p pendingNonce) {
	list := a.byDevice[p.device]
	for len(list) >= maxNoncesPerDevice {
		delete(a.nonces, list[0])
		list = list[1:]
	}
	a.byDevice[p.device] = append(list, n)
	a.nonces[n] = p
}

// takeNonce spends a nonce: it must have been issued to device and not
// expired. It reports the reason it was issued for.
func (a *attestor) takeNonce(device string, n []byte, now time.Time) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.nonces[string(n)]
	if !ok || p.device != device {
		return "", false
	}
	delete(a.nonces, string(n))
	list := a.byDevice[device]
	for i, m := range list {
		if m == string(n) {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(a.byDevice, device)
	} else {
		a.byDevice[device] = list
	}
	return p.reason, now.Before(p.expires)
}

// enrollTPMStart checks a TPM enrolment and answers with the credential
// activation challenge. Nothing is stored.
func (s *Server) enrollTPMStart(w http.ResponseWriter, r *http.Request, req *api.EnrollRequest, fail func(*httpError) error) error {
	now := s.now()
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		return fail(errf(http.StatusBadRequest, "bad_csr", err.Error()))
	}
	if req.PreviousDeviceID != "" {
		return fail(errf(http.StatusBadRequest, "bad_request", "re-enrolment keeping a device identity is not supported with a TPM: enrol as a new device"))
	}
	enr, err := attest.VerifyEnrollment(req.TPM, csr.PublicKey, s.attest.ekRoots)
	if err != nil {
		return fail(errf(http.StatusBadRequest, "tpm_verification_failed", err.Error()))
	}
	if s.attest.ekRoots != nil && !enr.EKCertificateVerified {
		return fail(errf(http.StatusBadRequest, "tpm_verification_failed", "this server requires an EK certificate from a configured TPM manufacturer, and the TPM sent none"))
	}
	a := &activation{csr: req.CSR, req: *req, enr: enr, ekHash: enr.EKHash, expires: now.Add(activationTTL), remoteIP: ClientIP(r)}
	if req.Token != "" {
		tokID, hash, err := auth.ParseSecretToken(auth.PrefixEnrolmentToken, req.Token)
		if err != nil {
			return fail(errf(http.StatusUnauthorized, "invalid_token", "the enrolment token is malformed"))
		}
		tok, err := s.store.CheckEnrollToken(r.Context(), tokID, hash, now)
		if herr := tokenError(err); herr != nil {
			return fail(herr)
		}
		a.tokenID, a.hash, a.group = tokID, hash, tok.Group
	} else {
		reg, err := s.store.GetEKRegistration(r.Context(), enr.EKHash)
		if errors.Is(err, store.ErrNotFound) || (err == nil && reg.DeviceID != "") {
			return fail(errf(http.StatusUnauthorized, "ek_not_registered", "no enrolment token was given and this TPM's endorsement key is not registered for zero-touch enrolment"))
		}
		if err != nil {
			return internal(err)
		}
		a.group = reg.Group
	}
	secret, cred, encSecret, err := enr.Challenge()
	if err != nil {
		return fail(errf(http.StatusBadRequest, "tpm_verification_failed", "making the activation challenge: "+err.Error()))
	}
	a.secret = secret
	a.nonce = randomBytes(api.NonceSize)
	session := newID("act")
	s.attest.mu.Lock()
	s.attest.sweepLocked(now)
	if len(s.attest.sessions) >= maxPending {
		s.attest.mu.Unlock()
		return errf(http.StatusServiceUnavailable, "busy", "too many enrolments in flight; retry later")
	}
	s.attest.sessions[session] = a
	s.attest.mu.Unlock()
	writeJSON(w, http.StatusOK, api.EnrollResponse{Activation: &api.ActivationChallenge{
		Session: session, Credential: cred, Secret: encSecret, Nonce: a.nonce, ExpiresAt: a.expires,
	}})
	return nil
}

// enrollTPMFinish checks the activation answer and enrols the device with
// a hardware-backed identity.
func (s *Server) enrollTPMFinish(w http.ResponseWriter, r *http.Request, req *api.EnrollRequest, fail func(*httpError) error) error {
	now := s.now()
	s.attest.mu.Lock()
	a := s.attest.sessions[req.Activation.Session]
	delete(s.attest.sessions, req.Activation.Session) // one answer per challenge
	s.attest.mu.Unlock()
	if a == nil || now.After(a.expires) {
		return fail(errf(http.StatusUnauthorized, "activation_expired", "the activation session is unknown or expired: start the TPM enrolment again"))
	}
	if subtle.ConstantTimeCompare(a.secret, req.Activation.Secret) != 1 {
		s.audit(r.Context(), auditRecord{actor: "device", action: "device.enroll", remote: ClientIP(r), detail: "ek=" + a.ekHash,
			outcome: "refused: activation_failed"})
		return fail(errf(http.StatusForbidden, "activation_failed", "the activation secret is wrong: the attestation key is not in the same TPM as the endorsement key"))
	}
	if req.CSR != a.csr {
		return fail(errf(http.StatusBadRequest, "bad_request", "the csr differs from the one in the TPM enrolment"))
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		return fail(errf(http.StatusBadRequest, "bad_csr", err.Error()))
	}
	d := &store.Device{ID: pki.NewDeviceID(), Status: api.DeviceActive, Group: a.group, KeyAssurance: api.AssuranceHardware, EnrolledAt: now}
	if inv := a.req.Inventory; inv != nil {
		d.Hostname = inv.Hostname
		b, _ := json.Marshal(inv)
		d.Inventory = string(b)
	}
	cert, der, err := s.ca.IssueDevice(csr, d.ID, s.cfg.DeviceCertLifetime, now)
	if err != nil {
		return fail(errf(http.StatusBadRequest, "bad_csr", err.Error()))
	}
	d.CertSerial = cert.SerialNumber.Text(16)
	d.CertNotBefore, d.CertNotAfter = cert.NotBefore, cert.NotAfter
	d.CertPEM = string(pki.EncodeCertPEM(der))
	b64 := base64.StdEncoding.EncodeToString
	t := &store.DeviceTPM{DeviceID: d.ID, EKHash: a.ekHash, EKPublic: b64(a.req.TPM.EKPublic), EKCert: b64(a.req.TPM.EKCertificate),
		EKManufacturer: a.enr.TPMManufacturer, AKPublic: b64(a.enr.AKPublic), EnrolledAt: now}
	err = s.store.EnrollTPMDevice(r.Context(), a.tokenID, a.hash, d, t)
	if errors.Is(err, store.ErrEKUnregistered) {
		return fail(errf(http.StatusUnauthorized, "ek_not_registered", "this TPM's endorsement key registration was used by another device"))
	}
	if herr := tokenError(err); herr != nil {
		return fail(herr)
	}
	// The enrolment attestation answers the nonce of the challenge.
	s.attest.mu.Lock()
	s.attest.addNonceLocked(string(a.nonce), pendingNonce{device: d.ID, reason: "enrolment", expires: now.Add(nonceTTL)})
	s.attest.due[d.ID] = now.Add(attestRetryWait)
	s.attest.mu.Unlock()
	actor := "enroll-token:" + a.tokenID
	if a.tokenID == "" {
		actor = "ek:" + a.ekHash
	}
	s.audit(r.Context(), auditRecord{actor: actor, action: "device.enroll", target: "device:" + d.ID, remote: ClientIP(r),
		detail: "group=" + d.Group + " serial=" + d.CertSerial + " key=hardware ek=" + a.ekHash, outcome: "ok"})
	s.alertEnrolled(r.Context(), d, false)
	writeJSON(w, http.StatusCreated, api.EnrollResponse{
		DeviceID: d.ID, Certificate: d.CertPEM, CACert: string(s.ca.CertPEM), NotAfter: cert.NotAfter,
		Group: d.Group, CheckinInterval: int(s.cfg.CheckinInterval / time.Second), KeyAssurance: api.AssuranceHardware,
	})
	return nil
}

// attestDue reports whether a device should be asked to attest now, and
// if so hands out the nonce. Check-ins call it, so it reads the store only
// the first time it sees a device.
func (s *Server) attestDue(ctx context.Context, deviceID string, now time.Time) []byte {
	s.attest.mu.Lock()
	next, known := s.attest.due[deviceID]
	s.attest.mu.Unlock()
	if !known {
		t, err := s.store.GetDeviceTPM(ctx, deviceID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			next = time.Time{}
		case err != nil:
			return nil
		case !t.AttestRequestedAt.IsZero() || t.LastAttestedAt.IsZero():
			next = now
		default:
			next = t.LastAttestedAt.Add(s.cfg.Attestation.Interval)
		}
		s.attest.mu.Lock()
		s.attest.due[deviceID] = next
		s.attest.mu.Unlock()
	}
	if next.IsZero() || now.Before(next) {
		return nil
	}
	n, err := s.attest.issueNonce(deviceID, "periodic", now)
	if err != nil {
		return nil
	}
	s.attest.mu.Lock()
	s.attest.due[deviceID] = now.Add(attestRetryWait)
	s.attest.mu.Unlock()
	return n
}

// handleAttestNonce hands a device a nonce to attest with now.
func (s *Server) handleAttestNonce(w http.ResponseWriter, r *http.Request) error {
	dc := deviceFrom(r)
	if _, err := s.store.GetDeviceTPM(r.Context(), dc.id); errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusConflict, "no_tpm", "this device enrolled without a TPM and cannot attest")
	} else if err != nil {
		return internal(err)
	}
	now := s.now()
	reason := "requested"
	n, err := s.attest.issueNonce(dc.id, reason, now)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AttestNonce{Nonce: n, ExpiresAt: now.Add(nonceTTL)})
	return nil
}

// handleAttest appraises a device's evidence, records the result and
// applies the failure action.
func (s *Server) handleAttest(w http.ResponseWriter, r *http.Request) error {
	dc := deviceFrom(r)
	var ev api.Evidence
	if err := decode(r, api.MaxAttestBody, &ev); err != nil {
		return err
	}
	if err := ev.Validate(); err != nil {
		return badRequest(err.Error())
	}
	t, err := s.store.GetDeviceTPM(r.Context(), dc.id)
	if errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusConflict, "no_tpm", "this device enrolled without a TPM and cannot attest")
	}
	if err != nil {
		return internal(err)
	}
	akPub, err := base64.StdEncoding.DecodeString(t.AKPublic)
	if err != nil {
		return internal(fmt.Errorf("stored AK of %s: %w", dc.id, err))
	}
	now := s.now()
	// The reason is the one the nonce was issued for; for an unknown nonce
	// (a failed attestation) the device's claim, never "enrolment".
	reason, fresh := s.attest.takeNonce(dc.id, ev.Nonce, now)
	if reason == "" {
		reason = ev.Reason
		if reason == "" || reason == "enrolment" {
			reason = "periodic"
		}
	}
	// The reference values of the releases the device runs, else its
	// approved baseline (references.go).
	pol, refSource, notes, err := s.attestPolicy(r.Context(), dc.id)
	if err != nil {
		return internal(err)
	}
	ref := pol.Reference
	res := attest.Verify(akPub, &ev, ev.Nonce, pol)
	res.Problems = append(res.Problems, notes...)
	if !fresh {
		// The nonce was not handed to this device, was spent, or expired:
		// a replayed or stale quote. It is a failed attestation.
		res.Status = api.AttestContraindicated
		res.Vector.InstanceIdentity = attest.ClaimCryptoValidationFailed
		res.Problems = append(res.Problems, "the nonce was not issued to this device by this server, was already used, or expired: replayed or stale evidence")
	}
	if ref == nil && refSource == "" && res.Status != api.AttestContraindicated {
		// First boot state seen: keep it as the baseline an admin approves.
		if base, err := attest.CaptureReference("baseline:"+dc.id, res, nil); err == nil {
			b, _ := json.Marshal(base)
			if err := s.store.PutAttestReferenceIfAbsent(r.Context(), &store.AttestReference{DeviceID: dc.id, Source: "baseline", Reference: string(b), CapturedAt: now}); err != nil {
				return internal(err)
			}
		}
	}
	out, err := s.recordAttestation(r.Context(), dc.id, reason, refSource, &ev, res, now)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// attestReference returns the reference a device's measurements must
// match: the approved baseline, or nil when none is approved yet.
func (s *Server) attestReference(ctx context.Context, deviceID string) (*attest.Reference, string, error) {
	rec, err := s.store.GetAttestReference(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if rec.ApprovedAt.IsZero() {
		return nil, rec.Source + " (awaiting approval)", nil
	}
	var ref attest.Reference
	if err := json.Unmarshal([]byte(rec.Reference), &ref); err != nil {
		return nil, "", fmt.Errorf("stored reference of %s: %w", deviceID, err)
	}
	return &ref, rec.Source, nil
}

// recordAttestation signs the result as an EAR, stores it, and applies the
// configured action when it failed.
func (s *Server) recordAttestation(ctx context.Context, deviceID, reason, refSource string, ev *api.Evidence, res *attest.Result, now time.Time) (*api.AttestationResult, error) {
	out := &api.AttestationResult{ID: newID("att"), DeviceID: deviceID, Time: now, Reason: reason, Status: res.Status,
		Vector: res.Vector, Problems: res.Problems, SecureBoot: res.SecureBoot}
	if refSource == "" && res.Status != api.AttestContraindicated {
		out.Problems = append(out.Problems, "no approved reference: the measurements were not compared with known-good values")
	}
	ear, err := attest.SignEAR(s.attest.earKey, s.attest.earKid, deviceID, ev.Nonce, res, now)
	if err != nil {
		return nil, internal(err)
	}
	out.EAR = ear
	b, _ := json.Marshal(out)
	qd := sha256.Sum256(ev.Quote)
	trust := ""
	failed := res.Status == api.AttestContraindicated
	if failed {
		switch s.cfg.Attestation.FailureAction {
		case ActionUntrusted:
			trust = api.TrustUntrusted
		default:
			trust = api.TrustQuarantined
		}
	}
	if err := s.attestations.write(ctx, store.AttestationWrite{Record: &store.AttestationRecord{ID: out.ID, DeviceID: deviceID, At: now, Status: out.Status, Result: string(b)},
		QuoteDigest: hex.EncodeToString(qd[:]), Trust: trust}); err != nil {
		return nil, internal(err)
	}
	s.attest.mu.Lock()
	s.attest.due[deviceID] = now.Add(s.cfg.Attestation.Interval)
	s.attest.mu.Unlock()
	if failed {
		detail := fmt.Sprintf("action=%s problems=%q", s.cfg.Attestation.FailureAction, res.Problems)
		if s.cfg.Attestation.FailureAction == ActionRevoke {
			if err := s.store.RevokeDevice(ctx, deviceID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
				s.log.Error("revoking device after failed attestation", "device", deviceID, "err", err)
			}
			s.hub.notify(deviceID)
		}
		s.audit(ctx, auditRecord{actor: "system", action: "attestation.failed", target: "device:" + deviceID, detail: detail, outcome: "action: " + s.cfg.Attestation.FailureAction})
		s.raiseAttestationEvent(ctx, deviceID, out, now)
		s.log.Warn("attestation failed", "device", deviceID, "action", s.cfg.Attestation.FailureAction, "problems", res.Problems)
	}
	s.alertAttestation(ctx, deviceID, failed, res.Problems)
	return out, nil
}

// handleHealthReport stores a health report signed by the device key.
func (s *Server) handleHealthReport(w http.ResponseWriter, r *http.Request) error {
	dc := deviceFrom(r)
	var sr api.SignedHealthReport
	if err := decode(r, api.MaxCheckinBody*2, &sr); err != nil {
		return err
	}
	if err := sr.Validate(); err != nil {
		return badRequest(err.Error())
	}
	if err := verifyDeviceSignature(dc.cert.PublicKey, sr.Report, sr.Signature); err != nil {
		return errf(http.StatusBadRequest, "bad_signature", "the health report is not signed by this device's key")
	}
	var rep api.HealthReport
	if err := api.DecodeBytes(sr.Report, api.MaxCheckinBody, &rep); err != nil {
		return badRequest("report: " + err.Error())
	}
	if err := rep.Validate(); err != nil {
		return badRequest("report: " + err.Error())
	}
	if rep.DeviceID != dc.id {
		return errf(http.StatusBadRequest, "wrong_device", "the health report names another device")
	}
	now := s.now()
	if d := now.Sub(rep.Time); d > time.Hour || d < -time.Hour {
		return errf(http.StatusBadRequest, "stale_report", "the health report's time is more than an hour from the server's clock")
	}
	if t, err := s.store.GetDeviceTPM(r.Context(), dc.id); err == nil {
		if t.LastQuoteDigest == "" || rep.QuoteDigest != t.LastQuoteDigest {
			return errf(http.StatusConflict, "quote_mismatch", "the health report is not bound to the device's latest quote: attest first")
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return internal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	if err := s.store.AddHealthReport(r.Context(), &store.HealthReportRecord{DeviceID: dc.id, At: rep.Time.UTC(), Status: rep.Health.Status,
		Report: b64(sr.Report), Signature: b64(sr.Signature)}); err != nil {
		return internal(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// verifyDeviceSignature checks sig over SHA-256(msg) by a device key.
func verifyDeviceSignature(pub crypto.PublicKey, msg, sig []byte) error {
	digest := sha256.Sum256(msg)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, digest[:], sig) {
			return nil
		}
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig)
	}
	return errors.New("signature does not verify")
}

// quarantineAllowed lists the device API paths a quarantined device may
// still use: check-in (health), attestation, health reports, security
// events, the indicator set and update traffic.
var quarantineAllowed = map[string]bool{
	api.PathCheckin: true, api.PathAttest: true, api.PathAttestNonce: true, api.PathHealthReport: true,
	api.PathUpdateStatus: true, "/device/v1/events": true, "/device/v1/ioc": true,
}

// raiseAttestationEvent stores a failed attestation as a high-severity
// security event of the device (integrity.result, check "tpm-attestation"),
// so that it shows in the event search, export and SIEM forwarding.
func (s *Server) raiseAttestationEvent(ctx context.Context, deviceID string, r *api.AttestationResult, now time.Time) {
	actual := r.Status + ": " + strings.Join(r.Problems, "; ")
	if len(actual) > 900 {
		actual = actual[:900] + "…"
	}
	ev, err := events.New(events.TypeIntegrityResult, deviceID, events.SeverityHigh, now,
		events.IntegrityResult{Check: "tpm-attestation", Outcome: "fail", Expected: api.AttestAffirming, Actual: actual})
	if err == nil {
		// Server events carry the seq of the device record they concern
		// (the stored row has seq 0); this one concerns no record, so it
		// names the device's newest stored one, or 1 before any.
		ev.Seq = 1
		if head, herr := s.store.GetEventHead(ctx, deviceID); herr == nil && head.LastSeq > 0 {
			ev.Seq = head.LastSeq
		}
		var data []byte
		if data, err = ev.Marshal(); err == nil {
			err = s.store.AddServerEvent(context.WithoutCancel(ctx), store.Event{DeviceID: deviceID, Type: ev.Type, SeverityID: ev.SeverityID,
				DeviceTime: now, ServerTime: now, Data: data})
		}
	}
	if err != nil {
		s.log.Error("storing the failed-attestation event", "device", deviceID, "err", err)
	}
}
