package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/disclosure"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

// get fetches a public path and returns status, headers and body.
func get(t *testing.T, ts *servertest.Server, path string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// post sends a body to a public path.
func post(t *testing.T, ts *servertest.Server, path, contentType string, body []byte, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("POST", ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func submitJSON(t *testing.T, ts *servertest.Server, body any) (int, disclosure.Receipt, api.Error, http.Header) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	code, hdr, out := post(t, ts, "/api/v1/disclosures", "application/json", b)
	var rec disclosure.Receipt
	var e api.Error
	if code == http.StatusCreated {
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatalf("receipt %q: %v", out, err)
		}
	} else if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("error body %q: %v", out, err)
	}
	return code, rec, e, hdr
}

func token(t *testing.T, ts *servertest.Server, role string) string {
	t.Helper()
	tok, err := server.CreateAPITokenLocal(context.Background(), ts.Store(), "local:test", api.APITokenCreate{Name: "t-" + role, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

func auditActions(t *testing.T, ts *servertest.Server, target string) []string {
	t.Helper()
	es, err := ts.Store().ListAudit(context.Background(), 0, 1000, target)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Actor+" "+e.Outcome)
	}
	return out
}

var validReport = disclosure.Submission{Summary: "Unauthenticated firmware download", Product: "cam-100", AffectedVersion: "1.2.0",
	Details: "GET /fw on port 8080 serves the image without authentication.\nSteps: ...", Email: "ada@example.com", AcknowledgeAs: "Ada L."}

func TestSecurityTxt(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, servertest.Options{})
	code, hdr, body := get(t, ts, "/.well-known/security.txt")
	if code != http.StatusOK || hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q", code, hdr.Get("Content-Type"))
	}
	fields := map[string][]string{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("line %q is not a field", line)
		}
		fields[k] = append(fields[k], v)
	}
	want := map[string]string{
		"Contact":             ts.URL + "/disclose",
		"Policy":              ts.URL + "/disclosure-policy",
		"Acknowledgments":     ts.URL + "/acknowledgments",
		"Canonical":           ts.URL + "/.well-known/security.txt",
		"Preferred-Languages": "en",
		"CSAF":                ts.URL + "/.well-known/csaf/provider-metadata.json",
	}
	for k, v := range want {
		if len(fields[k]) != 1 || fields[k][0] != v {
			t.Errorf("%s = %q, want %q", k, fields[k], v)
		}
	}
	if len(fields["Expires"]) != 1 {
		t.Fatalf("Expires = %q, want exactly one", fields["Expires"])
	}
	exp, err := time.Parse(time.RFC3339, fields["Expires"][0])
	if err != nil {
		t.Fatalf("Expires: %v", err)
	}
	if now := time.Now(); !exp.After(now.Add(30*24*time.Hour)) || exp.After(now.AddDate(1, 0, 0)) {
		t.Errorf("Expires %v is not between a month and a year ahead", exp)
	}
	noRedirect := &http.Client{Transport: ts.HTTP.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirect.Get(ts.URL + "/security.txt"); err != nil || resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/.well-known/security.txt" {
		t.Errorf("legacy /security.txt: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// The pages it points to are served.
	for _, p := range []string{"/disclose", "/disclosure-policy", "/acknowledgments"} {
		if code, hdr, _ := get(t, ts, p); code != http.StatusOK || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: status %d, CSP %q", p, code, hdr.Get("Content-Security-Policy"))
		}
	}

	// Configured contacts and public URL replace the defaults.
	ts2 := servertest.Start(t, servertest.Options{Config: server.Config{Disclosure: disclosure.Config{
		Contacts: []string{"mailto:security@example.com", "https://example.com/security"}, PublicURL: "https://bulwark.example.com"}}})
	_, _, body = get(t, ts2, "/.well-known/security.txt")
	for _, line := range []string{"Contact: mailto:security@example.com\nContact: https://example.com/security\n",
		"Canonical: https://bulwark.example.com/.well-known/security.txt\n", "Policy: https://bulwark.example.com/disclosure-policy\n"} {
		if !strings.Contains(body, line) {
			t.Errorf("security.txt lacks %q:\n%s", line, body)
		}
	}
}

