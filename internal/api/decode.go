package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DecodeError is a problem with a request body. Its text names the problem
// and is safe to show to the client.
type DecodeError struct {
	Msg      string
	TooLarge bool // the body exceeded the limit
}

func (e *DecodeError) Error() string { return e.Msg }

func decodeErrf(format string, args ...any) error {
	return &DecodeError{Msg: fmt.Sprintf(format, args...)}
}

// Decode reads exactly one JSON value from r into v, reading at most limit
// bytes. Unknown fields, trailing data, oversize bodies and type mismatches
// are errors of type *DecodeError naming the problem.
func Decode(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return decodeErrf("reading body: %v", err)
	}
	return DecodeBytes(data, limit, v)
}

// DecodeBytes is Decode over a byte slice.
func DecodeBytes(data []byte, limit int64, v any) error {
	if int64(len(data)) > limit {
		return &DecodeError{Msg: fmt.Sprintf("body larger than %d bytes", limit), TooLarge: true}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return decodeErrf("empty body: a JSON object is required")
	}
	if !utf8.Valid(data) {
		return decodeErrf("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return decodeErrf("malformed JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return decodeErrf("field %q: expected %s", te.Field, te.Type)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return decodeErrf("malformed JSON: unexpected end of body")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return decodeErrf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return decodeErrf("malformed JSON: %v", err)
		}
	}
	if dec.More() {
		return decodeErrf("trailing data after the JSON object")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return decodeErrf("trailing data after the JSON object")
	}
	return nil
}

func checkString(field, s string) error {
	if len(s) > MaxStringLen {
		return decodeErrf("%s longer than %d bytes", field, MaxStringLen)
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' {
			return decodeErrf("%s contains control characters", field)
		}
	}
	return nil
}

// Validate checks an inventory's bounds.
func (inv *Inventory) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"inventory.hostname", inv.Hostname}, {"inventory.os", inv.OS},
		{"inventory.os_version", inv.OSVersion}, {"inventory.kernel", inv.Kernel},
		{"inventory.arch", inv.Arch}, {"inventory.agent_version", inv.AgentVersion},
	} {
		if err := checkString(f.name, f.v); err != nil {
			return err
		}
	}
	if inv.Hostname == "" {
		return decodeErrf("inventory.hostname is required")
	}
	if inv.UptimeSeconds < 0 || inv.UptimeSeconds > 100*365*24*3600 {
		return decodeErrf("inventory.uptime_seconds must be from 0 to 100 years")
	}
	if len(inv.Interfaces) > MaxInterfaces {
		return decodeErrf("inventory.interfaces has more than %d entries", MaxInterfaces)
	}
	for i, ifc := range inv.Interfaces {
		if err := checkString("inventory.interfaces["+strconv.Itoa(i)+"].name", ifc.Name); err != nil {
			return err
		}
		if err := checkString("inventory.interfaces["+strconv.Itoa(i)+"].mac", ifc.MAC); err != nil {
			return err
		}
		if len(ifc.Addrs) > 64 {
			return decodeErrf("inventory.interfaces[%d].addrs has more than 64 entries", i)
		}
		for _, a := range ifc.Addrs {
			if err := checkString("inventory.interfaces["+strconv.Itoa(i)+"].addrs", a); err != nil {
				return err
			}
		}
	}
	return validateInstalled(inv.Installed)
}

