package api

import "time"

// Device attestation (Code of Practice 2.6, 2.7, 4.2, 4.3, 4.5, 5.4, 5.5).
//
// Byte fields carry TPM 2.0 wire encodings, base64 in JSON, exactly as the
// TPM produced them and as github.com/google/go-attestation reads them:
// a TPMT_PUBLIC without its size prefix, a TPMS_CREATION_DATA, a
// TPMS_ATTEST and a TPMT_SIGNATURE.

// Paths of the attestation part of the device API (mTLS).
const (
	// PathAttest takes Evidence answering a nonce the server handed out in
	// a check-in response (CheckinResponse.AttestNonce) or by
	// PathAttestNonce.
	PathAttest      = "/device/v1/attest"
	PathAttestNonce = "/device/v1/attest/nonce"
	// PathHealthReport takes a SignedHealthReport.
	PathHealthReport = "/device/v1/health"
)

// Limits on attestation input.
const (
	MaxAttestBody   = 4 << 20 // evidence with event log and IMA list
	MaxEventLog     = 1 << 20
	MaxIMALog       = 2 << 20
	MaxFileReports  = 4096
	MaxPCRIndex     = 23
	NonceSize       = 32
	MaxTPMStructure = 4096 // any one TPM structure (public area, attest, signature)
)

// Key assurance levels, shown wherever a device is.
const (
	// AssuranceHardware: the device key is inside a TPM, proven by
	// credential activation against the endorsement key and certified by
	// the attestation key.
	AssuranceHardware = "hardware"
	// AssuranceSoftware: the device key is a file on the device.
	AssuranceSoftware = "software"
)

// TPMEnrollment is the TPM part of an EnrollRequest.
type TPMEnrollment struct {
	// EKPublic is the endorsement key's public key, PKIX DER.
	EKPublic []byte `json:"ek_public"`
	// EKCertificate is the EK certificate from the TPM's NV, DER, when the
	// TPM has one.
	EKCertificate []byte `json:"ek_certificate,omitempty"`
	// AK is the attestation key, with the TPM's proof that it created it.
	AK AKParameters `json:"ak"`
	// DeviceKey is the device key (the CSR's key) certified by the AK with
	// TPM2_Certify.
	DeviceKey CertifyParameters `json:"device_key"`
}

// AKParameters describe an attestation key (go-attestation's
// AttestationParameters).
type AKParameters struct {
	Public            []byte `json:"public"`             // TPMT_PUBLIC
	CreateData        []byte `json:"create_data"`        // TPMS_CREATION_DATA
	CreateAttestation []byte `json:"create_attestation"` // TPMS_ATTEST (creation)
	CreateSignature   []byte `json:"create_signature"`   // TPMT_SIGNATURE by the AK
}

// CertifyParameters are a TPM2_Certify of a key by the AK.
type CertifyParameters struct {
	Public      []byte `json:"public"`      // TPMT_PUBLIC of the certified key
	Attestation []byte `json:"attestation"` // TPMS_ATTEST (certify)
	Signature   []byte `json:"signature"`   // TPMT_SIGNATURE by the AK
}

// ActivationChallenge is the server's answer to an enrolment with a TPM:
// the agent must decrypt the credential with TPM2_ActivateCredential (which
// only the TPM holding both the EK and the AK can do) and send the secret
// back with Session in a second EnrollRequest. Once it has its certificate
// it attests its boot state at PathAttest with Nonce (reason "enrolment").
type ActivationChallenge struct {
	Session    string    `json:"session"`
	Credential []byte    `json:"credential"` // TPM2B_ID_OBJECT contents
	Secret     []byte    `json:"secret"`     // TPM2B_ENCRYPTED_SECRET contents
	Nonce      []byte    `json:"nonce"`      // for the enrolment quote
	ExpiresAt  time.Time `json:"expires_at"`
}

// ActivationAnswer completes a TPM enrolment.
type ActivationAnswer struct {
	Session string `json:"session"`
	Secret  []byte `json:"secret"`
}

