package api

import "time"

// Roles, from most to least privileged.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleAuditor  = "auditor"
)

// Device status values.
const (
	DeviceActive  = "active"
	DeviceRevoked = "revoked"
)

// Device is the admin view of an enrolled device.
type Device struct {
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	Group        string     `json:"group,omitempty"`
	Hostname     string     `json:"hostname"`
	KeyAssurance string     `json:"key_assurance"`
	EnrolledAt   time.Time  `json:"enrolled_at"`
	LastSeen     *time.Time `json:"last_seen,omitempty"`
	Online       bool       `json:"online"`
	HealthStatus string     `json:"health_status,omitempty"`
	Inventory    *Inventory `json:"inventory,omitempty"`
	Health       *Health    `json:"health,omitempty"`
	Certificate  *CertInfo  `json:"certificate,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	// Trust is "trusted", "untrusted" or "quarantined" (after a failed
	// attestation and the configured action).
	Trust string `json:"trust,omitempty"`
	// Attestation is the latest attestation result; nil for devices that
	// never attested.
	Attestation *AttestationResult `json:"attestation,omitempty"`
	// HealthReport is the latest signed health report, verifiable against
	// the device certificate.
	HealthReport *SignedHealthReport `json:"health_report,omitempty"`
}

// Device trust states.
const (
	TrustTrusted     = "trusted"
	TrustUntrusted   = "untrusted"
	TrustQuarantined = "quarantined"
)

// CertInfo summarises a device's current certificate.
type CertInfo struct {
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	PEM       string    `json:"pem,omitempty"`
}

// DeviceList is a page of devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
	Total   int      `json:"total"`
}

// FleetSummary counts devices by state.
type FleetSummary struct {
	Total    int `json:"total"`
	Active   int `json:"active"`
	Revoked  int `json:"revoked"`
	Online   int `json:"online"`
	Offline  int `json:"offline"`
	Never    int `json:"never_seen"`
	Degraded int `json:"degraded"`
}

// EnrollTokenCreate is the body of POST /api/v1/enroll-tokens.
type EnrollTokenCreate struct {
	Name  string `json:"name,omitempty"`
	Uses  int    `json:"uses"`
	TTL   string `json:"ttl"` // Go duration, e.g. "24h"
	Group string `json:"group,omitempty"`
}

// EnrollToken describes an enrolment token. Token is set only in the
// answer to its creation: the server keeps only a hash.
type EnrollToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Token     string    `json:"token,omitempty"`
	Group     string    `json:"group,omitempty"`
	MaxUses   int       `json:"max_uses"`
	Used      int       `json:"used"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	Revoked   bool      `json:"revoked"`
}

// Group is a device group.
type Group struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Devices     int       `json:"devices"`
}

// Grant gives a role, over all devices (Group empty) or one device group.
type Grant struct {
	Role  string `json:"role"`
	Group string `json:"group,omitempty"`
}

// User is an admin console user.
type User struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	Grants      []Grant    `json:"grants"`
	TOTP        bool       `json:"totp_enabled"`
	Disabled    bool       `json:"disabled"`
	LockedUntil *time.Time `json:"locked_until,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLogin   *time.Time `json:"last_login,omitempty"`
}

// UserCreate is the body of POST /api/v1/users. When Password is empty the
// server generates one and returns it once.
type UserCreate struct {
	Username string  `json:"username"`
	Password string  `json:"password,omitempty"`
	Grants   []Grant `json:"grants"`
}

// UserCreated answers a user creation.
type UserCreated struct {
	User     User   `json:"user"`
	Password string `json:"password,omitempty"`
}

// TOTPEnrollment is returned when TOTP is being set up for a user; it
// becomes active once a valid code is confirmed.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
}

// TOTPConfirm is the body confirming a TOTP set-up.
type TOTPConfirm struct {
	Code string `json:"code"`
}

// APITokenCreate is the body of POST /api/v1/tokens.
type APITokenCreate struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Group string `json:"group,omitempty"`
	TTL   string `json:"ttl,omitempty"` // empty: 90 days
}

// APIToken describes an API token; Token is set only on creation.
type APIToken struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Token     string     `json:"token,omitempty"`
	Role      string     `json:"role"`
	Group     string     `json:"group,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	LastUsed  *time.Time `json:"last_used,omitempty"`
	Revoked   bool       `json:"revoked"`
}

// AuditEntry is one record of the hash-chained audit log. Hash is
// SHA-256 over PrevHash and the canonical encoding of the other fields (see
// AuditHash), so that any change to a stored entry breaks the chain.
type AuditEntry struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Target   string    `json:"target,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	Outcome  string    `json:"outcome"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
}

// AuditPage is a page of audit entries in sequence order.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    int64        `json:"next,omitempty"` // Seq to ask for next; 0 at the end
}

