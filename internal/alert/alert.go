// Package alert is Bulwark's rule engine for Code of Practice guideline
// 10.7, "devices shall alert on significant changes in state". It looks at
// signals — security events forwarded from device journals, and state
// changes the server itself sees (enrolment, revocation, a failed
// attestation, a device becoming unhealthy, a failed update) — and decides
// which rules fire.
//
// The engine is pure: it neither stores nor delivers. The server persists
// what fires as an alert, deduplicated by rule, device and key (see
// Fired.Key) while the alert is open, and delivers new alerts to the
// configured sinks (internal/siem). docs/alerts.md lists the rules.
//
// An Engine is safe for concurrent use. Its only state is the sliding
// windows of threshold rules (repeated authentication failures), kept in
// memory: a restart forgets failures seen before it.
package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// State-change signal types: raised by the server, never found in a device
// journal. Event types (events.Type*) are the other signal types.
const (
	// SignalEnrolled: a device enrolled or re-enrolled. Fields: group,
	// action ("enroll" or "reenroll").
	SignalEnrolled = "device.enrolled"
	// SignalRevoked: a device was revoked. Fields: actor, reason.
	SignalRevoked = "device.revoked"
	// SignalAttestationFailed: an attestation was contraindicated.
	// Fields: problems, action.
	SignalAttestationFailed = "attestation.failed"
	// SignalHealthChanged: the health status a device reports changed.
	// Fields: status, previous.
	SignalHealthChanged = "health.changed"
	// SignalUpdateStatus: a device reported progress on an update
	// assignment. Fields: status, deployment_id, detail.
	SignalUpdateStatus = "update.status"
)

// TypeIoCMatch is the event type an indicator-of-compromise hit is
// expected to carry, with the matched indicator in details.indicator
// (and, optionally, details.indicator_type and details.source). The
// ioc.match rule keys its alerts on the indicator, so each distinct
// indicator seen on a device is its own alert.
const TypeIoCMatch = "ioc.match"

// Ref names the event behind a signal: its store id (0 when it was not
// stored), device, journal seq (0 for server-raised events) and type.
type Ref struct {
	EventID  int64  `json:"event_id,omitempty"`
	DeviceID string `json:"device_id"`
	Seq      uint64 `json:"seq"`
	Type     string `json:"type"`
}

// Signal is one thing the rules look at.
type Signal struct {
	// Type is an event type (events.Type*, TypeIoCMatch) or a Signal*
	// state change.
	Type     string
	DeviceID string
	// Time is when the server learnt of it (receipt time for events).
	Time time.Time
	// Severity is the event's OCSF severity id (0 for state changes).
	Severity int
	// Fields are the event's details flattened to strings (nested objects
	// as "process.path"), or the state change's fields.
	Fields map[string]string
	// Ref names the triggering event; nil for state changes.
	Ref *Ref
}

// FromEvent turns a stored event envelope (the JSON of docs/events.md,
// which need not be of a type this build knows) into a signal.
func FromEvent(id int64, data []byte, received time.Time) (*Signal, error) {
	var env struct {
		Type       string          `json:"type"`
		DeviceID   string          `json:"device_id"`
		Seq        uint64          `json:"seq"`
		SeverityID int             `json:"severity_id"`
		Details    json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("alert: event %d: %w", id, err)
	}
	if env.Type == "" || env.DeviceID == "" {
		return nil, fmt.Errorf("alert: event %d has no type or device_id", id)
	}
	s := &Signal{Type: env.Type, DeviceID: env.DeviceID, Time: received, Severity: env.SeverityID, Fields: map[string]string{},
		Ref: &Ref{EventID: id, DeviceID: env.DeviceID, Seq: env.Seq, Type: env.Type}}
	if len(env.Details) > 0 {
		var details any
		dec := json.NewDecoder(bytes.NewReader(env.Details))
		dec.UseNumber()
		if err := dec.Decode(&details); err != nil {
			return nil, fmt.Errorf("alert: event %d details: %w", id, err)
		}
		flatten(s.Fields, "", details)
	}
	return s, nil
}

