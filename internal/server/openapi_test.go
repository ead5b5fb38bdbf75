package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// openAPIDocsCopy is the copy of openapi.json for readers of docs/.
const openAPIDocsCopy = "../../docs/openapi.json"

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPIInSync keeps the embedded openapi.json, its copy
// docs/openapi.json, the route table and the wire types in step.
func TestOpenAPIInSync(t *testing.T) {
	spec := openAPISpec
	var doc map[string]any
	if err := json.Unmarshal(spec, &doc); err != nil {
		t.Fatalf("the embedded openapi.json is not valid JSON: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi.json: openapi is %q, want an OpenAPI 3.x version", v)
	}
	for _, k := range []string{"info", "paths", "components"} {
		if _, ok := doc[k].(map[string]any); !ok {
			t.Fatalf("openapi.json: %q is missing or not an object", k)
		}
	}

	t.Run("docs copy", func(t *testing.T) {
		docs, err := os.ReadFile(openAPIDocsCopy)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(docs, spec) {
			t.Errorf("docs/openapi.json differs from internal/server/openapi.json; copy it: cp internal/server/openapi.json docs/openapi.json")
		}
	})

	t.Run("refs resolve", func(t *testing.T) {
		openAPIWalk(doc, "#", func(ptr string, m map[string]any) {
			r, ok := m["$ref"]
			if !ok {
				return
			}
			s, _ := r.(string)
			if _, err := openAPIResolve(doc, s); err != nil {
				t.Errorf("%s: $ref %q: %v", ptr, r, err)
			}
		})
	})

	ops := openAPIOperations(t, doc)

	t.Run("operations well-formed", func(t *testing.T) {
		ids := map[string]string{}
		for key, o := range ops {
			id, _ := o["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", key)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("%s: operationId %q also used by %s", key, id, prev)
			}
			ids[id] = key
			if rs, _ := o["responses"].(map[string]any); len(rs) == 0 {
				t.Errorf("%s: no responses", key)
			}
			// Every {name} in the path has a path parameter, and no more.
			path := strings.SplitN(key, " ", 2)[1]
			declared := map[string]bool{}
			params, _ := o["parameters"].([]any)
			for _, p := range params {
				pm, _ := p.(map[string]any)
				if r, ok := pm["$ref"].(string); ok {
					v, err := openAPIResolve(doc, r)
					if err != nil {
						continue // reported by "refs resolve"
					}
					pm, _ = v.(map[string]any)
				}
				if pm["in"] == "path" {
					name, _ := pm["name"].(string)
					declared[name] = true
					if pm["required"] != true {
						t.Errorf("%s: path parameter %q is not required", key, name)
					}
				}
			}
			for _, name := range openAPIPathParams(path) {
				if !declared[name] {
					t.Errorf("%s: path parameter {%s} is not declared", key, name)
				}
				delete(declared, name)
			}
			for name := range declared {
				t.Errorf("%s: declares path parameter %q that is not in the path", key, name)
			}
		}
	})

	srv, url, client := startOpenAPITestServer(t)

	t.Run("routes match", func(t *testing.T) {
		routes := map[string]bool{}
		for _, r := range srv.Routes() {
			key := r[0] + " " + r[1]
			routes[key] = true
			if _, ok := ops[key]; !ok {
				t.Errorf("route %s is not in openapi.json", key)
			}
		}
		if len(routes) == 0 {
			t.Fatal("the server lists no routes")
		}
		for key := range ops {
			if !routes[key] {
				t.Errorf("openapi.json describes %s, which is not a route of the server", key)
			}
		}
	})

	// x-bulwark-auth states each operation's authentication: it must be
	// the route's Auth, and the security requirements must agree.
	t.Run("auth kinds", func(t *testing.T) {
		for _, r := range srv.routes {
			key := r.Method + " " + r.Path
			o, ok := ops[key]
			if !ok {
				continue // reported by "routes match"
			}
			if got, _ := o["x-bulwark-auth"].(string); got != r.Auth {
				t.Errorf("%s: x-bulwark-auth is %q, but the route's Auth is %q", key, got, r.Auth)
			}
			sec, hasSec := o["security"].([]any)
			switch r.Auth {
			case "public":
				if !hasSec || len(sec) != 0 {
					t.Errorf("%s: a public operation must say security: []", key)
				}
			case "device":
				if len(sec) != 0 {
					t.Errorf("%s: a device operation (mutual TLS) must list no security schemes", key)
				}
			default:
				if len(sec) == 0 {
					t.Errorf("%s: an admin operation must list its security schemes", key)
				}
			}
		}
	})

	t.Run("served", func(t *testing.T) {
		resp, err := client.Get(url + "/api/v1/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/openapi.json: status %d", resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET /api/v1/openapi.json: Content-Type %q, want application/json", ct)
		}
		if !bytes.Equal(got, spec) {
			t.Errorf("GET /api/v1/openapi.json returned %d bytes that differ from the embedded spec (%d bytes)", len(got), len(spec))
		}
		file, err := os.ReadFile("openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, file) {
			t.Errorf("GET /api/v1/openapi.json differs from internal/server/openapi.json on disk")
		}
	})

	t.Run("schemas match types", func(t *testing.T) {
		schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
		for _, c := range openAPIWireTypes {
			name := c.schema
			if name == "" {
				name = c.typ.Name()
			}
			sch, ok := schemas[name].(map[string]any)
			if !ok {
				t.Errorf("components.schemas has no %s for %s", name, c.typ)
				continue
			}
			openAPICheckSchema(t, name, sch, c.typ, c.response)
		}
	})
}

