package console_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
	"github.com/bulwark-iot/bulwark/internal/console"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

var attestPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7}

// tpmDevice is a device with a software TPM, enrolled over the real
// credential-activation flow.
type tpmDevice struct {
	ID       string
	Hostname string
	tpm      *softtpm.TPM
	key      *ecdsa.PrivateKey
	client   *deviceclient.Client
	nonce    []byte // from the activation challenge, for the enrolment quote
	lastQ    string // hex SHA-256 of the latest quote sent
}

// enrolTPM enrols a device whose keys are in a software TPM (with an EK
// certificate and Secure Boot on) and checks it in once.
func enrolTPM(t *testing.T, ts *servertest.Server, token, hostname string) *tpmDevice {
	t.Helper()
	ctx := context.Background()
	tp, err := softtpm.New(softtpm.Options{EKCertificate: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Boot(softtpm.BootConfig{SecureBoot: true}); err != nil {
		t.Fatal(err)
	}
	c, err := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	csr, err := deviceclient.NewCSR(tp.DeviceKey())
	if err != nil {
		t.Fatal(err)
	}
	enr, err := tp.Enrollment()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Enroll(ctx, api.EnrollRequest{Token: token, CSR: csr, TPM: enr})
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.Activation
	if ch == nil {
		t.Fatalf("TPM enrolment answered without a challenge: %+v", resp)
	}
	secret, err := tp.ActivateCredential(ch.Credential, ch.Secret)
	if err != nil {
		t.Fatal(err)
	}
	fin, err := c.Enroll(ctx, api.EnrollRequest{CSR: csr, Activation: &api.ActivationAnswer{Session: ch.Session, Secret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if fin.KeyAssurance != api.AssuranceHardware {
		t.Fatalf("key assurance = %q", fin.KeyAssurance)
	}
	key := tp.DeviceKey().(*ecdsa.PrivateKey)
	block, _ := pem.Decode([]byte(fin.Certificate))
	if block == nil {
		t.Fatal("enrolment answer has no certificate PEM")
	}
	c.SetCertificate(&tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key})
	d := &tpmDevice{ID: fin.DeviceID, Hostname: hostname, tpm: tp, key: key, client: c, nonce: ch.Nonce}
	d.checkin(t)
	return d
}

// checkin checks the device in with an inventory, acknowledging acks,
// and returns the commands it was given.
func (d *tpmDevice) checkin(t *testing.T, acks ...api.CommandAck) *api.CheckinResponse {
	t.Helper()
	resp, err := d.client.Checkin(context.Background(), &api.CheckinRequest{
		Inventory: api.Inventory{Hostname: d.Hostname, OS: "Debian GNU/Linux", OSVersion: "12", Kernel: "6.1.0", Arch: "amd64", AgentVersion: "0.3.1"},
		Health:    api.Health{Status: api.HealthHealthy},
		Acks:      acks,
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// attest quotes with nonce and sends the evidence, as the agent does.
func (d *tpmDevice) attest(t *testing.T, nonce []byte) *api.AttestationResult {
	t.Helper()
	ev, err := d.tpm.Quote(nonce, attestPCRs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.client.Attest(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ev.Quote)
	d.lastQ = hex.EncodeToString(sum[:])
	return res
}

// attestFresh attests with a fresh nonce from the server.
func (d *tpmDevice) attestFresh(t *testing.T) *api.AttestationResult {
	t.Helper()
	n, err := d.client.AttestNonce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d.attest(t, n)
}

// answerAttestCommands does what the agent does with the commands of a
// check-in: for each "attest" command it attests with a fresh nonce, and
// it acknowledges every command at a second check-in. It returns the
// results.
func (d *tpmDevice) answerAttestCommands(t *testing.T) []*api.AttestationResult {
	t.Helper()
	var acks []api.CommandAck
	var out []*api.AttestationResult
	for _, c := range d.checkin(t).Commands {
		if c.Kind == "attest" {
			out = append(out, d.attestFresh(t))
		}
		acks = append(acks, api.CommandAck{ID: c.ID, Status: "done"})
	}
	if len(acks) > 0 {
		d.checkin(t, acks...)
	}
	return out
}

// sendHealthReport signs a health report bound to the latest quote and
// sends it.
func (d *tpmDevice) sendHealthReport(t *testing.T, status string, at time.Time) *api.SignedHealthReport {
	t.Helper()
	rep := &api.HealthReport{DeviceID: d.ID, Time: at.UTC(), QuoteDigest: d.lastQ,
		Health: api.Health{Status: status, Checks: []api.HealthCheck{{Name: "disk", Status: status, Detail: "probe-" + status}}}}
	sr, err := deviceclient.SignHealthReport(d.key, rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.client.SendHealthReport(context.Background(), sr); err != nil {
		t.Fatal(err)
	}
	return sr
}

func (d *tpmDevice) ekHash() string {
	sum := sha256.Sum256(d.tpm.EKPublicDER())
	return hex.EncodeToString(sum[:])
}

// startAttest starts a console server that quarantines devices that fail
// attestation.
func startAttest(t *testing.T) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Options{Config: server.Config{Console: console.New,
		Attestation: server.AttestConfig{FailureAction: server.ActionQuarantine}}})
}

// auditActions returns the actions of a target's audit entries, newest
// first, with their details.
func auditEntries(t *testing.T, ts *servertest.Server, target string) []api.AuditEntry {
	t.Helper()
	es, err := ts.Store().RecentAudit(context.Background(), target, 100)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func countAudit(t *testing.T, ts *servertest.Server, target, action string) int {
	t.Helper()
	n := 0
	for _, e := range auditEntries(t, ts, target) {
		if e.Action == action {
			n++
		}
	}
	return n
}

func TestIdentityAndAttestationPages(t *testing.T) {
	ts := startAttest(t)
	createGroup(t, ts, "plant")
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	createUser(t, ts, "op", api.Grant{Role: api.RoleOperator, Group: "plant"})
	createUser(t, ts, "aud", api.Grant{Role: api.RoleAuditor})
	d := enrolTPM(t, ts, ts.EnrollToken(t, 1, "plant"), "rtu-tpm")
	soft := enrol(t, ts, ts.EnrollToken(t, 1, "plant"), "rtu-soft")
	first := d.attest(t, d.nonce) // the enrolment attestation captures the baseline
	if first.Status != api.AttestWarning || first.Reason != "enrolment" {
		t.Fatalf("enrolment attestation = %+v", first)
	}
	older := d.sendHealthReport(t, api.HealthDegraded, time.Now().Add(-time.Minute))
	newer := d.sendHealthReport(t, api.HealthHealthy, time.Now())
	devPage := "/ui/devices/" + d.ID
	target := "device:" + d.ID

	// The device list: key assurance, trust and health for each device.
	aud := newBrowser(t, ts)
	audCSRF := aud.mustLogin("aud")
	list := aud.get("/ui/devices")
	if list.Status != http.StatusOK {
		t.Fatalf("devices: %d", list.Status)
	}
	row := func(body, host string) string {
		i := strings.Index(body, ">"+host+"<")
		if i < 0 {
			t.Fatalf("device list lacks %s", host)
		}
		end := strings.Index(body[i:], "</tr>")
		return body[i : i+end]
	}
	mustContain(t, "TPM device row", row(list.Body, d.Hostname), ">hardware<", ">trusted<", ">healthy<")
	mustContain(t, "software device row", row(list.Body, soft.Hostname), "software · lower assurance", ">trusted<", ">degraded<")

	// The device page, for an auditor: everything shown, no actions.
	p := aud.get(devPage)
	if p.Status != http.StatusOK {
		t.Fatalf("device page: %d", p.Status)
	}
	mustContain(t, "auditor's device page", p.Body,
		`id="identity"`, "Identity and attestation", "cannot be exported",
		`id="ek-hash">`+d.ekHash()+`<`, `id="ek-manufacturer">`+softtpm.Manufacturer,
		`id="baseline-pending"`, `id="attest-status">warning<`, `id="attest-reason">enrolment<`,
		`id="secure-boot"><span class="badge badge-ok">enabled<`, `id="trust-vector"`, "instance-identity",
		"the quote was signed by the attestation key enrolled for this device", `id="attest-problems"`,
		`id="attestations"`, `id="health-reports"`, "signed by the device key", `id="health-reports-download"`,
		tmplText(string(newer.Report)), tmplText(string(older.Report)))
	for _, absent := range []string{`id="attest-now"`, `id="approve-baseline"`, `id="trust-form"`} {
		if strings.Contains(p.Body, absent) {
			t.Errorf("an auditor's device page has %s", absent)
		}
	}
	// Everything fits the CSP (no inline style or script, nothing off site).
	inlineRE := regexp.MustCompile(`(?i)(\sstyle=|<script|<style|\son[a-z]+=|javascript:|https?://)`)
	if m := inlineRE.FindString(p.Body); m != "" {
		t.Errorf("device page contains %q, which the CSP forbids or which leaves the site", m)
	}
	// Newest health report first.
	if strings.Index(p.Body, tmplText(string(newer.Report))) > strings.Index(p.Body, tmplText(string(older.Report))) {
		t.Error("health history is not newest first")
	}
	// The signed reports download exactly as signed.
	dl := aud.get(devPage + "/health-reports.json")
	if dl.Status != http.StatusOK || !strings.HasPrefix(dl.Header.Get("Content-Type"), "application/json") ||
		!strings.Contains(dl.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %q %q", dl.Status, dl.Header.Get("Content-Type"), dl.Header.Get("Content-Disposition"))
	}
	var reps api.HealthReportList
	if err := json.Unmarshal([]byte(dl.Body), &reps); err != nil || len(reps.Reports) != 2 {
		t.Fatalf("download: %v, %d reports", err, len(reps.Reports))
	}
	if got := reps.Reports[0].Signed; string(got.Report) != string(newer.Report) || string(got.Signature) != string(newer.Signature) {
		t.Error("the downloaded report differs from what the device signed")
	}

	// An auditor can do none of the actions.
	for _, path := range []string{"/attest", "/approve-baseline", "/trust"} {
		if p := aud.post(devPage+path, url.Values{"csrf": {audCSRF}, "trust": {"trusted"}, "reason": {"x"}}); p.Status != http.StatusForbidden {
			t.Errorf("auditor POST %s: %d, want 403", path, p.Status)
		}
	}

	// An operator of the group may attest, not approve or set trust.
	op := newBrowser(t, ts)
	opCSRF := op.mustLogin("op")
	p = op.get(devPage)
	mustContain(t, "operator's device page", p.Body, `id="attest-now"`)
	if strings.Contains(p.Body, `id="approve-baseline"`) || strings.Contains(p.Body, `id="trust-form"`) {
		t.Error("an operator's device page offers admin actions")
	}
	for _, path := range []string{"/approve-baseline", "/trust"} {
		if p := op.post(devPage+path, url.Values{"csrf": {opCSRF}, "trust": {"trusted"}, "reason": {"x"}}); p.Status != http.StatusForbidden {
			t.Errorf("operator POST %s: %d, want 403", path, p.Status)
		}
	}

	// The admin: CSRF first. Nothing happens without the token.
	root := newBrowser(t, ts)
	rootCSRF := root.mustLogin("root")
	p = root.get(devPage)
	mustContain(t, "admin's device page", p.Body, `id="attest-now"`, `id="approve-baseline"`, `id="trust-form"`)
	for _, path := range []string{"/attest", "/approve-baseline", "/trust"} {
		for _, tok := range []string{"", "wrong-" + rootCSRF} {
			if p := root.post(devPage+path, url.Values{"csrf": {tok}, "trust": {"quarantined"}, "reason": {"x"}}); p.Status != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q: %d, want 403", path, tok, p.Status)
			}
		}
	}
	for _, action := range []string{"attestation.request", "attestation.baseline.approve", "device.trust"} {
		if n := countAudit(t, ts, target, action); n != 0 {
			t.Fatalf("refused POSTs left %d %s audit entries", n, action)
		}
	}
	if ref, err := ts.Store().GetAttestReference(context.Background(), d.ID); err != nil || !ref.ApprovedAt.IsZero() {
		t.Fatalf("refused POSTs approved the baseline: %v", err)
	}

	// Attest now (operator): the request, the command and the audit entry.
	p = op.post(devPage+"/attest", url.Values{"csrf": {opCSRF}})
	if p.Status != http.StatusSeeOther || p.Location != devPage+"?done=attest-requested" {
		t.Fatalf("attest now: %d %q", p.Status, p.Location)
	}
	p = op.get(p.Location)
	mustContain(t, "page after attest now", p.Body, "Attestation requested", `id="attest-pending"`, "attestation.request")
	cmds, err := ts.DeviceCommands(&http.Request{}, d.ID)
	if err != nil || len(cmds) == 0 || cmds[0].Kind != "attest" || cmds[0].CreatedBy != "user:op" {
		t.Fatalf("commands after attest now: %+v, %v", cmds, err)
	}
	if n := countAudit(t, ts, target, "attestation.request"); n != 1 {
		t.Errorf("%d attestation.request entries, want 1", n)
	}

	// Approve the baseline (admin); the button goes away.
	p = root.post(devPage+"/approve-baseline", url.Values{"csrf": {rootCSRF}})
	if p.Status != http.StatusSeeOther || p.Location != devPage+"?done=baseline-approved" {
		t.Fatalf("approve baseline: %d %q", p.Status, p.Location)
	}
	p = root.get(p.Location)
	mustContain(t, "page after approval", p.Body, "now the device&#39;s approved reference", "by user:root")
	if strings.Contains(p.Body, `id="approve-baseline"`) || strings.Contains(p.Body, `id="baseline-pending"`) {
		t.Error("the approve button is still shown after approval")
	}
	if n := countAudit(t, ts, target, "attestation.baseline.approve"); n != 1 {
		t.Errorf("%d attestation.baseline.approve entries, want 1", n)
	}
	// The device answers the command; the result is affirming.
	if res := d.answerAttestCommands(t); len(res) != 1 || res[0].Status != api.AttestAffirming {
		t.Fatalf("answer to attest now: %+v", res)
	}
	p = root.get(devPage)
	mustContain(t, "page after a good attestation", p.Body, `id="attest-status">affirming<`)
	if strings.Contains(p.Body, `id="attest-pending"`) {
		t.Error("the request is still pending after the device attested")
	}

	// Set trust: a bad value is refused; quarantine, then restore.
	if p := root.post(devPage+"/trust", url.Values{"csrf": {rootCSRF}, "trust": {"fine"}, "reason": {"x"}}); p.Status != http.StatusBadRequest ||
		!strings.Contains(p.Body, "Trust must be trusted, untrusted or quarantined") {
		t.Errorf("bad trust: %d", p.Status)
	}
	if p := root.post(devPage+"/trust", url.Values{"csrf": {rootCSRF}, "trust": {"quarantined"}, "reason": {"suspicious boot"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("quarantine: %d", p.Status)
	}
	list = root.get("/ui/devices")
	mustContain(t, "quarantined device row", row(list.Body, d.Hostname), `badge-bad dot">quarantined<`, ">unhealthy<")
	p = root.get(devPage)
	mustContain(t, "quarantined device page", p.Body, `id="head-trust">trust: quarantined<`, "Restore or set trust", "cannot renew its certificate")
	p = root.post(devPage+"/trust", url.Values{"csrf": {rootCSRF}, "trust": {"trusted"}, "reason": {"investigated"}})
	if p.Status != http.StatusSeeOther || p.Location != devPage+"?done=trust-set" {
		t.Fatalf("restore trust: %d %q", p.Status, p.Location)
	}
	var shown api.Device
	ts.Do(t, "GET", "/api/v1/devices/"+d.ID, ts.AdminToken, nil, &shown)
	if shown.Trust != api.TrustTrusted {
		t.Errorf("trust after restore = %q", shown.Trust)
	}
	// The audit entries are the admin API's, word for word.
	var details []string
	for _, e := range auditEntries(t, ts, target) {
		if e.Action == "device.trust" {
			details = append(details, e.Actor+" "+e.Detail+" "+e.Outcome)
		}
	}
	want := []string{"user:root trust=trusted reason=investigated ok", "user:root trust=quarantined reason=suspicious boot ok"}
	if strings.Join(details, "|") != strings.Join(want, "|") {
		t.Errorf("device.trust audit entries %q, want %q", details, want)
	}
	if code := ts.Do(t, "PUT", "/api/v1/devices/"+d.ID+"/trust", ts.AdminToken, api.TrustUpdate{Trust: api.TrustTrusted, Reason: "investigated"}, nil); code != http.StatusNoContent {
		t.Fatalf("PUT trust: %d", code)
	}
	es := auditEntries(t, ts, target)
	if es[0].Action != "device.trust" || es[0].Detail != "trust=trusted reason=investigated" || es[1].Detail != es[0].Detail {
		t.Errorf("the API's entry %+v differs from the console's %+v", es[0], es[1])
	}

	// A software device: no TPM, no attestation, and attesting is refused.
	p = root.get("/ui/devices/" + soft.ID)
	mustContain(t, "software device page", p.Body, `id="no-tpm"`, "Software key (lower assurance)", `id="no-attestation"`, `id="no-health-reports"`)
	if strings.Contains(p.Body, `id="attest-now"`) {
		t.Error("a device without a TPM offers Attest now")
	}
	if p := root.post("/ui/devices/"+soft.ID+"/attest", url.Values{"csrf": {rootCSRF}}); p.Status != http.StatusConflict || !strings.Contains(p.Body, "enrolled without a TPM") {
		t.Errorf("attest a software device: %d", p.Status)
	}
	if p := root.post("/ui/devices/"+soft.ID+"/approve-baseline", url.Values{"csrf": {rootCSRF}}); p.Status != http.StatusConflict {
		t.Errorf("approve a baseline that was never captured: %d", p.Status)
	}

	// Out of scope is not found, for pages and actions alike.
	createGroup(t, ts, "other")
	createUser(t, ts, "otherop", api.Grant{Role: api.RoleAdmin, Group: "other"})
	o := newBrowser(t, ts)
	oCSRF := o.mustLogin("otherop")
	if p := o.get(devPage + "/health-reports.json"); p.Status != http.StatusNotFound {
		t.Errorf("out-of-scope download: %d", p.Status)
	}
	for _, path := range []string{"/attest", "/approve-baseline", "/trust"} {
		if p := o.post(devPage+path, url.Values{"csrf": {oCSRF}, "trust": {"trusted"}}); p.Status != http.StatusNotFound {
			t.Errorf("out-of-scope POST %s: %d, want 404", path, p.Status)
		}
	}
}

// tmplText escapes s as html/template does in element text.
func tmplText(s string) string {
	r := strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "+", "&#43;")
	return r.Replace(s)
}

func TestAttestationInChromium(t *testing.T) {
	ctx := startChromium(t)
	ts := startAttest(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	d := enrolTPM(t, ts, ts.EnrollToken(t, 1, ""), "substation-rtu")
	d.attest(t, d.nonce)
	d.sendHealthReport(t, api.HealthHealthy, time.Now())
	soft := enrol(t, ts, ts.EnrollToken(t, 1, ""), "substation-hmi")

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
	exists := func(sel string) bool {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
		must("looking for "+sel, err)
		return n > 0
	}
	submit := func(step, button string) {
		t.Helper()
		_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
		must(step, err)
	}
	devPage := ts.URL + "/ui/devices/" + d.ID

	must("opening the device page", chromedp.Do(ctx, chromedp.Navigate(devPage)))
	must("filling the login form", chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#username"), "root"), chromedp.SetValue(chromedp.CSS("#password"), testPassword)))
	submit("logging in", "#login-submit")
	if got := text("#device-hostname"); got != d.Hostname {
		t.Fatalf("after login at %q", got)
	}
	if got := text("#key-assurance"); got != "hardware" {
		t.Errorf("key assurance badge %q", got)
	}
	if got := text("#ek-hash"); got != d.ekHash() {
		t.Errorf("EK hash %q, want %q", got, d.ekHash())
	}
	if got := text("#attest-status"); got != api.AttestWarning {
		t.Errorf("attestation status %q before approval", got)
	}
	if got := text("#trust"); got != "trusted" {
		t.Errorf("trust %q", got)
	}
	if got := text("#trust-vector"); !strings.Contains(got, "instance-identity") || !strings.Contains(got, "affirming") {
		t.Errorf("trust vector %q", got)
	}
	if got := text("#health-reports"); !strings.Contains(got, "healthy") {
		t.Errorf("health history %q", got)
	}
	// In the device list, a software key stands out from a hardware one.
	must("opening the device list", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/devices")))
	badgeColour := func(host string) string {
		t.Helper()
		js := `(() => { for (const tr of document.querySelectorAll("#devices tbody tr")) {
			if (tr.querySelector("a").textContent.trim() === ` + jsString(host) + `) {
				const b = tr.querySelectorAll("td")[4].querySelector(".badge");
				return b.textContent.trim() + " " + getComputedStyle(b).backgroundColor; } } return ""; })()`
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		must("reading the assurance badge of "+host, err)
		return v
	}
	hw, sw := badgeColour(d.Hostname), badgeColour(soft.Hostname)
	if !strings.HasPrefix(hw, "hardware rgb") || !strings.HasPrefix(sw, "software · lower assurance rgb") ||
		strings.TrimPrefix(hw, "hardware ") == strings.TrimPrefix(sw, "software · lower assurance ") {
		t.Errorf("assurance badges: hardware %q, software %q", hw, sw)
	}
	must("opening the device page", chromedp.Do(ctx, chromedp.Navigate(devPage)))

	submit("approving the baseline", "#approve-baseline")
	if got := text("#flash"); !strings.Contains(got, "approved reference") {
		t.Errorf("after approving: %q", got)
	}
	if exists("#approve-baseline") {
		t.Error("the approve button is still there")
	}
	submit("asking for an attestation", "#attest-now")
	if got := text("#flash"); !strings.Contains(got, "Attestation requested") {
		t.Errorf("after attest now: %q", got)
	}
	if got := text("#commands"); !strings.Contains(got, "attest") {
		t.Errorf("commands %q", got)
	}
	if got := text("#activity"); !strings.Contains(got, "attestation.request") || !strings.Contains(got, "attestation.baseline.approve") {
		t.Errorf("activity %q", got)
	}
	// The device answers the command as the agent would.
	if res := d.answerAttestCommands(t); len(res) != 1 || res[0].Status != api.AttestAffirming {
		t.Fatalf("the device's answer: %+v", res)
	}
	must("reloading", chromedp.Do(ctx, chromedp.Navigate(devPage)))
	if got := text("#attest-status"); got != api.AttestAffirming {
		t.Errorf("attestation status %q after the requested attestation", got)
	}
	if got := text("#attestations tbody"); strings.Count(got, "affirming") != 1 || !strings.Contains(got, "warning") {
		t.Errorf("attestation history %q", got)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must("screenshot", err)
	if err := os.WriteFile("/tmp/console-attestation.png", shot, 0o644); err != nil {
		t.Logf("saving the screenshot: %v", err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
