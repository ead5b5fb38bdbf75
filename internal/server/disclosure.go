package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/auth"
	"github.com/bulwark-iot/bulwark/internal/disclosure"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// Vulnerability disclosure and product transparency: the public pages
// (security.txt, the report form, follow-up, policies, products) mounted
// outside the API route table, and the API routes listed in it.

// DisclosureCookie holds the double-submit token of the public report
// form. The __Host- prefix makes browsers insist on Secure, Path=/ and no
// Domain.
const DisclosureCookie = "__Host-bulwark_disclose"

// disclosureFormLifetime bounds how long a report form stays usable.
const disclosureFormLifetime = 2 * time.Hour

// Reports are limited per client address: a burst of 5, then 5 an hour.
const (
	disclosureBurst   = 5
	disclosurePerHour = 5
)

// maxDisclosureForm bounds the form body; URL encoding inflates text, and
// the field limits still apply after decoding.
const maxDisclosureForm = 4 * disclosure.MaxBody

type disclosureService struct {
	s       *Server
	cfg     disclosure.Config
	pages   *disclosure.Pages
	limiter *auth.Limiter
}

func (s *Server) newDisclosureService() *disclosureService {
	return &disclosureService{s: s, cfg: s.cfg.Disclosure, pages: disclosure.NewPages(),
		limiter: auth.NewLimiter(disclosurePerHour/3600.0, disclosureBurst, 100000)}
}

// routes are the disclosure and product API routes.
func (d *disclosureService) routes() []route {
	return []route{
		{"POST", "/api/v1/disclosures", "public", d.handleSubmitJSON},
		{"GET", "/api/v1/disclosures/{id}/status", "public", d.handleStatusJSON},
		{"POST", "/api/v1/disclosures/{id}/messages", "public", d.handleMessageJSON},
		{"GET", "/api/v1/disclosures", "admin", d.handleList},
		{"GET", "/api/v1/disclosures/{id}", "admin", d.handleGet},
		{"POST", "/api/v1/disclosures/{id}/transition", "admin", d.handleTransition},
		{"GET", "/api/v1/products", "admin", d.handleListProducts},
		{"POST", "/api/v1/products", "admin", d.handlePutProduct},
	}
}

// mount registers the public pages, which need no login.
func (d *disclosureService) mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/security.txt", d.securityTxt)
	// RFC 9116 §3: the legacy location may redirect to the well-known one.
	mux.Handle("GET /security.txt", http.RedirectHandler("/.well-known/security.txt", http.StatusMovedPermanently))
	mux.HandleFunc("GET "+disclosure.CSSPath, d.css)
	mux.HandleFunc("GET /disclose", d.form)
	mux.HandleFunc("POST /disclose", d.submitForm)
	mux.HandleFunc("GET /disclose/status/{id}", d.statusPage)
	mux.HandleFunc("POST /disclose/status/{id}", d.addMessage)
	mux.HandleFunc("GET /disclosure-policy", d.policyPage)
	mux.HandleFunc("GET /acknowledgments", d.acknowledgmentsPage)
	mux.HandleFunc("GET /products", d.productsPage)
	mux.HandleFunc("GET /products.json", d.productsJSON)
	mux.HandleFunc("GET /update-policy", d.updatePolicyPage)
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// baseURL is the https base URL of the public pages: the configured one,
// else the request's host (when it is a plain host name or address),
// else the listen address.
func (d *disclosureService) baseURL(r *http.Request) string {
	if d.cfg.PublicURL != "" {
		return strings.TrimSuffix(d.cfg.PublicURL, "/")
	}
	if hostRE.MatchString(r.Host) {
		return "https://" + r.Host
	}
	return "https://" + d.s.cfg.Listen
}

func (d *disclosureService) securityTxt(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	if r.Method != http.MethodHead {
		w.Write([]byte(d.cfg.SecurityTxt(d.baseURL(r), d.s.now())))
	}
}

