package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"

	_ "modernc.org/sqlite"
)

// device is a software device for tests: its own key and certificate.
type device struct {
	id     string
	key    *ecdsa.PrivateKey
	cert   *tls.Certificate
	client *deviceclient.Client
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func inventory(host string) *api.Inventory {
	return &api.Inventory{Hostname: host, OS: "linux", OSVersion: "Debian 12", Kernel: "6.1.0", Arch: "amd64", AgentVersion: "test",
		UptimeSeconds: 42, Interfaces: []api.Interface{{Name: "eth0", MAC: "02:00:00:00:00:01", Addrs: []string{"10.0.0.2/24"}, Up: true}}}
}

func enroll(t testing.TB, ts *servertest.Server, token, host string) *device {
	t.Helper()
	d, err := tryEnroll(ts, token, host)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tryEnroll(ts *servertest.Server, token, host string) (*device, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	if err != nil {
		return nil, err
	}
	csr, err := deviceclient.NewCSR(key)
	if err != nil {
		return nil, err
	}
	resp, err := c.Enroll(context.Background(), api.EnrollRequest{Token: token, CSR: csr, Inventory: inventory(host)})
	if err != nil {
		return nil, err
	}
	cert := tlsCert(resp.Certificate, key)
	c.SetCertificate(cert)
	return &device{id: resp.DeviceID, key: key, cert: cert, client: c}, nil
}

func tlsCert(certPEM string, key *ecdsa.PrivateKey) *tls.Certificate {
	b, _ := pem.Decode([]byte(certPEM))
	leaf, _ := x509.ParseCertificate(b.Bytes)
	return &tls.Certificate{Certificate: [][]byte{b.Bytes}, PrivateKey: key, Leaf: leaf}
}

func checkin(d *device, host string, acks ...api.CommandAck) (*api.CheckinResponse, error) {
	return d.client.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inventory(host), Health: api.Health{Status: "ok"}, Acks: acks})
}

func wantCode(t testing.TB, err error, status int, code string) {
	t.Helper()
	var e *deviceclient.Error
	if !errorsAs(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("got %v, want %d %s", err, status, code)
	}
}

