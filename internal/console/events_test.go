package console_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/alert"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// evDevice is an enrolled device that keeps its client and a real agent
// journal, to send hash-chained event batches as the agent does.
type evDevice struct {
	ID       string
	Hostname string
	client   *deviceclient.Client
	j        *journal.Journal
	sent     uint64 // highest seq sent
}

func enrolForEvents(t *testing.T, ts *servertest.Server, token, hostname string) *evDevice {
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
	t.Cleanup(func() { c.Close() })
	res, err := c.Enroll(ctx, api.EnrollRequest{Token: token, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(res.Certificate))
	if block == nil {
		t.Fatal("enrolment answer has no certificate PEM")
	}
	c.SetCertificate(&tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key})
	if _, err := c.Checkin(ctx, &api.CheckinRequest{Inventory: api.Inventory{Hostname: hostname, OS: "Debian GNU/Linux", Arch: "arm64", AgentVersion: "0.3.1"},
		Health: api.Health{Status: "healthy"}}); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(t.TempDir(), journal.Options{DeviceID: res.DeviceID, NoSync: true, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return &evDevice{ID: res.DeviceID, Hostname: hostname, client: c, j: j}
}

// logins journals n failed SSH logins by user and sends them in one batch
// through the device API.
func (d *evDevice) logins(t *testing.T, user string, n int) {
	t.Helper()
	at := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	for i := range n {
		ev, err := events.New(events.TypeAuthLogin, d.ID, events.SeverityMedium, at.Add(time.Duration(i)*time.Second),
			events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: user, SrcIP: "203.0.113.7", SrcPort: 40000 + i})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.j.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := d.j.Read(d.sent+1, n)
	if err != nil {
		t.Fatal(err)
	}
	batch := &api.EventBatch{}
	for _, r := range recs {
		batch.Records = append(batch.Records, api.EventRecord{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Event: r.Event})
	}
	resp, err := d.client.SendEvents(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Stored != n || len(resp.Raised) != 0 {
		t.Fatalf("sending %d events: %+v", n, resp)
	}
	d.sent += uint64(n)
}

// eventRowRE finds the rows of the event table.
var eventRowRE = regexp.MustCompile(`<tr id="event-(\d+)"( class="new-event")?>`)

func eventIDs(body string) []string {
	var out []string
	for _, m := range eventRowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestEventsPage(t *testing.T) {
	ts := start(t)
	createGroup(t, ts, "north")
	createGroup(t, ts, "south")
	n := enrolForEvents(t, ts, ts.EnrollToken(t, 1, "north"), "north-gw")
	s := enrolForEvents(t, ts, ts.EnrollToken(t, 1, "south"), "south-gw")
	n.logins(t, "north-user", 55)
	s.logins(t, "south-user", 2)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	createUser(t, ts, "nop", api.Grant{Role: api.RoleOperator, Group: "north"})

	b := newBrowser(t, ts)
	b.mustLogin("root")
	all := b.get("/ui/events")
	if all.Status != http.StatusOK {
		t.Fatalf("GET /ui/events: %d\n%s", all.Status, all.Body)
	}
	// Newest first: the south batch came last.
	ids := eventIDs(all.Body)
	if len(ids) != 50 || !strings.Contains(all.Body, "user=south-user") {
		t.Fatalf("first page has %d events (want 50), south's among them: %v", len(ids), strings.Contains(all.Body, "user=south-user"))
	}
	mustContain(t, "the events page", all.Body, "auth.login", "medium", "device #55", "2026-11-26 20:00:54 UTC", // device time of north's last
		`<details class="raw"><summary>Raw event</summary>`, "&#34;src_ip&#34;: &#34;203.0.113.7&#34;", // the indented envelope
		`id="live-start"`, `rel="next"`)
	// The cursor pages on to the rest, without repeating any.
	next := regexp.MustCompile(`href="(/ui/events\?cursor=\d+)" rel="next"`).FindStringSubmatch(all.Body)
	if next == nil {
		t.Fatal("no next-page link")
	}
	p2 := b.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	ids2 := eventIDs(p2.Body)
	if len(ids2) != 7 || strings.Contains(p2.Body, `rel="next"`) || !strings.Contains(p2.Body, "← Newest") {
		t.Errorf("second page: %d events, or a next link, or no link back", len(ids2))
	}
	for _, id := range ids2 {
		for _, id1 := range ids {
			if id == id1 {
				t.Errorf("event %s on both pages", id)
			}
		}
	}

	// Filters.
	for _, tc := range []struct {
		query string
		want  int
		has   string
	}{
		{"device=" + s.ID, 2, "user=south-user"},
		{"group=south", 2, "user=south-user"},
		{"type=auth.login&group=south&severity=medium", 2, "user=south-user"},
		{"severity=high", 0, ""},
		{"type=" + events.TypeProcessActivity, 0, ""},
		{"since=2999-01-01T00:00", 0, ""},
		{"until=2000-01-01T00:00", 0, ""},
		{"since=2000-01-01T00:00&group=south", 2, "user=south-user"},
		{"since=2026-01-01T00:00:00%2B01:00&group=south", 2, `value="2025-12-31T23:00:00"`},
	} {
		p := b.get("/ui/events?" + tc.query)
		if got := len(eventIDs(p.Body)); p.Status != http.StatusOK || got != tc.want || (tc.has != "" && !strings.Contains(p.Body, tc.has)) {
			t.Errorf("?%s: status %d, %d events (want %d)", tc.query, p.Status, got, tc.want)
		}
		if tc.want == 0 && !strings.Contains(p.Body, "No event matches these filters") {
			t.Errorf("?%s: no empty-result message", tc.query)
		}
	}
	if p := b.get("/ui/events?severity=apocalyptic"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, `id="error"`) || !strings.Contains(p.Body, "OCSF severity") {
		t.Errorf("a bad severity: %d", p.Status)
	}
	if p := b.get("/ui/events?type=no.such"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "is not an event type") {
		t.Errorf("a bad type: %d", p.Status)
	}

	// The live tail reloads the newest page, marking what arrived since.
	live := b.get("/ui/events?group=south&live=1")
	top := eventIDs(live.Body)[0]
	wantMeta := fmt.Sprintf(`<meta http-equiv="refresh" content="5; url=/ui/events?group=south&amp;live=1&amp;seen=%s">`, top)
	if !strings.Contains(live.Body, wantMeta) || !strings.Contains(live.Body, `id="live-stop"`) || strings.Contains(live.Body, "new-event") {
		t.Fatalf("live tail page lacks %s or a stop link, or marks an event new:\n%s", wantMeta, live.Body)
	}
	s.logins(t, "south-late", 1)
	again := b.get("/ui/events?group=south&live=1&seen=" + top)
	m := eventRowRE.FindStringSubmatch(again.Body)
	if m == nil || m[2] == "" || !strings.Contains(again.Body, "user=south-late") || strings.Count(again.Body, "new-event") != 1 {
		t.Errorf("after a new event the tail does not show it first and marked new")
	}
	if !strings.Contains(again.Body, "seen="+m[1]+`">`) {
		t.Errorf("the tail's next reload does not move past the new event %s", m[1])
	}

	// The device page lists the device's own events and links to more.
	dp := b.get("/ui/devices/" + n.ID)
	if got := len(eventIDs(dp.Body)); dp.Status != http.StatusOK || got != 20 || strings.Contains(dp.Body, "south-user") || !strings.Contains(dp.Body, `id="more-events"`) {
		t.Errorf("device page: %d, %d events", dp.Status, got)
	}

	// A north operator sees north's events only, whatever the filters say.
	o := newBrowser(t, ts)
	o.mustLogin("nop")
	op := o.get("/ui/events")
	if len(eventIDs(op.Body)) != 50 || strings.Contains(op.Body, "south-user") || strings.Contains(op.Body, s.ID) {
		t.Errorf("a north operator's event list shows south's events")
	}
	if strings.Contains(op.Body, `<option value="south"`) {
		t.Errorf("a north operator is offered the south group")
	}
	if p := o.get("/ui/events?group=south"); p.Status != http.StatusOK || len(eventIDs(p.Body)) != 0 {
		t.Errorf("a north operator filtering by south: %d, %d events", p.Status, len(eventIDs(p.Body)))
	}
	if p := o.get("/ui/events?device=" + s.ID); p.Status != http.StatusNotFound || len(eventIDs(p.Body)) != 0 || strings.Contains(p.Body, "south-user") {
		t.Errorf("a north operator asking for a south device's events: %d", p.Status)
	}
	if p := o.get("/ui/events?device=" + n.ID); len(eventIDs(p.Body)) != 50 {
		t.Errorf("a north operator's own device: %d events", len(eventIDs(p.Body)))
	}
}

var alertRowRE = regexp.MustCompile(`<tr id="alert-([^"]+)">`)

func alertIDs(body string) []string {
	var out []string
	for _, m := range alertRowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// revokedAlert revokes a device through the admin API and returns the
// device.revoked alert the alert engine raised for it.
func revokedAlert(t *testing.T, ts *servertest.Server, deviceID string) api.Alert {
	t.Helper()
	if code := ts.Do(t, "POST", "/api/v1/devices/"+deviceID+"/revoke", "", nil, nil); code != http.StatusOK {
		t.Fatalf("revoking %s: %d", deviceID, code)
	}
	var list api.AlertList
	if code := ts.Do(t, "GET", "/api/v1/alerts?status=open&device="+deviceID, "", nil, &list); code != http.StatusOK {
		t.Fatalf("listing alerts: %d", code)
	}
	for _, a := range list.Alerts {
		if a.Rule == alert.RuleDeviceRevoked {
			return a
		}
	}
	t.Fatalf("no open device.revoked alert for %s: %+v", deviceID, list.Alerts)
	return api.Alert{}
}

func alertState(t *testing.T, ts *servertest.Server, id string) api.Alert {
	t.Helper()
	var list api.AlertList
	if code := ts.Do(t, "GET", "/api/v1/alerts?limit=1000", "", nil, &list); code != http.StatusOK {
		t.Fatalf("listing alerts: %d", code)
	}
	for _, a := range list.Alerts {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no alert %s", id)
	return api.Alert{}
}

func TestAlertsPage(t *testing.T) {
	ts := start(t)
	createGroup(t, ts, "north")
	createGroup(t, ts, "south")
	n := enrol(t, ts, ts.EnrollToken(t, 1, "north"), "north-gw")
	s := enrol(t, ts, ts.EnrollToken(t, 1, "south"), "south-gw")
	na, sa := revokedAlert(t, ts, n.ID), revokedAlert(t, ts, s.ID)
	createUser(t, ts, "nop", api.Grant{Role: api.RoleOperator, Group: "north"})
	createUser(t, ts, "aud", api.Grant{Role: api.RoleAuditor})

	// Each device also has its (informational) device.enrolled alert.
	// A global auditor sees all four, and the count, but no button.
	a := newBrowser(t, ts)
	acsrf := a.mustLogin("aud")
	ap := a.get("/ui/alerts")
	if ap.Status != http.StatusOK {
		t.Fatalf("GET /ui/alerts: %d\n%s", ap.Status, ap.Body)
	}
	if got := alertIDs(ap.Body); len(got) != 4 || !strings.Contains(ap.Body, na.ID) || !strings.Contains(ap.Body, sa.ID) {
		t.Errorf("auditor sees alerts %v, want 4 with %s and %s", got, na.ID, sa.ID)
	}
	mustContain(t, "the alerts page", ap.Body, alert.RuleDeviceRevoked, alert.RuleDeviceEnrolled, "Device revoked by", "medium", "informational",
		`id="open-alerts" title="open alerts">4</span>`)
	if strings.Contains(ap.Body, "Acknowledge</button>") {
		t.Error("an auditor is offered Acknowledge")
	}
	if p := a.post("/ui/alerts/"+na.ID+"/ack", url.Values{"csrf": {acsrf}}); p.Status != http.StatusForbidden {
		t.Errorf("an auditor acknowledging: %d", p.Status)
	}
	// Filters: severity is a minimum; rule and device narrow.
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"severity=medium", 2}, {"severity=Medium", 2}, {"severity=high", 0}, {"rule=" + alert.RuleDeviceRevoked, 2}, {"rule=journal.gap", 0},
		{"device=" + s.ID, 2}, {"device=" + s.ID + "&rule=" + alert.RuleDeviceRevoked, 1}, {"status=acknowledged", 0}, {"status=resolved", 0}, {"status=", 4},
	} {
		p := a.get("/ui/alerts?" + tc.query)
		if got := len(alertIDs(p.Body)); p.Status != http.StatusOK || got != tc.want {
			t.Errorf("?%s: status %d, %d alerts (want %d)", tc.query, p.Status, got, tc.want)
		}
	}
	if p := a.get("/ui/alerts?status=sleeping"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Status must be open") {
		t.Errorf("a bad state: %d", p.Status)
	}

	// A north operator sees north's alert only, and may acknowledge it.
	o := newBrowser(t, ts)
	csrf := o.mustLogin("nop")
	op := o.get("/ui/alerts")
	if got := alertIDs(op.Body); len(got) != 2 || !strings.Contains(op.Body, na.ID) {
		t.Errorf("north operator sees alerts %v, want %s and north's enrolment", got, na.ID)
	}
	mustContain(t, "the operator's alerts page", op.Body, `id="open-alerts" title="open alerts">2</span>`, "Acknowledge</button>")
	if strings.Contains(op.Body, s.ID) {
		t.Error("north operator's page names the south device")
	}
	if p := o.get("/ui/alerts?device=" + s.ID); p.Status != http.StatusNotFound || strings.Contains(p.Body, sa.ID) {
		t.Errorf("north operator filtering by a south device: %d", p.Status)
	}
	// Out of scope is not found, and nothing changes.
	if p := o.post("/ui/alerts/"+sa.ID+"/ack", url.Values{"csrf": {csrf}}); p.Status != http.StatusNotFound {
		t.Errorf("acknowledging another group's alert: %d", p.Status)
	}
	// Without the CSRF token the form is refused.
	if p := o.post("/ui/alerts/"+na.ID+"/ack", url.Values{}); p.Status != http.StatusForbidden {
		t.Errorf("acknowledging without the CSRF token: %d", p.Status)
	}
	if p := o.post("/ui/alerts/"+na.ID+"/ack", url.Values{"csrf": {"x" + csrf[1:]}}); p.Status != http.StatusForbidden {
		t.Errorf("acknowledging with a wrong CSRF token: %d", p.Status)
	}
	if got := alertState(t, ts, na.ID); got.Status != api.AlertOpen {
		t.Fatalf("refused acknowledgements changed the alert: %s", got.Status)
	}
	if got := alertState(t, ts, sa.ID); got.Status != api.AlertOpen {
		t.Fatalf("the south alert changed: %s", got.Status)
	}
	p := o.post("/ui/alerts/"+na.ID+"/ack", url.Values{"csrf": {csrf}, "return": {"/ui/alerts?status=&severity=medium"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("acknowledging: %d\n%s", p.Status, p.Body)
	}
	if u, _ := url.Parse(p.Location); u.Path != "/ui/alerts" || u.Query().Get("done") != "acked" || u.Query().Get("severity") != "medium" || !u.Query().Has("status") {
		t.Errorf("after acknowledging, redirected to %q", p.Location)
	}
	got := alertState(t, ts, na.ID)
	if got.Status != api.AlertAcknowledged || got.AckedBy != "user:nop" {
		t.Errorf("after acknowledging: %s by %q", got.Status, got.AckedBy)
	}
	if c := countAudit(t, ts, "alert:"+na.ID, "alert.ack"); c != 1 {
		t.Errorf("%d alert.ack audit entries, want 1", c)
	}
	back := o.get(p.Location)
	mustContain(t, "the page after acknowledging", back.Body, "has been acknowledged", "by user:nop", `id="open-alerts" title="open alerts">1</span>`)
	if ids := alertIDs(back.Body); len(ids) != 1 || ids[0] != na.ID || strings.Contains(back.Body, "Acknowledge</button>") {
		t.Errorf("after acknowledging, the medium alerts of any state are %v, or one still has a button", ids)
	}
	// A return address off the alert list is ignored.
	if p := o.post("/ui/alerts/"+na.ID+"/ack", url.Values{"csrf": {csrf}, "return": {"https://evil.example/ui/alerts"}}); p.Status != http.StatusSeeOther || p.Location != "/ui/alerts?done=acked" {
		t.Errorf("acknowledging again with a foreign return: %d %q", p.Status, p.Location)
	}
	if c := countAudit(t, ts, "alert:"+na.ID, "alert.ack"); c != 1 {
		t.Errorf("acknowledging twice wrote %d audit entries, want 1", c)
	}
}

func TestEventsAndAlertsPagesFitCSP(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	d := enrolForEvents(t, ts, ts.EnrollToken(t, 1, ""), "plc-7")
	d.logins(t, `<script>alert(1)</script>`, 1)
	revokedAlert(t, ts, d.ID)
	b := newBrowser(t, ts)
	b.mustLogin("root")
	inlineRE := regexp.MustCompile(`(?i)(\sstyle=|<script|<style|\son[a-z]+=|javascript:|https?://)`)
	for _, path := range []string{"/ui/events", "/ui/events?live=1", "/ui/alerts", "/ui/alerts?status=", "/ui/devices/" + d.ID} {
		p := b.get(path)
		if p.Status != http.StatusOK {
			t.Errorf("GET %s: %d", path, p.Status)
		}
		if m := inlineRE.FindString(p.Body); m != "" {
			t.Errorf("GET %s: page contains %q", path, m)
		}
		if !strings.Contains(p.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, p.Header.Get("Content-Security-Policy"))
		}
	}
}

func TestEventsAndAlertsInChromium(t *testing.T) {
	ctx := startChromium(t)
	ts := start(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	d := enrolForEvents(t, ts, ts.EnrollToken(t, 1, ""), "pump-station-3")
	d.logins(t, "maintenance", 1)
	al := revokedAlert(t, ts, d.ID)

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
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
		must("looking for "+sel, err)
		return n
	}
	submit := func(step, button string) {
		t.Helper()
		_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
		must(step, err)
	}

	must("opening the alerts page", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/alerts")))
	must("filling the login form", chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#username"), "root"), chromedp.SetValue(chromedp.CSS("#password"), testPassword)))
	submit("logging in", "#login-submit")
	row := "#alert-" + al.ID
	if got := text(row); !strings.Contains(got, "device.revoked") || !strings.Contains(got, "open") || !strings.Contains(got, d.ID) {
		t.Fatalf("the alert row reads %q", got)
	}
	// Open: this alert and the device's enrolment.
	if got := text("#open-alerts"); got != "2" {
		t.Errorf("open alerts badge %q", got)
	}
	submit("acknowledging", row+" button.ack")
	if got := text("#flash"); !strings.Contains(got, "acknowledged") {
		t.Errorf("after acknowledging: %q", got)
	}
	if count(row) != 0 || text("#open-alerts") != "1" {
		t.Errorf("the acknowledged alert is still listed as open, or the badge reads %q", text("#open-alerts"))
	}
	must("showing every alert", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/alerts?status=")))
	if got := text(row + " .alert-state"); got != "acknowledged" {
		t.Errorf("the alert's state reads %q", got)
	}
	if got := text(row); !strings.Contains(got, "by user:root") || count(row+" button.ack") != 0 {
		t.Errorf("the acknowledged alert reads %q, or still has its button", got)
	}
	if got := alertState(t, ts, al.ID); got.Status != api.AlertAcknowledged {
		t.Errorf("the server has the alert %s", got.Status)
	}

	// The event sent through the device API is listed, and its raw
	// envelope opens.
	must("opening the events page", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/events")))
	if n := count("#events tbody tr"); n != 1 {
		t.Fatalf("%d events listed, want 1", n)
	}
	if got := text("#events tbody tr"); !strings.Contains(got, "auth.login") || !strings.Contains(got, "user=maintenance") || !strings.Contains(got, d.ID) {
		t.Errorf("the event row reads %q", got)
	}
	visible := func(sel string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(`+jsString(sel)+`).checkVisibility()`))
		must("checking "+sel, err)
		return v
	}
	if visible("#events .raw pre") {
		t.Error("the raw event is shown before it is opened")
	}
	_, err := chromedp.Run(ctx, chromedp.Click(chromedp.CSS("#events .raw summary")))
	must("opening the raw event", err)
	if !visible("#events .raw pre") || !strings.Contains(text("#events .raw pre"), `"type": "auth.login"`) {
		t.Errorf("the raw event does not open: %q", text("#events .raw pre"))
	}
	// The live tail is a meta refresh: a new event appears on its own
	// (from another device, as a revoked one can send nothing).
	d2 := enrolForEvents(t, ts, ts.EnrollToken(t, 1, ""), "pump-station-4")
	must("starting the live tail", chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/ui/events?live=1")))
	d2.logins(t, "late-login", 1)
	deadline := time.Now().Add(15 * time.Second)
	for {
		// The page may be reloading as it is read: an error is a retry.
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#events tbody tr.new-event").length`))
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the live tail did not show the new event within 15 s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got := text("#events tbody tr.new-event"); !strings.Contains(got, "user=late-login") {
		t.Errorf("the new event reads %q", got)
	}
}
