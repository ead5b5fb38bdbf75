package server

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/healthdef"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// latestAttestation returns a device's latest attestation result, nil if
// it never attested.
func (s *Server) latestAttestation(r *http.Request, deviceID string) (*api.AttestationResult, error) {
	recs, err := s.store.ListAttestations(r.Context(), deviceID, 1)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	var out api.AttestationResult
	if err := json.Unmarshal([]byte(recs[0].Result), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// latestHealthReport returns a device's latest signed health report.
func (s *Server) latestHealthReport(r *http.Request, deviceID string) (*api.SignedHealthReport, error) {
	recs, err := s.store.ListHealthReports(r.Context(), deviceID, 1)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	v, err := healthReportView(recs[0])
	if err != nil {
		return nil, err
	}
	return &v.Signed, nil
}

func healthReportView(rec *store.HealthReportRecord) (api.HealthReportView, error) {
	rep, err := base64.StdEncoding.DecodeString(rec.Report)
	if err != nil {
		return api.HealthReportView{}, err
	}
	sig, err := base64.StdEncoding.DecodeString(rec.Signature)
	if err != nil {
		return api.HealthReportView{}, err
	}
	return api.HealthReportView{Time: rec.At, Status: rec.Status, Signed: api.SignedHealthReport{Report: rep, Signature: sig}}, nil
}

// handleListAttestations returns a device's attestation history.
func (s *Server) handleListAttestations(w http.ResponseWriter, r *http.Request) error {
	d, err := s.VisibleDevice(r, PrincipalFrom(r.Context()), r.PathValue("id"), api.RoleAuditor)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 50, 1000)
	if err != nil {
		return err
	}
	recs, err := s.store.ListAttestations(r.Context(), d.ID, limit)
	if err != nil {
		return internal(err)
	}
	out := api.AttestationList{Results: []api.AttestationResult{}}
	for _, rec := range recs {
		var a api.AttestationResult
		if err := json.Unmarshal([]byte(rec.Result), &a); err != nil {
			return internal(err)
		}
		out.Results = append(out.Results, a)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleRequestAttestation asks a device to attest now: the request is
// recorded (the next check-in carries a nonce) and an "attest" command
// wakes the device's long poll.
func (s *Server) handleRequestAttestation(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	d, err := s.VisibleDevice(r, p, r.PathValue("id"), api.RoleOperator)
	if err != nil {
		return err
	}
	if d.Status != api.DeviceActive {
		return errf(http.StatusConflict, "device_revoked", "a revoked device cannot attest")
	}
	now := s.now()
	if err := s.store.RequestAttestation(r.Context(), d.ID, now); errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusConflict, "no_tpm", "this device enrolled without a TPM and cannot attest")
	} else if err != nil {
		return internal(err)
	}
	// The attest command reaches the device at once over its long poll,
	// or with its next check-in.
	c := &store.Command{ID: newID("cmd"), DeviceID: d.ID, Kind: "attest", CreatedAt: now, CreatedBy: p.Actor()}
	if err := s.store.CreateCommand(r.Context(), c); err != nil {
		return internal(err)
	}
	s.hub.notify(d.ID)
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "attestation.request", target: "device:" + d.ID, remote: ClientIP(r), outcome: "ok"})
	writeJSON(w, http.StatusAccepted, api.AttestRequest{DeviceID: d.ID, RequestedAt: now, CommandID: c.ID})
	return nil
}

// handleApproveBaseline approves the boot-state baseline captured at a
// device's enrolment as its reference.
func (s *Server) handleApproveBaseline(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	d, err := s.VisibleDevice(r, p, r.PathValue("id"), api.RoleAdmin)
	if err != nil {
		return err
	}
	if err := s.store.ApproveAttestReference(r.Context(), d.ID, p.Actor(), s.now()); errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusConflict, "no_baseline", "no baseline has been captured for this device (it captures one when it first attests after enrolment)")
	} else if err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "attestation.baseline.approve", target: "device:" + d.ID, remote: ClientIP(r), outcome: "ok"})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleSetTrust sets a device's trust by hand.
