package events

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/events.md, schema.json and the fuzz seed corpus")

const docPath = "../../docs/events.md"

func exampleJSON(t testing.TB, typ string) []byte {
	t.Helper()
	ev, err := Example(typ)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	for _, typ := range Types() {
		b := exampleJSON(t, typ)
		ev, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		b2, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("%s: round trip differs:\n%s\n%s", typ, b, b2)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := exampleJSON(t, TypeNetConnection)
	var m map[string]any
	json.Unmarshal(good, &m)
	mut := func(f func(m map[string]any)) []byte {
		var c map[string]any
		json.Unmarshal(good, &c)
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	cases := map[string][]byte{
		"unknown envelope field": mut(func(m map[string]any) { m["extra"] = 1 }),
		"unknown details field":  mut(func(m map[string]any) { m["details"].(map[string]any)["extra"] = 1 }),
		"missing seq":            mut(func(m map[string]any) { delete(m, "seq") }),
		"zero seq":               mut(func(m map[string]any) { m["seq"] = 0 }),
		"missing device_id":      mut(func(m map[string]any) { delete(m, "device_id") }),
		"missing device_time":    mut(func(m map[string]any) { delete(m, "device_time") }),
		"missing details":        mut(func(m map[string]any) { delete(m, "details") }),
		"null details":           mut(func(m map[string]any) { m["details"] = nil }),
		"missing detail field":   mut(func(m map[string]any) { delete(m["details"].(map[string]any), "dst_ip") }),
		"bad enum":               mut(func(m map[string]any) { m["details"].(map[string]any)["protocol"] = "sctp" }),
		"port out of range":      mut(func(m map[string]any) { m["details"].(map[string]any)["dst_port"] = 70000 }),
		"wrong class":            mut(func(m map[string]any) { m["class_uid"] = 4002 }),
		"wrong version":          mut(func(m map[string]any) { m["schema_version"] = "2" }),
		"unknown type":           mut(func(m map[string]any) { m["type"] = "nope" }),
		"severity mismatch":      mut(func(m map[string]any) { m["severity"] = "High" }),
		"nested unknown field":   mut(func(m map[string]any) { m["details"].(map[string]any)["process"].(map[string]any)["x"] = 1 }),
		"trailing data":          append(append([]byte{}, good...), []byte(" {}")...),
		"too large":              mut(func(m map[string]any) { m["pad"] = strings.Repeat("a", MaxEventSize) }),
		"long string":            mut(func(m map[string]any) { m["details"].(map[string]any)["src_ip"] = strings.Repeat("a", maxString+1) }),
		"not json":               []byte("{"),
	}
	for name, b := range cases {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := Decode(good); err != nil {
		t.Fatal(err)
	}
}

func TestNew(t *testing.T) {
	ev, err := New(TypeJournalGap, "d1", SeverityHigh, time.Now(), JournalGap{FromSeq: 1, ToSeq: 2, Reason: "overflow"})
	if err != nil {
		t.Fatal(err)
	}
	if ev.ClassUID != ExtensionUID*100000+6005 || ev.Severity != "High" {
		t.Fatalf("%+v", ev)
	}
	if _, err := ev.Marshal(); err == nil {
		t.Fatal("marshalled without seq")
	}
	if _, err := New(TypeJournalGap, "d1", SeverityHigh, time.Now(), ClockOffset{}); err == nil {
		t.Fatal("wrong details type accepted")
	}
	if _, err := New(TypeAuthLogin, "d1", 9, time.Now(), AuthLogin{Activity: "logon", Outcome: "success", Service: "ssh", User: "u"}); err == nil {
		t.Fatal("bad severity accepted")
	}
}

func TestOCSFClasses(t *testing.T) {
	want := map[string]struct {
		uid  int
		name string
	}{
		TypeAuthLogin: {3002, "Authentication"}, TypeNetConnection: {4001, "Network Activity"},
		TypeFileActivity: {1001, "File System Activity"}, TypeProcessActivity: {1007, "Process Activity"},
		TypeConfigChange: {5019, "Device Config State Change"}, TypeDNSQuery: {4003, "DNS Activity"},
	}
	for typ, w := range want {
		s, _ := Lookup(typ)
		if s.ClassUID != w.uid || s.ClassName != w.name || !s.OCSF {
			t.Errorf("%s: %d %q", typ, s.ClassUID, s.ClassName)
		}
	}
	uids := map[int]string{}
	for _, typ := range Types() {
		s, _ := Lookup(typ)
		if o, dup := uids[s.ClassUID]; dup {
			t.Errorf("%s and %s share class %d", typ, o, s.ClassUID)
		}
		uids[s.ClassUID] = typ
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s is out of date with the Go types: run go test ./internal/events -update", path)
	}
}

// TestSchema checks schema.json against the Go types: it is what Schema()
// generates, and independently every type's details properties and required
// lists match the fields the Go structs encode.
func TestSchema(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "schema.json", b)
	var s struct {
		Properties map[string]any `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]any `json:"properties"`
			Required   []string       `json:"required"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	env := map[string]any{}
	json.Unmarshal(exampleJSON(t, TypeAuthLogin), &env)
	if !sameKeys(s.Properties, env) {
		t.Errorf("envelope schema %v vs encoded %v", keys(s.Properties), keys(env))
	}
	for _, typ := range Types() {
		d, ok := s.Defs[typ]
		if !ok {
			t.Fatalf("schema lacks %s", typ)
		}
		// A fully populated details value encodes every property.
		spec, _ := Lookup(typ)
		full := fill(reflect.New(spec.details).Elem())
		enc, _ := json.Marshal(full.Interface())
		var m map[string]any
		json.Unmarshal(enc, &m)
		if !sameKeys(d.Properties, m) {
			t.Errorf("%s: schema %v vs Go %v", typ, keys(d.Properties), keys(m))
		}
		// Required fields are exactly those an empty value still encodes.
		empty, _ := json.Marshal(reflect.New(spec.details).Interface())
		var e map[string]any
		json.Unmarshal(empty, &e)
		req := append([]string{}, d.Required...)
		sort.Strings(req)
		if fmt.Sprint(req) != fmt.Sprint(keys(e)) {
			t.Errorf("%s: required %v vs Go %v", typ, req, keys(e))
		}
	}
	if len(s.Defs) != len(Types()) {
		t.Errorf("schema has %d types, registry %d", len(s.Defs), len(Types()))
	}
}

func fill(v reflect.Value) reflect.Value {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int, reflect.Int64:
			f.SetInt(1)
		case reflect.Uint64:
			f.SetUint(1)
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			fill(p.Elem())
			f.Set(p)
		case reflect.Struct:
			fill(f)
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.Struct {
				s := reflect.MakeSlice(f.Type(), 1, 1)
				fill(s.Index(0))
				f.Set(s)
			}
		}
	}
	return v
}

func keys(m map[string]any) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

func sameKeys(a, b map[string]any) bool { return fmt.Sprint(keys(a)) == fmt.Sprint(keys(b)) }

var (
	headingRE = regexp.MustCompile("(?m)^### `([a-z0-9_.]+)`$")
	jsonRE    = regexp.MustCompile("(?s)```json\n(.*?)\n```")
	fieldRE   = regexp.MustCompile("(?m)^\\| `([a-z0-9_.]+)` \\|")
)

// TestDocInSync keeps docs/events.md and the code in sync: the file is what
// Doc() generates, and independently of the generator every registered type
// has a section, every section names a registered type, every details field
// is listed, and every example decodes as its section's type.
func TestDocInSync(t *testing.T) {
	d, err := Doc()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, docPath, []byte(d))
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	locs := headingRE.FindAllStringSubmatchIndex(doc, -1)
	documented := map[string]bool{}
	for i, l := range locs {
		typ := doc[l[2]:l[3]]
		end := len(doc)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		section := doc[l[1]:end]
		spec, ok := Lookup(typ)
		if !ok {
			t.Errorf("docs/events.md documents %q, which is not a registered type", typ)
			continue
		}
		documented[typ] = true
		listed := map[string]bool{}
		for _, m := range fieldRE.FindAllStringSubmatch(section, -1) {
			listed[m[1]] = true
		}
		full, _ := json.Marshal(fill(reflect.New(spec.details).Elem()).Interface())
		for _, f := range flatKeys("", full) {
			if !listed[f] {
				t.Errorf("%s: field %s is not documented", typ, f)
			}
		}
		ex := jsonRE.FindStringSubmatch(section)
		if ex == nil {
			t.Errorf("%s: no example", typ)
			continue
		}
		ev, err := Decode([]byte(ex[1]))
		if err != nil {
			t.Errorf("%s: example does not decode: %v", typ, err)
		} else if ev.Type != typ {
			t.Errorf("%s: example is a %s", typ, ev.Type)
		}
	}
	for _, typ := range Types() {
		if !documented[typ] {
			t.Errorf("type %s is not documented in docs/events.md", typ)
		}
	}
}