func errorsAs(err error, e **deviceclient.Error) bool {
	for err != nil {
		if x, ok := err.(*deviceclient.Error); ok {
			*e = x
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestTLS12Refused(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	host := strings.TrimPrefix(ts.URL, "https://")
	_, err := tls.Dial("tcp", host, &tls.Config{RootCAs: ts.Roots, MaxVersion: tls.VersionTLS12, ServerName: "127.0.0.1"})
	if err == nil {
		t.Fatal("a TLS 1.2 client completed the handshake")
	}
	conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: ts.Roots, MinVersion: tls.VersionTLS13, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS 1.3 handshake: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %x", v)
	}
	conn.Close()
}

func TestPlainHTTPRefused(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	resp, err := http.Get("http://" + strings.TrimPrefix(ts.URL, "https://") + "/api/v1/devices")
	if err != nil {
		return // connection refused or reset is a refusal too
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP answered %d", resp.StatusCode)
	}
}

func TestEnrollAndCheckin(t *testing.T) {
	for _, backend := range storetest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			ts := servertest.Start(t, servertest.Options{DB: dbFor(t, backend)})
			var g api.Group
			if code := ts.Do(t, "POST", "/api/v1/groups", "", api.Group{Name: "lab"}, &g); code != 201 {
				t.Fatalf("create group: %d", code)
			}
			d := enroll(t, ts, ts.EnrollToken(t, 1, "lab"), "alpha")
			if !strings.HasPrefix(d.id, "dev_") {
				t.Fatalf("device ID %q", d.id)
			}
			resp, err := checkin(d, "alpha-renamed")
			if err != nil {
				t.Fatal(err)
			}
			if resp.CheckinInterval != 60 || resp.Commands == nil || resp.RenewCertificate {
				t.Fatalf("check-in answer %+v", resp)
			}
			var got api.Device
			if code := ts.Do(t, "GET", "/api/v1/devices/"+d.id, "", nil, &got); code != 200 {
				t.Fatalf("show device: %d", code)
			}
			if got.Hostname != "alpha-renamed" || got.LastSeen == nil || !got.Online || got.Group != "lab" ||
				got.Inventory == nil || got.Inventory.Kernel != "6.1.0" || got.Certificate == nil || got.KeyAssurance != "software" {
				t.Fatalf("device after check-in: %+v", got)
			}
			if up := got.Inventory.UptimeSeconds; up < 41 || up > 44 {
				t.Fatalf("uptime %d, device reported 42", up)
			}
			if got.Certificate.Serial != d.cert.Leaf.SerialNumber.Text(16) {
				t.Fatalf("certificate serial %s, device has %s", got.Certificate.Serial, d.cert.Leaf.SerialNumber.Text(16))
			}
			var list api.DeviceList
			ts.Do(t, "GET", "/api/v1/devices?q=renamed", "", nil, &list)
			if list.Total != 1 || list.Devices[0].ID != d.id {
				t.Fatalf("search: %+v", list)
			}
			// The token had one use.
			if _, err := tryEnroll(ts, ts.EnrollToken(t, 1, ""), "beta"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func dbFor(t *testing.T, backend store.Dialect) string {
	if backend == "sqlite" {
		return ""
	}
	return storetest.DSN(t, "postgres")
}

func TestEnrollTokenUsesAndBadInput(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := servertest.Start(t, servertest.Options{Config: server.Config{Now: clock}})
	tok := ts.EnrollToken(t, 1, "")
	enroll(t, ts, tok, "one")
	_, err := tryEnroll(ts, tok, "two")
	wantCode(t, err, 401, "token_used_up")
	_, err = tryEnroll(ts, "bwe_0123456789abcdef_"+strings.Repeat("A", 43), "x")
	wantCode(t, err, 401, "invalid_token")
	_, err = tryEnroll(ts, "not-a-token", "x")
	wantCode(t, err, 401, "invalid_token")

	expiring := ts.EnrollToken(t, 5, "")
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	_, err = tryEnroll(ts, expiring, "late")
	wantCode(t, err, 401, "token_expired")
	mu.Lock()
	now = time.Now()
	mu.Unlock()

	good := ts.EnrollToken(t, 100, "")
	post := func(body string) (int, api.Error) {
		resp, err := ts.HTTP.Post(ts.URL+api.PathEnroll, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	csr, _ := deviceclient.NewCSR(newKey(t))
	csrJSON, _ := json.Marshal(csr)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		msg        string
	}{
		{"malformed JSON", `{"token":`, 400, "bad_request", "malformed JSON"},
		{"not an object", `[1,2]`, 400, "bad_request", ""},
		{"unknown field", `{"token":"` + good + `","csr":` + string(csrJSON) + `,"admin":true}`, 400, "bad_request", "unknown field"},
		{"missing CSR", `{"token":"` + good + `"}`, 400, "bad_request", "csr is required"},
		{"garbage CSR", `{"token":"` + good + `","csr":"hello"}`, 400, "bad_csr", "csr:"},
		{"wrong PEM type", `{"token":"` + good + `","csr":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`, 400, "bad_csr", "csr:"},
		{"trailing data", `{"token":"` + good + `","csr":` + string(csrJSON) + `} {}`, 400, "bad_request", "trailing"},
		{"oversized", `{"token":"` + strings.Repeat("a", api.MaxEnrollBody+10) + `"}`, 413, "too_large", "larger"},
		{"bad key assurance", `{"token":"` + good + `","csr":` + string(csrJSON) + `,"key_assurance":"magic"}`, 400, "bad_request", "key_assurance"},
	} {
		status, e := post(tc.body)
		if status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: got %d %+v, want %d %s containing %q", tc.name, status, e, tc.status, tc.code, tc.msg)
		}
	}
	var list api.DeviceList
	ts.Do(t, "GET", "/api/v1/devices", "", nil, &list)
	if list.Total != 1 {
		t.Fatalf("bad enrolments left devices behind: %d devices", list.Total)
	}
	var toks []api.EnrollToken
	ts.Do(t, "GET", "/api/v1/enroll-tokens", "", nil, &toks)
	for _, tk := range toks {
		if tk.MaxUses == 100 && tk.Used != 0 {
			t.Fatalf("refused enrolments spent token uses: %+v", tk)
		}
	}
}

func TestDeviceAuthErrors(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "dev")

	// No client certificate.
	anon, _ := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	_, err := anon.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inventory("x"), Health: api.Health{Status: "ok"}})
	wantCode(t, err, 401, "client_certificate_required")

	// A certificate from a foreign CA naming the same device.
	foreign := foreignCert(t, d.id)
	fc, _ := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots, Certificate: foreign})
	_, err = fc.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inventory("x"), Health: api.Health{Status: "ok"}})
	wantCode(t, err, 401, "foreign_certificate")

	// Bad check-in bodies are refused and change nothing.
	for _, tc := range []struct {
		name string
		req  api.CheckinRequest
		msg  string
	}{
		{"no hostname", api.CheckinRequest{Health: api.Health{Status: "ok"}}, "hostname is required"},
		{"bad health", api.CheckinRequest{Inventory: *inventory("h"), Health: api.Health{Status: "great"}}, "health.status"},
		{"bad ack", api.CheckinRequest{Inventory: *inventory("h"), Health: api.Health{Status: "ok"}, Acks: []api.CommandAck{{ID: "x", Status: "maybe"}}}, "acks[0].status"},
		{"negative uptime", api.CheckinRequest{Inventory: api.Inventory{Hostname: "h", UptimeSeconds: -1}, Health: api.Health{Status: "ok"}}, "uptime"},
	} {
		_, err := d.client.Checkin(context.Background(), &tc.req)
		var e *deviceclient.Error
		if !errorsAs(err, &e) || e.Status != 400 || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	var got api.Device
	ts.Do(t, "GET", "/api/v1/devices/"+d.id, "", nil, &got)
	if got.LastSeen != nil {
		t.Fatal("a refused check-in was recorded")
	}
}

