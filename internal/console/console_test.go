package console_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/console"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

const testPassword = "correct horse battery staple"

func start(t *testing.T) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Options{Config: server.Config{Console: console.New}})
}

func createUser(t *testing.T, ts *servertest.Server, name string, grants ...api.Grant) {
	t.Helper()
	var out api.UserCreated
	if code := ts.Do(t, "POST", "/api/v1/users", "", api.UserCreate{Username: name, Password: testPassword, Grants: grants}, &out); code != http.StatusCreated {
		t.Fatalf("creating user %s: status %d", name, code)
	}
}

func createGroup(t *testing.T, ts *servertest.Server, name string) {
	t.Helper()
	if code := ts.Do(t, "POST", "/api/v1/groups", "", api.Group{Name: name}, nil); code != http.StatusCreated {
		t.Fatalf("creating group %s: status %d", name, code)
	}
}

type enrolled struct {
	ID, Serial, Hostname, Kernel string
}

// enrol enrols a device with a fresh software key and checks it in once
// with an inventory and health report.
func enrol(t *testing.T, ts *servertest.Server, token, hostname string) enrolled {
	t.Helper()
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := deviceclient.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Enroll(ctx, api.EnrollRequest{Token: token, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(res.Certificate))
	if block == nil {
		t.Fatal("enrolment answer has no certificate PEM")
	}
	c.SetCertificate(&tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key})
	kernel := "6.1.0-" + hostname
	_, err = c.Checkin(ctx, &api.CheckinRequest{
		Inventory: api.Inventory{Hostname: hostname, OS: "Debian GNU/Linux", OSVersion: "12", Kernel: kernel, Arch: "arm64",
			AgentVersion: "0.3.1", UptimeSeconds: 3*86400 + 4*3600 + 720,
			Interfaces: []api.Interface{{Name: "eth0", MAC: "02:42:ac:11:00:02", Addrs: []string{"10.0.0.12/24", "fe80::42:acff:fe11:2/64"}, Up: true}, {Name: "wlan0", Up: false}}},
		Health: api.Health{Status: "degraded", Checks: []api.HealthCheck{
			{Name: "disk", Status: "ok", Detail: "41% used"},
			{Name: "ntp", Status: "degraded", Detail: "clock offset 2.3 s"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var d api.Device
	if code := ts.Do(t, "GET", "/api/v1/devices/"+res.DeviceID, "", nil, &d); code != http.StatusOK || d.Certificate == nil {
		t.Fatalf("reading device %s: status %d", res.DeviceID, code)
	}
	return enrolled{ID: res.DeviceID, Serial: d.Certificate.Serial, Hostname: hostname, Kernel: kernel}
}

// browser is a cookie-keeping HTTP client that does not follow redirects.
type browser struct {
	t    *testing.T
	ts   *servertest.Server
	hc   *http.Client
	base *url.URL
}

func newBrowser(t *testing.T, ts *servertest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(ts.URL)
	hc := &http.Client{Transport: ts.HTTP.Transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, ts: ts, hc: hc, base: base}
}

type page struct {
	Status   int
	Location string
	Body     string
	Header   http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{Status: resp.StatusCode, Location: resp.Header.Get("Location"), Body: string(body), Header: resp.Header}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.ts.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) cookie(name string) string {
	for _, c := range b.hc.Jar.Cookies(b.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var hiddenRE = regexp.MustCompile(`name="(csrf|login_csrf)" value="([^"]*)"`)

func hidden(t *testing.T, body, name string) string {
	t.Helper()
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		if m[1] == name {
			return html.UnescapeString(m[2])
		}
	}
	t.Fatalf("no hidden %s field in page:\n%s", name, body)
	return ""
}

func (b *browser) login(user, pass, code string) page {
	b.t.Helper()
	lp := b.get("/ui/login")
	if lp.Status != http.StatusOK {
		b.t.Fatalf("GET /ui/login: %d", lp.Status)
	}
	return b.post("/ui/login", url.Values{"login_csrf": {hidden(b.t, lp.Body, "login_csrf")}, "username": {user}, "password": {pass}, "totp": {code}})
}

func (b *browser) mustLogin(user string) string {
	b.t.Helper()
	p := b.login(user, testPassword, "")
	if p.Status != http.StatusSeeOther || p.Location != "/ui/" {
		b.t.Fatalf("login as %s: status %d, location %q:\n%s", user, p.Status, p.Location, p.Body)
	}
	ov := b.get("/ui/")
	if ov.Status != http.StatusOK {
		b.t.Fatalf("overview after login: %d", ov.Status)
	}
	return hidden(b.t, ov.Body, "csrf")
}

func TestLoginDoubleSubmit(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "alice", api.Grant{Role: api.RoleOperator})
	b := newBrowser(t, ts)

	lp := b.get("/ui/login")
	tok := hidden(t, lp.Body, "login_csrf")
	if ck := b.cookie(console.LoginCookie); ck == "" || ck != tok {
		t.Fatalf("login cookie %q does not match the form token %q", ck, tok)
	}
	if !strings.Contains(lp.Body, "Authenticator code (if enabled)") {
		t.Error("login page lacks the authenticator code field label")
	}
	form := url.Values{"username": {"alice"}, "password": {testPassword}}

	// No token, and a token that is not the cookie's: refused before the
	// password is even checked.
	for _, bad := range []string{"", "x" + tok[1:]} {
		form.Set("login_csrf", bad)
		p := b.post("/ui/login", form)
		if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "expired or did not come from this site") {
			t.Fatalf("login with token %q: status %d", bad, p.Status)
		}
		if b.cookie(server.SessionCookie) != "" {
			t.Fatal("a session cookie was set")
		}
	}
	// A fresh client without the cookie but with a valid-looking token.
	other := newBrowser(t, ts)
	form.Set("login_csrf", tok)
	if p := other.post("/ui/login", form); p.Status != http.StatusForbidden {
		t.Fatalf("login without the cookie: status %d", p.Status)
	}

	// Wrong password: a clear message, no session.
	p := b.login("alice", "wrong password!!", "")
	if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "Invalid username, password or code") {
		t.Fatalf("wrong password: status %d:\n%s", p.Status, p.Body)
	}
	if !strings.Contains(p.Body, `value="alice"`) {
		t.Error("the username is not kept after a failed login")
	}

	// Right password: session cookie, login cookie gone, redirect.
	p = b.login("alice", testPassword, "")
	if p.Status != http.StatusSeeOther || p.Location != "/ui/" {
		t.Fatalf("login: status %d location %q", p.Status, p.Location)
	}
	if b.cookie(server.SessionCookie) == "" {
		t.Fatal("no session cookie after login")
	}
	if b.cookie(console.LoginCookie) != "" {
		t.Error("the login cookie outlived the login")
	}
	// Logged in, the login page sends you on.
	if p := b.get("/ui/login"); p.Status != http.StatusSeeOther {
		t.Errorf("GET /ui/login when logged in: %d", p.Status)
	}
}

func TestSessionRequired(t *testing.T) {
	ts := start(t)
	b := newBrowser(t, ts)
	for _, path := range []string{"/ui/", "/ui/devices", "/ui/devices/dev_x", "/ui/users", "/ui/tokens", "/ui/account", "/ui/audit"} {
		p := b.get(path)
		if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/ui/login") {
			t.Errorf("GET %s without a session: %d %q", path, p.Status, p.Location)
		}
	}
	if p := b.get("/ui/devices?q=a"); p.Location != "/ui/login?next=%2Fui%2Fdevices%3Fq%3Da" {
		t.Errorf("redirect does not remember the page: %q", p.Location)
	}
	if p := b.post("/ui/logout", nil); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/ui/login") {
		t.Errorf("POST /ui/logout without a session: %d %q", p.Status, p.Location)
	}
	// A bearer API token is not a console login.
	req, _ := http.NewRequest("GET", ts.URL+"/ui/", nil)
	req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
	if p := b.do(req); p.Status != http.StatusSeeOther {
		t.Errorf("GET /ui/ with a bearer token: %d", p.Status)
	}
	// A forged or ended session is cleared and sent to log in again.
	req, _ = http.NewRequest("GET", ts.URL+"/ui/", nil)
	req.AddCookie(&http.Cookie{Name: server.SessionCookie, Value: "bws_nonsense"})
	if p := b.do(req); p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "m=expired") {
		t.Errorf("GET /ui/ with a bad session: %d %q", p.Status, p.Location)
	}
	// The root redirects to the console; unknown console paths are 404.
	if p := b.get("/"); p.Status != http.StatusSeeOther || p.Location != "/ui/" {
		t.Errorf("GET /: %d %q", p.Status, p.Location)
	}
	if p := b.get("/ui/nope"); p.Status != http.StatusNotFound {
		t.Errorf("GET /ui/nope: %d", p.Status)
	}
	// next never leads off the site.
	createUser(t, ts, "alice", api.Grant{Role: api.RoleAuditor})
	lp := b.get("/ui/login?next=//evil.example/")
	p := b.post("/ui/login", url.Values{"login_csrf": {hidden(t, lp.Body, "login_csrf")}, "username": {"alice"}, "password": {testPassword}, "next": {"//evil.example/"}})
	if p.Status != http.StatusSeeOther || p.Location != "/ui/" {
		t.Errorf("login with an off-site next: %d %q", p.Status, p.Location)
	}
}