func flatten(out map[string]string, prefix string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if prefix != "" {
				k = prefix + "." + k
			}
			flatten(out, k, e)
		}
	case string:
		out[prefix] = x
	case json.Number:
		out[prefix] = x.String()
	case bool:
		out[prefix] = strconv.FormatBool(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				parts = append(parts, s)
			} else if n, ok := e.(json.Number); ok {
				parts = append(parts, n.String())
			}
		}
		out[prefix] = strings.Join(parts, ", ")
	}
}

// Match selects signals of one type whose fields have the given values.
type Match struct {
	Type string
	// Where maps a field to its accepted values, separated by "|"; every
	// entry must hold. A value ending in "*" accepts any value with that
	// prefix. Empty matches every signal of the type.
	Where map[string]string
}

func (m *Match) matches(s *Signal) bool {
	if s.Type != m.Type {
		return false
	}
	for f, want := range m.Where {
		v, ok := s.Fields[f]
		if !ok || !accepts(strings.Split(want, "|"), v) {
			return false
		}
	}
	return true
}

// accepts reports whether v is one of the accepted values (a trailing "*"
// accepting any value with the prefix before it).
func accepts(accepted []string, v string) bool {
	for _, a := range accepted {
		if p, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(v, p) || a == v {
			return true
		}
	}
	return false
}

// Rule is one detection rule.
type Rule struct {
	// ID names the rule in alerts, e.g. "attestation.failed".
	ID string
	// Severity is the OCSF severity id of its alerts.
	Severity int
	// Description says in a sentence what it detects (for the docs).
	Description string
	// Match lists the signals the rule looks at; any may match.
	Match []Match
	// Key lists fields whose first non-empty value is the dedup key: while
	// an alert of the rule for the device with the same key is open,
	// further firings count on it instead of opening another. Empty means
	// one open alert per rule and device.
	Key []string
	// Threshold, if above 1, makes the rule fire only when that many
	// matching signals from one device (and key) fall within Window; the
	// window then starts afresh.
	Threshold int
	Window    time.Duration
	// Summary is the alert's one-line summary; {field} is replaced by the
	// signal's field ({a|b}: the first of them that is set; "-" if none
	// is), {count} and {window} by the threshold's.
	Summary string
	// Clears, when a signal matches it, resolves the open alerts of the
	// rule for the device (the state went back to normal).
	Clears []Match
}

// Fired is a rule that fired on a signal.
type Fired struct {
	Rule     string
	Severity int
	DeviceID string
	Key      string
	Summary  string
	Time     time.Time
	Refs     []Ref // the events behind it (several for threshold rules)
}

// Cleared says a rule's open alerts for a device should be resolved.
type Cleared struct {
	Rule     string
	DeviceID string
	Time     time.Time
}

// Result is what a signal caused.
type Result struct {
	Fired   []Fired
	Cleared []Cleared
}

// maxWindows bounds the threshold windows kept in memory.
const maxWindows = 100000

// Engine evaluates rules.
type Engine struct {
	rules []Rule

	mu      sync.Mutex
	windows map[windowKey][]windowHit
}

type windowKey struct{ rule, device, key string }

type windowHit struct {
	t   time.Time
	ref *Ref
}

// New checks the rules and returns an engine over them.
func New(rules []Rule) (*Engine, error) {
	seen := map[string]bool{}
	for _, r := range rules {
		switch {
		case r.ID == "" || len(r.ID) > 256:
			return nil, fmt.Errorf("alert: rule id %q must be 1..256 bytes", r.ID)
		case seen[r.ID]:
			return nil, fmt.Errorf("alert: duplicate rule %q", r.ID)
		case events.SeverityName(r.Severity) == "" || r.Severity == events.SeverityUnknown:
			return nil, fmt.Errorf("alert: rule %s: severity %d is not an OCSF severity", r.ID, r.Severity)
		case len(r.Match) == 0:
			return nil, fmt.Errorf("alert: rule %s matches nothing", r.ID)
		case r.Threshold > 1 && r.Window <= 0:
			return nil, fmt.Errorf("alert: rule %s has a threshold without a window", r.ID)
		case r.Summary == "":
			return nil, fmt.Errorf("alert: rule %s has no summary", r.ID)
		}
		seen[r.ID] = true
	}
	return &Engine{rules: rules, windows: map[windowKey][]windowHit{}}, nil
}