func foreignCert(t *testing.T, deviceID string) *tls.Certificate {
	caKey := newKey(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Evil CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: deviceID}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestRevokedDeviceRefused(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "victim")
	if _, err := checkin(d, "victim"); err != nil {
		t.Fatal(err)
	}
	var got api.Device
	if code := ts.Do(t, "POST", "/api/v1/devices/"+d.id+"/revoke", "", nil, &got); code != 200 || got.Status != api.DeviceRevoked {
		t.Fatalf("revoke: %d %+v", code, got)
	}
	// The device's existing connection is refused on its next request.
	_, err := checkin(d, "victim")
	wantCode(t, err, 403, "device_revoked")
	// And so is a new connection.
	fresh, _ := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots, Certificate: d.cert})
	_, err = fresh.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inventory("victim"), Health: api.Health{Status: "ok"}})
	wantCode(t, err, 403, "device_revoked")
	_, err = fresh.Renew(context.Background(), "x")
	wantCode(t, err, 403, "device_revoked")
	if code := ts.Do(t, "POST", "/api/v1/devices/nope/revoke", "", nil, nil); code != 404 {
		t.Fatalf("revoking unknown device: %d", code)
	}
}

func TestRenewalAndReenrolment(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: server.Config{DeviceCertLifetime: 24 * time.Hour}})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "renewer")
	oldCert := d.cert
	newKey := newKey(t)
	csr, _ := deviceclient.NewCSR(newKey)
	resp, err := d.client.Renew(context.Background(), csr)
	if err != nil {
		t.Fatal(err)
	}
	if resp.DeviceID != d.id {
		t.Fatalf("renewal changed the device ID to %s", resp.DeviceID)
	}
	// The old certificate is superseded; the new one works.
	old, _ := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots, Certificate: oldCert})
	_, err = old.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inventory("r"), Health: api.Health{Status: "ok"}})
	wantCode(t, err, 401, "certificate_superseded")
	d.client.SetCertificate(tlsCert(resp.Certificate, newKey))
	d.key = newKey
	if _, err := checkin(d, "renewer"); err != nil {
		t.Fatalf("check-in with renewed certificate: %v", err)
	}

	// Re-enrolment with a proof from the current key keeps the identity.
	reKey := newKeyFor(t)
	reCSR, _ := deviceclient.NewCSR(reKey)
	blk, _ := pem.Decode([]byte(reCSR))
	digest := sha256.Sum256(blk.Bytes)
	sig, _ := ecdsa.SignASN1(rand.Reader, d.key, digest[:])
	c, _ := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	re, err := c.Enroll(context.Background(), api.EnrollRequest{Token: ts.EnrollToken(t, 1, ""), CSR: reCSR,
		PreviousDeviceID: d.id, PreviousProof: base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		t.Fatal(err)
	}
	if re.DeviceID != d.id {
		t.Fatalf("re-enrolment gave a new identity %s", re.DeviceID)
	}
	// A proof by some other key is refused.
	badSig, _ := ecdsa.SignASN1(rand.Reader, newKeyFor(t), digest[:])
	_, err = c.Enroll(context.Background(), api.EnrollRequest{Token: ts.EnrollToken(t, 1, ""), CSR: reCSR,
		PreviousDeviceID: d.id, PreviousProof: base64.StdEncoding.EncodeToString(badSig)})
	wantCode(t, err, 403, "reenrolment_refused")
}

