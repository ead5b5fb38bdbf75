// Package events defines Bulwark's versioned security event format: one JSON
// envelope (schema version "1") carrying typed details, aligned with OCSF
// 1.3.0 class names and uids where OCSF has a matching class. Types that OCSF
// has no class for live in a private Bulwark extension (see ExtensionUID).
//
// docs/events.md and schema.json are generated from this package and kept in
// sync by its tests (go test ./internal/events -update rewrites them).
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
)

// SchemaVersion is the envelope version every event carries.
const SchemaVersion = "1"

// OCSFVersion is the OCSF release whose class names and uids are used.
const OCSFVersion = "1.3.0"

// ExtensionUID is the (unregistered, private) OCSF extension uid under which
// Bulwark-specific classes are numbered: class_uid = ExtensionUID*100000 +
// category_uid*1000 + n, the numbering OCSF uses for extension classes.
const ExtensionUID = 99

// MaxEventSize bounds an encoded event; Decode refuses anything larger.
const MaxEventSize = 64 << 10

// maxString bounds any single string field.
const maxString = 4096

// Severity ids and names as in OCSF (severity_id / severity).
var severities = map[int]string{
	0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal",
}

// Severity ids.
const (
	SeverityUnknown       = 0
	SeverityInformational = 1
	SeverityLow           = 2
	SeverityMedium        = 3
	SeverityHigh          = 4
	SeverityCritical      = 5
	SeverityFatal         = 6
)

// SeverityName returns the OCSF name of a severity id ("" if unknown).
func SeverityName(id int) string { return severities[id] }

// Event is the envelope of every security event and log record.
type Event struct {
	SchemaVersion string     `json:"schema_version" doc:"envelope version, always \"1\""`
	Type          string     `json:"type" doc:"Bulwark event type, e.g. \"auth.login\""`
	ClassUID      int        `json:"class_uid" doc:"OCSF class uid of the type"`
	ClassName     string     `json:"class_name" doc:"OCSF class name of the type"`
	SeverityID    int        `json:"severity_id" doc:"OCSF severity id: 0 Unknown, 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical, 6 Fatal"`
	Severity      string     `json:"severity" doc:"OCSF severity name matching severity_id"`
	DeviceID      string     `json:"device_id" doc:"ID of the device the event is about"`
	Seq           uint64     `json:"seq" doc:"per-device sequence number assigned by the agent journal, from 1"`
	DeviceTime    time.Time  `json:"device_time" doc:"device clock when the event happened (RFC 3339, UTC)"`
	ServerTime    *time.Time `json:"server_time,omitempty" doc:"server clock when the event was received; set by the server on ingest"`
	Details       any        `json:"details" doc:"type-specific details, see each type"`
}

// Spec describes one event type.
type Spec struct {
	Type        string
	ClassUID    int
	ClassName   string
	OCSF        bool // the class is a standard OCSF 1.3.0 class
	Description string
	details     reflect.Type // struct type of Details
	example     func() any
}

// NewDetails returns a pointer to a zero value of the type's details struct.
func (s Spec) NewDetails() any { return reflect.New(s.details).Interface() }

var registry = map[string]Spec{}

func register[T any](typ string, classUID int, className string, desc string, example T) {
	if _, dup := registry[typ]; dup {
		panic("events: duplicate type " + typ)
	}
	registry[typ] = Spec{
		Type: typ, ClassUID: classUID, ClassName: className,
		OCSF: classUID < ExtensionUID*100000, Description: desc,
		details: reflect.TypeFor[T](),
		example: func() any { e := example; return &e },
	}
}