func (d *disclosureService) css(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	if r.Method != http.MethodHead {
		w.Write(disclosure.CSS())
	}
}

// render writes a public page with a strict Content-Security-Policy.
func (d *disclosureService) render(w http.ResponseWriter, r *http.Request, status int, name string, v disclosure.View) {
	b, err := d.pages.Render(name, v)
	if err != nil {
		d.s.log.Error("rendering public page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

func (d *disclosureService) message(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	d.render(w, r, status, "message", disclosure.View{Title: title, Data: msg})
}

// ---- submission ----

type formData struct {
	Token    string
	Form     disclosure.Submission
	Products []string
}

// formToken returns the double-submit token for the report form, reusing
// a well-formed one from the request's cookie, and (re)sets the cookie.
func formToken(w http.ResponseWriter, r *http.Request) (string, error) {
	tok := ""
	if ck, err := r.Cookie(DisclosureCookie); err == nil && len(ck.Value) == 43 && !strings.ContainsAny(ck.Value, "+/=") {
		tok = ck.Value
	} else if tok, err = auth.NewCSRFToken(); err != nil {
		return "", err
	}
	http.SetCookie(w, &http.Cookie{Name: DisclosureCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(disclosureFormLifetime / time.Second)})
	return tok, nil
}

func (d *disclosureService) renderForm(w http.ResponseWriter, r *http.Request, status int, sub disclosure.Submission, errMsg string) {
	tok, err := formToken(w, r)
	if err != nil {
		d.s.log.Error("disclosure form token", "err", err)
		d.message(w, r, http.StatusInternalServerError, "Something went wrong", "The server could not prepare the form; please try again shortly.")
		return
	}
	fd := formData{Token: tok, Form: sub}
	if ps, err := d.s.store.ListProducts(r.Context()); err == nil {
		for _, p := range ps {
			fd.Products = append(fd.Products, p.Name)
		}
	}
	d.render(w, r, status, "disclose", disclosure.View{Title: "Report a vulnerability", Error: errMsg, Data: fd})
}

func (d *disclosureService) form(w http.ResponseWriter, r *http.Request) {
	d.renderForm(w, r, http.StatusOK, disclosure.Submission{}, "")
}

func (d *disclosureService) submitForm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxDisclosureForm)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			d.message(w, r, http.StatusRequestEntityTooLarge, "Report too large",
				fmt.Sprintf("The report is larger than the form accepts (%d KiB). Please shorten the details, and link to larger material instead.", maxDisclosureForm>>10))
			return
		}
		d.renderForm(w, r, http.StatusBadRequest, disclosure.Submission{}, "The form could not be read. Please try again.")
		return
	}
	f := r.PostForm
	sub := disclosure.Submission{Summary: f.Get("summary"), Product: f.Get("product"), AffectedVersion: f.Get("affected_version"),
		Details: f.Get("details"), Email: f.Get("email"), AcknowledgeAs: f.Get("acknowledge_as")}
	ck, err := r.Cookie(DisclosureCookie)
	if err != nil || !auth.CSRFValid(ck.Value, f.Get("csrf")) {
		d.renderForm(w, r, http.StatusForbidden, sub, "This form has expired or did not come from this site. Please check your report and send it again.")
		return
	}
	sub.Normalize()
	rec, err := d.submit(r, sub)
	if err != nil {
		status, msg := ErrorMessage(err)
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(3600/disclosurePerHour))
			d.message(w, r, status, "Too many reports", msg)
			return
		}
		if status >= 500 {
			d.message(w, r, status, "Something went wrong", "The server could not store your report; please try again shortly.")
			return
		}
		d.renderForm(w, r, status, sub, sentenceCase(msg))
		return
	}
	// The form has served its purpose: a reload must not send it again.
	http.SetCookie(w, &http.Cookie{Name: DisclosureCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	d.render(w, r, http.StatusCreated, "received", disclosure.View{Title: "Report received", Data: rec})
}

func (d *disclosureService) handleSubmitJSON(w http.ResponseWriter, r *http.Request) error {
	var sub disclosure.Submission
	if err := decode(r, disclosure.MaxBody, &sub); err != nil {
		return err
	}
	sub.Normalize()
	rec, err := d.submit(r, sub)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(3600/disclosurePerHour))
		}
		return err
	}
	writeJSON(w, http.StatusCreated, rec)
	return nil
}