func newKeyFor(t *testing.T) *ecdsa.PrivateKey { return newKey(t) }

func TestCommandLongPoll(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "poller")
	type result struct {
		cmds []api.Command
		err  error
		took time.Duration
	}
	res := make(chan result, 1)
	go func() {
		start := time.Now()
		cmds, err := d.client.WaitCommands(context.Background(), 30*time.Second)
		res <- result{cmds, err, time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond) // let the poll park
	var cmd api.CommandStatus
	if code := ts.Do(t, "POST", "/api/v1/devices/"+d.id+"/commands", "", api.CommandCreate{Kind: "ping"}, &cmd); code != 201 {
		t.Fatalf("queue command: %d", code)
	}
	r := <-res
	if r.err != nil || len(r.cmds) != 1 || r.cmds[0].ID != cmd.ID {
		t.Fatalf("long poll: %+v %v", r.cmds, r.err)
	}
	if r.took > 10*time.Second {
		t.Fatalf("command took %v to arrive", r.took)
	}
	// Delivered but unacknowledged commands come again at check-in; an
	// ack closes them.
	resp, err := checkin(d, "poller")
	if err != nil || len(resp.Commands) != 1 {
		t.Fatalf("check-in: %+v %v", resp, err)
	}
	resp, err = checkin(d, "poller", api.CommandAck{ID: cmd.ID, Status: "done", Detail: "pong"})
	if err != nil || len(resp.Commands) != 0 {
		t.Fatalf("check-in with ack: %+v %v", resp, err)
	}
	var cmds []api.CommandStatus
	ts.Do(t, "GET", "/api/v1/devices/"+d.id+"/commands", "", nil, &cmds)
	if len(cmds) != 1 || cmds[0].Status != "done" || cmds[0].Detail != "pong" {
		t.Fatalf("command after ack: %+v", cmds)
	}
	if code := ts.Do(t, "POST", "/api/v1/devices/"+d.id+"/commands", "", api.CommandCreate{Kind: "rm -rf"}, nil); code != 400 {
		t.Fatalf("unknown command kind: %d", code)
	}
}

func TestAuditChainDetectsTampering(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 2, ""), "audited")
	ts.Do(t, "POST", "/api/v1/devices/"+d.id+"/revoke", "", nil, nil)
	var page api.AuditPage
	if code := ts.Do(t, "GET", "/api/v1/audit", "", nil, &page); code != 200 {
		t.Fatalf("audit: %d", code)
	}
	actions := map[string]bool{}
	for _, e := range page.Entries {
		actions[e.Action] = true
	}
	for _, a := range []string{"user.create", "api_token.create", "enroll_token.create", "device.enroll", "device.revoke", "api_token.use"} {
		if !actions[a] {
			t.Errorf("audit log lacks %s: %v", a, actions)
		}
	}
	if _, _, err := api.VerifyAuditChain("", 0, page.Entries); err != nil {
		t.Fatalf("untouched chain: %v", err)
	}
	db, err := sql.Open("sqlite", filepath.Join(ts.DataDir, "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'user:nobody' WHERE action = 'device.revoke'`); err != nil {
		t.Fatal(err)
	}
	ts.Do(t, "GET", "/api/v1/audit", "", nil, &page)
	_, _, err = api.VerifyAuditChain("", 0, page.Entries)
	if err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("tampered chain verified: %v", err)
	}
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	ts.Do(t, "GET", "/api/v1/audit", "", nil, &page)
	if _, _, err := api.VerifyAuditChain("", 0, page.Entries); err == nil {
		t.Fatal("chain with a deleted entry verified")
	}
}