func flatKeys(prefix string, b []byte) []string {
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m)
	var out []string
	for k, v := range m {
		out = append(out, prefix+k)
		if len(v) > 0 && v[0] == '{' {
			out = append(out, flatKeys(prefix+k+".", v)...)
		}
	}
	return out
}

// TestFuzzCorpus writes (with -update) or checks the committed seed corpus:
// one seed per type's example.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for _, typ := range Types() {
		path := filepath.Join(dir, "example-"+typ)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", exampleJSON(t, typ))
		if *update {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("seed corpus lacks %s: run go test ./internal/events -update", path)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schema_version":"1","type":"journal.gap","details":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data)
		if err != nil {
			return
		}
		b, err := ev.Marshal()
		if err != nil {
			t.Fatalf("decoded event does not marshal: %v", err)
		}
		ev2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, b)
		}
		b2, _ := ev2.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatalf("encoding not stable:\n%s\n%s", b, b2)
		}
	})
}

// TestDecodeFastAgrees checks Decode's one-pass path takes every example
// and refuses what the general path refuses; FuzzDecodeFast checks it never
// accepts what the general path would not, with the same result.
func TestDecodeFastAgrees(t *testing.T) {
	for _, typ := range Types() {
		b := exampleJSON(t, typ)
		if _, ok := decodeFast(b); !ok {
			t.Errorf("%s: the example does not take the fast path", typ)
		}
	}
	good := exampleJSON(t, TypeNetConnection)
	for name, b := range map[string][]byte{
		"duplicate details": []byte(strings.Replace(string(good), `"details":{`, `"details":{"protocol":"tcp"},"details":{`, 1)),
		"escaped type":      []byte(strings.Replace(string(good), `"type":"net.connection"`, `"type":"net\u002econnection"`, 1)),
		"unknown field":     []byte(strings.Replace(string(good), `"details":{`, `"details":{"x":1,`, 1)),
		"trailing data":     append(append([]byte{}, good...), '{'),
	} {
		if _, ok := decodeFast(b); ok {
			t.Errorf("%s: took the fast path", name)
		}
	}
}