func TestDisclosureWorkflow(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, servertest.Options{})
	code, rec, e, _ := submitJSON(t, ts, validReport)
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %+v", code, e)
	}
	if !regexp.MustCompile(`^VR-[A-Z2-7]{10}$`).MatchString(rec.ID) || rec.State != "received" || rec.FollowUpKey == "" {
		t.Fatalf("receipt %+v", rec)
	}
	if want := ts.URL + "/disclose/status/" + rec.ID + "?key="; !strings.HasPrefix(rec.FollowUpURL, want) {
		t.Fatalf("follow-up URL %q, want prefix %q", rec.FollowUpURL, want)
	}
	u, _ := url.Parse(rec.FollowUpURL)

	// The reporter follows up with the key, and only with the key.
	code, _, page := get(t, ts, u.RequestURI())
	if code != http.StatusOK || !strings.Contains(page, `id="state">received<`) || !strings.Contains(page, rec.ID) {
		t.Fatalf("follow-up page: %d\n%s", code, page)
	}
	if code, _, _ := get(t, ts, "/disclose/status/"+rec.ID+"?key=wrong"); code != http.StatusNotFound {
		t.Errorf("wrong key: status %d, want 404", code)
	}
	if code, _, _ := get(t, ts, "/disclose/status/VR-AAAAAAAAAA?key="+rec.FollowUpKey); code != http.StatusNotFound {
		t.Errorf("other ID: status %d, want 404", code)
	}
	var st disclosure.Status
	code, _, body := get(t, ts, "/api/v1/disclosures/"+rec.ID+"/status", "X-Follow-Up-Key", rec.FollowUpKey)
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.State != "received" || len(st.Timeline) != 1 {
		t.Fatalf("status JSON: %d %s", code, body)
	}
	if strings.Contains(body, "ada@example.com") || strings.Contains(body, "without authentication") {
		t.Errorf("the reporter view leaks the contact or details: %s", body)
	}

	auditor, operator := token(t, ts, api.RoleAuditor), token(t, ts, api.RoleOperator)
	var list disclosure.ReportList
	if code := ts.Do(t, "GET", "/api/v1/disclosures", auditor, nil, &list); code != http.StatusOK || list.Total != 1 || list.Reports[0].ID != rec.ID {
		t.Fatalf("list: %d %+v", code, list)
	}
	if code := ts.Do(t, "GET", "/api/v1/disclosures", "-", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("list without a token: %d, want 401", code)
	}
	var rep disclosure.Report
	if code := ts.Do(t, "GET", "/api/v1/disclosures/"+rec.ID, auditor, nil, &rep); code != http.StatusOK ||
		rep.Details != validReport.Details || rep.Email != "ada@example.com" || len(rep.Timeline) != 1 ||
		strings.Join(rep.Allowed, ",") != "triaged,rejected,duplicate" {
		t.Fatalf("get: %d %+v", code, rep)
	}

	transition := func(tok, to, note, advisory string) (int, api.Error) {
		t.Helper()
		var e api.Error
		code := ts.Do(t, "POST", "/api/v1/disclosures/"+rec.ID+"/transition", tok, disclosure.TransitionRequest{To: to, Note: note, Advisory: advisory}, &e)
		return code, e
	}
	if code, _ := transition(auditor, "triaged", "", ""); code != http.StatusForbidden {
		t.Errorf("auditor transition: %d, want 403", code)
	}
	if code, e := transition(operator, "fixed", "", ""); code != http.StatusConflict || !strings.Contains(e.Message, "allowed: triaged, rejected, duplicate") {
		t.Errorf("received -> fixed: %d %+v, want 409 naming the allowed states", code, e)
	}
	if code, e := transition(operator, "closed", "", ""); code != http.StatusBadRequest || !strings.Contains(e.Message, "not a state") {
		t.Errorf("unknown state: %d %+v", code, e)
	}
	for _, step := range []struct{ to, note string }{{"triaged", "Confirmed; severity high."}, {"fixing", ""}, {"fixed", "Fixed in 1.2.1."}} {
		if code, e := transition(operator, step.to, step.note, ""); code != http.StatusOK {
			t.Fatalf("-> %s: %d %+v", step.to, code, e)
		}
	}
	if code, e := transition(operator, "published", "", ""); code != http.StatusBadRequest || !strings.Contains(e.Message, "advisory is required") {
		t.Errorf("publish without advisory: %d %+v", code, e)
	}
	if code, e := transition(operator, "published", "", "http://insecure.example/adv"); code != http.StatusBadRequest || !strings.Contains(e.Message, "https") {
		t.Errorf("publish with an http advisory: %d %+v", code, e)
	}
	if code, e := transition(operator, "published", "Advisory out.", "BWK-2026-0001"); code != http.StatusOK {
		t.Fatalf("publish: %d %+v", code, e)
	}
	if code, e := transition(operator, "fixing", "", ""); code != http.StatusConflict || !strings.Contains(e.Message, "final") {
		t.Errorf("published -> fixing: %d %+v", code, e)
	}
	if code := ts.Do(t, "GET", "/api/v1/disclosures/"+rec.ID, auditor, nil, &rep); code != http.StatusOK || rep.State != "published" ||
		rep.Advisory != "BWK-2026-0001" || len(rep.Timeline) != 5 || rep.Timeline[1].Actor != "token:t-operator" ||
		rep.Timeline[1].Note != "Confirmed; severity high." || len(rep.Allowed) != 0 {
		t.Fatalf("after publishing: %d %+v", code, rep)
	}
	if code := ts.Do(t, "GET", "/api/v1/disclosures/VR-AAAAAAAAAA", auditor, nil, nil); code != http.StatusNotFound {
		t.Errorf("unknown report: %d, want 404", code)
	}

	// The reporter sees the new state, the notes and the advisory; the
	// acknowledgments page credits them.
	_, _, page = get(t, ts, u.RequestURI())
	for _, s := range []string{`id="state">published<`, "BWK-2026-0001", "Fixed in 1.2.1."} {
		if !strings.Contains(page, s) {
			t.Errorf("follow-up page lacks %q", s)
		}
	}
	if _, _, page := get(t, ts, "/acknowledgments"); !strings.Contains(page, "Ada L.") || !strings.Contains(page, "BWK-2026-0001") {
		t.Errorf("acknowledgments page lacks the reporter:\n%s", page)
	}

	got := auditActions(t, ts, "disclosure:"+rec.ID)
	want := []string{
		"disclosure.submit reporter ok",
		"disclosure.transition token:t-operator refused: transition not allowed",
		"disclosure.transition token:t-operator ok",
		"disclosure.transition token:t-operator ok",
		"disclosure.transition token:t-operator ok",
		"disclosure.transition token:t-operator ok",
		"disclosure.transition token:t-operator refused: transition not allowed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDisclosureBadInput(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, servertest.Options{})
	withField := func(f func(*disclosure.Submission)) disclosure.Submission {
		s := validReport
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		body any
		code int
		msg  string
	}{
		{"empty summary", withField(func(s *disclosure.Submission) { s.Summary = "  " }), 400, "summary is required"},
		{"no product", withField(func(s *disclosure.Submission) { s.Product = "" }), 400, "product is required"},
		{"no details", withField(func(s *disclosure.Submission) { s.Details = "" }), 400, "details is required"},
		{"bad email", withField(func(s *disclosure.Submission) { s.Email = "ada at example" }), 400, "email"},
		{"email with a name", withField(func(s *disclosure.Submission) { s.Email = "Ada <ada@example.com>" }), 400, "email"},
		{"long summary", withField(func(s *disclosure.Submission) { s.Summary = strings.Repeat("x", 201) }), 400, "summary is 201 characters long"},
		{"control character", withField(func(s *disclosure.Submission) { s.Summary = "a\x1b[31mb" }), 400, "control character"},
		{"unknown field", map[string]string{"summary": "s", "product": "p", "details": "d", "severity": "high"}, 400, `unknown field "severity"`},
		{"wrong type", map[string]any{"summary": 1}, 400, `field "summary"`},
		{"oversize", withField(func(s *disclosure.Submission) { s.Details = strings.Repeat("x", 40<<10) }), 413, "larger than 32768 bytes"},
	} {
		code, _, e, _ := submitJSON(t, ts, tc.body)
		if code != tc.code || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d naming %q", tc.name, code, e, tc.code, tc.msg)
		}
	}
	code, _, body := post(t, ts, "/api/v1/disclosures", "text/plain", []byte(`{}`))
	if code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %s", code, body)
	}
	var list disclosure.ReportList
	if ts.Do(t, "GET", "/api/v1/disclosures", "", nil, &list); list.Total != 0 {
		t.Errorf("%d reports stored after bad input", list.Total)
	}
	if got := auditActions(t, ts, ""); strings.Contains(strings.Join(got, "\n"), "disclosure.submit") {
		t.Errorf("bad input was audited as a submission: %q", got)
	}
}