// Types returns every registered event type, sorted.
func Types() []string {
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the spec of an event type.
func Lookup(typ string) (Spec, bool) {
	s, ok := registry[typ]
	return s, ok
}

// New builds an event of a registered type; Seq is left 0 for the journal to
// assign and ServerTime nil for the server. details must be the type's
// details struct or a pointer to it.
func New(typ, deviceID string, severityID int, deviceTime time.Time, details any) (*Event, error) {
	spec, ok := registry[typ]
	if !ok {
		return nil, fmt.Errorf("events: unknown type %q", typ)
	}
	v := reflect.ValueOf(details)
	if v.Kind() == reflect.Pointer && v.Type().Elem() == spec.details {
		// ok
	} else if v.Type() == spec.details {
		p := reflect.New(spec.details)
		p.Elem().Set(v)
		details = p.Interface()
	} else {
		return nil, fmt.Errorf("events: type %q takes %v details, not %T", typ, spec.details, details)
	}
	ev := &Event{
		SchemaVersion: SchemaVersion, Type: typ, ClassUID: spec.ClassUID, ClassName: spec.ClassName,
		SeverityID: severityID, Severity: SeverityName(severityID), DeviceID: deviceID,
		DeviceTime: deviceTime.UTC(), Details: details,
	}
	if err := ev.validate(false); err != nil {
		return nil, err
	}
	return ev, nil
}

// Marshal encodes an event after checking it (seq must be set).
func (e *Event) Marshal() ([]byte, error) {
	if err := e.validate(true); err != nil {
		return nil, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("events: event is %d bytes, over the %d limit", len(b), MaxEventSize)
	}
	return b, nil
}

type wireEvent struct {
	SchemaVersion *string         `json:"schema_version"`
	Type          *string         `json:"type"`
	ClassUID      *int            `json:"class_uid"`
	ClassName     *string         `json:"class_name"`
	SeverityID    *int            `json:"severity_id"`
	Severity      *string         `json:"severity"`
	DeviceID      *string         `json:"device_id"`
	Seq           *uint64         `json:"seq"`
	DeviceTime    *time.Time      `json:"device_time"`
	ServerTime    *time.Time      `json:"server_time"`
	Details       json.RawMessage `json:"details"`
}

func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// Decode parses one event strictly: at most MaxEventSize bytes, no unknown
// fields (in the envelope or the details), every required field present and
// consistent with the type's registration.
func Decode(data []byte) (*Event, error) {
	if len(data) > MaxEventSize {
		return nil, fmt.Errorf("events: event is %d bytes, over the %d limit", len(data), MaxEventSize)
	}
	if ev, ok := decodeFast(data); ok {
		return ev, nil
	}
	return decodeSlow(data)
}

// decodeSlow is Decode's general path, which names any problem.
func decodeSlow(data []byte) (*Event, error) {
	var w wireEvent
	if err := strict(data, &w); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	missing := []string{}
	if w.SchemaVersion == nil {
		missing = append(missing, "schema_version")
	}
	if w.Type == nil {
		missing = append(missing, "type")
	}
	if w.ClassUID == nil {
		missing = append(missing, "class_uid")
	}
	if w.ClassName == nil {
		missing = append(missing, "class_name")
	}
	if w.SeverityID == nil {
		missing = append(missing, "severity_id")
	}
	if w.Severity == nil {
		missing = append(missing, "severity")
	}
	if w.DeviceID == nil {
		missing = append(missing, "device_id")
	}
	if w.Seq == nil {
		missing = append(missing, "seq")
	}
	if w.DeviceTime == nil {
		missing = append(missing, "device_time")
	}
	if len(w.Details) == 0 || string(w.Details) == "null" {
		missing = append(missing, "details")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("events: missing required fields: %s", strings.Join(missing, ", "))
	}
	spec, ok := registry[*w.Type]
	if !ok {
		return nil, fmt.Errorf("events: unknown type %q", *w.Type)
	}
	details := spec.NewDetails()
	if err := strict(w.Details, details); err != nil {
		return nil, fmt.Errorf("events: %s details: %w", *w.Type, err)
	}
	ev := &Event{
		SchemaVersion: *w.SchemaVersion, Type: *w.Type, ClassUID: *w.ClassUID, ClassName: *w.ClassName,
		SeverityID: *w.SeverityID, Severity: *w.Severity, DeviceID: *w.DeviceID, Seq: *w.Seq,
		DeviceTime: *w.DeviceTime, ServerTime: w.ServerTime, Details: details,
	}
	if err := ev.validate(true); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeFast decodes a valid event in one strict pass, into an envelope
// whose details field has the type's details struct (guessed from the
// first "type" member, then checked). It accepts only what the general
// path accepts; anything else (including any error) is left to that path,
// which names the problem. It spares the server a second and third parse
// of every event's details.
func decodeFast(data []byte) (*Event, bool) {
	typ, ok := guessType(data)
	if !ok || bytes.Count(data, []byte(`"details":`)) != 1 {
		return nil, false
	}
	spec, ok := registry[typ]
	if !ok {
		return nil, false
	}
	p := reflect.New(envelopeType(spec))
	if !scanInto(data, p.Elem()) {
		p = reflect.New(envelopeType(spec))
		if strict(data, p.Interface()) != nil {
			return nil, false
		}
	}
	v := p.Elem()
	w := wireEvent{}
	wv := reflect.ValueOf(&w).Elem()
	for i := 0; i < wv.NumField(); i++ {
		if i != wireDetails {
			wv.Field(i).Set(v.Field(i))
		}
	}
	details := v.Field(wireDetails)
	if w.SchemaVersion == nil || w.Type == nil || *w.Type != typ || w.ClassUID == nil || w.ClassName == nil || w.SeverityID == nil ||
		w.Severity == nil || w.DeviceID == nil || w.Seq == nil || w.DeviceTime == nil || details.IsNil() {
		return nil, false
	}
	ev := &Event{
		SchemaVersion: *w.SchemaVersion, Type: *w.Type, ClassUID: *w.ClassUID, ClassName: *w.ClassName,
		SeverityID: *w.SeverityID, Severity: *w.Severity, DeviceID: *w.DeviceID, Seq: *w.Seq,
		DeviceTime: *w.DeviceTime, ServerTime: w.ServerTime, Details: details.Interface(),
	}
	if ev.validate(true) != nil {
		return nil, false
	}
	return ev, true
}

// wireDetails is the index of wireEvent.Details.
var wireDetails = func() int {
	f, _ := reflect.TypeFor[wireEvent]().FieldByName("Details")
	return f.Index[0]
}()

var envelopeTypes sync.Map // event type -> reflect.Type

// envelopeType is wireEvent with Details typed as a pointer to the type's
// details struct.
func envelopeType(spec Spec) reflect.Type {
	if t, ok := envelopeTypes.Load(spec.Type); ok {
		return t.(reflect.Type)
	}
	wt := reflect.TypeFor[wireEvent]()
	fields := make([]reflect.StructField, wt.NumField())
	for i := range fields {
		f := wt.Field(i)
		fields[i] = reflect.StructField{Name: f.Name, Type: f.Type, Tag: f.Tag}
		if i == wireDetails {
			fields[i].Type = reflect.PointerTo(spec.details)
		}
	}
	t := reflect.StructOf(fields)
	envelopeTypes.Store(spec.Type, t)
	return t
}

// guessType returns the value of the first "type" member, if it is a
// plain string.
func guessType(data []byte) (string, bool) {
	const key = `"type":"`
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := data[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", false
	}
	return string(rest[:j]), true
}

func (e *Event) validate(needSeq bool) error {
	if e.SchemaVersion != SchemaVersion {
		return fmt.Errorf("events: schema_version %q, want %q", e.SchemaVersion, SchemaVersion)
	}
	spec, ok := registry[e.Type]
	if !ok {
		return fmt.Errorf("events: unknown type %q", e.Type)
	}
	if e.ClassUID != spec.ClassUID || e.ClassName != spec.ClassName {
		return fmt.Errorf("events: %s has class %d %q, want %d %q", e.Type, e.ClassUID, e.ClassName, spec.ClassUID, spec.ClassName)
	}
	name, ok := severities[e.SeverityID]
	if !ok || e.Severity != name {
		return fmt.Errorf("events: severity %d %q is not an OCSF severity", e.SeverityID, e.Severity)
	}
	if e.DeviceID == "" || len(e.DeviceID) > 256 {
		return errors.New("events: device_id must be 1..256 bytes")
	}
	if needSeq && e.Seq == 0 {
		return errors.New("events: seq must be at least 1")
	}
	if e.DeviceTime.IsZero() {
		return errors.New("events: device_time is required")
	}
	v := reflect.ValueOf(e.Details)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type().Elem() != spec.details {
		return fmt.Errorf("events: %s details must be *%v", e.Type, spec.details)
	}
	if err := checkStruct(v.Elem(), "details"); err != nil {
		return fmt.Errorf("events: %s: %w", e.Type, err)
	}
	return nil
}

// checkStruct enforces the field rules shared with the JSON Schema: strings
// without omitempty are required (non-empty), `enum` tags restrict values,
// and no string exceeds maxString bytes. The rules of each struct type are
// read from its tags once (fieldRules): the server checks every event it
// ingests.
func checkStruct(v reflect.Value, path string) error {
	for _, r := range fieldRules(v.Type()) {
		fv := v.Field(r.index)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				if !r.omit {
					return fmt.Errorf("%s.%s is required", path, r.name)
				}
				continue
			}
			fv = fv.Elem()
		}
		switch fv.Kind() {
		case reflect.String:
			s := fv.String()
			if s == "" && !r.omit {
				return fmt.Errorf("%s.%s is required", path, r.name)
			}
			if len(s) > maxString {
				return fmt.Errorf("%s.%s is longer than %d bytes", path, r.name, maxString)
			}
			if r.enum != nil && s != "" && !contains(r.enum, s) {
				return fmt.Errorf("%s.%s is %q, want one of %s", path, r.name, s, strings.Join(r.enum, "|"))
			}
		case reflect.Int, reflect.Int64:
			if r.hasMin && fv.Int() < r.min {
				return fmt.Errorf("%s.%s is %d, below %d", path, r.name, fv.Int(), r.min)
			}
			if r.hasMax && fv.Int() > r.max {
				return fmt.Errorf("%s.%s is %d, above %d", path, r.name, fv.Int(), r.max)
			}
		case reflect.Uint64:
			if r.hasMin && fv.Uint() < r.umin {
				return fmt.Errorf("%s.%s is %d, below %d", path, r.name, fv.Uint(), r.umin)
			}
		case reflect.Struct:
			if err := checkStruct(fv, path+"."+r.name); err != nil {
				return err
			}
		case reflect.Slice:
			// A `max` tag on a slice bounds its length.
			if r.hasMax && int64(fv.Len()) > r.max {
				return fmt.Errorf("%s.%s has %d items, over %d", path, r.name, fv.Len(), r.max)
			}
			if fv.Type().Elem().Kind() == reflect.Struct {
				for i := 0; i < fv.Len(); i++ {
					if err := checkStruct(fv.Index(i), fmt.Sprintf("%s.%s[%d]", path, r.name, i)); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// fieldRule is what checkStruct checks of one struct field.
type fieldRule struct {
	index          int
	name           string
	omit           bool
	enum           []string
	hasMin, hasMax bool
	min, max       int64
	umin           uint64
}

var ruleCache sync.Map // reflect.Type -> []fieldRule

func fieldRules(t reflect.Type) []fieldRule {
	if r, ok := ruleCache.Load(t); ok {
		return r.([]fieldRule)
	}
	rules := make([]fieldRule, t.NumField())
	for i := range rules {
		f := t.Field(i)
		r := fieldRule{index: i}
		r.name, r.omit = jsonName(f)
		if enum := f.Tag.Get("enum"); enum != "" {
			r.enum = strings.Split(enum, "|")
		}
		if min := f.Tag.Get("min"); min != "" {
			r.hasMin = true
			fmt.Sscan(min, &r.min)
			fmt.Sscan(min, &r.umin)
		}
		if max := f.Tag.Get("max"); max != "" {
			r.hasMax = true
			fmt.Sscan(max, &r.max)
		}
		rules[i] = r
	}
	ruleCache.Store(t, rules)
	return rules
}

func jsonName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("json")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return name, strings.Contains(opts, "omitempty")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
