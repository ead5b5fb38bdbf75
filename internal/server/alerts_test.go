package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/alert"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/siem"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

// webhookReceiver is an alert webhook endpoint that checks every
// signature with siem.VerifyWebhook and refuses its first request with a
// 503, so that the server has to retry.
type webhookReceiver struct {
	*httptest.Server
	secret []byte

	mu       sync.Mutex
	requests int
	alerts   []siem.Alert // accepted, in order
	bad      []string     // problems seen
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	// The secret file is text (the server trims surrounding whitespace), as
	// an operator makes it with `openssl rand -hex 32`.
	wr := &webhookReceiver{secret: []byte(hex.EncodeToString(siem.NewWebhookSecret()))}
	wr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wr.mu.Lock()
		defer wr.mu.Unlock()
		wr.requests++
		if err := siem.VerifyWebhook(wr.secret, r.Header.Get(siem.SignatureHeader), body, time.Now(), 0); err != nil {
			wr.bad = append(wr.bad, "signature: "+err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if k := r.Header.Get(siem.KindHeader); k != "alert" {
			wr.bad = append(wr.bad, "kind "+k)
		}
		if wr.requests == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var a siem.Alert
		if err := json.Unmarshal(body, &a); err != nil {
			wr.bad = append(wr.bad, "body: "+err.Error())
		}
		wr.alerts = append(wr.alerts, a)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(wr.Close)
	return wr
}

// received returns the accepted alerts of a rule.
func (wr *webhookReceiver) received(rule string) []siem.Alert {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	var out []siem.Alert
	for _, a := range wr.alerts {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

// waitFor polls cond for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func alertServer(t *testing.T, wr *webhookReceiver, db string) *servertest.Server {
	secretFile := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(secretFile, append(wr.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return servertest.Start(t, servertest.Options{DB: db, Config: server.Config{
		Attestation: server.AttestConfig{FailureAction: server.ActionQuarantine},
		Alerts:      server.AlertsConfig{WebhookURL: wr.URL, WebhookSecretFile: secretFile, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond},
	}})
}

func listAlerts(t *testing.T, ts *servertest.Server, token, query string) []api.Alert {
	t.Helper()
	var out api.AlertList
	if code := ts.Do(t, "GET", "/api/v1/alerts?"+query, token, nil, &out); code != http.StatusOK {
		t.Fatalf("GET /api/v1/alerts?%s: %d", query, code)
	}
	return out.Alerts
}

func byRule(list []api.Alert, rule string) []api.Alert {
	var out []api.Alert
	for _, a := range list {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

func TestAlertsAttestationFailureDeliveredAndAcknowledged(t *testing.T) {
	wr := newWebhookReceiver(t)
	ts := alertServer(t, wr, "")
	d := enrollTPM(t, ts, newSoftTPM(t), ts.EnrollToken(t, 5, ""))

	// Enrolment is a change of state too.
	waitFor(t, "the enrolment alert", func() bool { return len(wr.received(alert.RuleDeviceEnrolled)) == 1 })
	if first := d.attest(t, d.nonce); first.Status == api.AttestContraindicated {
		t.Fatalf("enrolment attestation failed: %+v", first)
	}
	if got := byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleAttestationFailed); len(got) != 0 {
		t.Fatalf("a passing attestation raised %+v", got)
	}

	// A measurement the event log does not account for: the attestation
	// fails and raises exactly one alert, delivered signed.
	d.tpm.Extend(4, sha256.Sum256([]byte("implant")))
	if bad := d.attest(t, d.freshNonce(t)); bad.Status != api.AttestContraindicated {
		t.Fatalf("tampered boot = %+v", bad)
	}
	open := byRule(listAlerts(t, ts, "", "status=open&device="+d.id), alert.RuleAttestationFailed)
	if len(open) != 1 {
		t.Fatalf("%d open attestation alerts, want 1", len(open))
	}
	a := open[0]
	if a.DeviceID != d.id || a.SeverityID != events.SeverityHigh || a.Severity != "High" || a.Count != 1 || a.Status != api.AlertOpen ||
		a.Summary == "" || a.FirstSeen.IsZero() || a.Events == nil {
		t.Fatalf("alert = %+v", a)
	}
	waitFor(t, "the attestation alert at the webhook", func() bool { return len(wr.received(alert.RuleAttestationFailed)) == 1 })
	got := wr.received(alert.RuleAttestationFailed)[0]
	if got.ID != a.ID || got.DeviceID != d.id || got.Severity != events.SeverityHigh || got.Summary != a.Summary {
		t.Fatalf("delivered %+v, stored %+v", got, a)
	}

	// Failing again while the alert is open counts on it; nothing new is
	// delivered.
	if bad := d.attest(t, d.freshNonce(t)); bad.Status != api.AttestContraindicated {
		t.Fatalf("second tampered attestation = %+v", bad)
	}
	open = byRule(listAlerts(t, ts, "", "status=open"), alert.RuleAttestationFailed)
	if len(open) != 1 || open[0].ID != a.ID || open[0].Count != 2 {
		t.Fatalf("after a repeat: %+v", open)
	}

	// An auditor may list but not acknowledge.
	aud, err := server.CreateAPITokenLocal(context.Background(), ts.Store(), "local:test", api.APITokenCreate{Name: "auditor", Role: api.RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	if len(listAlerts(t, ts, aud.Token, "device="+d.id)) == 0 {
		t.Fatal("an auditor sees no alerts")
	}
	if code := ts.Do(t, "POST", "/api/v1/alerts/"+a.ID+"/ack", aud.Token, nil, nil); code != http.StatusForbidden {
		t.Fatalf("ack by an auditor: %d", code)
	}
	if code := ts.Do(t, "POST", "/api/v1/alerts/alr_nope/ack", "", nil, nil); code != http.StatusNotFound {
		t.Fatalf("ack of an unknown alert: %d", code)
	}
	// An operator (the admin token) acknowledges it: recorded and audited.
	var acked api.Alert
	if code := ts.Do(t, "POST", "/api/v1/alerts/"+a.ID+"/ack", "", nil, &acked); code != http.StatusOK {
		t.Fatalf("ack: %d", code)
	}
	if acked.Status != api.AlertAcknowledged || acked.AckedBy != "token:test-admin" || acked.AckedAt == nil || acked.Count != 2 {
		t.Fatalf("acknowledged alert = %+v", acked)
	}
	if got := listAlerts(t, ts, "", "status=open&device="+d.id); len(byRule(got, alert.RuleAttestationFailed)) != 0 {
		t.Fatalf("still open after the ack: %+v", got)
	}
	var audit api.AuditPage
	ts.Do(t, "GET", "/api/v1/audit?limit=1000", "", nil, &audit)
	found := false
	for _, e := range audit.Entries {
		found = found || e.Action == "alert.ack" && e.Target == "alert:"+a.ID && e.Actor == "token:test-admin"
	}
	if !found {
		t.Fatal("the acknowledgement is not in the audit log")
	}

	// Every accepted delivery was one alert, once; the refused first
	// request was retried.
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if len(wr.bad) > 0 {
		t.Fatalf("webhook problems: %v", wr.bad)
	}
	seen := map[string]bool{}
	for _, x := range wr.alerts {
		if seen[x.ID] {
			t.Errorf("alert %s delivered twice", x.ID)
		}
		seen[x.ID] = true
	}
	if wr.requests != len(wr.alerts)+1 {
		t.Errorf("%d requests for %d alerts: want exactly one refused and retried", wr.requests, len(wr.alerts))
	}
}

// TestAlertsRevocationAndEvents runs on both store backends.
func TestAlertsRevocationAndEvents(t *testing.T) {
	for _, backend := range storetest.Backends {
		t.Run(string(backend), func(t *testing.T) { testAlertsRevocationAndEvents(t, dbFor(t, backend)) })
	}
}

func testAlertsRevocationAndEvents(t *testing.T, db string) {
	wr := newWebhookReceiver(t)
	ts := alertServer(t, wr, db)
	d := enroll(t, ts, ts.EnrollToken(t, 5, ""), "host-1")

	// Repeated authentication failures, forwarded from the device journal.
	j, err := journal.Open(t.TempDir(), journal.Options{DeviceID: d.id, NoSync: true, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	at := time.Now().UTC()
	for i := range alert.AuthFailureThreshold {
		ev, err := events.New(events.TypeAuthLogin, d.id, events.SeverityMedium, at.Add(time.Duration(i)*time.Second),
			events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: fmt.Sprint("user", i), SrcIP: "203.0.113.7"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := j.Read(1, 100)
	if err != nil {
		t.Fatal(err)
	}
	batch := &api.EventBatch{}
	for _, r := range recs {
		batch.Records = append(batch.Records, api.EventRecord{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Event: r.Event})
	}
	if _, err := d.client.SendEvents(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the repeated-failures alert", func() bool {
		return len(byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleAuthBruteForce)) == 1
	})
	bf := byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleAuthBruteForce)[0]
	if len(bf.Events) != alert.AuthFailureThreshold || bf.Events[0].Seq != 1 || bf.Events[0].Type != events.TypeAuthLogin || bf.Events[0].EventID == 0 {
		t.Fatalf("repeated-failures alert = %+v", bf)
	}
	// A resent batch is not evaluated twice: once the event after it has
	// raised its alert, the repeated-failures alert still counts one.
	if _, err := d.client.SendEvents(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	skew, err := events.New(events.TypeClockOffset, d.id, events.SeverityLow, at, events.ClockOffset{OffsetMS: 93000, ThresholdMS: 5000, Reference: "server"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(skew); err != nil {
		t.Fatal(err)
	}
	recs, err = j.Read(uint64(alert.AuthFailureThreshold+1), 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("reading the journal: %d records, %v", len(recs), err)
	}
	r := recs[0]
	if _, err := d.client.SendEvents(context.Background(), &api.EventBatch{Records: []api.EventRecord{{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Event: r.Event}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the clock alert", func() bool {
		return len(byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleClockSkew)) == 1
	})
	if got := byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleAuthBruteForce); len(got) != 1 || got[0].Count != 1 {
		t.Fatalf("after a resend: %+v", got)
	}
	waitFor(t, "the webhook", func() bool { return len(wr.received(alert.RuleAuthBruteForce)) == 1 })

	// Health reported in check-ins: becoming unhealthy raises an alert
	// (once, however often it is reported), healthy again resolves it.
	report := func(status string) {
		t.Helper()
		if _, err := d.client.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inventory("host-1"), Health: api.Health{Status: status}}); err != nil {
			t.Fatal(err)
		}
	}
	report(api.HealthHealthy)
	report(api.HealthUnhealthy)
	report(api.HealthUnhealthy)
	hu := byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleHealthUnhealthy)
	if len(hu) != 1 || hu[0].Count != 1 || hu[0].Status != api.AlertOpen || hu[0].Summary != "Health became unhealthy (was healthy)" {
		t.Fatalf("health alerts = %+v", hu)
	}
	report(api.HealthHealthy)
	hu = byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleHealthUnhealthy)
	if len(hu) != 1 || hu[0].Status != api.AlertResolved || hu[0].ResolvedAt == nil {
		t.Fatalf("health alert after recovery = %+v", hu)
	}

	// Revocation.
	if code := ts.Do(t, "POST", "/api/v1/devices/"+d.id+"/revoke", "", nil, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	rev := byRule(listAlerts(t, ts, "", "status=open&device="+d.id), alert.RuleDeviceRevoked)
	if len(rev) != 1 || rev[0].SeverityID != events.SeverityMedium {
		t.Fatalf("revocation alerts = %+v", rev)
	}
	waitFor(t, "the revocation alert at the webhook", func() bool { return len(wr.received(alert.RuleDeviceRevoked)) == 1 })

	// Bad queries.
	for _, q := range []string{"status=closed", "limit=5000", "device=dev_unknown"} {
		if code := ts.Do(t, "GET", "/api/v1/alerts?"+q, "", nil, nil); code != http.StatusBadRequest && code != http.StatusNotFound {
			t.Errorf("GET /api/v1/alerts?%s: %d", q, code)
		}
	}
}

func TestAlertsConfigRefused(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("short"), 0o600)
	for name, cfg := range map[string]server.AlertsConfig{
		"webhook without secret": {WebhookURL: "https://siem.example/hook"},
		"short secret":           {WebhookURL: "https://siem.example/hook", WebhookSecretFile: secret},
		"plain http":             {WebhookURL: "http://siem.example/hook", WebhookSecretFile: secret},
		"secret without webhook": {WebhookSecretFile: secret},
		"mail without relay":     {EmailTo: []string{"soc@example.com"}},
		"relay without from":     {SMTPAddr: "mail.example:587", EmailTo: []string{"soc@example.com"}},
		"syslog without port":    {SyslogAddr: "siem.example"},
		"syslog CA not PEM":      {SyslogAddr: "siem.example:6514", SyslogCAFile: secret},
	} {
		_, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), Alerts: cfg})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAlertsUpdateRolledBack(t *testing.T) {
	ts := alertServer(t, newWebhookReceiver(t), "")
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "cam")
	if code, _, e := publish(t, ts, rq("camera", "1.0.0"), "firmware"); code != http.StatusCreated {
		t.Fatalf("publish: %d %+v", code, e)
	}
	var dep api.Deployment
	if code := ts.Do(t, "POST", "/api/v1/deployments", "", api.DeploymentCreate{Product: "camera", Version: "1.0.0", Devices: []string{d.id}}, &dep); code != http.StatusCreated {
		t.Fatalf("deploy: %d", code)
	}
	if resp, err := checkin(d, "cam"); err != nil || resp.Update == nil {
		t.Fatalf("no assignment: %+v, %v", resp, err)
	}
	for _, st := range []string{"downloading", "installing"} {
		if code := reportUpdate(t, ts, d, dep.ID, st); code != http.StatusNoContent {
			t.Fatalf("report %s: %d", st, code)
		}
	}
	if got := byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleUpdateFailed); len(got) != 0 {
		t.Fatalf("progress raised %+v", got)
	}
	if code := reportUpdate(t, ts, d, dep.ID, "rolled-back"); code != http.StatusNoContent {
		t.Fatalf("report rolled-back: %d", code)
	}
	got := byRule(listAlerts(t, ts, "", "device="+d.id), alert.RuleUpdateFailed)
	if want := "Update rolled-back (" + dep.ID + "): test rolled-back"; len(got) != 1 || got[0].Summary != want || got[0].SeverityID != events.SeverityMedium {
		t.Fatalf("update alerts = %+v, want one saying %q", got, want)
	}
}
