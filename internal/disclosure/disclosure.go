// Package disclosure is Bulwark's coordinated vulnerability disclosure
// (ISO/IEC 29147 style) and published product transparency: the report
// workflow and its state machine, validation of what reporters and
// admins send, tracking IDs and follow-up keys, the RFC 9116
// security.txt, and the wire types and public HTML pages built on them.
//
// The package holds no state; its functions and types are safe for
// concurrent use. The server stores reports and products (internal/store)
// and serves the pages (internal/server/disclosure.go).
package disclosure

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Report states. A report starts received; published, and a report that
// is rejected or a duplicate, may still be reopened (see Transitions).
const (
	StateReceived  = "received"
	StateTriaged   = "triaged"
	StateFixing    = "fixing"
	StateFixed     = "fixed"
	StatePublished = "published"
	StateRejected  = "rejected"
	StateDuplicate = "duplicate"
)

// States lists every state in workflow order.
var States = []string{StateReceived, StateTriaged, StateFixing, StateFixed, StatePublished, StateRejected, StateDuplicate}

// transitions maps each state to the states it may move to.
var transitions = map[string][]string{
	StateReceived:  {StateTriaged, StateRejected, StateDuplicate},
	StateTriaged:   {StateFixing, StateRejected, StateDuplicate},
	StateFixing:    {StateFixed, StateRejected},
	StateFixed:     {StatePublished, StateFixing},
	StatePublished: {},
	StateRejected:  {StateTriaged},
	StateDuplicate: {StateTriaged},
}

// ValidState reports whether s names a state.
func ValidState(s string) bool { _, ok := transitions[s]; return ok }

// Allowed returns the states a report in state from may move to (never
// nil).
func Allowed(from string) []string {
	out := slices.Clone(transitions[from])
	if out == nil {
		out = []string{}
	}
	return out
}

// CanTransition reports whether a report may move from one state to
// another.
func CanTransition(from, to string) bool { return slices.Contains(transitions[from], to) }

// Limits on what reporters and admins send.
const (
	// MaxBody bounds the JSON and form bodies of a submission.
	MaxBody        = 32 << 10
	MaxSummary     = 200
	MaxProduct     = 100
	MaxVersion     = 100
	MaxDetails     = 20000
	MaxEmail       = 254
	MaxName        = 100
	MaxNote        = 4000
	MaxAdvisory    = 300
	MaxDescription = 512
	MaxPolicyText  = 200
)

// TrackingIDPrefix starts every tracking ID.
const TrackingIDPrefix = "VR-"

var trackingIDRE = regexp.MustCompile(`^VR-[A-Z2-7]{10}$`)

// NewTrackingID returns a random tracking ID: "VR-" and 10 base32
// characters (50 bits) from crypto/rand.
func NewTrackingID() (string, error) {
	var b [7]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("disclosure: reading random bytes: %w", err)
	}
	return TrackingIDPrefix + base32.StdEncoding.EncodeToString(b[:])[:10], nil
}

// ValidTrackingID reports whether id has the form of a tracking ID.
func ValidTrackingID(id string) bool { return trackingIDRE.MatchString(id) }

// NewFollowUpKey returns a follow-up key (32 random bytes, unpadded
// base64url) and the SHA-256 hash to store in its place.
func NewFollowUpKey() (key string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("disclosure: reading random bytes: %w", err)
	}
	key = base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey(key), nil
}

// HashKey is the stored form of a follow-up key.
func HashKey(key string) []byte {
	sum := sha256.Sum256([]byte("bulwark-disclosure-key:" + key))
	return sum[:]
}

// KeyMatches reports whether key hashes to hash, in constant time. It is
// false for an empty key or hash.
func KeyMatches(hash []byte, key string) bool {
	if key == "" || len(hash) == 0 || len(key) > 64 {
		return false
	}
	return subtle.ConstantTimeCompare(hash, HashKey(key)) == 1
}

// Submission is a vulnerability report as a reporter sends it, by the
// JSON API (POST /api/v1/disclosures) or the form (POST /disclose).
type Submission struct {
	// Summary is a one-line description (required, up to 200 characters).
	Summary string `json:"summary"`
	// Product is the affected product (required, up to 100 characters).
	Product string `json:"product"`
	// AffectedVersion is the affected version or range (optional).
	AffectedVersion string `json:"affected_version,omitempty"`
	// Details describe the issue and how to reproduce it (required, up
	// to 20,000 characters).
	Details string `json:"details"`
	// Email is where the security team may reach the reporter (optional).
	Email string `json:"email,omitempty"`
	// AcknowledgeAs is the name to credit on the acknowledgments page
	// once the fix is published (optional; empty means no credit).
	AcknowledgeAs string `json:"acknowledge_as,omitempty"`
}