// submit validates and stores a report (with the first timeline entry,
// in one transaction) and audits it. The rate limit is taken only for a
// valid report, so that a reporter fixing a typo is not locked out.
func (d *disclosureService) submit(r *http.Request, sub disclosure.Submission) (*disclosure.Receipt, error) {
	if err := sub.Validate(); err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_report", err.Error())
	}
	remote := ClientIP(r)
	now := d.s.now()
	if !d.limiter.Allow(remote, now) {
		d.s.audit(r.Context(), auditRecord{actor: "reporter", action: "disclosure.submit", remote: remote, outcome: "refused: rate limited"})
		return nil, errf(http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("too many reports from your address: at most %d an hour; please wait and try again, or combine findings in one report", disclosurePerHour))
	}
	key, hash, err := disclosure.NewFollowUpKey()
	if err != nil {
		return nil, internal(err)
	}
	rep := &store.DisclosureReport{KeyHash: hash, State: disclosure.StateReceived, Summary: sub.Summary, Product: sub.Product,
		AffectedVersion: sub.AffectedVersion, Details: sub.Details, Email: sub.Email, AcknowledgeAs: sub.AcknowledgeAs,
		Remote: remote, ReceivedAt: now, UpdatedAt: now}
	for attempt := 0; ; attempt++ {
		if rep.ID, err = disclosure.NewTrackingID(); err != nil {
			return nil, internal(err)
		}
		err = d.s.store.CreateDisclosure(r.Context(), rep, &store.DisclosureEvent{Time: now, Actor: "reporter", To: disclosure.StateReceived})
		if !errors.Is(err, store.ErrConflict) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return nil, internal(err)
	}
	d.s.audit(r.Context(), auditRecord{actor: "reporter", action: "disclosure.submit", target: "disclosure:" + rep.ID, remote: remote,
		detail: "product=" + rep.Product, outcome: "ok"})
	return &disclosure.Receipt{ID: rep.ID, State: rep.State, FollowUpKey: key,
		FollowUpURL: d.baseURL(r) + "/disclose/status/" + rep.ID + "?key=" + url.QueryEscape(key)}, nil
}

// ---- follow-up ----

// errNoReport answers an unknown ID and a wrong key alike, so that the
// answer says nothing about which reports exist.
var errNoReport = errf(http.StatusNotFound, "not_found", "no report with this tracking ID and key")

// reporterStatus returns the status of report id for a reporter who
// holds its follow-up key.
func (d *disclosureService) reporterStatus(ctx context.Context, id, key string) (*disclosure.Status, error) {
	if !disclosure.ValidTrackingID(id) || key == "" {
		return nil, errNoReport
	}
	rep, err := d.s.store.GetDisclosure(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		disclosure.KeyMatches(make([]byte, 32), key) // same work either way
		return nil, errNoReport
	}
	if err != nil {
		return nil, internal(err)
	}
	if !disclosure.KeyMatches(rep.KeyHash, key) {
		return nil, errNoReport
	}
	tl, err := d.s.store.DisclosureTimeline(ctx, id)
	if err != nil {
		return nil, internal(err)
	}
	st := &disclosure.Status{ID: rep.ID, State: rep.State, Summary: rep.Summary, Product: rep.Product, AffectedVersion: rep.AffectedVersion,
		Advisory: rep.Advisory, ReceivedAt: rep.ReceivedAt, UpdatedAt: rep.UpdatedAt, Timeline: []disclosure.StatusEntry{}}
	for _, e := range tl {
		by := "security team"
		if e.Actor == "reporter" {
			by = "reporter"
		}
		st.Timeline = append(st.Timeline, disclosure.StatusEntry{Time: e.Time, By: by, State: e.To, Note: e.Note, Advisory: e.Advisory})
	}
	return st, nil
}