// startOpenAPITestServer runs a real server (SQLite in a temporary
// directory) on a loopback port until the test ends, and returns it with
// its base URL and a client that trusts it.
func startOpenAPITestServer(t *testing.T) (*Server, string, *http.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, Config{DataDir: t.TempDir(), Listen: ln.Addr().String(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not stop within 20 s")
		}
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CACertPEM())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return srv, "https://" + ln.Addr().String(), &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// openAPIWireTypes are the wire types with a schema in components, named
// as the type unless schema says otherwise. For response types every field
// without omitempty must be required in the schema.
var openAPIWireTypes = []struct {
	typ      reflect.Type
	response bool
	schema   string
}{
	// The types whose drift would hurt most.
	{typ: reflect.TypeFor[api.EnrollRequest](), response: false},
	{typ: reflect.TypeFor[api.CheckinRequest](), response: false},
	{typ: reflect.TypeFor[api.CheckinResponse](), response: true},
	{typ: reflect.TypeFor[api.Device](), response: true},
	{typ: reflect.TypeFor[api.EnrollToken](), response: true},
	{typ: reflect.TypeFor[api.APIToken](), response: true},
	{typ: reflect.TypeFor[api.AuditEntry](), response: true},
	// And the rest of the wire types.
	{typ: reflect.TypeFor[api.Error](), response: true},
	{typ: reflect.TypeFor[api.EnrollResponse](), response: true},
	{typ: reflect.TypeFor[api.RenewRequest](), response: false},
	{typ: reflect.TypeFor[api.Inventory](), response: false},
	{typ: reflect.TypeFor[api.Interface](), response: false},
	{typ: reflect.TypeFor[api.Health](), response: false},
	{typ: reflect.TypeFor[api.HealthCheck](), response: false},
	{typ: reflect.TypeFor[api.CommandAck](), response: false},
	{typ: reflect.TypeFor[api.Command](), response: true},
	{typ: reflect.TypeFor[api.UpdateAssignment](), response: true},
	{typ: reflect.TypeFor[api.CommandsWaitResponse](), response: true},
	{typ: reflect.TypeFor[api.CertInfo](), response: true},
	{typ: reflect.TypeFor[api.DeviceList](), response: true},
	{typ: reflect.TypeFor[api.FleetSummary](), response: true},
	{typ: reflect.TypeFor[api.EnrollTokenCreate](), response: false},
	{typ: reflect.TypeFor[api.Group](), response: false},
	{typ: reflect.TypeFor[api.Grant](), response: false},
	{typ: reflect.TypeFor[api.User](), response: true},
	{typ: reflect.TypeFor[api.UserCreate](), response: false},
	{typ: reflect.TypeFor[api.UserCreated](), response: true},
	{typ: reflect.TypeFor[api.TOTPEnrollment](), response: true},
	{typ: reflect.TypeFor[api.TOTPConfirm](), response: false},
	{typ: reflect.TypeFor[api.APITokenCreate](), response: false},
	{typ: reflect.TypeFor[api.AuditPage](), response: true},
	{typ: reflect.TypeFor[api.CommandCreate](), response: false},
	{typ: reflect.TypeFor[api.CommandStatus](), response: true},
	{typ: reflect.TypeFor[api.Whoami](), response: true},
	{typ: reflect.TypeFor[api.UpdateStatus](), response: false},
	{typ: reflect.TypeFor[api.TPMEnrollment](), response: false},
	{typ: reflect.TypeFor[api.AKParameters](), response: false},
	{typ: reflect.TypeFor[api.CertifyParameters](), response: false},
	{typ: reflect.TypeFor[api.ActivationAnswer](), response: false},
	{typ: reflect.TypeFor[api.ActivationChallenge](), response: true},
	{typ: reflect.TypeFor[api.PCRValue](), response: false},
	{typ: reflect.TypeFor[api.FileMeasurement](), response: false},
	{typ: reflect.TypeFor[api.Evidence](), response: false},
	{typ: reflect.TypeFor[api.TrustVector](), response: true},
	{typ: reflect.TypeFor[api.AttestationResult](), response: true},
	{typ: reflect.TypeFor[api.AttestNonce](), response: true},
	{typ: reflect.TypeFor[api.AttestRequest](), response: true},
	{typ: reflect.TypeFor[api.AttestationList](), response: true},
	{typ: reflect.TypeFor[api.SignedHealthReport](), response: false},
	{typ: reflect.TypeFor[api.HealthReportView](), response: true},
	{typ: reflect.TypeFor[api.HealthReportList](), response: true},
	{typ: reflect.TypeFor[api.TrustUpdate](), response: false},
	{typ: reflect.TypeFor[api.EKRegistration](), response: false},
	{typ: reflect.TypeFor[api.EKRegistrationCreate](), response: false},
	{typ: reflect.TypeFor[api.EKRegistrationList](), response: true},
	{typ: reflect.TypeFor[api.InstalledRelease](), response: false},
	{typ: reflect.TypeFor[api.Release](), response: true},
	{typ: reflect.TypeFor[api.VersionFloor](), response: false},
	{typ: reflect.TypeFor[api.DeploymentCreate](), response: false},
	{typ: reflect.TypeFor[api.Deployment](), response: true},
	{typ: reflect.TypeFor[api.DeploymentDevice](), response: true},
	{typ: reflect.TypeFor[api.DeploymentEvent](), response: true},
	{typ: reflect.TypeFor[api.Alert](), response: true},
	{typ: reflect.TypeFor[api.AlertEventRef](), response: true},
	{typ: reflect.TypeFor[api.AlertList](), response: true},
	{typ: reflect.TypeFor[api.DeploymentAction](), response: false},
	{typ: reflect.TypeFor[api.MaintenanceWindow](), response: false},
	{typ: reflect.TypeFor[api.IoCSource](), response: true},
	{typ: reflect.TypeFor[api.IoCSourceList](), response: true},
	{typ: reflect.TypeFor[api.IoCImportResult](), response: true},
	{typ: reflect.TypeFor[api.IoCFeedCreate](), response: false},
	{typ: reflect.TypeFor[api.IoCIndicator](), response: true},
	{typ: reflect.TypeFor[api.IoCIndicatorList](), response: true},
	{typ: reflect.TypeFor[api.DeviceIoC](), response: true},
	{typ: reflect.TypeFor[api.DeviceIoCSet](), response: true},
	{typ: reflect.TypeFor[api.EventBatch](), response: false},
	{typ: reflect.TypeFor[api.JournalCheckpoint](), response: false},
	{typ: reflect.TypeFor[api.EventBatchResponse](), response: true},
	{typ: reflect.TypeFor[api.EventPage](), response: true},
	{typ: reflect.TypeFor[loginRequest](), response: false, schema: "LoginRequest"},
	{typ: reflect.TypeFor[loginResponse](), response: true, schema: "LoginResponse"},
}

// openAPIField is one field of a type's JSON encoding.
type openAPIField struct {
	name      string
	omitempty bool
	typ       reflect.Type
}

// openAPIJSONFields lists the JSON fields of struct type t as encoding/json sees
// them, flattening embedded structs.
func openAPIJSONFields(t reflect.Type) []openAPIField {
	var out []openAPIField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, openAPIJSONFields(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, openAPIField{name: name, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty"), typ: f.Type})
	}
	return out
}

// openAPICheckSchema compares a component schema with the Go type it describes.
func openAPICheckSchema(t *testing.T, name string, sch map[string]any, typ reflect.Type, response bool) {
	t.Helper()
	props, _ := sch["properties"].(map[string]any)
	required := map[string]bool{}
	if rs, ok := sch["required"].([]any); ok {
		for _, r := range rs {
			s, _ := r.(string)
			required[s] = true
		}
	}
	fields := map[string]openAPIField{}
	for _, f := range openAPIJSONFields(typ) {
		fields[f.name] = f
		p, ok := props[f.name].(map[string]any)
		if !ok {
			t.Errorf("schema %s: no property %q for field of %s", name, f.name, typ)
			continue
		}
		if err := openAPICheckProp(p, f.typ); err != nil {
			t.Errorf("schema %s: property %q: %v", name, f.name, err)
		}
		if response && !f.omitempty && !required[f.name] {
			t.Errorf("schema %s: %q is always sent (no omitempty in %s) but not required", name, f.name, typ)
		}
	}
	for p := range props {
		if _, ok := fields[p]; !ok {
			t.Errorf("schema %s: property %q is not a JSON field of %s", name, p, typ)
		}
	}
	for r := range required {
		if _, ok := fields[r]; !ok {
			t.Errorf("schema %s: required %q is not a JSON field of %s", name, r, typ)
		}
	}
}

var openAPITimeType = reflect.TypeFor[time.Time]()

// openAPICheckProp checks that property schema p can describe Go type t.
func openAPICheckProp(p map[string]any, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// A $ref, directly or as the single member of allOf, names the schema
	// of the Go struct type.
	ref, _ := p["$ref"].(string)
	if all, ok := p["allOf"].([]any); ok && len(all) == 1 {
		m, _ := all[0].(map[string]any)
		ref, _ = m["$ref"].(string)
	}
	if ref != "" {
		want := "#/components/schemas/" + t.Name()
		if t.Kind() != reflect.Struct || t == openAPITimeType || ref != want {
			return fmt.Errorf("refers to %s, but the Go type is %s", ref, t)
		}
		return nil
	}
	typ, _ := p["type"].(string)
	want := ""
	switch {
	case t == openAPITimeType:
		if p["format"] != "date-time" {
			return fmt.Errorf("Go type time.Time needs format date-time")
		}
		want = "string"
	case t.Kind() == reflect.String:
		want = "string"
	case t.Kind() == reflect.Bool:
		want = "boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		want = "integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		want = "number"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		// encoding/json writes []byte as a base64 string.
		if p["format"] != "byte" {
			return fmt.Errorf("Go type []byte needs type string with format byte")
		}
		want = "string"
	case t.Kind() == reflect.Slice:
		if typ != "array" {
			return fmt.Errorf("type %q, but the Go type is %s", typ, t)
		}
		items, _ := p["items"].(map[string]any)
		if items == nil {
			return fmt.Errorf("array without items")
		}
		return openAPICheckProp(items, t.Elem())
	case t.Kind() == reflect.Map:
		if typ != "object" || t.Key().Kind() != reflect.String {
			return fmt.Errorf("type %q, but the Go type is %s", typ, t)
		}
		items, _ := p["additionalProperties"].(map[string]any)
		if items == nil {
			return fmt.Errorf("map without additionalProperties")
		}
		return openAPICheckProp(items, t.Elem())
	case t.Kind() == reflect.Struct:
		return fmt.Errorf("Go type %s needs a $ref to #/components/schemas/%s", t, t.Name())
	default:
		return fmt.Errorf("Go type %s is not handled by this test", t)
	}
	if typ != want {
		return fmt.Errorf("type %q, but the Go type %s needs %q", typ, t, want)
	}
	return nil
}

// openAPIOperations returns the spec's operations keyed "METHOD /path".
func openAPIOperations(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	ops := map[string]map[string]any{}
	paths := doc["paths"].(map[string]any)
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		item, ok := paths[p].(map[string]any)
		if !ok {
			t.Errorf("paths[%q] is not an object", p)
			continue
		}
		for k, v := range item {
			if !slices.Contains(openAPIMethods, k) {
				continue
			}
			o, ok := v.(map[string]any)
			if !ok {
				t.Errorf("paths[%q].%s is not an object", p, k)
				continue
			}
			ops[strings.ToUpper(k)+" "+p] = o
		}
	}
	return ops
}

// openAPIPathParams returns the {names} in an OpenAPI or ServeMux path.
func openAPIPathParams(path string) []string {
	var out []string
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, strings.TrimSuffix(path[i+1:i+j], "..."))
		path = path[i+j+1:]
	}
}

// openAPIWalk calls f for every object in v, with its JSON pointer.
func openAPIWalk(v any, ptr string, f func(string, map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(ptr, v)
		for k, c := range v {
			openAPIWalk(c, ptr+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k), f)
		}
	case []any:
		for i, c := range v {
			openAPIWalk(c, ptr+"/"+strconv.Itoa(i), f)
		}
	}
}

// openAPIResolve resolves a local reference "#/a/b" in doc.
func openAPIResolve(doc any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference")
	}
	cur := doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("no %q", tok)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("no index %q", tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%q: not an object or array", tok)
		}
	}
	return cur, nil
}