func TestRBACScopes(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	for _, g := range []string{"lab", "plant"} {
		ts.Do(t, "POST", "/api/v1/groups", "", api.Group{Name: g}, nil)
	}
	lab := enroll(t, ts, ts.EnrollToken(t, 1, "lab"), "lab-1")
	plant := enroll(t, ts, ts.EnrollToken(t, 1, "plant"), "plant-1")
	mk := func(role, group string) string {
		var tok api.APIToken
		if code := ts.Do(t, "POST", "/api/v1/tokens", "", api.APITokenCreate{Name: role + "-" + group, Role: role, Group: group}, &tok); code != 201 {
			t.Fatalf("token: %d", code)
		}
		return tok.Token
	}
	labOp, auditor := mk("operator", "lab"), mk("auditor", "")
	var list api.DeviceList
	ts.Do(t, "GET", "/api/v1/devices", labOp, nil, &list)
	if list.Total != 1 || list.Devices[0].ID != lab.id {
		t.Fatalf("lab operator sees %+v", list)
	}
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"operator cannot see other group", "GET", "/api/v1/devices/" + plant.id, labOp, 404},
		{"operator cannot revoke other group", "POST", "/api/v1/devices/" + plant.id + "/revoke", labOp, 404},
		{"operator cannot list users", "GET", "/api/v1/users", labOp, 403},
		{"operator cannot create API tokens", "POST", "/api/v1/tokens", labOp, 403},
		{"auditor sees all", "GET", "/api/v1/devices/" + plant.id, auditor, 200},
		{"auditor cannot revoke", "POST", "/api/v1/devices/" + plant.id + "/revoke", auditor, 403},
		{"auditor reads audit", "GET", "/api/v1/audit", auditor, 200},
		{"scoped operator cannot read global audit", "GET", "/api/v1/audit", labOp, 403},
		{"no token", "GET", "/api/v1/devices", "-", 401},
		{"bad token", "GET", "/api/v1/devices", "bwk_0000000000000000_" + strings.Repeat("A", 43), 401},
		{"unknown endpoint", "GET", "/api/v1/nope", "", 404},
		{"wrong method on a pattern path", "DELETE", "/api/v1/devices/" + plant.id, "", 405},
		{"wrong method on a fixed path", "PUT", "/api/v1/devices", "", 405},
	} {
		var body any
		if tc.method == "POST" && strings.HasSuffix(tc.path, "tokens") {
			body = api.APITokenCreate{Name: "x", Role: "admin"}
		}
		if code := ts.Do(t, tc.method, tc.path, tc.token, body, nil); code != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, code, tc.want)
		}
	}
	// The scoped operator can enrol into its group only.
	if code := ts.Do(t, "POST", "/api/v1/enroll-tokens", labOp, api.EnrollTokenCreate{Uses: 1, TTL: "1h", Group: "plant"}, nil); code != 403 {
		t.Fatalf("enrol token for another group: %d", code)
	}
	if code := ts.Do(t, "POST", "/api/v1/enroll-tokens", labOp, api.EnrollTokenCreate{Uses: 1, TTL: "1h", Group: "lab"}, nil); code != 201 {
		t.Fatalf("enrol token for own group: %d", code)
	}
	if code := ts.Do(t, "POST", "/api/v1/devices/"+lab.id+"/revoke", labOp, nil, nil); code != 200 {
		t.Fatalf("operator revoking own group's device: %d", code)
	}
}

func login(t *testing.T, ts *servertest.Server, user, pass, code string) (*http.Response, map[string]any) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass, "totp": code})
	resp, err := ts.HTTP.Post(ts.URL+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &out)
	return resp, out
}