type statusData struct {
	*disclosure.Status
	Key     string
	Message string
	Sent    bool
}

func (d *disclosureService) statusError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := ErrorMessage(err)
	title := "Report not found"
	if status >= 500 {
		title = "Something went wrong"
	}
	d.message(w, r, status, title, sentenceCase(msg)+" Check that you opened the complete link you were given.")
}

func (d *disclosureService) statusPage(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	st, err := d.reporterStatus(r.Context(), r.PathValue("id"), key)
	if err != nil {
		d.statusError(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "status", disclosure.View{Title: "Report " + st.ID,
		Data: statusData{Status: st, Key: key, Sent: r.URL.Query().Get("sent") == "1"}})
}

// addMessage adds a reporter's message to the timeline. The follow-up
// key in the form authenticates the reporter and, being a secret another
// site cannot know, also stops cross-site posts. Messages share the
// report rate limit.
func (d *disclosureService) addMessage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxDisclosureForm)
	if err := r.ParseForm(); err != nil {
		d.message(w, r, http.StatusRequestEntityTooLarge, "Message not sent", "The message could not be read or is too large.")
		return
	}
	id, key := r.PathValue("id"), r.PostForm.Get("key")
	msg := strings.TrimRight(strings.ReplaceAll(r.PostForm.Get("message"), "\r\n", "\n"), " \t\n")
	st, err := d.reporterStatus(r.Context(), id, key)
	if err != nil {
		d.statusError(w, r, err)
		return
	}
	fail := func(status int, text string) {
		d.render(w, r, status, "status", disclosure.View{Title: "Report " + st.ID, Error: text,
			Data: statusData{Status: st, Key: key, Message: msg}})
	}
	if err := d.addReporterMessage(r, st, msg); err != nil {
		status, text := ErrorMessage(err)
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(3600/disclosurePerHour))
		}
		if status >= 500 {
			d.message(w, r, status, "Something went wrong", "The server could not store your message; please try again shortly.")
			return
		}
		fail(status, sentenceCase(text))
		return
	}
	http.Redirect(w, r, "/disclose/status/"+id+"?key="+url.QueryEscape(key)+"&sent=1", http.StatusSeeOther)
}

// addReporterMessage validates and stores a message from the reporter of
// st (already authenticated by its key), under the report rate limit.
func (d *disclosureService) addReporterMessage(r *http.Request, st *disclosure.Status, msg string) error {
	if err := disclosure.CheckMessage(msg); err != nil {
		return errf(http.StatusBadRequest, "invalid_message", err.Error())
	}
	remote := ClientIP(r)
	if !d.limiter.Allow(remote, d.s.now()) {
		return errf(http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("too many reports and messages from your address: at most %d an hour; please try again later", disclosurePerHour))
	}
	e := &store.DisclosureEvent{Time: d.s.now(), Actor: "reporter", To: st.State, Note: msg}
	if err := d.s.store.AddDisclosureEvent(r.Context(), st.ID, e); err != nil {
		return internal(err)
	}
	d.s.audit(r.Context(), auditRecord{actor: "reporter", action: "disclosure.message", target: "disclosure:" + st.ID, remote: remote, outcome: "ok"})
	return nil
}

// handleMessageJSON adds a reporter's message by the API; the key goes in
// the X-Follow-Up-Key header. It answers with the report's status.
func (d *disclosureService) handleMessageJSON(w http.ResponseWriter, r *http.Request) error {
	var m disclosure.Message
	if err := decode(r, disclosure.MaxBody, &m); err != nil {
		return err
	}
	st, err := d.reporterStatus(r.Context(), r.PathValue("id"), r.Header.Get("X-Follow-Up-Key"))
	if err != nil {
		return err
	}
	if err := d.addReporterMessage(r, st, strings.TrimRight(m.Message, " \t\r\n")); err != nil {
		var he *httpError
		if errors.As(err, &he) && he.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(3600/disclosurePerHour))
		}
		return err
	}
	if st, err = d.reporterStatus(r.Context(), st.ID, r.Header.Get("X-Follow-Up-Key")); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, st)
	return nil
}