// PCRValue is one PCR of the SHA-256 bank.
type PCRValue struct {
	Index  int    `json:"index"`
	Digest []byte `json:"digest"`
}

// Evidence is what a device sends to be attested: a quote by its AK over
// the PCRs with the server's nonce, the PCR values, and the logs that
// explain them.
type Evidence struct {
	Nonce     []byte     `json:"nonce"`
	Quote     []byte     `json:"quote"`     // TPMS_ATTEST (quote)
	Signature []byte     `json:"signature"` // TPMT_SIGNATURE
	PCRs      []PCRValue `json:"pcrs"`      // SHA-256 bank
	// EventLog is the TCG PC Client measured-boot log
	// (binary_bios_measurements); empty when the platform has none.
	EventLog []byte `json:"event_log,omitempty"`
	// IMALog is the Linux IMA binary_runtime_measurements list; empty when
	// the kernel has no IMA.
	IMALog []byte `json:"ima_log,omitempty"`
	// Files are the agent's integrity monitor results, sent where IMA is
	// absent: the SHA-256 of each configured path.
	Files []FileMeasurement `json:"files,omitempty"`
	// SecureBoot is the UEFI SecureBoot variable as the agent read it:
	// "enabled", "disabled" or "unknown".
	SecureBoot string `json:"secure_boot,omitempty"`
	// Reason says why the device attested: "enrolment", "periodic" or
	// "requested".
	Reason string `json:"reason,omitempty"`
}

// FileMeasurement is one file hashed by the agent's integrity monitor.
type FileMeasurement struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"` // hex; empty when the file is missing
}

// TrustVector is the AR4SI trustworthiness vector of an attestation result
// (draft-ietf-rats-ar4si): each claim is an integer tier, 0 (no claim),
// 2..31 affirming, 32..95 warning, 96..127 contraindicated.
type TrustVector struct {
	InstanceIdentity int `json:"instance-identity"`
	Configuration    int `json:"configuration"`
	Executables      int `json:"executables"`
	FileSystem       int `json:"file-system"`
	Hardware         int `json:"hardware"`
	RuntimeOpaque    int `json:"runtime-opaque"`
	StorageOpaque    int `json:"storage-opaque"`
	SourcedData      int `json:"sourced-data"`
}

// Attestation statuses (EAR ear.status).
const (
	AttestAffirming       = "affirming"
	AttestWarning         = "warning"
	AttestContraindicated = "contraindicated"
	AttestNone            = "none"
)

// AttestationResult is the server's appraisal of one piece of evidence.
type AttestationResult struct {
	ID       string      `json:"id"`
	DeviceID string      `json:"device_id"`
	Time     time.Time   `json:"time"`
	Reason   string      `json:"reason"`
	Status   string      `json:"status"` // affirming, warning, contraindicated, none
	Vector   TrustVector `json:"trust_vector"`
	// Problems name every failed or unverifiable check, for people.
	Problems   []string `json:"problems,omitempty"`
	SecureBoot string   `json:"secure_boot,omitempty"`
	// EAR is the result as a signed EAT Attestation Result (a JWT, ES256),
	// verifiable with the keys at /api/v1/attestation/keys.
	EAR string `json:"ear"`
}

// SignedHealthReport is a health report signed by the device key and bound
// to the device's latest quote, so that neither the network nor the
// server's storage can forge it.
type SignedHealthReport struct {
	// Report is the JSON encoding of HealthReport; the signature is over
	// SHA-256 of exactly these bytes.
	Report []byte `json:"report"`
	// Signature is ASN.1 ECDSA (or PKCS#1 v1.5 for RSA) by the device key.
	Signature []byte `json:"signature"`
}