// FieldError is a submission or request field that is missing or not
// valid. Its text names the field and is safe to show.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// checkText checks a text field: valid UTF-8, at most max characters, no
// control characters (newlines and tabs only where multiline is set).
func checkText(field, v string, max int, required, multiline bool) error {
	if required && strings.TrimSpace(v) == "" {
		return fieldErr(field, "is required")
	}
	if !utf8.ValidString(v) {
		return fieldErr(field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return fieldErr(field, "is %d characters long; the limit is %d", n, max)
	}
	for _, r := range v {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fieldErr(field, "contains a control character")
		}
	}
	return nil
}

// Normalize trims surrounding space from every field.
func (s *Submission) Normalize() {
	for _, p := range []*string{&s.Summary, &s.Product, &s.AffectedVersion, &s.Email, &s.AcknowledgeAs} {
		*p = strings.TrimSpace(*p)
	}
	s.Details = strings.TrimRight(s.Details, " \t\r\n")
}

// Validate reports the first problem with a (normalised) submission as a
// *FieldError.
func (s *Submission) Validate() error {
	if err := checkText("summary", s.Summary, MaxSummary, true, false); err != nil {
		return err
	}
	if err := checkText("product", s.Product, MaxProduct, true, false); err != nil {
		return err
	}
	if err := checkText("affected_version", s.AffectedVersion, MaxVersion, false, false); err != nil {
		return err
	}
	if err := checkText("details", s.Details, MaxDetails, true, true); err != nil {
		return err
	}
	if s.Email != "" {
		if err := checkText("email", s.Email, MaxEmail, false, false); err != nil {
			return err
		}
		a, err := mail.ParseAddress(s.Email)
		if err != nil || a.Address != s.Email || !strings.Contains(a.Address[strings.LastIndexByte(a.Address, '@')+1:], ".") {
			return fieldErr("email", "%q is not an email address like name@example.com", s.Email)
		}
	}
	return checkText("acknowledge_as", s.AcknowledgeAs, MaxName, false, false)
}

// TimelineEntry is one step of a report's history.
type TimelineEntry struct {
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
	// From is empty for the first entry (the report's receipt).
	From     string `json:"from,omitempty"`
	To       string `json:"to"`
	Note     string `json:"note,omitempty"`
	Advisory string `json:"advisory,omitempty"`
}