func TestLoginLockoutAndCSRF(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	if ts.InitialAdminPassword == "" {
		t.Fatal("no initial admin password generated")
	}
	var created api.UserCreated
	if code := ts.Do(t, "POST", "/api/v1/users", "", api.UserCreate{Username: "bob", Grants: []api.Grant{{Role: "operator"}}}, &created); code != 201 || len(created.Password) < 20 {
		t.Fatalf("create user: %d %+v", code, created)
	}
	if code := ts.Do(t, "POST", "/api/v1/users", "", api.UserCreate{Username: "weak", Password: "short", Grants: []api.Grant{{Role: "auditor"}}}, nil); code != 400 {
		t.Fatalf("weak password accepted: %d", code)
	}
	resp, out := login(t, ts, "bob", created.Password, "")
	if resp.StatusCode != 200 || out["csrf_token"] == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, out)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == server.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", cookie)
	}
	// A session request that changes state needs the CSRF header.
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/enroll-tokens", strings.NewReader(`{"uses":1,"ttl":"1h"}`))
	req.AddCookie(cookie)
	r2, _ := ts.HTTP.Do(req)
	r2.Body.Close()
	if r2.StatusCode != 403 {
		t.Fatalf("session POST without CSRF: %d", r2.StatusCode)
	}
	req, _ = http.NewRequest("POST", ts.URL+"/api/v1/enroll-tokens", strings.NewReader(`{"uses":1,"ttl":"1h"}`))
	req.AddCookie(cookie)
	req.Header.Set("X-CSRF-Token", out["csrf_token"].(string))
	r3, _ := ts.HTTP.Do(req)
	r3.Body.Close()
	if r3.StatusCode != 201 {
		t.Fatalf("session POST with CSRF: %d", r3.StatusCode)
	}
	// Five wrong passwords lock the account, even for the right password.
	for i := 0; i < 5; i++ {
		if resp, _ := login(t, ts, "bob", "wrong-password-123", ""); resp.StatusCode != 401 {
			t.Fatalf("wrong password %d: %d", i, resp.StatusCode)
		}
	}
	resp, out = login(t, ts, "bob", created.Password, "")
	if resp.StatusCode != 429 || !strings.Contains(out["message"].(string), "locked") {
		t.Fatalf("locked account: %d %v", resp.StatusCode, out)
	}
	// The per-address throttle stops a flood of guesses.
	limited := false
	for i := 0; i < 20; i++ {
		if resp, _ := login(t, ts, "nobody", "x", ""); resp.StatusCode == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("20 rapid logins from one address were not throttled")
	}
}

func TestServerCertificateRenewedWhileRunning(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := servertest.Start(t, servertest.Options{Config: server.Config{Now: clock}})
	host := strings.TrimPrefix(ts.URL, "https://")
	leaf := func() *x509.Certificate {
		// The client checks the chain itself at the fake time.
		conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := conn.ConnectionState().PeerCertificates[0]
		if _, err := c.Verify(x509.VerifyOptions{Roots: ts.Roots, CurrentTime: clock(), DNSName: "localhost"}); err != nil {
			t.Fatalf("server certificate does not verify at %v: %v", clock(), err)
		}
		return c
	}
	first := leaf()
	mu.Lock()
	now = now.Add(75 * 24 * time.Hour) // past two thirds of 90 days
	mu.Unlock()
	second := leaf()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the server kept serving a certificate near its expiry")
	}
}