func (s *Server) handleSetTrust(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	var req api.TrustUpdate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	switch req.Trust {
	case api.TrustTrusted, api.TrustUntrusted, api.TrustQuarantined:
	default:
		return badRequest("trust must be trusted, untrusted or quarantined")
	}
	if len(req.Reason) > api.MaxStringLen {
		return badRequest("reason is too long")
	}
	d, err := s.VisibleDevice(r, p, r.PathValue("id"), api.RoleAdmin)
	if err != nil {
		return err
	}
	if err := s.store.SetTrust(r.Context(), d.ID, req.Trust); err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "device.trust", target: "device:" + d.ID, remote: ClientIP(r),
		detail: "trust=" + req.Trust + " reason=" + req.Reason, outcome: "ok"})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleListHealthReports returns a device's signed health reports.
func (s *Server) handleListHealthReports(w http.ResponseWriter, r *http.Request) error {
	d, err := s.VisibleDevice(r, PrincipalFrom(r.Context()), r.PathValue("id"), api.RoleAuditor)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 50, 1000)
	if err != nil {
		return err
	}
	recs, err := s.store.ListHealthReports(r.Context(), d.ID, limit)
	if err != nil {
		return internal(err)
	}
	out := api.HealthReportList{Reports: []api.HealthReportView{}}
	for _, rec := range recs {
		v, err := healthReportView(rec)
		if err != nil {
			return internal(err)
		}
		out.Reports = append(out.Reports, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleAttestationKeys publishes the public keys that verify attestation
// results (EARs), as a JWK set.
func (s *Server) handleAttestationKeys(w http.ResponseWriter, r *http.Request) error {
	b, err := attest.JWKS(map[string]crypto.PublicKey{s.attest.earKid: &s.attest.earKey.PublicKey})
	if err != nil {
		return internal(err)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
	return nil
}

// handleListEKRegistrations lists zero-touch EK registrations.
func (s *Server) handleListEKRegistrations(w http.ResponseWriter, r *http.Request) error {
	regs, err := s.store.ListEKRegistrations(r.Context())
	if err != nil {
		return internal(err)
	}
	out := api.EKRegistrationList{Registrations: []api.EKRegistration{}}
	for _, g := range regs {
		out.Registrations = append(out.Registrations, api.EKRegistration{EKHash: g.EKHash, Group: g.Group, CreatedAt: g.CreatedAt, CreatedBy: g.CreatedBy, DeviceID: g.DeviceID})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleCreateEKRegistrations registers endorsement keys for zero-touch
// enrolment, all or none.
func (s *Server) handleCreateEKRegistrations(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	var req api.EKRegistrationCreate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if len(req.Registrations) == 0 || len(req.Registrations) > 500 {
		return badRequest("registrations must list 1 to 500 endorsement keys")
	}
	now := s.now()
	var regs []*store.EKRegistration
	seen := map[string]bool{}
	for i, g := range req.Registrations {
		h := strings.ToLower(g.EKHash)
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return badRequest("registrations[" + strconv.Itoa(i) + "].ek_hash must be 64 hex digits (SHA-256 of the EK public key, PKIX DER)")
		}
		if seen[h] {
			return badRequest("registrations[" + strconv.Itoa(i) + "].ek_hash is listed twice")
		}
		seen[h] = true
		if !nameRE.MatchString(g.Group) {
			return badRequest("registrations[" + strconv.Itoa(i) + "].group is not a valid group name")
		}
		if !p.Can(api.RoleAdmin, g.Group) {
			return errForbidden
		}
		if ok, err := s.store.GroupExists(r.Context(), g.Group); err != nil {
			return internal(err)
		} else if !ok {
			return badRequest("registrations[" + strconv.Itoa(i) + "].group " + g.Group + " does not exist")
		}
		regs = append(regs, &store.EKRegistration{EKHash: h, Group: g.Group, CreatedAt: now, CreatedBy: p.Actor()})
	}
	if err := s.store.AddEKRegistrations(r.Context(), regs); errors.Is(err, store.ErrConflict) {
		return errf(http.StatusConflict, "conflict", "an endorsement key in the list is already registered; nothing was registered")
	} else if err != nil {
		return internal(err)
	}
	for _, g := range regs {
		s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "ek.register", target: "ek:" + g.EKHash, remote: ClientIP(r), detail: "group=" + g.Group, outcome: "ok"})
	}
	writeJSON(w, http.StatusCreated, api.EKRegistrationList{Registrations: req.Registrations})
	return nil
}

// handleHealthDefinition serves the machine-readable definition of device
// health (docs/device-health.md): states, checks and thresholds.
func (s *Server) handleHealthDefinition(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(healthdef.JSON())
	return nil
}
