package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// Hardware identity, attestation, trust and health history for the
// console. Each helper checks the caller's role on the device exactly as
// the matching admin API handler in attest_admin.go does, and writes the
// same audit entry; errors are classified for ErrorMessage.

// DeviceIdentity is what the server knows of a device's hardware identity
// and the reference its measurements are compared with.
type DeviceIdentity struct {
	// TPM is nil for a device enrolled without a TPM.
	TPM *store.DeviceTPM
	// Reference is nil until the device has attested once after
	// enrolment (when its baseline is captured) or a manifest applies.
	Reference *store.AttestReference
}

// BaselinePending reports whether a captured baseline awaits an admin's
// approval.
func (id DeviceIdentity) BaselinePending() bool {
	return id.Reference != nil && id.Reference.ApprovedAt.IsZero()
}

// Identity returns the TPM record and attestation reference of a device
// p may read (auditor).
func (s *Server) Identity(r *http.Request, p *Principal, deviceID string) (DeviceIdentity, error) {
	d, err := s.VisibleDevice(r, p, deviceID, api.RoleAuditor)
	if err != nil {
		return DeviceIdentity{}, err
	}
	var out DeviceIdentity
	if out.TPM, err = s.store.GetDeviceTPM(r.Context(), d.ID); errors.Is(err, store.ErrNotFound) {
		out.TPM = nil
	} else if err != nil {
		return DeviceIdentity{}, internal(err)
	}
	if out.Reference, err = s.store.GetAttestReference(r.Context(), d.ID); errors.Is(err, store.ErrNotFound) {
		out.Reference = nil
	} else if err != nil {
		return DeviceIdentity{}, internal(err)
	}
	return out, nil
}

// Attestations returns up to limit of a device's attestation results,
// newest first (GET /api/v1/devices/{id}/attestations).
func (s *Server) Attestations(r *http.Request, p *Principal, deviceID string, limit int) ([]api.AttestationResult, error) {
	d, err := s.VisibleDevice(r, p, deviceID, api.RoleAuditor)
	if err != nil {
		return nil, err
	}
	recs, err := s.store.ListAttestations(r.Context(), d.ID, limit)
	if err != nil {
		return nil, internal(err)
	}
	out := []api.AttestationResult{}
	for _, rec := range recs {
		var a api.AttestationResult
		if err := json.Unmarshal([]byte(rec.Result), &a); err != nil {
			return nil, internal(err)
		}
		out = append(out, a)
	}
	return out, nil
}

// HealthReports returns up to limit of a device's signed health reports,
// newest first (GET /api/v1/devices/{id}/health-reports).
func (s *Server) HealthReports(r *http.Request, p *Principal, deviceID string, limit int) ([]api.HealthReportView, error) {
	d, err := s.VisibleDevice(r, p, deviceID, api.RoleAuditor)
	if err != nil {
		return nil, err
	}
	recs, err := s.store.ListHealthReports(r.Context(), d.ID, limit)
	if err != nil {
		return nil, internal(err)
	}
	out := []api.HealthReportView{}
	for _, rec := range recs {
		v, err := healthReportView(rec)
		if err != nil {
			return nil, internal(err)
		}
		out = append(out, v)
	}
	return out, nil
}

// RequestAttestation asks a device to attest now, for an operator of its
// group (POST /api/v1/devices/{id}/attest): the request is recorded and an
// "attest" command wakes the device.
func (s *Server) RequestAttestation(r *http.Request, p *Principal, deviceID string) (api.AttestRequest, error) {
	d, err := s.VisibleDevice(r, p, deviceID, api.RoleOperator)
	if err != nil {
		return api.AttestRequest{}, err
	}
	if d.Status != api.DeviceActive {
		return api.AttestRequest{}, errf(http.StatusConflict, "device_revoked", "a revoked device cannot attest")
	}
	now := s.now()
	if err := s.store.RequestAttestation(r.Context(), d.ID, now); errors.Is(err, store.ErrNotFound) {
		return api.AttestRequest{}, errf(http.StatusConflict, "no_tpm", "this device enrolled without a TPM and cannot attest")
	} else if err != nil {
		return api.AttestRequest{}, internal(err)
	}
	c := &store.Command{ID: newID("cmd"), DeviceID: d.ID, Kind: "attest", CreatedAt: now, CreatedBy: p.Actor()}
	if err := s.store.CreateCommand(r.Context(), c); err != nil {
		return api.AttestRequest{}, internal(err)
	}
	s.hub.notify(d.ID)
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "attestation.request", target: "device:" + d.ID, remote: ClientIP(r), outcome: "ok"})
	return api.AttestRequest{DeviceID: d.ID, RequestedAt: now, CommandID: c.ID}, nil
}

// ApproveBaseline approves the boot-state baseline captured at a device's
// enrolment as its reference, for an admin of its group
// (POST /api/v1/devices/{id}/attestation/approve-baseline).
func (s *Server) ApproveBaseline(r *http.Request, p *Principal, deviceID string) error {
	d, err := s.VisibleDevice(r, p, deviceID, api.RoleAdmin)
	if err != nil {
		return err
	}
	if err := s.store.ApproveAttestReference(r.Context(), d.ID, p.Actor(), s.now()); errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusConflict, "no_baseline", "no baseline has been captured for this device (it captures one when it first attests after enrolment)")
	} else if err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "attestation.baseline.approve", target: "device:" + d.ID, remote: ClientIP(r), outcome: "ok"})
	return nil
}

// SetTrust sets a device's trust by hand, for an admin of its group
// (PUT /api/v1/devices/{id}/trust).
func (s *Server) SetTrust(r *http.Request, p *Principal, deviceID string, req api.TrustUpdate) error {
	switch req.Trust {
	case api.TrustTrusted, api.TrustUntrusted, api.TrustQuarantined:
	default:
		return badRequest("trust must be trusted, untrusted or quarantined")
	}
	if len(req.Reason) > api.MaxStringLen {
		return badRequest("reason is too long")
	}
	d, err := s.VisibleDevice(r, p, deviceID, api.RoleAdmin)
	if err != nil {
		return err
	}
	if err := s.store.SetTrust(r.Context(), d.ID, req.Trust); err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "device.trust", target: "device:" + d.ID, remote: ClientIP(r),
		detail: "trust=" + req.Trust + " reason=" + req.Reason, outcome: "ok"})
	return nil
}
