package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Example returns the documented example event of a type.
func Example(typ string) (*Event, error) {
	spec, ok := registry[typ]
	if !ok {
		return nil, fmt.Errorf("events: unknown type %q", typ)
	}
	sev := SeverityInformational
	switch typ {
	case TypeAuthLogin, TypeUpdateStep, TypeClockOffset:
		sev = SeverityMedium
	case TypeJournalGap, TypePolicyDenial, TypeJournalChainBroken:
		sev = SeverityHigh
	}
	ev, err := New(typ, "dev-7f3a9c", sev, time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC), spec.example())
	if err != nil {
		return nil, err
	}
	ev.Seq = 42
	st := time.Date(2026, 11, 26, 20, 0, 1, 250_000_000, time.UTC)
	ev.ServerTime = &st
	return ev, nil
}

// Schema returns the JSON Schema (draft 2020-12) of the event format,
// generated from the Go types: the same field names, required fields,
// enums and bounds that Decode enforces.
func Schema() ([]byte, error) {
	env := structSchema(reflect.TypeFor[Event]())
	props := env["properties"].(map[string]any)
	props["schema_version"] = map[string]any{"const": SchemaVersion}
	props["type"] = map[string]any{"enum": Types()}
	props["seq"] = map[string]any{"type": "integer", "minimum": 1}
	props["severity_id"] = map[string]any{"type": "integer", "minimum": 0, "maximum": 6}
	props["details"] = map[string]any{"type": "object"}
	props["device_id"] = map[string]any{"type": "string", "minLength": 1, "maxLength": 256}
	var all []any
	defs := map[string]any{}
	for _, t := range Types() {
		s := registry[t]
		defs[t] = structSchema(s.details)
		all = append(all, map[string]any{
			"if": map[string]any{"properties": map[string]any{"type": map[string]any{"const": t}}},
			"then": map[string]any{"properties": map[string]any{
				"class_uid":  map[string]any{"const": s.ClassUID},
				"class_name": map[string]any{"const": s.ClassName},
				"details":    map[string]any{"$ref": "#/$defs/" + t},
			}},
		})
	}
	env["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	env["$id"] = "https://github.com/bulwark-iot/bulwark/internal/events/schema.json"
	env["title"] = fmt.Sprintf("Bulwark security event, schema version %s (OCSF %s aligned)", SchemaVersion, OCSFVersion)
	env["allOf"] = all
	env["$defs"] = defs
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	required := []string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, omit := jsonName(f)
		if !omit {
			required = append(required, name)
		}
		props[name] = fieldSchema(f)
	}
	return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

func fieldSchema(f reflect.StructField) map[string]any {
	t := f.Type
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var s map[string]any
	_, omit := jsonName(f)
	switch {
	case t == reflect.TypeFor[time.Time]():
		s = map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.String:
		s = map[string]any{"type": "string", "maxLength": maxString}
		if !omit {
			s["minLength"] = 1
		}
		if enum := f.Tag.Get("enum"); enum != "" {
			s = map[string]any{"enum": strings.Split(enum, "|")}
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64 || t.Kind() == reflect.Uint64:
		s = map[string]any{"type": "integer"}
		if t.Kind() == reflect.Uint64 {
			s["minimum"] = 0
		}
		for _, k := range []string{"min", "max"} {
			if v := f.Tag.Get(k); v != "" {
				var n int64
				fmt.Sscan(v, &n)
				s[map[string]string{"min": "minimum", "max": "maximum"}[k]] = n
			}
		}
	case t.Kind() == reflect.Struct:
		s = structSchema(t)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		s = map[string]any{"type": "array", "items": structSchema(t.Elem())}
		if v := f.Tag.Get("max"); v != "" {
			var n int64
			fmt.Sscan(v, &n)
			s["maxItems"] = n
		}
	default:
		s = map[string]any{}
	}
	if d := f.Tag.Get("doc"); d != "" {
		s["description"] = d
	}
	return s
}

// Doc renders docs/events.md from the registry.
func Doc() (string, error) {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Security events\n\n")
	w("<!-- Generated from internal/events by `go test ./internal/events -update`; a test keeps it in sync. -->\n\n")
	w("Every security event and log record that Bulwark emits uses one JSON envelope, schema version `%s`, aligned with **OCSF %s**: ", SchemaVersion, OCSFVersion)
	w("where OCSF has a class for an event, the event carries that class's `class_uid` and `class_name`; ")
	w("Bulwark-specific classes are numbered in a private extension (uid %d): `class_uid` = %d × 100000 + category × 1000 + n. ", ExtensionUID, ExtensionUID)
	w("Severity uses OCSF's `severity_id` and `severity`.\n\n")
	w("The machine-readable JSON Schema is [`internal/events/schema.json`](../internal/events/schema.json). ")
	w("Decoders refuse events over %d bytes, unknown fields, missing required fields, and strings over %d bytes.\n\n", MaxEventSize, maxString)
	w("## Local journal and overflow policy\n\n")
	w("The agent writes every event to a tamper-evident local journal (`internal/agent/journal`) before forwarding it. ")
	w("The journal assigns `seq` (1, 2, 3, … per device) and stores one record per line in segment files of bounded size: ")
	w("`{\"seq\":N,\"prev_hash\":\"…\",\"hash\":\"…\",\"event\":{…}}`, where `hash` is SHA-256 over the length-prefixed seq, `prev_hash` and event bytes, ")
	w("so altering, deleting or reordering a record breaks the chain and verification names the first bad seq. ")
	w("Checkpoints of (seq, hash), signed by the device key (ECDSA P-256 over SHA-256), are stored alongside and also catch a truncated tail.\n\n")
	w("Disk use is capped. Records the server has acknowledged are deleted first (whole segments, oldest first). ")
	w("If the cap is reached with unacknowledged records, the oldest of them are dropped and a `journal.gap` event (severity High) ")
	w("is appended naming the lost range from the first unacknowledged seq: a security event is never dropped silently. ")
	w("A record torn by a crash mid-write is truncated when the journal is reopened. ")
	w("At every start the agent verifies the whole chain and the signed checkpoints on disk: a record altered, removed or reordered while it was stopped ")
	w("(even one the server already holds) is recorded as an `integrity.result` of check `journal` with outcome `fail`, which raises the `journal.tamper` alert. ")
	w("A journal that cannot be opened at all is kept aside, recorded the same way, and replaced by a new one whose seqs continue past the old one's.\n\n")
	w("## Forwarding, time and storage on the server\n\n")
	w("The agent forwards the records the server has not acknowledged with `POST /device/v1/events` (mutual TLS; see `docs/openapi.json`): ")
	w("batches of at most 500 records and 1 MiB, paced to at most 2,000 records/s so that a fleet returning from an outage replays its backlog gently (`bulwark-agent run --event-rate`), ")
	w("retried with exponential backoff and jitter. The server answers only once the batch is durably stored, naming the highest `seq` it holds; ")
	w("the agent then acknowledges, and may delete, exactly those records. A signed checkpoint may go with a batch; the server verifies it with the device certificate's key.\n\n")
	w("The server checks every record before storing any (the event against this schema, `device_id` against the authenticated device, `seq`, `hash`) and refuses a bad batch whole. ")
	w("It stores records once per (device, `seq`), so a resent batch is never duplicated, and checks that each record links to the last one it holds: ")
	w("a sequence gap is stored as a `journal.gap` event with reason `missing`, a broken link or a resent record that differs as `journal.chain_broken`. ")
	w("A record the server refuses for good (not valid against the schema, or altered so that it no longer matches its hash) is passed over by the agent so that it does not hold up later ones; the server stores the gap it leaves. ")
	w("Events the server raises itself carry the `seq` of the record concerned and `device_time` equal to `server_time`, and are listed with source `server`.\n\n")
	w("`device_time` is the device's clock; `server_time` is set by the server on receipt (a device may not send it). ")
	w("At each check-in the agent measures its clock's offset from the server's (server time minus the midpoint of the request) ")
	w("and records `clock.offset` when it passes 5 s (`bulwark-agent run --clock-threshold`); the health check `clock` reports the offset.\n\n")
	w("The server keeps events for 90 days by default (`bulwark server --event-retention-days`). ")
	w("Administrators search them with `GET /api/v1/events` (`bulwark events list`) and export them as JSON lines, one envelope with `server_time` per line, ")
	w("with `GET /api/v1/events/export` (`bulwark events export`), each limited to the device groups they may see. ")
	w("On the device, `bulwark-agent events [--follow] [--json]` shows the journal through the agent's root-only socket.\n\n")
	w("## Envelope\n\n")
	fieldTable(&b, reflect.TypeFor[Event](), "")
	w("\n## Event types\n\n| Type | OCSF class_uid | class_name |\n|---|---|---|\n")
	for _, t := range Types() {
		s := registry[t]
		std := "Bulwark extension"
		if s.OCSF {
			std = "OCSF " + OCSFVersion
		}
		w("| [`%s`](#%s) | %d (%s) | %s |\n", t, strings.ReplaceAll(t, ".", ""), s.ClassUID, std, s.ClassName)
	}
	for _, t := range Types() {
		s := registry[t]
		w("\n### `%s`\n\n%s\n\nClass: `%d` %s.\n\nDetails fields:\n\n", t, s.Description, s.ClassUID, s.ClassName)
		fieldTable(&b, s.details, "")
		ev, err := Example(t)
		if err != nil {
			return "", err
		}
		j, err := json.MarshalIndent(ev, "", "  ")
		if err != nil {
			return "", err
		}
		w("\nExample:\n\n```json\n%s\n```\n", j)
	}
	return b.String(), nil
}

func fieldTable(b *strings.Builder, t reflect.Type, prefix string) {
	if prefix == "" {
		fmt.Fprintf(b, "| Field | Type | Required | Description |\n|---|---|---|---|\n")
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, omit := jsonName(f)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		typ := map[reflect.Kind]string{reflect.String: "string", reflect.Int: "integer", reflect.Int64: "integer", reflect.Uint64: "integer", reflect.Struct: "object", reflect.Interface: "object"}[ft.Kind()]
		elem := ft
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			elem = ft.Elem()
			typ = "array of objects"
			if m := f.Tag.Get("max"); m != "" {
				typ += " (at most " + m + ")"
			}
		}
		if ft == reflect.TypeFor[time.Time]() {
			typ = "string (date-time)"
		}
		if e := f.Tag.Get("enum"); e != "" {
			typ = "`" + strings.ReplaceAll(e, "|", "` \\| `") + "`"
		}
		req := "yes"
		if omit {
			req = "no"
		}
		fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, name, typ, req, strings.ReplaceAll(f.Tag.Get("doc"), "|", "\\|"))
		if elem.Kind() == reflect.Struct && elem != reflect.TypeFor[time.Time]() {
			fieldTable(b, elem, prefix+name+".")
		}
	}
}
