package console_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// roPublish publishes a release the way `bulwark release publish` does:
// the artifact is the raw body, the parameters are in the query.
func roPublish(t *testing.T, ts *servertest.Server, product, version string, extra ...string) {
	t.Helper()
	q := url.Values{"product": {product}, "version": {version}, "filename": {"app.tar.gz"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/releases?"+q.Encode(), strings.NewReader(product+" "+version+" contents"))
	req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publishing %s %s: %d %s", product, version, resp.StatusCode, body)
	}
}

type roDevice struct {
	ID, Hostname string
	c            *deviceclient.Client
}

// roEnrol enrols a device and keeps its client, to report update progress.
func roEnrol(t *testing.T, ts *servertest.Server, token, hostname string) *roDevice {
	t.Helper()
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
	t.Cleanup(c.Close)
	res, err := c.Enroll(context.Background(), api.EnrollRequest{Token: token, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(res.Certificate))
	c.SetCertificate(&tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key})
	return &roDevice{ID: res.DeviceID, Hostname: hostname, c: c}
}

// checkin checks the device in and returns its update assignment, if any.
func (d *roDevice) checkin(t *testing.T) *api.UpdateAssignment {
	t.Helper()
	resp, err := d.c.Checkin(context.Background(), &api.CheckinRequest{
		Inventory: api.Inventory{Hostname: d.Hostname, OS: "linux", Arch: "arm64", AgentVersion: "0.3.1"}, Health: api.Health{Status: "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Update
}

func (d *roDevice) report(t *testing.T, dep string, statuses ...string) {
	t.Helper()
	for _, st := range statuses {
		if err := d.c.ReportUpdate(context.Background(), api.UpdateStatus{DeploymentID: dep, Status: st, Detail: "health check " + st}); err != nil {
			t.Fatalf("%s reporting %s: %v", d.Hostname, st, err)
		}
	}
}

// roFixture is a group "lab" of four devices, users of each role, two
// products with releases, and a deployment of camera 1.1.0 to lab in
// stages 25%,100% whose second stage halted: one device rolled back.
type roFixture struct {
	ts     *servertest.Server
	dep    api.Deployment
	devs   []*roDevice
	failed *roDevice
}

const haltReason = "stage 2 (100%): 1 of 4 devices failed (25%), above the 10% threshold"

func newRolloutFixture(t *testing.T) *roFixture {
	t.Helper()
	ts := start(t)
	createGroup(t, ts, "lab")
	createGroup(t, ts, "office")
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	createUser(t, ts, "olga", api.Grant{Role: api.RoleOperator, Group: "lab"})
	createUser(t, ts, "audrey", api.Grant{Role: api.RoleAuditor})
	createUser(t, ts, "oscar", api.Grant{Role: api.RoleOperator, Group: "office"})
	roPublish(t, ts, "camera", "1.0.0")
	roPublish(t, ts, "camera", "1.1.0", "fixes", "CVE-2026-1234,GHSA-abcd-efgh-ijkl", "severity", "high")
	roPublish(t, ts, "gateway", "2.0.0")
	bom := map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []any{}}
	if code := ts.Do(t, "POST", "/api/v1/releases/camera/1.1.0/sbom", "", bom, nil); code != http.StatusCreated {
		t.Fatalf("SBOM upload: %d", code)
	}
	tok := ts.EnrollToken(t, 4, "lab")
	f := &roFixture{ts: ts}
	for i := range 4 {
		f.devs = append(f.devs, roEnrol(t, ts, tok, fmt.Sprintf("cam-%02d", i+1)))
	}
	req := api.DeploymentCreate{Product: "camera", Version: "1.1.0", Group: "lab", Stages: "25,100"}
	if code := ts.Do(t, "POST", "/api/v1/deployments", "", req, &f.dep); code != http.StatusCreated {
		t.Fatalf("creating the deployment: %d", code)
	}
	// Stage 1: one device installs; stage 2: one of three rolls back.
	assigned := func() []*roDevice {
		var out []*roDevice
		for _, d := range f.devs {
			if a := d.checkin(t); a != nil && a.DeploymentID == f.dep.ID {
				out = append(out, d)
			}
		}
		return out
	}
	first := assigned()
	if len(first) != 1 {
		t.Fatalf("%d devices assigned in stage 1", len(first))
	}
	first[0].report(t, f.dep.ID, "downloading", "installing", "success")
	second := assigned()
	if len(second) != 3 {
		t.Fatalf("%d devices assigned in stage 2", len(second))
	}
	second[0].report(t, f.dep.ID, "downloading", "installing", "rolled-back")
	f.failed = second[0]
	second[1].report(t, f.dep.ID, "downloading", "success")
	second[2].report(t, f.dep.ID, "downloading", "success")
	var shown api.Deployment
	f.ts.Do(t, "GET", "/api/v1/deployments/"+f.dep.ID, "", nil, &shown)
	if shown.State != "halted" || shown.Reason != haltReason {
		t.Fatalf("the fixture's deployment is %s: %q", shown.State, shown.Reason)
	}
	return f
}

func (f *roFixture) state(t *testing.T) api.Deployment {
	t.Helper()
	var d api.Deployment
	if code := f.ts.Do(t, "GET", "/api/v1/deployments/"+f.dep.ID, "", nil, &d); code != http.StatusOK {
		t.Fatalf("reading the deployment: %d", code)
	}
	return d
}

func mustContain(t *testing.T, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

func TestReleasesPage(t *testing.T) {
	f := newRolloutFixture(t)
	b := newBrowser(t, f.ts)
	b.mustLogin("audrey")
	p := b.get("/ui/releases")
	if p.Status != http.StatusOK {
		t.Fatalf("releases: %d", p.Status)
	}
	mustContain(t, "the release list", p.Body, "camera", "1.1.0", "gateway", "2.0.0", "CVE-2026-1234, GHSA-abcd-efgh-ijkl",
		`badge-bad">high`, `href="/releases/camera/1.1.0/sbom.cdx.json"`, "by token:", `>Releases</a>`)
	// Newest first.
	if i, j := strings.Index(p.Body, ">2.0.0<"), strings.Index(p.Body, ">1.0.0<"); i < 0 || j < 0 || i > j {
		t.Errorf("releases are not newest first")
	}
	if strings.Contains(p.Body, "Deploy…") {
		t.Error("an auditor is offered to deploy")
	}
	p = b.get("/ui/releases?product=gateway")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "2.0.0") || strings.Contains(p.Body, "1.1.0") {
		t.Errorf("filtered by gateway: %d", p.Status)
	}
	if p = b.get("/ui/releases?product=" + url.QueryEscape("../etc")); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, `id="error"`) {
		t.Errorf("a bad product filter: %d", p.Status)
	}
	// The SBOM link works without a login.
	resp, err := f.ts.HTTP.Get(f.ts.URL + "/releases/camera/1.1.0/sbom.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("public SBOM: %d", resp.StatusCode)
	}
	ob := newBrowser(t, f.ts)
	ob.mustLogin("olga")
	if p := ob.get("/ui/releases"); !strings.Contains(p.Body, `href="/ui/deployments/new?release=camera@1.1.0"`) {
		t.Error("an operator is not offered to deploy a release")
	}
}

func TestDeploymentPages(t *testing.T) {
	f := newRolloutFixture(t)
	id := f.dep.ID
	b := newBrowser(t, f.ts)
	b.mustLogin("audrey")
	list := b.get("/ui/deployments")
	if list.Status != http.StatusOK {
		t.Fatalf("deployments: %d", list.Status)
	}
	mustContain(t, "the deployment list", list.Body, "/ui/deployments/"+id, `badge-bad">halted`, "camera", "1.1.0", "group lab", "2/2",
		`<progress max="100" value="100"`, "3 ok", "1 failed", "4 devices")
	if strings.Contains(list.Body, "New deployment") {
		t.Error("an auditor is offered a new deployment")
	}
	if p := b.get("/ui/deployments?state=running"); strings.Contains(p.Body, "/ui/deployments/"+id) {
		t.Error("the running filter shows a halted deployment")
	}
	detail := b.get("/ui/deployments/" + id)
	if detail.Status != http.StatusOK {
		t.Fatalf("deployment: %d", detail.Status)
	}
	mustContain(t, "the deployment page", detail.Body, `id="deployment-state">halted`, `Halted:`, `id="deployment-reason">`+haltReason,
		`id="stage-1"`, `stat-ok" id="stage-1"`, `stat-bad" id="stage-2"`, "1 of 1 devices finished", "3 of 3 devices finished, 1 failed",
		"success: 3", "rolled-back: 1", `href="/ui/devices/`+f.failed.ID+`"`, f.failed.Hostname, "health check rolled-back", `id="history"`)
	for _, btn := range []string{`id="pause"`, `id="resume"`, `id="abort"`} {
		if strings.Contains(detail.Body, btn) {
			t.Errorf("an auditor sees %s", btn)
		}
	}
	// An auditor's POST, even with a valid token, is refused.
	if p := b.post("/ui/deployments/"+id+"/resume", url.Values{"csrf": {hidden(t, detail.Body, "csrf")}}); p.Status != http.StatusForbidden {
		t.Errorf("auditor resume: %d", p.Status)
	}
	if p := b.get("/ui/deployments/" + id + "/abort"); p.Status != http.StatusForbidden {
		t.Errorf("auditor abort page: %d", p.Status)
	}
	// An operator of another group does not see it at all.
	ob := newBrowser(t, f.ts)
	oscar := ob.mustLogin("oscar")
	if p := ob.get("/ui/deployments"); strings.Contains(p.Body, id) {
		t.Error("an operator of another group sees the deployment")
	}
	if p := ob.get("/ui/deployments/" + id); p.Status != http.StatusNotFound {
		t.Errorf("another group's operator: %d", p.Status)
	}
	if p := ob.post("/ui/deployments/"+id+"/abort", url.Values{"csrf": {oscar}}); p.Status != http.StatusNotFound {
		t.Errorf("another group's operator aborting: %d", p.Status)
	}

	// The group's operator resumes, pauses and aborts.
	op := newBrowser(t, f.ts)
	csrf := op.mustLogin("olga")
	detail = op.get("/ui/deployments/" + id)
	mustContain(t, "the operator's page", detail.Body, `id="resume"`, `id="abort"`)
	if strings.Contains(detail.Body, `id="pause"`) {
		t.Error("a halted deployment offers pause")
	}
	if p := op.post("/ui/deployments/"+id+"/resume", url.Values{}); p.Status != http.StatusForbidden || f.state(t).State != "halted" {
		t.Errorf("resume without a CSRF token: %d", p.Status)
	}
	if p := op.post("/ui/deployments/"+id+"/resume", url.Values{"csrf": {"forged"}}); p.Status != http.StatusForbidden {
		t.Errorf("resume with a forged CSRF token: %d", p.Status)
	}
	if p := op.post("/ui/deployments/"+id+"/explode", url.Values{"csrf": {csrf}}); p.Status != http.StatusNotFound {
		t.Errorf("an unknown action: %d", p.Status)
	}
	p := op.post("/ui/deployments/"+id+"/resume", url.Values{"csrf": {csrf}})
	if p.Status != http.StatusSeeOther || p.Location != "/ui/deployments/"+id+"?done=resume" || f.state(t).State != "running" {
		t.Fatalf("resume: %d %q", p.Status, p.Location)
	}
	if p := op.get(p.Location); !strings.Contains(p.Body, `id="flash"`) || !strings.Contains(p.Body, `id="pause"`) {
		t.Error("after resuming: no notice or no pause button")
	}
	if p := op.post("/ui/deployments/"+id+"/pause", url.Values{"csrf": {csrf}}); p.Status != http.StatusSeeOther || f.state(t).State != "paused" {
		t.Fatalf("pause: %d", p.Status)
	}
	if p := op.post("/ui/deployments/"+id+"/pause", url.Values{"csrf": {csrf}}); p.Status != http.StatusConflict ||
		!strings.Contains(p.Body, "Cannot pause a deployment that is paused.") {
		t.Errorf("pausing twice: %d", p.Status)
	}
	confirm := op.get("/ui/deployments/" + id + "/abort")
	if confirm.Status != http.StatusOK || !strings.Contains(confirm.Body, `id="confirm-abort"`) {
		t.Fatalf("abort confirmation: %d", confirm.Status)
	}
	if p := op.post("/ui/deployments/"+id+"/abort", url.Values{"reason": {"bad build"}}); p.Status != http.StatusForbidden || f.state(t).State != "paused" {
		t.Errorf("abort without a CSRF token: %d", p.Status)
	}
	if p := op.post("/ui/deployments/"+id+"/abort", url.Values{"csrf": {hidden(t, confirm.Body, "csrf")}, "reason": {"bad build"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("abort: %d", p.Status)
	}
	if d := f.state(t); d.State != "aborted" || d.Reason != "bad build" {
		t.Errorf("after abort: %s %q", d.State, d.Reason)
	}
	detail = op.get("/ui/deployments/" + id)
	mustContain(t, "the aborted deployment", detail.Body, `id="deployment-state">aborted`, "bad build")
	for _, btn := range []string{`id="pause"`, `id="resume"`, `id="abort"`} {
		if strings.Contains(detail.Body, btn) {
			t.Errorf("an aborted deployment offers %s", btn)
		}
	}
	if p := op.get("/ui/deployments/" + id + "/abort"); p.Status != http.StatusSeeOther {
		t.Errorf("abort page of an aborted deployment: %d", p.Status)
	}
	// Every action is in the audit log, by the console user.
	var page api.AuditPage
	f.ts.Do(t, "GET", "/api/v1/audit", "", nil, &page)
	seen := map[string]bool{}
	for _, e := range page.Entries {
		if e.Actor == "user:olga" {
			seen[e.Action] = true
		}
	}
	for _, a := range []string{"deployment.resume", "deployment.pause", "deployment.abort"} {
		if !seen[a] {
			t.Errorf("audit lacks olga's %s", a)
		}
	}
}

func TestNewDeploymentForm(t *testing.T) {
	f := newRolloutFixture(t)
	aud := newBrowser(t, f.ts)
	audCSRF := aud.mustLogin("audrey")
	if p := aud.get("/ui/deployments/new"); p.Status != http.StatusForbidden {
		t.Errorf("auditor's form: %d", p.Status)
	}
	if p := aud.post("/ui/deployments", url.Values{"csrf": {audCSRF}, "release": {"camera@1.1.0"}, "group": {"lab"}, "stages": {"100"}, "halt": {"10"}}); p.Status != http.StatusForbidden {
		t.Errorf("auditor's deployment: %d", p.Status)
	}

	op := newBrowser(t, f.ts)
	csrf := op.mustLogin("olga")
	form := op.get("/ui/deployments/new?release=camera@1.0.0")
	if form.Status != http.StatusOK {
		t.Fatalf("form: %d", form.Status)
	}
	mustContain(t, "the form", form.Body, `value="camera@1.0.0" selected`, `value="camera@1.1.0"`, `value="gateway@2.0.0"`,
		`<option value="lab"`, `value="5,25,100"`, `name="halt" type="number" min="0" max="100" value="10"`)
	if strings.Contains(form.Body, `name="expedited"`) {
		t.Error("an operator is offered to expedite")
	}
	if strings.Contains(form.Body, `<option value="office"`) {
		t.Error("the form offers a group the operator does not operate")
	}
	submit := func(b *browser, csrf string, kv ...string) page {
		t.Helper()
		v := url.Values{"csrf": {csrf}, "release": {"camera@1.1.0"}, "group": {"lab"}, "stages": {"5,25,100"}, "halt": {"10"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return b.post("/ui/deployments", v)
	}
	errorOf := func(p page) string {
		m := regexp.MustCompile(`id="error">([^<]*)<`).FindStringSubmatch(p.Body)
		if m == nil {
			return ""
		}
		return m[1]
	}
	for _, tc := range []struct {
		kv     []string
		status int
		msg    string
	}{
		{[]string{"stages", "50,25"}, 400, "stages must increase"},
		{[]string{"halt", "lots"}, 400, "halt threshold must be a whole percentage"},
		{[]string{"release", ""}, 400, "Choose a release"},
		{[]string{"release", "camera@9.9.9"}, 404, "has not been published"},
		{[]string{"group", "office"}, 403, "Your role does not allow this action"},
		{[]string{"expedited", "1"}, 403, "Only an admin may expedite"},
	} {
		p := submit(op, csrf, tc.kv...)
		if p.Status != tc.status || !strings.Contains(errorOf(p), tc.msg) {
			t.Errorf("%v: %d %q, want %d %q", tc.kv, p.Status, errorOf(p), tc.status, tc.msg)
		}
	}
	if p := submit(op, "forged"); p.Status != http.StatusForbidden {
		t.Errorf("a forged CSRF token: %d", p.Status)
	}
	p := submit(op, csrf, "stages", "50, 100", "halt", "0")
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/ui/deployments/dep") || !strings.HasSuffix(p.Location, "?done=created") {
		t.Fatalf("creating: %d %q\n%s", p.Status, p.Location, errorOf(p))
	}
	created := op.get(p.Location)
	mustContain(t, "the new deployment", created.Body, `id="flash"`, `id="deployment-state">running`, "stage 1 of 2", "halts above 0% failed", "50%",
		`stat-warn" id="stage-1"`, `badge-warn">open`, "0 of 2 devices finished", `stat-muted" id="stage-2"`, `badge-muted">waiting`, "pending: 2", "waiting: 2")

	admin := newBrowser(t, f.ts)
	adminCSRF := admin.mustLogin("root")
	if p := admin.get("/ui/deployments/new"); !strings.Contains(p.Body, `name="expedited"`) || !strings.Contains(p.Body, `<option value="office"`) {
		t.Error("an admin is not offered to expedite, or every group")
	}
	if p := submit(admin, adminCSRF, "expedited", "1", "release", "gateway@2.0.0"); p.Status != http.StatusSeeOther {
		t.Errorf("an admin's expedited deployment: %d %s", p.Status, errorOf(p))
	} else if p := admin.get(p.Location); !strings.Contains(p.Body, `badge-warn">expedited`) {
		t.Error("the expedited deployment does not say so")
	}
}

func TestRolloutPagesFitCSP(t *testing.T) {
	f := newRolloutFixture(t)
	b := newBrowser(t, f.ts)
	b.mustLogin("root")
	inlineRE := regexp.MustCompile(`(?i)(\sstyle=|<script|<style|\son[a-z]+=|javascript:|https?://)`)
	for _, path := range []string{"/ui/releases", "/ui/releases?product=camera", "/ui/deployments", "/ui/deployments?state=halted",
		"/ui/deployments/" + f.dep.ID, "/ui/deployments/" + f.dep.ID + "/abort", "/ui/deployments/new"} {
		p := b.get(path)
		if p.Status != http.StatusOK {
			t.Errorf("GET %s: %d", path, p.Status)
		}
		if m := inlineRE.FindString(p.Body); m != "" {
			t.Errorf("GET %s: page contains %q, which the CSP forbids or which leaves the site", path, m)
		}
		if p.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", path, p.Header.Get("Cache-Control"))
		}
	}
	if p := b.get("/ui/deployments/dep-nonexistent"); p.Status != http.StatusNotFound {
		t.Errorf("an unknown deployment: %d", p.Status)
	}
}

// TestRolloutInChromium loads a halted deployment's page in a real
// browser and checks that the stages and device statuses render.
func TestRolloutInChromium(t *testing.T) {
	ctx := startChromium(t)
	f := newRolloutFixture(t)
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
		return strings.Join(strings.Fields(s), " ")
	}

	must("opening the deployment", chromedp.Do(ctx, chromedp.Navigate(f.ts.URL+"/ui/deployments/"+f.dep.ID)))
	must("filling the login form", chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#username"), "olga"), chromedp.SetValue(chromedp.CSS("#password"), testPassword)))
	_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#login-submit")))
	must("logging in", err)
	loc, err := chromedp.Run(ctx, chromedp.Location())
	must("location", err)
	if u, _ := url.Parse(loc); u.Path != "/ui/deployments/"+f.dep.ID {
		t.Fatalf("after login at %s", u.Path)
	}
	if got := text("#deployment-state"); got != "halted" {
		t.Errorf("state %q", got)
	}
	if got := text("#deployment-reason"); got != haltReason {
		t.Errorf("reason %q", got)
	}
	if got := text("#stage-1"); !strings.Contains(got, "25%") || !strings.Contains(got, "Stage 1 · done") || !strings.Contains(got, "1 of 1 devices finished") {
		t.Errorf("stage 1 shows %q", got)
	}
	if got := text("#stage-2"); !strings.Contains(got, "100%") || !strings.Contains(got, "halted") || !strings.Contains(got, "1 failed") {
		t.Errorf("stage 2 shows %q", got)
	}
	// The stages sit side by side, styled as the overview's counters.
	cols, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("#stages")).display`))
	must("reading the stages' style", err)
	if cols != "grid" {
		t.Errorf("stages display %q, want grid", cols)
	}
	badges, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("#deployment-devices tbody .badge")).map(b => b.textContent).sort().join(",")`))
	must("reading the device statuses", err)
	if badges != "rolled-back,success,success,success" {
		t.Errorf("device statuses %q", badges)
	}
	if rows := text("#deployment-devices tbody"); !strings.Contains(rows, f.failed.Hostname) || !strings.Contains(rows, "health check rolled-back") {
		t.Errorf("device table %q", rows)
	}
	if got := text("#history"); !strings.Contains(got, "halted") || !strings.Contains(got, "downloading") {
		t.Errorf("history %q", got)
	}
	if got := text("#counts"); !strings.Contains(got, "success: 3") || !strings.Contains(got, "rolled-back: 1") {
		t.Errorf("counts %q", got)
	}
	if _, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#resume"))); err != nil {
		t.Errorf("the operator sees no resume button: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must("screenshot", err)
	if err := os.WriteFile("/tmp/console-deployment.png", shot, 0o644); err != nil {
		t.Logf("saving the screenshot: %v", err)
	}
}