func TestCSRFOnForms(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	b := newBrowser(t, ts)
	csrf := b.mustLogin("root")
	dev := enrol(t, ts, ts.EnrollToken(t, 1, ""), "cam-01")
	for _, path := range []string{"/ui/logout", "/ui/tokens", "/ui/account/totp", "/ui/account/password", "/ui/devices/" + dev.ID + "/revoke"} {
		for _, tok := range []string{"", "wrong-" + csrf} {
			p := b.post(path, url.Values{"csrf": {tok}, "name": {"x"}, "role": {"auditor"}})
			if p.Status != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q: %d, want 403", path, tok, p.Status)
			}
		}
	}
	var d api.Device
	ts.Do(t, "GET", "/api/v1/devices/"+dev.ID, "", nil, &d)
	if d.Status != api.DeviceActive {
		t.Fatal("a POST without the CSRF token revoked the device")
	}
	// With the token, revocation works and is reported.
	p := b.post("/ui/devices/"+dev.ID+"/revoke", url.Values{"csrf": {csrf}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", p.Status)
	}
	if p := b.get(p.Location); !strings.Contains(p.Body, "The device has been revoked") || !strings.Contains(p.Body, "device.revoke") {
		t.Errorf("device page after revoke lacks the notice or the audit entry")
	}
	// Logout ends the session for good.
	if p := b.post("/ui/logout", url.Values{"csrf": {csrf}}); p.Status != http.StatusSeeOther || p.Location != "/ui/login?m=logged-out" {
		t.Fatalf("logout: %d %q", p.Status, p.Location)
	}
	if p := b.get("/ui/"); p.Status != http.StatusSeeOther {
		t.Errorf("GET /ui/ after logout: %d", p.Status)
	}
}