// Rules returns the engine's rules.
func (e *Engine) Rules() []Rule { return e.rules }

// Evaluate runs every rule over one signal.
func (e *Engine) Evaluate(s *Signal) Result {
	var res Result
	for i := range e.rules {
		r := &e.rules[i]
		if anyMatch(r.Clears, s) {
			res.Cleared = append(res.Cleared, Cleared{Rule: r.ID, DeviceID: s.DeviceID, Time: s.Time})
			continue
		}
		if !anyMatch(r.Match, s) {
			continue
		}
		key := ""
		for _, f := range r.Key {
			if v := s.Fields[f]; v != "" {
				key = clip(v, 256)
				break
			}
		}
		f := Fired{Rule: r.ID, Severity: r.Severity, DeviceID: s.DeviceID, Key: key, Time: s.Time}
		count := 1
		if r.Threshold > 1 {
			hits, ok := e.window(r, s, key)
			if !ok {
				continue
			}
			count = len(hits)
			for _, h := range hits {
				if h.ref != nil {
					f.Refs = append(f.Refs, *h.ref)
				}
			}
		} else if s.Ref != nil {
			f.Refs = []Ref{*s.Ref}
		}
		f.Summary = render(r, s, count)
		res.Fired = append(res.Fired, f)
	}
	return res
}

// window adds s to the rule's window for its device and key and reports
// the hits when the threshold is reached (emptying the window).
func (e *Engine) window(r *Rule, s *Signal, key string) ([]windowHit, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := windowKey{r.ID, s.DeviceID, key}
	hits := e.windows[k]
	cut := s.Time.Add(-r.Window)
	n := 0
	for _, h := range hits {
		if h.t.After(cut) {
			hits[n] = h
			n++
		}
	}
	hits = append(hits[:n], windowHit{t: s.Time, ref: s.Ref})
	if len(hits) >= r.Threshold {
		delete(e.windows, k)
		return hits, true
	}
	if _, ok := e.windows[k]; !ok && len(e.windows) >= maxWindows {
		e.sweep(s.Time)
	}
	e.windows[k] = hits
	return nil, false
}

// sweep drops windows with no recent hit, and everything if that is not
// enough (losing partial counts rather than memory).
func (e *Engine) sweep(now time.Time) {
	windowOf := map[string]time.Duration{}
	for _, r := range e.rules {
		windowOf[r.ID] = r.Window
	}
	for k, hits := range e.windows {
		if len(hits) == 0 || !hits[len(hits)-1].t.After(now.Add(-windowOf[k.rule])) {
			delete(e.windows, k)
		}
	}
	if len(e.windows) >= maxWindows {
		clear(e.windows)
	}
}

func anyMatch(ms []Match, s *Signal) bool {
	for i := range ms {
		if ms[i].matches(s) {
			return true
		}
	}
	return false
}

// render fills a rule's summary from the signal.
func render(r *Rule, s *Signal, count int) string {
	var b strings.Builder
	t := r.Summary
	for {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			b.WriteString(t)
			break
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			b.WriteString(t)
			break
		}
		b.WriteString(t[:i])
		name := t[i+1 : i+j]
		switch name {
		case "count":
			b.WriteString(strconv.Itoa(count))
		case "window":
			b.WriteString(r.Window.String())
		case "type":
			b.WriteString(s.Type)
		default:
			v := ""
			for _, alt := range strings.Split(name, "|") {
				if v = s.Fields[alt]; v != "" {
					break
				}
			}
			if v == "" {
				v = "-"
			}
			b.WriteString(clip(v, 200))
		}
		t = t[i+j+1:]
	}
	return oneLine(b.String(), 1000)
}

// oneLine replaces control characters with spaces and cuts s to max bytes
// on a rune boundary.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return clip(s, max)
}

func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - 3
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SignalTypes returns every signal type the rules look at, sorted.
func (e *Engine) SignalTypes() []string {
	set := map[string]bool{}
	for _, r := range e.rules {
		for _, m := range append(append([]Match{}, r.Match...), r.Clears...) {
			set[m.Type] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