// Report is a vulnerability report as the admin API shows it.
type Report struct {
	ID              string    `json:"id"`
	State           string    `json:"state"`
	Summary         string    `json:"summary"`
	Product         string    `json:"product"`
	AffectedVersion string    `json:"affected_version,omitempty"`
	Details         string    `json:"details,omitempty"`
	Email           string    `json:"email,omitempty"`
	AcknowledgeAs   string    `json:"acknowledge_as,omitempty"`
	Advisory        string    `json:"advisory,omitempty"`
	ReceivedAt      time.Time `json:"received_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	// Allowed lists the states the report may move to next.
	Allowed []string `json:"allowed_transitions"`
	// Timeline is set on a single report, oldest first.
	Timeline []TimelineEntry `json:"timeline,omitempty"`
}

// ReportList is a page of reports, newest first, without details.
type ReportList struct {
	Reports []Report `json:"reports"`
	Total   int      `json:"total"`
}

// Receipt answers a submission: the tracking ID and where, with the
// follow-up key, the reporter can follow the report. The key is shown
// only here; the server keeps its hash.
type Receipt struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	FollowUpKey string `json:"follow_up_key"`
	FollowUpURL string `json:"follow_up_url"`
}

// Message is what a reporter adds to their report's timeline.
type Message struct {
	// Message is the text (required, up to 4000 characters).
	Message string `json:"message"`
}

// CheckMessage checks a message a reporter adds to their report.
func CheckMessage(m string) error { return checkText("message", m, MaxNote, true, true) }

// Status is what a reporter sees with the follow-up key: the report's
// state and public timeline (without staff names or the details sent).
type Status struct {
	ID              string        `json:"id"`
	State           string        `json:"state"`
	Summary         string        `json:"summary"`
	Product         string        `json:"product"`
	AffectedVersion string        `json:"affected_version,omitempty"`
	Advisory        string        `json:"advisory,omitempty"`
	ReceivedAt      time.Time     `json:"received_at"`
	UpdatedAt       time.Time     `json:"updated_at"`
	Timeline        []StatusEntry `json:"timeline"`
}

// StatusEntry is one step of the timeline a reporter sees.
type StatusEntry struct {
	Time time.Time `json:"time"`
	// By is "reporter" for the reporter's own messages, else "security team".
	By       string `json:"by"`
	State    string `json:"state"`
	Note     string `json:"note,omitempty"`
	Advisory string `json:"advisory,omitempty"`
}

// TransitionRequest moves a report to another state.
type TransitionRequest struct {
	To string `json:"to"`
	// Note is recorded in the timeline, which the reporter can read.
	Note string `json:"note,omitempty"`
	// Advisory links the report to an advisory (an ID or an https URL);
	// required to publish unless one is already linked.
	Advisory string `json:"advisory,omitempty"`
}

// Validate checks a transition request's fields (not whether the move is
// allowed from the report's current state).
func (t *TransitionRequest) Validate() error {
	t.To, t.Advisory = strings.TrimSpace(t.To), strings.TrimSpace(t.Advisory)
	t.Note = strings.TrimRight(t.Note, " \t\r\n")
	if t.To == "" {
		return fieldErr("to", "is required: one of %s", strings.Join(States, ", "))
	}
	if !ValidState(t.To) {
		return fieldErr("to", "%q is not a state; states are %s", t.To, strings.Join(States, ", "))
	}
	if err := checkText("note", t.Note, MaxNote, false, true); err != nil {
		return err
	}
	if err := checkText("advisory", t.Advisory, MaxAdvisory, false, false); err != nil {
		return err
	}
	if strings.ContainsAny(t.Advisory, " <>\"") {
		return fieldErr("advisory", "must be an advisory ID (e.g. BWK-2026-0001, CVE-2026-12345) or an https URL, without spaces")
	}
	if strings.Contains(t.Advisory, ":") && !strings.HasPrefix(t.Advisory, "https://") && !strings.HasPrefix(t.Advisory, "CVE-") {
		return fieldErr("advisory", "a URL must start with https://")
	}
	return nil
}

// Product is a product with its security-update support period and
// update policy (Code of Practice 1.1, 1.4).
type Product struct {
	// Name identifies the product (1-64 letters, digits, '.', '_', '-').
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// SupportUntil is the last day (YYYY-MM-DD, UTC) on which the
	// product is guaranteed security updates: the minimum support period.
	SupportUntil string `json:"support_until"`
	// UpdateCadence says how often security updates ship, e.g.
	// "monthly, and out of band for critical issues".
	UpdateCadence string `json:"update_cadence"`
	// CriticalFixTarget is the target time to ship a fix for a critical
	// vulnerability, e.g. "14 days from triage".
	CriticalFixTarget string `json:"critical_fix_target"`
	// Supported is true while SupportUntil has not passed (responses only).
	Supported bool      `json:"supported"`
	UpdatedAt time.Time `json:"updated_at"`
}

var productNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// DateLayout is the layout of SupportUntil.
const DateLayout = "2006-01-02"

// Validate normalises and checks a product sent by an admin.
func (p *Product) Validate() error {
	p.Name, p.Description, p.SupportUntil = strings.TrimSpace(p.Name), strings.TrimSpace(p.Description), strings.TrimSpace(p.SupportUntil)
	p.UpdateCadence, p.CriticalFixTarget = strings.TrimSpace(p.UpdateCadence), strings.TrimSpace(p.CriticalFixTarget)
	if !productNameRE.MatchString(p.Name) {
		return fieldErr("name", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if err := checkText("description", p.Description, MaxDescription, false, false); err != nil {
		return err
	}
	if p.SupportUntil == "" {
		return fieldErr("support_until", "is required: the last day of security updates, as YYYY-MM-DD")
	}
	if d, err := time.Parse(DateLayout, p.SupportUntil); err != nil || d.Format(DateLayout) != p.SupportUntil {
		return fieldErr("support_until", "%q is not a date as YYYY-MM-DD", p.SupportUntil)
	}
	if err := checkText("update_cadence", p.UpdateCadence, MaxPolicyText, true, false); err != nil {
		return err
	}
	return checkText("critical_fix_target", p.CriticalFixTarget, MaxPolicyText, true, false)
}

// SupportedAt reports whether a product's support period includes the
// day of now (in UTC).
func SupportedAt(supportUntil string, now time.Time) bool {
	d, err := time.Parse(DateLayout, supportUntil)
	if err != nil {
		return false
	}
	return !now.UTC().After(d.Add(24*time.Hour - time.Nanosecond))
}

// ProductList is the public products.json.
type ProductList struct {
	Products        []Product `json:"products"`
	UpdatePolicyURL string    `json:"update_policy_url"`
	GeneratedAt     time.Time `json:"generated_at"`
}