func TestRolesAndScope(t *testing.T) {
	ts := start(t)
	createGroup(t, ts, "north")
	createGroup(t, ts, "south")
	n := enrol(t, ts, ts.EnrollToken(t, 1, "north"), "north-gw")
	s := enrol(t, ts, ts.EnrollToken(t, 1, "south"), "south-gw")
	createUser(t, ts, "nop", api.Grant{Role: api.RoleOperator, Group: "north"})
	createUser(t, ts, "aud", api.Grant{Role: api.RoleAuditor})

	b := newBrowser(t, ts)
	b.mustLogin("nop")
	ov := b.get("/ui/")
	for _, item := range []string{`href="/ui/users"`, `href="/ui/tokens"`, `href="/ui/audit"`} {
		if strings.Contains(ov.Body, item) {
			t.Errorf("a group operator sees the nav item %s", item)
		}
	}
	for _, path := range []string{"/ui/users", "/ui/tokens", "/ui/audit"} {
		if p := b.get(path); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "Access denied") {
			t.Errorf("GET %s as a group operator: %d", path, p.Status)
		}
	}
	list := b.get("/ui/devices")
	if !strings.Contains(list.Body, n.Hostname) || strings.Contains(list.Body, s.Hostname) {
		t.Errorf("a north operator's device list is wrong")
	}
	if p := b.get("/ui/devices/" + s.ID); p.Status != http.StatusNotFound || strings.Contains(p.Body, s.Hostname) {
		t.Errorf("an out-of-scope device: %d", p.Status)
	}
	if p := b.get("/ui/devices/" + s.ID + "/revoke"); p.Status != http.StatusNotFound {
		t.Errorf("revoke page of an out-of-scope device: %d", p.Status)
	}
	if p := b.get("/ui/devices/" + n.ID); p.Status != http.StatusOK || !strings.Contains(p.Body, `id="revoke"`) {
		t.Errorf("an operator's own device: %d, or no revoke button", p.Status)
	}

	// A global auditor reads everything but revokes nothing.
	a := newBrowser(t, ts)
	csrf := a.mustLogin("aud")
	if p := a.get("/ui/audit"); p.Status != http.StatusOK {
		t.Errorf("GET /ui/audit as auditor: %d", p.Status)
	}
	if p := a.get("/ui/users"); p.Status != http.StatusForbidden {
		t.Errorf("GET /ui/users as auditor: %d", p.Status)
	}
	dp := a.get("/ui/devices/" + s.ID)
	if dp.Status != http.StatusOK || strings.Contains(dp.Body, `id="revoke"`) {
		t.Errorf("auditor device page: %d, or shows a revoke button", dp.Status)
	}
	if p := a.post("/ui/devices/"+s.ID+"/revoke", url.Values{"csrf": {csrf}}); p.Status != http.StatusForbidden {
		t.Errorf("auditor revoke: %d", p.Status)
	}
}

