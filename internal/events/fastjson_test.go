package events

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestScanInto checks that every example takes scanInto's path and that
// forms it leaves to encoding/json are left to it.
func TestScanInto(t *testing.T) {
	for _, typ := range Types() {
		spec, _ := Lookup(typ)
		b := exampleJSON(t, typ)
		if !scanInto(b, reflect.New(envelopeType(spec)).Elem()) {
			t.Errorf("%s: the example is not decoded by scanInto", typ)
		}
	}
	spec, _ := Lookup(TypeNetConnection)
	good := string(exampleJSON(t, TypeNetConnection))
	for name, b := range map[string]string{
		"member in another case": strings.Replace(good, `"type":`, `"Type":`, 1),
		"repeated member":        strings.Replace(good, `"details":{`, `"details":{"protocol":"tcp",`, 1),
		"null":                   strings.Replace(good, `"details":{`, `"details":{"process":null,`, 1),
		"escaped member name":    strings.Replace(good, `"type":`, `"typ\u0065":`, 1),
		"number as float":        strings.Replace(good, `"severity_id":1`, `"severity_id":1.0`, 1),
		"leading zero":           strings.Replace(good, `"severity_id":1`, `"severity_id":01`, 1),
		"trailing data":          good + "{}",
		"unknown member":         strings.Replace(good, `"details":{`, `"details":{"x":1,`, 1),
	} {
		if scanInto([]byte(b), reflect.New(envelopeType(spec)).Elem()) {
			t.Errorf("%s: scanInto took it", name)
		}
	}
	// Escapes and non-ASCII text decode as encoding/json decodes them.
	odd := strings.Replace(good, `"/usr/bin/curl"`, `"/usr/bin/\u00e9\ud800\"x\"\u003c\/ é"`, 1)
	if odd == good {
		t.Fatal("example has no /usr/bin/curl")
	}
	compareScan(t, spec, []byte(odd), true)
}

// compareScan decodes data with scanInto and encoding/json and fails if
// scanInto accepts what encoding/json refuses or decodes it differently.
func compareScan(t *testing.T, spec Spec, data []byte, mustScan bool) {
	t.Helper()
	fast := reflect.New(envelopeType(spec))
	if !scanInto(data, fast.Elem()) {
		if mustScan {
			t.Fatalf("scanInto refused %s", data)
		}
		return
	}
	slow := reflect.New(envelopeType(spec))
	if err := strict(data, slow.Interface()); err != nil {
		t.Fatalf("scanInto accepted what encoding/json refuses (%v): %q", err, data)
	}
	if !reflect.DeepEqual(fast.Interface(), slow.Interface()) {
		f, _ := json.Marshal(fast.Interface())
		s, _ := json.Marshal(slow.Interface())
		t.Fatalf("scanInto decoded\n%s\nencoding/json\n%s", f, s)
	}
}

// FuzzScanInto checks scanInto against encoding/json on the envelope of
// every event type.
func FuzzScanInto(f *testing.F) {
	for _, typ := range Types() {
		ev, _ := Example(typ)
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	f.Add([]byte(`{"schema_version":"1","type":"net.connection","seq":-0,"severity_id":-0,"details":{"src_port":1e1,"process":{"path":"\u00e9\ud800x\"","pid":0}}}`))
	f.Add([]byte(" {\"type\" : \"x\" , \"device_time\":\"2026-11-26T20:00:00.5+01:00\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range Types() {
			spec, _ := Lookup(typ)
			compareScan(t, spec, data, false)
		}
	})
}

// BenchmarkDecode decodes a net.connection event (the bulk of what a
// server ingests): "scan" is Decode, "encoding_json" the same strict
// decode through encoding/json alone.
func BenchmarkDecode(b *testing.B) {
	ev, _ := Example(TypeNetConnection)
	ev.Seq = 1
	data, err := ev.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	spec, _ := Lookup(TypeNetConnection)
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for b.Loop() {
			if err := strict(data, reflect.New(envelopeType(spec)).Interface()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