func TestDisclosureRateLimit(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, servertest.Options{})
	for i := range 5 {
		if code, _, e, _ := submitJSON(t, ts, validReport); code != http.StatusCreated {
			t.Fatalf("report %d: %d %+v", i+1, code, e)
		}
	}
	code, _, e, hdr := submitJSON(t, ts, validReport)
	if code != http.StatusTooManyRequests || e.Code != "rate_limited" || hdr.Get("Retry-After") == "" {
		t.Fatalf("6th report: %d %+v Retry-After %q, want 429", code, e, hdr.Get("Retry-After"))
	}
	// The form shares the limit and answers with a page.
	tok, cookie := formSession(t, ts)
	code, _, page := postForm(t, ts, cookie, formValues(tok, validReport))
	if code != http.StatusTooManyRequests || !strings.Contains(page, "Too many reports") {
		t.Errorf("form after the limit: %d\n%s", code, page)
	}
	var list disclosure.ReportList
	if ts.Do(t, "GET", "/api/v1/disclosures", "", nil, &list); list.Total != 5 {
		t.Errorf("%d reports stored, want 5", list.Total)
	}
}

var csrfFieldRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formSession loads the report form and returns its token and cookie.
func formSession(t *testing.T, ts *servertest.Server) (string, *http.Cookie) {
	t.Helper()
	resp, err := ts.HTTP.Get(ts.URL + "/disclose")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := csrfFieldRE.FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET /disclose: %d, no csrf field", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == server.DisclosureCookie {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("form cookie %+v is not Secure, HttpOnly, SameSite=Strict", c)
			}
			return string(m[1]), c
		}
	}
	t.Fatal("GET /disclose set no form cookie")
	return "", nil
}