func TestTokensPage(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	b := newBrowser(t, ts)
	csrf := b.mustLogin("root")

	p := b.post("/ui/tokens", url.Values{"csrf": {csrf}, "name": {"bad name"}, "role": {"auditor"}})
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Token name must be") {
		t.Fatalf("bad token name: %d", p.Status)
	}
	p = b.post("/ui/tokens", url.Values{"csrf": {csrf}, "name": {"ci-read"}, "role": {"auditor"}, "ttl": {"24h"}})
	if p.Status != http.StatusCreated {
		t.Fatalf("creating a token: %d\n%s", p.Status, p.Body)
	}
	m := regexp.MustCompile(`id="token-secret">([^<]+)<`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatal("the new token's secret is not shown")
	}
	secret := m[1]
	var who api.Whoami
	if code := ts.Do(t, "GET", "/api/v1/whoami", secret, nil, &who); code != http.StatusOK || who.Principal != "ci-read" {
		t.Fatalf("the shown secret does not work: %d %+v", code, who)
	}
	list := b.get("/ui/tokens")
	if strings.Contains(list.Body, secret) || !strings.Contains(list.Body, "ci-read") {
		t.Fatal("the token list shows the secret again, or lacks the token")
	}
	var toks []api.APIToken
	ts.Do(t, "GET", "/api/v1/tokens", "", nil, &toks)
	var id string
	for _, tk := range toks {
		if tk.Name == "ci-read" {
			id = tk.ID
		}
	}
	p = b.post("/ui/tokens/"+id+"/revoke", url.Values{"csrf": {csrf}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("revoking: %d", p.Status)
	}
	if code := ts.Do(t, "GET", "/api/v1/whoami", secret, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("revoked token still works: %d", code)
	}
	if p := b.get(p.Location); !strings.Contains(p.Body, "The API token has been revoked") {
		t.Error("no notice after revoking")
	}
	if p := b.post("/ui/tokens/tok_missing/revoke", url.Values{"csrf": {csrf}}); p.Status != http.StatusNotFound {
		t.Errorf("revoking a missing token: %d", p.Status)
	}
}

func TestAccountPasswordChange(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "erin", api.Grant{Role: api.RoleAuditor})
	b := newBrowser(t, ts)
	csrf := b.mustLogin("erin")
	newPW := "a much longer passphrase"
	p := b.post("/ui/account/password", url.Values{"csrf": {csrf}, "current_password": {testPassword}, "new_password": {newPW}, "confirm_password": {newPW + "x"}})
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "The two new passwords differ") {
		t.Fatalf("mismatched confirmation: %d", p.Status)
	}
	p = b.post("/ui/account/password", url.Values{"csrf": {csrf}, "current_password": {"wrong-password-xx"}, "new_password": {newPW}, "confirm_password": {newPW}})
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "current password is wrong") {
		t.Fatalf("wrong current password: %d", p.Status)
	}
	p = b.post("/ui/account/password", url.Values{"csrf": {csrf}, "current_password": {testPassword}, "new_password": {newPW}, "confirm_password": {newPW}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("changing the password: %d\n%s", p.Status, p.Body)
	}
	if p := b.get(p.Location); !strings.Contains(p.Body, "Your password has been changed") {
		t.Error("no notice after the change")
	}
	other := newBrowser(t, ts)
	if p := other.login("erin", testPassword, ""); p.Status == http.StatusSeeOther {
		t.Fatal("the old password still logs in")
	}
	if p := other.login("erin", newPW, ""); p.Status != http.StatusSeeOther {
		t.Fatalf("the new password does not log in: %d", p.Status)
	}
}

