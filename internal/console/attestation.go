package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/server"
)

// historyRows is how many attestation results and health reports the
// device page lists.
const historyRows = 20

func (c *console) attestRoutes(m *http.ServeMux) {
	m.Handle("POST /ui/devices/{id}/attest", c.auth(c.requestAttestation))
	m.Handle("POST /ui/devices/{id}/approve-baseline", c.auth(c.approveBaseline))
	m.Handle("POST /ui/devices/{id}/trust", c.auth(c.setTrust))
	m.Handle("GET /ui/devices/{id}/health-reports.json", c.auth(c.healthReportsJSON))
}

// identityData is the device page's "Identity and attestation" section.
type identityData struct {
	server.DeviceIdentity
	Latest       *api.AttestationResult
	Attestations []api.AttestationResult
	Reports      []api.HealthReportView
	CanAttest    bool // operator of the group, active device with a TPM
	CanApprove   bool // admin of the group, a baseline awaits approval
	CanSetTrust  bool // admin of the group
}

func (c *console) identity(r *http.Request, p *server.Principal, d api.Device) (identityData, error) {
	var out identityData
	var err error
	if out.DeviceIdentity, err = c.s.Identity(r, p, d.ID); err != nil {
		return out, err
	}
	if out.Attestations, err = c.s.Attestations(r, p, d.ID, historyRows); err != nil {
		return out, err
	}
	if len(out.Attestations) > 0 {
		out.Latest = &out.Attestations[0]
	}
	if out.Reports, err = c.s.HealthReports(r, p, d.ID, historyRows); err != nil {
		return out, err
	}
	out.CanAttest = out.TPM != nil && d.Status == api.DeviceActive && p.Can(api.RoleOperator, d.Group)
	out.CanApprove = out.BaselinePending() && p.Can(api.RoleAdmin, d.Group)
	out.CanSetTrust = p.Can(api.RoleAdmin, d.Group)
	return out, nil
}

func (c *console) requestAttestation(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	id := r.PathValue("id")
	if _, err := c.s.RequestAttestation(r, p, id); err != nil {
		return err
	}
	redirect(w, r, Prefix+"devices/"+url.PathEscape(id), url.Values{"done": {"attest-requested"}})
	return nil
}

func (c *console) approveBaseline(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	id := r.PathValue("id")
	if err := c.s.ApproveBaseline(r, p, id); err != nil {
		return err
	}
	redirect(w, r, Prefix+"devices/"+url.PathEscape(id), url.Values{"done": {"baseline-approved"}})
	return nil
}

func (c *console) setTrust(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	id := r.PathValue("id")
	req := api.TrustUpdate{Trust: r.PostForm.Get("trust"), Reason: strings.TrimSpace(r.PostForm.Get("reason"))}
	if err := c.s.SetTrust(r, p, id, req); err != nil {
		return err
	}
	redirect(w, r, Prefix+"devices/"+url.PathEscape(id), url.Values{"done": {"trust-set"}})
	return nil
}

// healthReportsJSON downloads the device's signed health reports as the
// admin API lists them (GET /api/v1/devices/{id}/health-reports), for
// verification against the device certificate.
func (c *console) healthReportsJSON(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	id := r.PathValue("id")
	reps, err := c.s.HealthReports(r, p, id, historyRows)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(api.HealthReportList{Reports: reps}, "", "  ")
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="health-reports.json"`)
	w.Write(append(b, '\n'))
	return nil
}

// claimRow is one claim of an AR4SI trust vector, for display.
type claimRow struct {
	Name    string
	Value   int
	Tier    string // none, affirming, warning, contraindicated
	Meaning string
}

// claimRows lists the claims of v in the draft's order.
func claimRows(v api.TrustVector) []claimRow {
	rows := []claimRow{
		{Name: "instance-identity", Value: v.InstanceIdentity},
		{Name: "configuration", Value: v.Configuration},
		{Name: "executables", Value: v.Executables},
		{Name: "file-system", Value: v.FileSystem},
		{Name: "hardware", Value: v.Hardware},
		{Name: "runtime-opaque", Value: v.RuntimeOpaque},
		{Name: "storage-opaque", Value: v.StorageOpaque},
		{Name: "sourced-data", Value: v.SourcedData},
	}
	for i := range rows {
		rows[i].Tier = claimTier(rows[i].Value)
		rows[i].Meaning = claimMeaning(rows[i].Name, rows[i].Value)
	}
	return rows
}

// claimTier is the AR4SI tier of a claim value: 0 and 1 are no claim
// (1: the evidence was unexpected), 2..31 affirming, 32..95 warning,
// 96..127 contraindicated (negative values mirror the positive ones).
func claimTier(n int) string {
	if n < 0 {
		n = -n
	}
	switch {
	case n <= 1:
		return "none"
	case n <= 31:
		return api.AttestAffirming
	case n <= 95:
		return api.AttestWarning
	default:
		return api.AttestContraindicated
	}
}

// claimMeaning says what a claim value means, for the values the
// verifier (internal/attest) sets.
func claimMeaning(claim string, n int) string {
	switch n {
	case attest.ClaimNone:
		return "no claim made"
	case attest.ClaimUnexpectedEvidence:
		return "the evidence was not what the verifier expected"
	case attest.ClaimCryptoValidationFailed:
		return "cryptographic validation of the evidence failed"
	}
	switch claim {
	case "instance-identity":
		switch n {
		case attest.ClaimTrustworthyInstance:
			return "the quote was signed by the attestation key enrolled for this device"
		case attest.ClaimUntrustworthyInstance:
			return "the instance is not the one enrolled, or is not trustworthy"
		}
	case "configuration":
		switch n {
		case attest.ClaimApprovedConfig:
			return "boot configuration matches the approved reference"
		case attest.ClaimUnsafeConfig:
			return "no approved reference, or the configuration is unsafe"
		case attest.ClaimUnsupportableConfig:
			return "boot configuration differs from the approved reference"
		}
	case "executables":
		switch n {
		case attest.ClaimApprovedRuntime:
			return "boot and runtime executables are approved"
		case attest.ClaimApprovedBoot:
			return "boot executables are approved (runtime not measured)"
		case attest.ClaimUnrecognizedRuntime:
			return "some executables are not recognised"
		case attest.ClaimContraindicatedRuntime:
			return "executables are contraindicated"
		}
	case "file-system":
		switch n {
		case attest.ClaimApprovedFiles:
			return "monitored files are as expected"
		case attest.ClaimUnrecognizedFiles:
			return "some monitored files are not recognised"
		case attest.ClaimContraindicatedFiles:
			return "monitored files are contraindicated"
		}
	case "hardware":
		if n == attest.ClaimGenuineHardware {
			return "the evidence came from the TPM this device enrolled with"
		}
	}
	return ""
}

// tierClass is the badge colour of an attestation status or claim tier.
func tierClass(s string) string {
	switch s {
	case api.AttestAffirming:
		return "badge-ok"
	case api.AttestWarning:
		return "badge-warn"
	case api.AttestContraindicated:
		return "badge-bad"
	}
	return "badge-muted"
}

// trustClass is the badge colour of a trust state: anything but trusted
// stands out.
func trustClass(s string) string {
	switch s {
	case api.TrustTrusted, "":
		return "badge-ok"
	case api.TrustUntrusted:
		return "badge-warn"
	}
	return "badge-bad"
}

// trustOf is a device's trust for display ("trusted" when unset).
func trustOf(s string) string {
	if s == "" {
		return api.TrustTrusted
	}
	return s
}