func formValues(tok string, s disclosure.Submission) url.Values {
	return url.Values{"csrf": {tok}, "summary": {s.Summary}, "product": {s.Product}, "affected_version": {s.AffectedVersion},
		"details": {s.Details}, "email": {s.Email}, "acknowledge_as": {s.AcknowledgeAs}}
}

func postForm(t *testing.T, ts *servertest.Server, cookie *http.Cookie, v url.Values) (int, http.Header, string) {
	t.Helper()
	var hdr []string
	if cookie != nil {
		hdr = []string{"Cookie", cookie.Name + "=" + cookie.Value}
	}
	return post(t, ts, "/disclose", "application/x-www-form-urlencoded", []byte(v.Encode()), hdr...)
}

var followUpRE = regexp.MustCompile(`id="follow-up" href="([^"]+)"`)

func TestDisclosureForm(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, servertest.Options{})
	tok, cookie := formSession(t, ts)

	// Without the cookie, or with another token, nothing is stored.
	if code, _, page := postForm(t, ts, nil, formValues(tok, validReport)); code != http.StatusForbidden || !strings.Contains(page, "did not come from this site") {
		t.Errorf("no cookie: %d", code)
	}
	other, _ := formSession(t, ts)
	if code, _, _ := postForm(t, ts, cookie, formValues(other, validReport)); code != http.StatusForbidden {
		t.Errorf("mismatched token: %d, want 403", code)
	}
	// A bad field re-shows the form with what was typed and the problem.
	bad := validReport
	bad.Email = "not-an-email"
	code, _, page := postForm(t, ts, cookie, formValues(tok, bad))
	if code != http.StatusBadRequest || !strings.Contains(html.UnescapeString(page), `Email "not-an-email" is not an email address`) ||
		!strings.Contains(page, `value="Unauthenticated firmware download"`) {
		t.Errorf("bad email: %d\n%s", code, page)
	}
	// Oversize.
	big := validReport
	big.Details = strings.Repeat("%", 100<<10)
	if code, _, _ := postForm(t, ts, cookie, formValues(tok, big)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize form: %d, want 413", code)
	}
	var list disclosure.ReportList
	if ts.Do(t, "GET", "/api/v1/disclosures", "", nil, &list); list.Total != 0 {
		t.Fatalf("%d reports stored after refused forms", list.Total)
	}

	code, hdr, page := postForm(t, ts, cookie, formValues(tok, validReport))
	if code != http.StatusCreated || !strings.Contains(hdr.Get("Content-Security-Policy"), "form-action 'self'") {
		t.Fatalf("submit: %d\n%s", code, page)
	}
	m := followUpRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `id="tracking-id">VR-`) {
		t.Fatalf("no tracking ID or follow-up link:\n%s", page)
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	code, _, page = get(t, ts, u.RequestURI())
	if code != http.StatusOK || !strings.Contains(page, `id="state">received<`) || !strings.Contains(page, "cam-100 (1.2.0)") {
		t.Fatalf("follow-up: %d\n%s", code, page)
	}
	if ts.Do(t, "GET", "/api/v1/disclosures", "", nil, &list); list.Total != 1 || list.Reports[0].AcknowledgeAs != "Ada L." {
		t.Errorf("stored: %+v", list)
	}
}