// TestPagesFitCSP renders every page and checks it needs nothing the
// Content-Security-Policy forbids: no inline styles or scripts, no
// off-site resources.
func TestPagesFitCSP(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	dev := enrol(t, ts, ts.EnrollToken(t, 1, ""), "plc-7")
	b := newBrowser(t, ts)
	b.mustLogin("root")
	paths := []string{"/ui/", "/ui/devices", "/ui/devices?q=plc&status=active", "/ui/devices/" + dev.ID, "/ui/devices/" + dev.ID + "/revoke",
		"/ui/users", "/ui/tokens", "/ui/account", "/ui/audit", "/ui/audit?order=seq", "/ui/nothing-here"}
	inlineRE := regexp.MustCompile(`(?i)(\sstyle=|<script|<style|\son[a-z]+=|javascript:|https?://)`)
	for _, path := range paths {
		p := b.get(path)
		if p.Status != http.StatusOK && path != "/ui/nothing-here" {
			t.Errorf("GET %s: %d", path, p.Status)
		}
		if m := inlineRE.FindString(p.Body); m != "" {
			t.Errorf("GET %s: page contains %q, which the CSP forbids or which leaves the site", path, m)
		}
		if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: CSP header %q", path, csp)
		}
		if p.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", path, p.Header.Get("Cache-Control"))
		}
	}
	css := b.get("/ui/static/console.css")
	if css.Status != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") || !strings.Contains(css.Body, ".sidebar") {
		t.Errorf("console.css: %d %q", css.Status, css.Header.Get("Content-Type"))
	}
	if p := b.get("/ui/static/"); p.Status != http.StatusNotFound {
		t.Errorf("static directory listing: %d", p.Status)
	}
}

func TestDevicesPagination(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	tok := ts.EnrollToken(t, 60, "")
	for i := range 60 {
		enrol(t, ts, tok, fmt.Sprintf("sensor-%02d", i))
	}
	b := newBrowser(t, ts)
	b.mustLogin("root")
	p := b.get("/ui/devices")
	if !strings.Contains(p.Body, "1–50 of 60") || !strings.Contains(p.Body, "sensor-49") || strings.Contains(p.Body, "sensor-50") {
		t.Fatal("first page is wrong")
	}
	next := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(p.Body)
	if next == nil {
		t.Fatal("no next-page link")
	}
	p = b.get(html.UnescapeString(next[1]))
	if !strings.Contains(p.Body, "51–60 of 60") || !strings.Contains(p.Body, "sensor-59") || strings.Contains(p.Body, "sensor-49") {
		t.Fatal("second page is wrong")
	}
	p = b.get("/ui/devices?q=SENSOR-07")
	if !strings.Contains(p.Body, "1–1 of 1") {
		t.Error("search is not case-insensitive or finds too much")
	}
	if p := b.get("/ui/devices?status=bogus"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Status must be active or revoked") {
		t.Errorf("bad status filter: %d", p.Status)
	}
	// The overview shows the ten most recently seen.
	ov := b.get("/ui/")
	if got := strings.Count(ov.Body, `href="/ui/devices/dev`); got != 10 {
		t.Errorf("overview lists %d recent devices, want 10", got)
	}
}