func TestTOTPSealedAndReplayRefused(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	var created api.UserCreated
	ts.Do(t, "POST", "/api/v1/users", "", api.UserCreate{Username: "carol", Grants: []api.Grant{{Role: "auditor"}}}, &created)
	resp, out := login(t, ts, "carol", created.Password, "")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	session := func(method, path string, body any, into any) int {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, ts.URL+path, rd)
		for _, c := range resp.Cookies() {
			req.AddCookie(c)
		}
		req.Header.Set("X-CSRF-Token", out["csrf_token"].(string))
		req.Header.Set("Content-Type", "application/json")
		r, err := ts.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		if into != nil {
			json.NewDecoder(r.Body).Decode(into)
		}
		return r.StatusCode
	}
	var enr api.TOTPEnrollment
	if code := session("POST", "/api/v1/me/totp", nil, &enr); code != 200 || enr.Secret == "" {
		t.Fatalf("start TOTP: %d", code)
	}
	now := time.Now()
	code, _ := totp.GenerateCode(enr.Secret, now)
	if c := session("POST", "/api/v1/me/totp/confirm", api.TOTPConfirm{Code: "000000"}, nil); c != 400 {
		t.Fatalf("wrong confirmation code: %d", c)
	}
	if c := session("POST", "/api/v1/me/totp/confirm", api.TOTPConfirm{Code: code}, nil); c != 204 {
		t.Fatalf("confirm TOTP: %d", c)
	}
	// The seed is not in the database in the clear.
	db, err := sql.Open("sqlite", filepath.Join(ts.DataDir, "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stored string
	db.QueryRow(`SELECT totp_secret FROM users WHERE username = 'carol'`).Scan(&stored)
	if stored == "" || strings.Contains(stored, enr.Secret) {
		t.Fatalf("TOTP seed stored as %q", stored)
	}
	// Password alone is refused; the confirmation code cannot be replayed;
	// the next code works.
	if r, out := login(t, ts, "carol", created.Password, ""); r.StatusCode != 401 || out["error"] != "totp_required" {
		t.Fatalf("login without code: %d %v", r.StatusCode, out)
	}
	if r, _ := login(t, ts, "carol", created.Password, code); r.StatusCode != 401 {
		t.Fatalf("replayed TOTP code accepted: %d", r.StatusCode)
	}
	next, _ := totp.GenerateCode(enr.Secret, now.Add(30*time.Second))
	if r, _ := login(t, ts, "carol", created.Password, next); r.StatusCode != 200 {
		t.Fatalf("login with the next code: %d", r.StatusCode)
	}
}

func TestChangePassword(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	var created api.UserCreated
	ts.Do(t, "POST", "/api/v1/users", "", api.UserCreate{Username: "dave", Grants: []api.Grant{{Role: "auditor"}}}, &created)
	r1, o1 := login(t, ts, "dave", created.Password, "")
	r2, _ := login(t, ts, "dave", created.Password, "")
	call := func(resp *http.Response, csrf string, method, path string, body any) int {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, ts.URL+path, rd)
		for _, c := range resp.Cookies() {
			req.AddCookie(c)
		}
		req.Header.Set("X-CSRF-Token", csrf)
		req.Header.Set("Content-Type", "application/json")
		r, err := ts.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	csrf := o1["csrf_token"].(string)
	newPW := "correct horse battery staple"
	for _, tc := range []struct {
		name string
		body api.PasswordChange
		want int
	}{
		{"wrong current", api.PasswordChange{Current: "nope-nope-nope", New: newPW}, 400},
		{"weak new", api.PasswordChange{Current: created.Password, New: "short"}, 400},
		{"same", api.PasswordChange{Current: created.Password, New: created.Password}, 400},
		{"ok", api.PasswordChange{Current: created.Password, New: newPW}, 204},
	} {
		if got := call(r1, csrf, "POST", "/api/v1/me/password", tc.body); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := call(r1, csrf, "GET", "/api/v1/whoami", nil); got != 200 {
		t.Fatalf("the session that changed the password ended: %d", got)
	}
	if got := call(r2, "", "GET", "/api/v1/whoami", nil); got != 401 {
		t.Fatalf("another session survived the password change: %d", got)
	}
	if r, _ := login(t, ts, "dave", created.Password, ""); r.StatusCode != 401 {
		t.Fatalf("old password still works: %d", r.StatusCode)
	}
	if r, _ := login(t, ts, "dave", newPW, ""); r.StatusCode != 200 {
		t.Fatalf("new password refused: %d", r.StatusCode)
	}
	if code := ts.Do(t, "POST", "/api/v1/me/password", "", api.PasswordChange{Current: "x", New: newPW}, nil); code != 400 {
		t.Fatalf("API token changing a password: %d", code)
	}
}