func TestProductsPublished(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, servertest.Options{})
	p := disclosure.Product{Name: "cam-100", Description: "Outdoor camera", SupportUntil: "2031-12-31",
		UpdateCadence: "monthly, and out of band for critical issues", CriticalFixTarget: "14 days from triage"}
	var out disclosure.Product
	if code := ts.Do(t, "POST", "/api/v1/products", "", p, &out); code != http.StatusCreated || !out.Supported || out.SupportUntil != "2031-12-31" {
		t.Fatalf("create: %d %+v", code, out)
	}
	old := disclosure.Product{Name: "hub-1", SupportUntil: "2020-01-31", UpdateCadence: "quarterly", CriticalFixTarget: "30 days"}
	if code := ts.Do(t, "POST", "/api/v1/products", "", old, &out); code != http.StatusCreated || out.Supported {
		t.Fatalf("create ended product: %d %+v", code, out)
	}
	p.SupportUntil = "2032-06-30"
	if code := ts.Do(t, "POST", "/api/v1/products", "", p, &out); code != http.StatusOK || out.SupportUntil != "2032-06-30" {
		t.Fatalf("update: %d %+v", code, out)
	}
	if code := ts.Do(t, "POST", "/api/v1/products", token(t, ts, api.RoleOperator), p, nil); code != http.StatusForbidden {
		t.Errorf("operator creating a product: %d, want 403", code)
	}
	for _, tc := range []struct {
		mod func(*disclosure.Product)
		msg string
	}{
		{func(p *disclosure.Product) { p.SupportUntil = "31/12/2031" }, "support_until"},
		{func(p *disclosure.Product) { p.SupportUntil = "2031-02-30" }, "support_until"},
		{func(p *disclosure.Product) { p.Name = "bad name" }, "name"},
		{func(p *disclosure.Product) { p.CriticalFixTarget = "" }, "critical_fix_target is required"},
	} {
		q := p
		tc.mod(&q)
		var e api.Error
		if code := ts.Do(t, "POST", "/api/v1/products", "", q, &e); code != http.StatusBadRequest || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%+v: %d %+v, want 400 naming %q", q, code, e, tc.msg)
		}
	}
	if got := auditActions(t, ts, "product:cam-100"); len(got) != 2 || !strings.HasPrefix(got[0], "product.create") || !strings.HasPrefix(got[1], "product.update") {
		t.Errorf("audit: %q", got)
	}

	// Public, without a token.
	code, hdr, body := get(t, ts, "/products.json")
	var list disclosure.ProductList
	if code != http.StatusOK || hdr.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("products.json: %d %s", code, body)
	}
	if len(list.Products) != 2 || list.Products[0].Name != "cam-100" || list.Products[0].SupportUntil != "2032-06-30" ||
		list.Products[0].CriticalFixTarget != "14 days from triage" || list.Products[1].Supported || list.UpdatePolicyURL != ts.URL+"/update-policy" {
		t.Errorf("products.json: %+v", list)
	}
	code, _, page := get(t, ts, "/products")
	if code != http.StatusOK || !strings.Contains(page, "cam-100") || !strings.Contains(page, "2032-06-30") || !strings.Contains(page, "ended") {
		t.Errorf("products page: %d\n%s", code, page)
	}
	code, _, page = get(t, ts, "/update-policy")
	if code != http.StatusOK || !strings.Contains(page, "14 days from triage") || !strings.Contains(page, "monthly, and out of band") {
		t.Errorf("update policy page: %d\n%s", code, page)
	}
	if code, hdr, _ := get(t, ts, disclosure.CSSPath); code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %q", code, hdr.Get("Content-Type"))
	}
}

