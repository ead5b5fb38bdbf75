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
	limit, err := intParam(r, "limit", 50, 1000)
	if err != nil {
		return err
	}
	results, err := s.Attestations(r, PrincipalFrom(r.Context()), r.PathValue("id"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AttestationList{Results: results})
	return nil
}

// handleRequestAttestation asks a device to attest now: the request is
// recorded and an "attest" command reaches the device at once over its
// long poll, or with its next check-in.
func (s *Server) handleRequestAttestation(w http.ResponseWriter, r *http.Request) error {
	req, err := s.RequestAttestation(r, PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, req)
	return nil
}

// handleApproveBaseline approves the boot-state baseline captured at a
// device's enrolment as its reference.
func (s *Server) handleApproveBaseline(w http.ResponseWriter, r *http.Request) error {
	if err := s.ApproveBaseline(r, PrincipalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleSetTrust sets a device's trust by hand.
func (s *Server) handleSetTrust(w http.ResponseWriter, r *http.Request) error {
	var req api.TrustUpdate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if err := s.SetTrust(r, PrincipalFrom(r.Context()), r.PathValue("id"), req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleListHealthReports returns a device's signed health reports.
func (s *Server) handleListHealthReports(w http.ResponseWriter, r *http.Request) error {
	limit, err := intParam(r, "limit", 50, 1000)
	if err != nil {
		return err
	}
	reports, err := s.HealthReports(r, PrincipalFrom(r.Context()), r.PathValue("id"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.HealthReportList{Reports: reports})
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
