// Package healthdef is Bulwark's machine-readable definition of device
// health (Code of Practice 5.1): the states, every check that feeds them
// and the thresholds that decide each check's state. The agent evaluates
// it (internal/agent, Health), the server serves JSON() to anyone who
// needs to interpret a health report, and docs/device-health.md says the
// same for people; tests keep the three in step.
//
// Everything here is constant data; it is safe for concurrent use.
package healthdef

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Version of the definition. It changes whenever a check, a threshold or
// a state's meaning changes; checks are added, never renamed.
const Version = 2

// Check names, in the order the agent reports them.
const (
	CheckIdentity    = "identity"
	CheckCheckin     = "checkin"
	CheckDisk        = "disk"
	CheckClock       = "clock"
	CheckAttestation = "attestation"
	CheckIntegrity   = "integrity"
	CheckHardening   = "hardening"
	CheckUpdate      = "update"
)

// Thresholds, as the agent applies them.
const (
	// IdentityRenewalShare: the identity check is degraded when less than
	// this share of the certificate's lifetime remains (renewal due).
	IdentityRenewalShare = 1.0 / 3
	// DiskMinFree: the disk check is degraded below this share of free
	// space on the state directory's filesystem.
	DiskMinFree = 0.05
	// ClockOffsetDegraded and ClockOffsetUnhealthy bound the offset of the
	// device clock from the server's, measured at each check-in.
	ClockOffsetDegraded  = 60 * time.Second
	ClockOffsetUnhealthy = 10 * time.Minute
	// AttestationMaxAge: an attestation result older than this no longer
	// says anything about the device; the check is then unknown.
	AttestationMaxAge = 24 * time.Hour
	// IntegrityWindow: the integrity check stays degraded this long after
	// the monitor last found a change.
	IntegrityWindow = 24 * time.Hour
)

// Threshold names (Threshold.Name).
const (
	ThresholdIdentityRenewal      = "identity_renewal_remaining"
	ThresholdDiskMinFree          = "disk_min_free"
	ThresholdClockOffsetDegraded  = "clock_offset_degraded"
	ThresholdClockOffsetUnhealthy = "clock_offset_unhealthy"
	ThresholdAttestationMaxAge    = "attestation_max_age"
	ThresholdIntegrityWindow      = "integrity_window"
)

// Definition is the whole definition, as JSON() encodes it.
type Definition struct {
	Version int     `json:"version"`
	States  []State `json:"states"`
	// Summary says how the device's status follows from its checks.
	Summary string  `json:"summary"`
	Checks  []Check `json:"checks"`
}

// State is one health state.
type State struct {
	Name    string `json:"name"`
	Meaning string `json:"meaning"`
}

// Check is one health check and what puts it in each state. An empty
// condition means the check never takes that state.
type Check struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Healthy     string      `json:"healthy"`
	Degraded    string      `json:"degraded,omitempty"`
	Unhealthy   string      `json:"unhealthy,omitempty"`
	Unknown     string      `json:"unknown,omitempty"`
	Thresholds  []Threshold `json:"thresholds,omitempty"`
}

// Threshold is one number a check compares against.
type Threshold struct {
	Name string `json:"name"`
	// Value in Unit: "fraction" (of a whole, 0..1) or "seconds".
	Value       float64 `json:"value"`
	Unit        string  `json:"unit"`
	Description string  `json:"description"`
}