func TestDisclosureReporterMessage(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, servertest.Options{})
	code, rec, e, _ := submitJSON(t, ts, validReport)
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %+v", code, e)
	}
	u, _ := url.Parse(rec.FollowUpURL)
	_, _, page := get(t, ts, u.RequestURI())
	if !strings.Contains(page, `id="message-form"`) || !strings.Contains(page, `name="key" value="`+rec.FollowUpKey+`"`) {
		t.Fatalf("follow-up page has no message form:\n%s", page)
	}
	send := func(key, msg string) (int, http.Header, string) {
		t.Helper()
		noRedirect := &http.Client{Transport: ts.HTTP.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.PostForm(ts.URL+"/disclose/status/"+rec.ID, url.Values{"key": {key}, "message": {msg}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, _, _ := send("wrong-key", "hello"); code != http.StatusNotFound {
		t.Errorf("wrong key: %d, want 404", code)
	}
	if code, _, page := send(rec.FollowUpKey, "  \n"); code != http.StatusBadRequest || !strings.Contains(page, "Message is required") {
		t.Errorf("empty message: %d\n%s", code, page)
	}
	code, hdr, _ := send(rec.FollowUpKey, "Also affects 1.1.9.\nPoC attached below.")
	if code != http.StatusSeeOther || !strings.HasSuffix(hdr.Get("Location"), "&sent=1") {
		t.Fatalf("message: %d %q", code, hdr.Get("Location"))
	}
	_, _, page = get(t, ts, hdr.Get("Location"))
	if !strings.Contains(page, `id="sent"`) || !strings.Contains(page, "Also affects 1.1.9.") || !strings.Contains(page, "<td>you</td>") {
		t.Errorf("follow-up page after the message:\n%s", page)
	}
	var rep disclosure.Report
	ts.Do(t, "GET", "/api/v1/disclosures/"+rec.ID, "", nil, &rep)
	if len(rep.Timeline) != 2 || rep.Timeline[1].Actor != "reporter" || rep.Timeline[1].Note != "Also affects 1.1.9.\nPoC attached below." || rep.State != "received" {
		t.Errorf("report after the message: %+v", rep)
	}
	var st disclosure.Status
	_, _, body := get(t, ts, "/api/v1/disclosures/"+rec.ID+"/status?key="+url.QueryEscape(rec.FollowUpKey))
	if json.Unmarshal([]byte(body), &st) != nil || len(st.Timeline) != 2 || st.Timeline[0].By != "reporter" || st.Timeline[1].By != "reporter" {
		t.Errorf("status JSON: %s", body)
	}
	// The same by the API, with the key in a header.
	b, _ := json.Marshal(disclosure.Message{Message: "PoC: curl ..."})
	code, _, body = post(t, ts, "/api/v1/disclosures/"+rec.ID+"/messages", "application/json", b, "X-Follow-Up-Key", rec.FollowUpKey)
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &st) != nil || len(st.Timeline) != 3 || st.Timeline[2].Note != "PoC: curl ..." {
		t.Errorf("message by API: %d %s", code, body)
	}
	if code, _, body := post(t, ts, "/api/v1/disclosures/"+rec.ID+"/messages", "application/json", b, "X-Follow-Up-Key", "nope"); code != http.StatusNotFound {
		t.Errorf("message by API with a wrong key: %d %s", code, body)
	}
	if code, _, body := post(t, ts, "/api/v1/disclosures/"+rec.ID+"/messages", "application/json", []byte(`{"message":""}`), "X-Follow-Up-Key", rec.FollowUpKey); code != http.StatusBadRequest || !strings.Contains(body, "message is required") {
		t.Errorf("empty message by API: %d %s", code, body)
	}
	if got := auditActions(t, ts, "disclosure:"+rec.ID); len(got) != 3 || got[1] != "disclosure.message reporter ok" || got[2] != got[1] {
		t.Errorf("audit: %q", got)
	}
}

// TestDisclosureOnPostgres runs the intake, workflow and product paths
// over the PostgreSQL backend (skipped when it is not configured).
func TestDisclosureOnPostgres(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, servertest.Options{DB: storetest.DSN(t, store.Postgres)})
	code, rec, e, _ := submitJSON(t, ts, validReport)
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %+v", code, e)
	}
	for _, to := range []string{"triaged", "fixing", "fixed"} {
		if code := ts.Do(t, "POST", "/api/v1/disclosures/"+rec.ID+"/transition", "", disclosure.TransitionRequest{To: to}, nil); code != http.StatusOK {
			t.Fatalf("-> %s: %d", to, code)
		}
	}
	var rep disclosure.Report
	if code := ts.Do(t, "POST", "/api/v1/disclosures/"+rec.ID+"/transition", "", disclosure.TransitionRequest{To: "published", Advisory: "https://example.com/adv/1"}, &rep); code != http.StatusOK ||
		rep.Advisory != "https://example.com/adv/1" || len(rep.Timeline) != 5 {
		t.Fatalf("publish: %d %+v", code, rep)
	}
	var list disclosure.ReportList
	if ts.Do(t, "GET", "/api/v1/disclosures?state=published", "", nil, &list); list.Total != 1 {
		t.Errorf("published reports: %+v", list)
	}
	p := disclosure.Product{Name: "cam-100", SupportUntil: "2031-12-31", UpdateCadence: "monthly", CriticalFixTarget: "14 days"}
	if code := ts.Do(t, "POST", "/api/v1/products", "", p, nil); code != http.StatusCreated {
		t.Fatalf("product: %d", code)
	}
	if _, _, body := get(t, ts, "/products.json"); !strings.Contains(body, `"support_until": "2031-12-31"`) {
		t.Errorf("products.json: %s", body)
	}
}