// Validate checks a health summary and rewrites the statuses of agents
// older than the health model ("ok", "failing") to the current names.
func (h *Health) Validate() error {
	st, ok := NormalizeHealthStatus(h.Status)
	if !ok {
		return decodeErrf("health.status must be healthy, degraded, unhealthy or unknown, not %q", truncate(h.Status))
	}
	h.Status = st
	if len(h.Checks) > 64 {
		return decodeErrf("health.checks has more than 64 entries")
	}
	for i, c := range h.Checks {
		st, ok := NormalizeHealthStatus(c.Status)
		if !ok {
			return decodeErrf("health.checks[%d].status must be healthy, degraded, unhealthy or unknown", i)
		}
		h.Checks[i].Status = st
		if err := checkString("health.checks.name", c.Name); err != nil {
			return err
		}
		if err := checkString("health.checks.detail", c.Detail); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a check-in request.
func (c *CheckinRequest) Validate() error {
	if err := c.Inventory.Validate(); err != nil {
		return err
	}
	if err := c.Health.Validate(); err != nil {
		return err
	}
	if len(c.Acks) > MaxAcks {
		return decodeErrf("acks has more than %d entries", MaxAcks)
	}
	for i, a := range c.Acks {
		if a.ID == "" || len(a.ID) > 64 {
			return decodeErrf("acks[%d].id is missing or too long", i)
		}
		if a.Status != "done" && a.Status != "failed" {
			return decodeErrf("acks[%d].status must be done or failed", i)
		}
		if err := checkString("acks.detail", a.Detail); err != nil {
			return err
		}
	}
	if c.ConfigVersion < 0 {
		return decodeErrf("config_version is negative")
	}
	return nil
}

// Validate checks an enrolment request's shape; the token and CSR are
// verified by the server.
func (e *EnrollRequest) Validate() error {
	if e.Token == "" && e.TPM == nil && e.Activation == nil {
		return decodeErrf("token is required")
	}
	if len(e.Token) > 256 {
		return decodeErrf("token is too long")
	}
	if e.CSR == "" {
		return decodeErrf("csr is required")
	}
	switch e.KeyAssurance {
	case "", "software", "tpm", "hardware":
	default:
		return decodeErrf("key_assurance must be software or hardware")
	}
	if (e.PreviousDeviceID == "") != (e.PreviousProof == "") {
		return decodeErrf("previous_device_id and previous_proof go together")
	}
	if len(e.PreviousDeviceID) > 64 || len(e.PreviousProof) > 1024 {
		return decodeErrf("previous_device_id or previous_proof is too long")
	}
	if e.TPM != nil && e.Activation != nil {
		return decodeErrf("tpm and activation do not go together: activation answers the challenge of a tpm enrolment")
	}
	if e.TPM != nil {
		if err := e.TPM.Validate(); err != nil {
			return err
		}
	}
	if e.Activation != nil {
		if e.Activation.Session == "" || len(e.Activation.Session) > 64 {
			return decodeErrf("activation.session is missing or too long")
		}
		if len(e.Activation.Secret) == 0 || len(e.Activation.Secret) > 64 {
			return decodeErrf("activation.secret is missing or longer than 64 bytes")
		}
	}
	if e.Inventory != nil {
		return e.Inventory.Validate()
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// AuditHash computes the chained hash of an audit entry from its fields and
// PrevHash. The encoding is fixed: changing it breaks every stored chain.
func AuditHash(e AuditEntry) string {
	h := sha256.New()
	field := func(s string) {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	field(strconv.FormatInt(e.Seq, 10))
	field(e.Time.UTC().Format(time.RFC3339Nano))
	field(e.Actor)
	field(e.Action)
	field(e.Target)
	field(e.Detail)
	field(e.Remote)
	field(e.Outcome)
	field(e.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyAuditChain checks that entries (in order, starting at the first
// entry of the log or continuing from prevHash) form an unbroken chain. It
// returns the hash of the last entry, or an error naming the first bad
// sequence number.
func VerifyAuditChain(prevHash string, prevSeq int64, entries []AuditEntry) (string, int64, error) {
	for _, e := range entries {
		if e.Seq != prevSeq+1 {
			return "", 0, fmt.Errorf("audit: entry %d follows %d: an entry is missing or out of order", e.Seq, prevSeq)
		}
		if e.PrevHash != prevHash {
			return "", 0, fmt.Errorf("audit: entry %d does not link to entry %d (prev_hash mismatch)", e.Seq, prevSeq)
		}
		if AuditHash(e) != e.Hash {
			return "", 0, fmt.Errorf("audit: entry %d was altered (hash mismatch)", e.Seq)
		}
		prevHash, prevSeq = e.Hash, e.Seq
	}
	return prevHash, prevSeq, nil
}