func FuzzDecodeFast(f *testing.F) {
	for _, typ := range Types() {
		ev, _ := Example(typ)
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeFast(data)
		if !ok {
			return
		}
		slow, err := decodeSlow(data)
		if err != nil {
			t.Fatalf("the fast path accepted what the general path refuses (%v): %q", err, data)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("the paths disagree: %+v vs %+v", fast, slow)
		}
	})
}

// TestDNSQueryRefuses checks the bounds of dns.query's answer list, which
// the general field rules do not cover on their own.
func TestDNSQueryRefuses(t *testing.T) {
	good := exampleJSON(t, TypeDNSQuery)
	mut := func(f func(d map[string]any)) []byte {
		var c map[string]any
		json.Unmarshal(good, &c)
		f(c["details"].(map[string]any))
		b, _ := json.Marshal(c)
		return b
	}
	answer := map[string]any{"type": "A", "rdata": "192.0.2.1", "ttl": 1}
	many := make([]any, MaxDNSAnswers+1)
	for i := range many {
		many[i] = answer
	}
	for name, b := range map[string][]byte{
		"too many answers":    mut(func(d map[string]any) { d["answers"] = many }),
		"answer type":         mut(func(d map[string]any) { d["answers"] = []any{map[string]any{"type": "MX", "rdata": "x", "ttl": 1}} }),
		"answer without data": mut(func(d map[string]any) { d["answers"] = []any{map[string]any{"type": "A", "ttl": 1}} }),
		"null answer":         mut(func(d map[string]any) { d["answers"] = []any{nil} }),
		"answer unknown key": mut(func(d map[string]any) {
			d["answers"] = []any{map[string]any{"type": "A", "rdata": "x", "ttl": 1, "x": 1}}
		}),
		"negative ttl":       mut(func(d map[string]any) { d["answers"] = []any{map[string]any{"type": "A", "rdata": "x", "ttl": -1}} }),
		"answers not a list": mut(func(d map[string]any) { d["answers"] = "x" }),
		"no hostname":        mut(func(d map[string]any) { delete(d, "hostname") }),
		"txid out of range":  mut(func(d map[string]any) { d["transaction_id"] = 65536 }),
		"tcp":                mut(func(d map[string]any) { d["protocol"] = "tcp" }),
	} {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	ok := mut(func(d map[string]any) { d["answers"] = many[:MaxDNSAnswers] })
	if _, err := Decode(ok); err != nil {
		t.Fatalf("%d answers: %v", MaxDNSAnswers, err)
	}
	noAnswer := mut(func(d map[string]any) { delete(d, "answers"); delete(d, "rcode"); delete(d, "answer_count") })
	if _, err := Decode(noAnswer); err != nil {
		t.Fatalf("query without a response: %v", err)
	}
}