// handleStatusJSON is the follow-up for API clients; the key goes in the
// X-Follow-Up-Key header (or the key query parameter).
func (d *disclosureService) handleStatusJSON(w http.ResponseWriter, r *http.Request) error {
	key := r.Header.Get("X-Follow-Up-Key")
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	st, err := d.reporterStatus(r.Context(), r.PathValue("id"), key)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// ---- admin API ----

func reportView(rep *store.DisclosureReport, tl []store.DisclosureEvent, detail bool) disclosure.Report {
	out := disclosure.Report{ID: rep.ID, State: rep.State, Summary: rep.Summary, Product: rep.Product, AffectedVersion: rep.AffectedVersion,
		Email: rep.Email, AcknowledgeAs: rep.AcknowledgeAs, Advisory: rep.Advisory, ReceivedAt: rep.ReceivedAt, UpdatedAt: rep.UpdatedAt,
		Allowed: disclosure.Allowed(rep.State)}
	if detail {
		out.Details = rep.Details
		out.Timeline = []disclosure.TimelineEntry{}
		for _, e := range tl {
			out.Timeline = append(out.Timeline, disclosure.TimelineEntry{Time: e.Time, Actor: e.Actor, From: e.From, To: e.To, Note: e.Note, Advisory: e.Advisory})
		}
	}
	return out
}

// ListDisclosures lists reports for p (a global auditor or more), by the
// request's state, limit and offset parameters.
func (s *Server) ListDisclosures(r *http.Request, p *Principal) (disclosure.ReportList, error) {
	if !p.Global(api.RoleAuditor) {
		return disclosure.ReportList{}, errForbidden
	}
	limit, err := intParam(r, "limit", 100, 1000)
	if err != nil {
		return disclosure.ReportList{}, err
	}
	offset, err := intParam(r, "offset", 0, 1<<30)
	if err != nil {
		return disclosure.ReportList{}, err
	}
	state := r.URL.Query().Get("state")
	if state != "" && !disclosure.ValidState(state) {
		return disclosure.ReportList{}, badRequest("state must be one of " + strings.Join(disclosure.States, ", "))
	}
	reps, total, err := s.store.ListDisclosures(r.Context(), state, limit, offset)
	if err != nil {
		return disclosure.ReportList{}, internal(err)
	}
	out := disclosure.ReportList{Reports: []disclosure.Report{}, Total: total}
	for _, rep := range reps {
		out.Reports = append(out.Reports, reportView(rep, nil, false))
	}
	return out, nil
}

// GetDisclosure returns one report with its details and timeline for p
// (a global auditor or more).
func (s *Server) GetDisclosure(r *http.Request, p *Principal, id string) (disclosure.Report, error) {
	if !p.Global(api.RoleAuditor) {
		return disclosure.Report{}, errForbidden
	}
	rep, err := s.store.GetDisclosure(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return disclosure.Report{}, errNotFound
	}
	if err != nil {
		return disclosure.Report{}, internal(err)
	}
	tl, err := s.store.DisclosureTimeline(r.Context(), id)
	if err != nil {
		return disclosure.Report{}, internal(err)
	}
	return reportView(rep, tl, true), nil
}

// TransitionDisclosure moves a report to another state for p (a global
// operator or more), recording the step in the timeline and the audit
// log. A move the workflow does not allow is a 409 naming the allowed
// ones.
func (s *Server) TransitionDisclosure(r *http.Request, p *Principal, id string, req disclosure.TransitionRequest) (disclosure.Report, error) {
	if !p.Global(api.RoleOperator) {
		return disclosure.Report{}, errForbidden
	}
	if err := req.Validate(); err != nil {
		return disclosure.Report{}, badRequest(err.Error())
	}
	rec := auditRecord{actor: p.Actor(), action: "disclosure.transition", target: "disclosure:" + id, remote: ClientIP(r)}
	rep, err := s.store.GetDisclosure(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return disclosure.Report{}, errNotFound
	}
	if err != nil {
		return disclosure.Report{}, internal(err)
	}
	rec.detail = rep.State + " -> " + req.To
	if req.Advisory != "" {
		rec.detail += "; advisory " + req.Advisory
	}
	if !disclosure.CanTransition(rep.State, req.To) {
		allowed := disclosure.Allowed(rep.State)
		msg := fmt.Sprintf("report %s is %s and cannot move to %s; allowed: %s", id, rep.State, req.To, strings.Join(allowed, ", "))
		if len(allowed) == 0 {
			msg = fmt.Sprintf("report %s is %s, which is final; it cannot move to %s", id, rep.State, req.To)
		}
		rec.outcome = "refused: transition not allowed"
		s.audit(r.Context(), rec)
		return disclosure.Report{}, errf(http.StatusConflict, "invalid_transition", msg)
	}
	if req.To == disclosure.StatePublished && req.Advisory == "" && rep.Advisory == "" {
		return disclosure.Report{}, badRequest("advisory is required to publish: link the advisory (an ID or an https URL) that announces the fix")
	}
	e := &store.DisclosureEvent{Time: s.now(), Actor: p.Actor(), From: rep.State, To: req.To, Note: req.Note, Advisory: req.Advisory}
	if err := s.store.TransitionDisclosure(r.Context(), id, e, req.Advisory); errors.Is(err, store.ErrStateChanged) {
		rec.outcome = "refused: state changed meanwhile"
		s.audit(r.Context(), rec)
		return disclosure.Report{}, errf(http.StatusConflict, "state_changed", fmt.Sprintf("report %s changed state meanwhile; reload it and try again", id))
	} else if err != nil {
		return disclosure.Report{}, internal(err)
	}
	rec.outcome = "ok"
	s.audit(r.Context(), rec)
	return s.GetDisclosure(r, p, id)
}

func (d *disclosureService) handleList(w http.ResponseWriter, r *http.Request) error {
	list, err := d.s.ListDisclosures(r, PrincipalFrom(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (d *disclosureService) handleGet(w http.ResponseWriter, r *http.Request) error {
	rep, err := d.s.GetDisclosure(r, PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (d *disclosureService) handleTransition(w http.ResponseWriter, r *http.Request) error {
	var req disclosure.TransitionRequest
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	rep, err := d.s.TransitionDisclosure(r, PrincipalFrom(r.Context()), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// ---- products ----

func productView(p store.Product, now time.Time) disclosure.Product {
	return disclosure.Product{Name: p.Name, Description: p.Description, SupportUntil: p.SupportUntil, UpdateCadence: p.UpdateCadence,
		CriticalFixTarget: p.CriticalFixTarget, Supported: disclosure.SupportedAt(p.SupportUntil, now), UpdatedAt: p.UpdatedAt}
}

func (d *disclosureService) products(ctx context.Context) ([]disclosure.Product, error) {
	return d.s.Products(ctx)
}

func (d *disclosureService) handleListProducts(w http.ResponseWriter, r *http.Request) error {
	ps, err := d.products(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ps)
	return nil
}

// PutProduct creates or updates a product for p (a global admin),
// auditing the change; created reports which.
func (s *Server) PutProduct(r *http.Request, p *Principal, req disclosure.Product) (disclosure.Product, bool, error) {
	if !p.Global(api.RoleAdmin) {
		return disclosure.Product{}, false, errForbidden
	}
	if err := req.Validate(); err != nil {
		return disclosure.Product{}, false, badRequest(err.Error())
	}
	sp := store.Product{Name: req.Name, Description: req.Description, SupportUntil: req.SupportUntil, UpdateCadence: req.UpdateCadence,
		CriticalFixTarget: req.CriticalFixTarget, UpdatedAt: s.now()}
	created, err := s.store.PutProduct(r.Context(), &sp)
	if errors.Is(err, store.ErrConflict) {
		return disclosure.Product{}, false, errf(http.StatusConflict, "conflict", fmt.Sprintf("product %q was created meanwhile; send it again to update it", req.Name))
	} else if err != nil {
		return disclosure.Product{}, false, internal(err)
	}
	action := "product.update"
	if created {
		action = "product.create"
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: action, target: "product:" + sp.Name, remote: ClientIP(r),
		detail: "support_until=" + sp.SupportUntil, outcome: "ok"})
	return productView(sp, s.now()), created, nil
}

// Products lists the published products with their support status.
func (s *Server) Products(ctx context.Context) ([]disclosure.Product, error) {
	ps, err := s.store.ListProducts(ctx)
	if err != nil {
		return nil, internal(err)
	}
	now := s.now()
	out := []disclosure.Product{}
	for _, p := range ps {
		out = append(out, productView(p, now))
	}
	return out, nil
}

// handlePutProduct creates a product (201) or updates one (200).
func (d *disclosureService) handlePutProduct(w http.ResponseWriter, r *http.Request) error {
	var req disclosure.Product
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	out, created, err := d.s.PutProduct(r, PrincipalFrom(r.Context()), req)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, out)
	return nil
}

func (d *disclosureService) productsJSON(w http.ResponseWriter, r *http.Request) {
	ps, err := d.products(r.Context())
	if err != nil {
		d.s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, disclosure.ProductList{Products: ps, UpdatePolicyURL: d.baseURL(r) + "/update-policy", GeneratedAt: d.s.now().UTC()})
}

type productsData struct{ Products []disclosure.Product }

func (d *disclosureService) productsPage(w http.ResponseWriter, r *http.Request) {
	ps, err := d.products(r.Context())
	if err != nil {
		d.s.log.Error("listing products", "err", err)
		d.message(w, r, http.StatusInternalServerError, "Something went wrong", "The product list is unavailable; please try again shortly.")
		return
	}
	d.render(w, r, http.StatusOK, "products", disclosure.View{Title: "Products and support periods", Data: productsData{ps}})
}

func (d *disclosureService) updatePolicyPage(w http.ResponseWriter, r *http.Request) {
	ps, err := d.products(r.Context())
	if err != nil {
		d.s.log.Error("listing products", "err", err)
		d.message(w, r, http.StatusInternalServerError, "Something went wrong", "The update policy is unavailable; please try again shortly.")
		return
	}
	d.render(w, r, http.StatusOK, "update-policy", disclosure.View{Title: "Security update policy", Data: productsData{ps}})
}

type policyData struct{ Contacts []string }

func (d *disclosureService) policyPage(w http.ResponseWriter, r *http.Request) {
	var contacts []string
	for _, c := range d.cfg.Contacts {
		if strings.HasPrefix(c, "mailto:") || strings.HasPrefix(c, "https://") {
			contacts = append(contacts, c)
		}
	}
	d.render(w, r, http.StatusOK, "policy", disclosure.View{Title: "Vulnerability disclosure policy", Data: policyData{contacts}})
}

func (d *disclosureService) acknowledgmentsPage(w http.ResponseWriter, r *http.Request) {
	acks, err := d.s.store.ListAcknowledgments(r.Context(), disclosure.StatePublished, 500)
	if err != nil {
		d.s.log.Error("listing acknowledgments", "err", err)
		d.message(w, r, http.StatusInternalServerError, "Something went wrong", "The acknowledgments are unavailable; please try again shortly.")
		return
	}
	d.render(w, r, http.StatusOK, "acknowledgments", disclosure.View{Title: "Acknowledgments", Data: acks})
}

// sentenceCase capitalises a message and ends it with a full stop.
func sentenceCase(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