// HealthReport is what the device signs.
type HealthReport struct {
	DeviceID string    `json:"device_id"`
	Time     time.Time `json:"time"`
	Health   Health    `json:"health"`
	// QuoteDigest is hex SHA-256 of the latest Evidence.Quote the device
	// sent; empty for devices without a TPM.
	QuoteDigest string            `json:"quote_digest,omitempty"`
	Hardening   *HardeningReport  `json:"hardening,omitempty"`
	Files       []FileMeasurement `json:"files,omitempty"`
}

// HardeningReport is the kernel, platform and binary hardening state
// (Code of Practice 4.4). Each fact's Value is what was read; Status is
// "on", "off" or "unknown" (never guessed).
type HardeningReport struct {
	Facts    []HardeningFact `json:"facts"`
	Binaries []BinaryReport  `json:"binaries,omitempty"`
}

// HardeningFact is one mitigation.
type HardeningFact struct {
	Name     string `json:"name"`
	Status   string `json:"status"` // on, off, unknown
	Value    string `json:"value,omitempty"`
	Expected string `json:"expected,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// BinaryReport is the ELF hardening of one binary.
type BinaryReport struct {
	Path    string `json:"path"`
	PIE     string `json:"pie"`      // on, off, unknown
	RELRO   string `json:"relro"`    // full, partial, off, unknown
	NXStack string `json:"nx_stack"` // on, off, unknown
	Detail  string `json:"detail,omitempty"`
}

// Validate checks the shape of a TPM enrolment; the server verifies the
// cryptography.
func (t *TPMEnrollment) Validate() error {
	if len(t.EKPublic) == 0 || len(t.EKPublic) > MaxTPMStructure {
		return decodeErrf("tpm.ek_public is missing or too large")
	}
	if len(t.EKCertificate) > 8192 {
		return decodeErrf("tpm.ek_certificate is larger than 8192 bytes")
	}
	for name, b := range map[string][]byte{
		"tpm.ak.public": t.AK.Public, "tpm.ak.create_data": t.AK.CreateData,
		"tpm.ak.create_attestation": t.AK.CreateAttestation, "tpm.ak.create_signature": t.AK.CreateSignature,
		"tpm.device_key.public": t.DeviceKey.Public, "tpm.device_key.attestation": t.DeviceKey.Attestation,
		"tpm.device_key.signature": t.DeviceKey.Signature,
	} {
		if len(b) == 0 || len(b) > MaxTPMStructure {
			return decodeErrf("%s is missing or larger than %d bytes", name, MaxTPMStructure)
		}
	}
	return nil
}

// Validate checks the shape of evidence; the server verifies it.
func (e *Evidence) Validate() error {
	if len(e.Nonce) != NonceSize {
		return decodeErrf("nonce must be %d bytes", NonceSize)
	}
	if len(e.Quote) == 0 || len(e.Quote) > MaxTPMStructure {
		return decodeErrf("quote is missing or larger than %d bytes", MaxTPMStructure)
	}
	if len(e.Signature) == 0 || len(e.Signature) > MaxTPMStructure {
		return decodeErrf("signature is missing or larger than %d bytes", MaxTPMStructure)
	}
	if len(e.PCRs) == 0 || len(e.PCRs) > MaxPCRIndex+1 {
		return decodeErrf("pcrs must list 1 to %d PCRs", MaxPCRIndex+1)
	}
	seen := map[int]bool{}
	for i, p := range e.PCRs {
		if p.Index < 0 || p.Index > MaxPCRIndex {
			return decodeErrf("pcrs[%d].index %d is out of range 0-%d", i, p.Index, MaxPCRIndex)
		}
		if seen[p.Index] {
			return decodeErrf("pcrs[%d]: PCR %d listed twice", i, p.Index)
		}
		seen[p.Index] = true
		if len(p.Digest) != 32 {
			return decodeErrf("pcrs[%d].digest must be a 32-byte SHA-256 value", i)
		}
	}
	if len(e.EventLog) > MaxEventLog {
		return decodeErrf("event_log is larger than %d bytes", MaxEventLog)
	}
	if len(e.IMALog) > MaxIMALog {
		return decodeErrf("ima_log is larger than %d bytes", MaxIMALog)
	}
	if err := validateFiles("files", e.Files); err != nil {
		return err
	}
	switch e.SecureBoot {
	case "", "enabled", "disabled", "unknown":
	default:
		return decodeErrf("secure_boot must be enabled, disabled or unknown")
	}
	switch e.Reason {
	case "", "enrolment", "periodic", "requested":
	default:
		return decodeErrf("reason must be enrolment, periodic or requested")
	}
	return nil
}

func validateFiles(field string, files []FileMeasurement) error {
	if len(files) > MaxFileReports {
		return decodeErrf("%s has more than %d entries", field, MaxFileReports)
	}
	for i, f := range files {
		if f.Path == "" || len(f.Path) > 4096 {
			return decodeErrf("%s[%d].path is missing or too long", field, i)
		}
		if f.SHA256 != "" && !isHex(f.SHA256, 64) {
			return decodeErrf("%s[%d].sha256 must be 64 hex digits", field, i)
		}
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Validate checks the shape of a signed health report.
func (s *SignedHealthReport) Validate() error {
	if len(s.Report) == 0 || len(s.Report) > MaxCheckinBody {
		return decodeErrf("report is missing or larger than %d bytes", MaxCheckinBody)
	}
	if len(s.Signature) == 0 || len(s.Signature) > 1024 {
		return decodeErrf("signature is missing or larger than 1024 bytes")
	}
	return nil
}

// Validate checks a decoded health report.
func (h *HealthReport) Validate() error {
	if h.DeviceID == "" || len(h.DeviceID) > 64 {
		return decodeErrf("device_id is missing or too long")
	}
	if h.Time.IsZero() {
		return decodeErrf("time is required")
	}
	if err := h.Health.Validate(); err != nil {
		return err
	}
	if h.QuoteDigest != "" && !isHex(h.QuoteDigest, 64) {
		return decodeErrf("quote_digest must be 64 hex digits")
	}
	if h.Hardening != nil && (len(h.Hardening.Facts) > 256 || len(h.Hardening.Binaries) > 256) {
		return decodeErrf("hardening has more than 256 facts or binaries")
	}
	return validateFiles("files", h.Files)
}

// AttestNonce answers PathAttestNonce.
type AttestNonce struct {
	Nonce     []byte    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AttestRequest answers an admin's request for a fresh attestation.
type AttestRequest struct {
	DeviceID    string    `json:"device_id"`
	RequestedAt time.Time `json:"requested_at"`
	CommandID   string    `json:"command_id"`
}

// AttestationList is a device's attestation history, newest first.
type AttestationList struct {
	Results []AttestationResult `json:"results"`
}

// HealthReportView is a stored signed health report with what the server
// read from it.
type HealthReportView struct {
	Time   time.Time          `json:"time"`
	Status string             `json:"status"`
	Signed SignedHealthReport `json:"signed"`
}

// HealthReportList is a device's health history, newest first.
type HealthReportList struct {
	Reports []HealthReportView `json:"reports"`
}

// TrustUpdate sets a device's trust (an admin restoring a device after
// investigating a failed attestation, or marking it by hand).
type TrustUpdate struct {
	Trust  string `json:"trust"`
	Reason string `json:"reason,omitempty"`
}

// EKRegistration pre-registers a TPM endorsement key for zero-touch
// enrolment into a group. EKHash is hex SHA-256 of the EK's PKIX DER.
type EKRegistration struct {
	EKHash    string    `json:"ek_hash"`
	Group     string    `json:"group"`
	CreatedAt time.Time `json:"created_at,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
}

// EKRegistrationCreate registers endorsement keys, all or none.
type EKRegistrationCreate struct {
	Registrations []EKRegistration `json:"registrations"`
}

// EKRegistrationList lists the registrations.
type EKRegistrationList struct {
	Registrations []EKRegistration `json:"registrations"`
}