func TestAuditPaging(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	for i := range 120 {
		ts.Audit(context.Background(), "test", "test.event", fmt.Sprintf("thing:%03d", i), "", "", "ok")
	}
	b := newBrowser(t, ts)
	b.mustLogin("root")
	seqRE := regexp.MustCompile(`<td class="mono small">(\d+)</td>`)
	seqs := func(body string) []string {
		var out []string
		for _, m := range seqRE.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	p := b.get("/ui/audit")
	first := seqs(p.Body)
	if len(first) != 50 || !strings.Contains(p.Body, "auth.login") {
		t.Fatalf("newest page has %d entries, or lacks the login", len(first))
	}
	older := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(p.Body)
	if older == nil {
		t.Fatal("no link to older entries")
	}
	p = b.get(html.UnescapeString(older[1]))
	second := seqs(p.Body)
	if len(second) != 50 || fmt.Sprint(atoi(first[49])-1) != second[0] {
		t.Fatalf("older page starts at %v after %v", second[:1], first[49])
	}
	p = b.get("/ui/audit?order=seq")
	asc := seqs(p.Body)
	if len(asc) != 50 || asc[0] != "1" || asc[49] != "50" {
		t.Fatalf("by-sequence page: %v…", asc[:3])
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// TestConsoleInChromium drives the console in a real headless Chromium,
// through login (wrong and right password), the overview, the device
// search and detail pages, the audit log, turning on two-factor
// authentication, logging out, and logging in again with a code.
func TestConsoleInChromium(t *testing.T) {
	ctx := startChromium(t)
	ts := start(t)
	createGroup(t, ts, "plant-a")
	createUser(t, ts, "alice", api.Grant{Role: api.RoleOperator})
	dev := enrol(t, ts, ts.EnrollToken(t, 1, "plant-a"), "press-line-04")
	other := enrol(t, ts, ts.EnrollToken(t, 1, ""), "lobby-kiosk")

	must := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		must("reading "+sel, err)
		return strings.TrimSpace(s)
	}
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(ctx, chromedp.Location())
		must("location", err)
		u, _ := url.Parse(loc)
		return u.Path
	}
	submit := func(step, button string) {
		t.Helper()
		_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
		must(step, err)
	}
	// setField sets an input's value; chromedp v0.23's SetValue reports
	// an error for the empty string, so that is a Clear.
	setField := func(sel, v string) chromedp.Action[chromedp.Void] {
		if v == "" {
			return chromedp.Clear(chromedp.CSS(sel))
		}
		return chromedp.SetValue(chromedp.CSS(sel), v)
	}
	fillLogin := func(user, pass, code string) {
		t.Helper()
		must("filling the login form", chromedp.Do(ctx, setField("#username", user), setField("#password", pass), setField("#totp", code)))
		submit("logging in", "#login-submit")
	}

	// The site root leads to the login page.
	must("opening the console", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/")))
	if got := location(); got != "/ui/login" {
		t.Fatalf("the root led to %s, want /ui/login", got)
	}
	fillLogin("alice", "not the password", "")
	if got := text("#error"); !strings.Contains(got, "Invalid username, password or code") {
		t.Fatalf("wrong password shows %q", got)
	}
	fillLogin("alice", testPassword, "")
	if got := location(); got != "/ui/" {
		t.Fatalf("after login at %s", got)
	}
	if got := text("#stat-total .stat-value"); got != "2" {
		t.Errorf("overview shows %s devices, want 2", got)
	}
	if got := text("#whoami"); got != "alice" {
		t.Errorf("signed in as %q", got)
	}
	// The stylesheet loads under the CSP and is applied.
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector(".sidebar")).backgroundColor`))
	must("reading the sidebar style", err)
	if bg != "rgb(15, 23, 42)" {
		t.Errorf("the stylesheet is not applied: sidebar background %q", bg)
	}
	nav := text("nav")
	if !strings.Contains(nav, "Audit log") || strings.Contains(nav, "Users") || strings.Contains(nav, "API tokens") {
		t.Errorf("an operator's navigation: %q", nav)
	}

	// Device search by hostname.
	must("opening devices", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/devices")))
	must("typing a search", chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#q"), "press-line")))
	submit("searching", "#search")
	rows := text("#devices tbody")
	if !strings.Contains(rows, dev.Hostname) || !strings.Contains(rows, dev.ID) || strings.Contains(rows, other.Hostname) {
		t.Fatalf("search for press-line shows %q", rows)
	}
	submit("opening the device", "#devices tbody a")
	if got := location(); got != "/ui/devices/"+dev.ID {
		t.Fatalf("device link led to %s", got)
	}
	if got := text("#device-hostname"); got != dev.Hostname {
		t.Errorf("device page hostname %q", got)
	}
	if got := text("#kernel"); got != dev.Kernel {
		t.Errorf("device page kernel %q, want %q", got, dev.Kernel)
	}
	if got := text("#cert-serial"); got != dev.Serial {
		t.Errorf("device page serial %q, want %q", got, dev.Serial)
	}
	if got := text("#interfaces"); !strings.Contains(got, "eth0") || !strings.Contains(got, "10.0.0.12/24") {
		t.Errorf("interfaces table %q", got)
	}
	if got := text("#health"); !strings.Contains(got, "clock offset 2.3 s") {
		t.Errorf("health table %q", got)
	}
	if got := text("#activity"); !strings.Contains(got, "device.enroll") {
		t.Errorf("recent activity %q", got)
	}
	if _, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#revoke"))); err != nil {
		t.Errorf("an operator sees no revoke button: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must("screenshot", err)
	if err := os.WriteFile("/tmp/console-device.png", shot, 0o644); err != nil {
		t.Logf("saving the screenshot: %v", err)
	}

	// The audit log has the login, and the failed one.
	must("opening the audit log", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/audit")))
	audit := text("#audit")
	if !strings.Contains(audit, "auth.login") || !strings.Contains(audit, "user:alice") || !strings.Contains(audit, "refused: bad password") {
		t.Errorf("audit log lacks the logins: %q", audit)
	}

	// Turn on TOTP with a code computed from the secret on the page.
	must("opening the account", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/account")))
	if got := text("#totp-state"); got != "off" {
		t.Errorf("TOTP state %q before set-up", got)
	}
	submit("starting TOTP set-up", "#totp-start")
	secret := text("#totp-secret")
	if u := text("#totp-url"); !strings.HasPrefix(u, "otpauth://totp/") || !strings.Contains(u, "secret="+secret) {
		t.Errorf("otpauth URL %q", u)
	}
	if loc := location(); strings.Contains(loc, secret) {
		t.Fatal("the TOTP secret is in the URL")
	}
	code, err := totp.GenerateCode(secret, time.Now())
	must("computing a TOTP code", err)
	must("typing the code", chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#code"), code)))
	submit("confirming TOTP", "#totp-confirm")
	if got := text("#flash"); !strings.Contains(got, "Two-factor authentication is on") {
		t.Errorf("after confirming: %q", got)
	}
	if got := text("#totp-state"); got != "on" {
		t.Errorf("TOTP state %q after set-up", got)
	}

	// Log out; the password alone no longer works.
	submit("logging out", "#logout")
	if got := location(); got != "/ui/login" {
		t.Fatalf("after logout at %s", got)
	}
	if got := text("#flash"); !strings.Contains(got, "logged out") {
		t.Errorf("logout notice %q", got)
	}
	must("checking the session is gone", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/devices")))
	if got := location(); got != "/ui/login" {
		t.Fatalf("after logout /ui/devices led to %s", got)
	}
	fillLogin("alice", testPassword, "")
	if got := text("#error"); !strings.Contains(got, "code from your authenticator app") {
		t.Fatalf("login without a code shows %q", got)
	}
	// The confirming code's time step is used up; take the next one
	// (the server accepts one step of clock skew).
	code, err = totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	must("computing a TOTP code", err)
	fillLogin("alice", testPassword, code)
	// The login page remembered where we were going.
	if got := location(); got != "/ui/devices" {
		t.Fatalf("after login with a code at %s", got)
	}
	if got := text("#whoami"); got != "alice" {
		t.Errorf("signed in as %q", got)
	}
}

// startChromium starts a headless Chromium for a test (skipping it with a
// printed reason when Chromium is absent or with -short) and returns a
// browser context that ends with the test.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		fmt.Printf("%s skipped: %s is not installed (apt-get install chromium)\n", t.Name(), chromium)
		t.Skipf("%s is not installed (apt-get install chromium)", chromium)
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	dir, err := os.MkdirTemp("", "console-chromium")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chromium's children can write for a moment after it exits.
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		// The test server's certificate comes from its own CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1366, 1000),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(func() {
		// Stopping the browser waits for its processes; never let a
		// wedged one hang the test binary.
		stopped := make(chan struct{})
		go func() {
			cancelTab()
			cancelAlloc()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(15 * time.Second):
			t.Log("chromium did not stop within 15 s; leaving it behind")
		}
		cancel()
	})
	return ctx
}