// ValueString is the threshold's value as the documentation writes it.
func (t Threshold) ValueString() string {
	return strconv.FormatFloat(t.Value, 'f', -1, 64)
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// Get returns the definition. Each call returns a fresh copy.
func Get() Definition {
	return Definition{
		Version: Version,
		States: []State{
			{api.HealthHealthy, "the check passed"},
			{api.HealthDegraded, "the device works but needs attention"},
			{api.HealthUnhealthy, "the device cannot be trusted or cannot do its job"},
			{api.HealthUnknown, "the check could not be evaluated: no data yet, or the platform cannot tell"},
		},
		Summary: "The device's status is the worst of its checks' statuses, unhealthy over degraded over healthy; " +
			"unknown checks do not count, and the status is unknown only when every check is.",
		Checks: []Check{
			{
				Name:        CheckIdentity,
				Description: "The device certificate, by which the device authenticates to the server.",
				Healthy:     "the certificate is valid",
				Degraded:    "less than identity_renewal_remaining of the certificate's lifetime is left (renewal due; the agent renews automatically)",
				Unhealthy:   "the certificate has expired or is not yet valid, or the server has revoked the device",
				Thresholds: []Threshold{{ThresholdIdentityRenewal, IdentityRenewalShare, "fraction",
					"share of the certificate's lifetime left below which renewal is due"}},
			},
			{
				Name:        CheckCheckin,
				Description: "The periodic check-in with the server.",
				Healthy:     "the last check-in succeeded",
				Degraded:    "the last check-in failed",
				Unhealthy:   "the server has revoked the device",
				Unknown:     "no check-in has been attempted since the agent started",
			},
			{
				Name:        CheckDisk,
				Description: "Free space on the filesystem of the agent's state directory.",
				Healthy:     "at least disk_min_free of the filesystem is free",
				Degraded:    "less than disk_min_free is free, or free space cannot be measured",
				Thresholds: []Threshold{{ThresholdDiskMinFree, DiskMinFree, "fraction",
					"share of the filesystem's blocks available to unprivileged users"}},
			},
			{
				Name:        CheckClock,
				Description: "Offset of the device clock from the server's, measured at each successful check-in (server time minus the midpoint of the request).",
				Healthy:     "the offset is within clock_offset_degraded",
				Degraded:    "the offset exceeds clock_offset_degraded",
				Unhealthy:   "the offset exceeds clock_offset_unhealthy (certificate, token and signed-metadata validity checks can no longer be relied on)",
				Unknown:     "no check-in has succeeded since the agent started",
				Thresholds: []Threshold{
					{ThresholdClockOffsetDegraded, seconds(ClockOffsetDegraded), "seconds", "largest offset, either way, that is healthy"},
					{ThresholdClockOffsetUnhealthy, seconds(ClockOffsetUnhealthy), "seconds", "largest offset, either way, that is only degraded"},
				},
			},
			{
				Name:        CheckAttestation,
				Description: "The server's latest appraisal of the device's TPM attestation evidence (measured boot, IMA or integrity-monitor files), as an AR4SI status.",
				Healthy:     "the latest result is affirming",
				Degraded:    "the latest result is warning",
				Unhealthy:   "the latest result is contraindicated",
				Unknown:     "the device has no attestation result (no TPM, or not attested yet), the result is none, or it is older than attestation_max_age",
				Thresholds: []Threshold{{ThresholdAttestationMaxAge, seconds(AttestationMaxAge), "seconds",
					"age after which an attestation result no longer counts"}},
			},
			{
				Name:        CheckIntegrity,
				Description: "The agent's file integrity monitor (used where the kernel has no IMA): SHA-256 of the configured files and trees, compared with the previous run.",
				Healthy:     "no file was added, removed or changed within integrity_window",
				Degraded:    "a run within integrity_window found files added, removed or changed; the detail names them",
				Unknown:     "no paths are configured, or the monitor has not run yet",
				Thresholds: []Threshold{{ThresholdIntegrityWindow, seconds(IntegrityWindow), "seconds",
					"how long a change found by the monitor keeps the check degraded"}},
			},
			{
				Name:        CheckHardening,
				Description: "The kernel and platform exploit mitigations of docs/exploit-mitigations.md (Code of Practice 4.4).",
				Healthy:     "every mitigation that could be read has its expected value",
				Degraded:    "a mitigation is off (read, and not the expected value); the detail names each one",
				Unknown:     "no mitigation could be read; mitigations that cannot be read are never counted as off",
			},
			{
				Name:        CheckUpdate,
				Description: "The last software update the agent ran since it started.",
				Healthy:     "the last update succeeded, or none has run",
				Degraded:    "the last update failed or was rolled back",
			},
		},
	}
}

// CheckNames lists the checks in the order the agent reports them.
func CheckNames() []string {
	var names []string
	for _, c := range Get().Checks {
		names = append(names, c.Name)
	}
	return names
}

// JSON is the definition encoded as indented JSON, for serving.
func JSON() []byte {
	b, err := json.MarshalIndent(Get(), "", "  ")
	if err != nil {
		panic("healthdef: " + err.Error()) // constant data always encodes
	}
	return append(b, '\n')
}
