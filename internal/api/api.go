// Package api defines the JSON wire types of Bulwark's device API and admin
// API, shared by the server, the agent, the CLI and the simulator, together
// with the size limits and the strict decoder every endpoint uses.
//
// The types are plain data and safe to share between goroutines once built.
// Field names are part of the API: add fields, never rename them.
package api

import "time"

// Paths of the device API. Everything except Enroll requires a client
// certificate issued by the server's device CA.
const (
	PathEnroll   = "/device/v1/enroll"
	PathRenew    = "/device/v1/renew"
	PathCheckin  = "/device/v1/checkin"
	PathCommands = "/device/v1/commands/wait"
)

// Limits on what the server reads from outside.
const (
	MaxEnrollBody  = 32 << 10
	MaxCheckinBody = 256 << 10
	MaxAdminBody   = 64 << 10
	MaxInterfaces  = 64
	MaxAcks        = 256
	MaxStringLen   = 1024
)

// Error is the body of every 4xx/5xx answer: a stable machine-readable code
// and a message meant for people. Neither ever carries internal detail.
type Error struct {
	Code    string `json:"error"`
	Message string `json:"message"`
}

// EnrollRequest is what an agent sends with its enrolment token.
type EnrollRequest struct {
	Token string `json:"token"`
	// CSR is a PEM "CERTIFICATE REQUEST" for the key the agent generated.
	CSR string `json:"csr"`
	// KeyAssurance says where the key lives: "software" or "tpm".
	KeyAssurance string `json:"key_assurance,omitempty"`
	// PreviousDeviceID and PreviousProof ask to keep an existing identity
	// (re-enrolment after the certificate lapsed): the proof is the
	// base64 signature, by the previous device key, of SHA-256(CSR DER).
	PreviousDeviceID string     `json:"previous_device_id,omitempty"`
	PreviousProof    string     `json:"previous_proof,omitempty"`
	Inventory        *Inventory `json:"inventory,omitempty"`
	// TPM starts a hardware-backed enrolment: the server answers with an
	// ActivationChallenge instead of a certificate. Token may then be
	// empty when the EK is pre-registered (zero-touch).
	TPM *TPMEnrollment `json:"tpm,omitempty"`
	// Activation completes a TPM enrolment; the request repeats the
	// first request's CSR.
	Activation *ActivationAnswer `json:"activation,omitempty"`
}

// EnrollResponse carries the device's identity.
type EnrollResponse struct {
	DeviceID    string    `json:"device_id"`
	Certificate string    `json:"certificate"` // PEM
	CACert      string    `json:"ca_certificate"`
	NotAfter    time.Time `json:"not_after"`
	Group       string    `json:"group,omitempty"`
	// CheckinInterval is the server's suggested interval in seconds.
	CheckinInterval int `json:"checkin_interval_seconds"`
	// Activation, when set, is the TPM challenge to answer; the other
	// fields are then empty.
	Activation *ActivationChallenge `json:"activation,omitempty"`
	// KeyAssurance is the assurance level the server recorded.
	KeyAssurance string `json:"key_assurance,omitempty"`
}

// RenewRequest is sent over mTLS by a device whose certificate is due for
// renewal; the CSR is for a fresh key.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// Inventory describes the device. Every string is bounded by MaxStringLen.
type Inventory struct {
	Hostname      string      `json:"hostname"`
	OS            string      `json:"os"`
	OSVersion     string      `json:"os_version,omitempty"`
	Kernel        string      `json:"kernel"`
	Arch          string      `json:"arch"`
	AgentVersion  string      `json:"agent_version"`
	UptimeSeconds int64       `json:"uptime_seconds"`
	Interfaces    []Interface `json:"interfaces,omitempty"`
	// Installed lists the releases the agent installed (at most
	// MaxInstalled, each product once); attestation compares the device
	// with the reference values published with them.
	Installed []InstalledRelease `json:"installed,omitempty"`
}

// Interface is one network interface.
type Interface struct {
	Name  string   `json:"name"`
	MAC   string   `json:"mac,omitempty"`
	Addrs []string `json:"addrs,omitempty"`
	Up    bool     `json:"up"`
}

// Health is the agent's health summary. Status is one of HealthStates
// (healthy, degraded, unhealthy, unknown); Checks name each check with its
// own status and a detail. internal/healthdef defines the checks.
type Health struct {
	Status string        `json:"status"`
	Checks []HealthCheck `json:"checks,omitempty"`
}

// HealthCheck is one named health check.
type HealthCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// CheckinRequest is the periodic report of a device.
type CheckinRequest struct {
	Inventory Inventory    `json:"inventory"`
	Health    Health       `json:"health"`
	Acks      []CommandAck `json:"acks,omitempty"`
	// ConfigVersion is the configuration version the device has applied.
	ConfigVersion int64 `json:"config_version,omitempty"`
}

// CommandAck reports the outcome of a command.
type CommandAck struct {
	ID     string `json:"id"`
	Status string `json:"status"` // "done" or "failed"
	Detail string `json:"detail,omitempty"`
}

// CheckinResponse answers a check-in with the work pending for the device.
type CheckinResponse struct {
	ServerTime      time.Time `json:"server_time"`
	CheckinInterval int       `json:"checkin_interval_seconds"`
	Commands        []Command `json:"commands"`
	// DesiredConfigVersion is the configuration version the device should
	// run; zero until configuration management exists.
	DesiredConfigVersion int64 `json:"desired_config_version"`
	// Update is the update assignment, nil when there is none.
	Update *UpdateAssignment `json:"update,omitempty"`
	// RenewCertificate asks the device to renew its certificate now.
	RenewCertificate bool `json:"renew_certificate,omitempty"`
	// AttestNonce, when set, asks a device with a TPM to attest now with
	// this nonce (periodic attestation, every AttestInterval seconds).
	AttestNonce    []byte `json:"attest_nonce,omitempty"`
	AttestInterval int    `json:"attest_interval_seconds,omitempty"`
	// Trust is the server's trust in the device: "trusted", "untrusted"
	// or "quarantined".
	Trust string `json:"trust,omitempty"`
	// IoCVersion is the version of the indicator set the device should
	// hold (GET /device/v1/ioc answers it as the ETag): an agent holding
	// another fetches the set now instead of at its next poll.
	IoCVersion string `json:"ioc_version,omitempty"`
}

// Command is one queued instruction for a device. Devices acknowledge each
// command at their next check-in.
type Command struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Payload   string    `json:"payload,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// UpdateAssignment names the release a device should install.
type UpdateAssignment struct {
	DeploymentID string `json:"deployment_id"`
	Target       string `json:"target"`
	Version      string `json:"version"`
	// Downgrade names the signed downgrade instruction (a TUF target) that
	// allows installing this version over a newer one; empty otherwise.
	Downgrade string `json:"downgrade,omitempty"`
}

// CommandsWaitResponse answers a long poll on PathCommands.
type CommandsWaitResponse struct {
	Commands []Command `json:"commands"`
}

// PathUpdateStatus is where a device reports its progress in a deployment.
const PathUpdateStatus = "/device/v1/update-status"

// UpdateStatus is a device's report on an update assignment.
type UpdateStatus struct {
	DeploymentID string `json:"deployment_id"`
	// Status is downloading, installing, verifying, success, failed or
	// rolled-back.
	Status string `json:"status"`
	// Detail says why, above all for failed and rolled-back.
	Detail string `json:"detail,omitempty"`
}