// CommandCreate is the body of POST /api/v1/devices/{id}/commands.
type CommandCreate struct {
	Kind    string `json:"kind"`
	Payload string `json:"payload,omitempty"`
}

// CommandStatus is the admin view of a queued command.
type CommandStatus struct {
	Command
	DeviceID    string     `json:"device_id"`
	Status      string     `json:"status"` // queued, delivered, done, failed
	Detail      string     `json:"detail,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	AckedAt     *time.Time `json:"acked_at,omitempty"`
	CreatedBy   string     `json:"created_by"`
}

// Whoami answers GET /api/v1/whoami.
type Whoami struct {
	Principal string  `json:"principal"`
	Kind      string  `json:"kind"` // "user" or "token"
	Grants    []Grant `json:"grants"`
}

// PasswordChange is the body of POST /api/v1/me/password.
type PasswordChange struct {
	Current string `json:"current_password"`
	New     string `json:"new_password"`
}

// Release is a published artifact of a product version (an update).
type Release struct {
	Product   string    `json:"product"`
	Version   string    `json:"version"`
	Target    string    `json:"target"` // TUF target name
	Length    int64     `json:"length"`
	SHA256    string    `json:"sha256"`
	SHA512    string    `json:"sha512"`
	Installer string    `json:"installer"` // "app" or "ab"
	Hardware  []string  `json:"hardware"`  // compatible hardware; empty: any
	Fixes     []string  `json:"fixes"`     // vulnerability IDs (CVE-…) fixed
	Severity  string    `json:"severity,omitempty"`
	SBOM      string    `json:"sbom,omitempty"` // TUF target name of the CycloneDX SBOM
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// VersionFloor is the lowest version of a product that devices may run:
// even a signed older release is refused.
type VersionFloor struct {
	Product    string    `json:"product"`
	MinVersion string    `json:"min_version"`
	UpdatedAt  time.Time `json:"updated_at,omitempty"`
	UpdatedBy  string    `json:"updated_by,omitempty"`
}

// DeploymentCreate is the body of POST /api/v1/deployments.
type DeploymentCreate struct {
	Product string   `json:"product"`
	Version string   `json:"version"`
	Group   string   `json:"group,omitempty"`
	Devices []string `json:"devices,omitempty"`
	// Stages are cumulative percentages, e.g. "5,25,100"; empty: "100".
	Stages string `json:"stages,omitempty"`
	// HaltFailurePct halts the deployment when more than this share of a
	// stage's devices fail (0: any failure); absent means 10.
	HaltFailurePct *int `json:"halt_failure_pct,omitempty"`
	// Expedited deployments (admins only) ignore maintenance windows.
	Expedited bool `json:"expedited,omitempty"`
	// AllowDowngrade (admins only) lets devices install the release over
	// a newer version: the server signs a downgrade instruction for this
	// deployment into the update repository, which devices verify.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
}

// Deployment is the admin view of a staged rollout.
type Deployment struct {
	ID             string             `json:"id"`
	Product        string             `json:"product"`
	Version        string             `json:"version"`
	Target         string             `json:"target"`
	Group          string             `json:"group,omitempty"`
	Stages         []int              `json:"stages"`
	Stage          int                `json:"stage"` // 1-based number of the open stage
	HaltFailurePct int                `json:"halt_failure_pct"`
	State          string             `json:"state"` // running, paused, halted, aborted, completed
	Reason         string             `json:"reason,omitempty"`
	Expedited      bool               `json:"expedited"`
	AllowDowngrade bool               `json:"allow_downgrade"`
	Counts         map[string]int     `json:"counts"` // devices by status
	Devices        []DeploymentDevice `json:"devices,omitempty"`
	Events         []DeploymentEvent  `json:"events,omitempty"`
	CreatedAt      time.Time          `json:"created_at"`
	CreatedBy      string             `json:"created_by"`
	UpdatedAt      time.Time          `json:"updated_at"`
}

// DeploymentDevice is one device's status in a deployment.
type DeploymentDevice struct {
	DeviceID  string    `json:"device_id"`
	Rank      int       `json:"rank"`
	Status    string    `json:"status"` // waiting, pending, downloading, installing, verifying, success, failed, rolled-back
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DeploymentEvent is an entry of a deployment's history.
type DeploymentEvent struct {
	DeviceID string    `json:"device_id,omitempty"`
	Status   string    `json:"status"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// DeploymentAction is the optional body of pause, resume and abort.
type DeploymentAction struct {
	Reason string `json:"reason,omitempty"`
}

// MaintenanceWindow is a weekly window in UTC during which deployments
// may install on a group's devices.
type MaintenanceWindow struct {
	Days  []string `json:"days"`  // mon … sun
	Start string   `json:"start"` // HH:MM
	End   string   `json:"end"`   // HH:MM; before Start: runs past midnight
}
