package console

import (
	"bytes"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/auth"
	"github.com/bulwark-iot/bulwark/internal/server"
)

// ---- login and logout ----

type loginData struct {
	Token    string // the double-submit token
	Username string
	Next     string
	NeedTOTP bool
}

// loginToken returns the login form's double-submit token, reusing the
// browser's current one (so that two open login tabs both work) and
// refreshing the cookie.
func loginToken(w http.ResponseWriter, r *http.Request) (string, error) {
	tok := ""
	if ck, err := r.Cookie(LoginCookie); err == nil && len(ck.Value) == 43 && !strings.ContainsAny(ck.Value, "+/=") {
		tok = ck.Value
	} else {
		var err error
		if tok, err = auth.NewCSRFToken(); err != nil {
			return "", err
		}
	}
	http.SetCookie(w, &http.Cookie{Name: LoginCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(loginCookieLifetime / time.Second)})
	return tok, nil
}

func clearLoginCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: LoginCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func (c *console) loginForm(w http.ResponseWriter, r *http.Request) {
	if p, _ := c.session(r); p != nil {
		redirect(w, r, safeNext(r.URL.Query().Get("next")), nil)
		return
	}
	c.renderLogin(w, r, http.StatusOK, loginData{Next: r.URL.Query().Get("next")}, flash(r, "m"), "")
}

func (c *console) renderLogin(w http.ResponseWriter, r *http.Request, status int, d loginData, flashMsg, errMsg string) {
	tok, err := loginToken(w, r)
	if err != nil {
		c.renderError(w, r, nil, http.StatusInternalServerError, "Something went wrong", "internal error; the server log has details")
		return
	}
	d.Token = tok
	if d.Next != "" && safeNext(d.Next) == Prefix {
		d.Next = ""
	}
	c.render(w, r, status, "login", view{Title: "Log in", Flash: flashMsg, Error: errMsg, Data: d})
}

func (c *console) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		c.renderLogin(w, r, http.StatusBadRequest, loginData{}, "", "The form could not be read. Please try again.")
		return
	}
	f := r.PostForm
	d := loginData{Username: strings.TrimSpace(f.Get("username")), Next: f.Get("next")}
	ck, err := r.Cookie(LoginCookie)
	if err != nil || !auth.CSRFValid(ck.Value, f.Get("login_csrf")) {
		// Missing or mismatched: a stale form, or a cross-site login
		// attempt. Either way, offer a fresh form.
		c.renderLogin(w, r, http.StatusForbidden, d, "", "This login form has expired or did not come from this site. Please enter your details again.")
		return
	}
	cookie, _, err := c.s.Login(r.Context(), d.Username, f.Get("password"), strings.TrimSpace(f.Get("totp")), server.ClientIP(r))
	if err != nil {
		var le *server.LoginError
		if !errors.As(err, &le) {
			c.log.Error("console login failed", "err", err)
			c.renderLogin(w, r, http.StatusInternalServerError, d, "", "The server could not complete the login; try again shortly.")
			return
		}
		d.NeedTOTP = le.NeedsTOTP
		msg := le.Msg
		if le.NeedsTOTP {
			msg = "This account uses two-factor authentication: enter your password again with the code from your authenticator app."
		}
		c.renderLogin(w, r, le.Status, d, "", sentence(msg))
		return
	}
	clearLoginCookie(w)
	server.SetSessionCookie(w, cookie)
	redirect(w, r, safeNext(d.Next), nil)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	if err := c.s.Logout(r.Context(), p, server.ClientIP(r)); err != nil {
		return err
	}
	server.ClearSessionCookie(w)
	redirect(w, r, Prefix+"login", url.Values{"m": {"logged-out"}})
	return nil
}

// ---- overview ----

type overviewData struct {
	Summary api.FleetSummary
	Recent  []api.Device
}

func (c *console) overview(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	sum, err := c.s.FleetSummary(r, p)
	if err != nil {
		return err
	}
	list, err := c.s.ListDevices(withQuery(r, url.Values{"limit": {"10"}, "sort": {"last_seen"}}), p)
	if err != nil {
		return err
	}
	devs := slices.DeleteFunc(list.Devices, func(d api.Device) bool { return d.LastSeen == nil })
	c.render(w, r, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", P: p,
		Data: overviewData{Summary: sum, Recent: devs}})
	return nil
}

// withQuery returns a shallow copy of r with the given query.
func withQuery(r *http.Request, q url.Values) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.RawQuery = q.Encode()
	r2.URL = &u
	return r2
}

// ---- devices ----

const devicesPerPage = 50

type devicesData struct {
	Q, Group, Status string
	Groups           []string
	Devices          []api.Device
	Total            int
	From, To         int
	PrevURL, NextURL string
	Filtered         bool
}

func (c *console) devices(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	in := r.URL.Query()
	d := devicesData{Q: strings.TrimSpace(in.Get("q")), Group: in.Get("group"), Status: in.Get("status")}
	d.Filtered = d.Q != "" || d.Group != "" || d.Status != ""
	offset, err := strconv.Atoi(in.Get("offset"))
	if err != nil || offset < 0 {
		offset = 0
	}
	groups, err := c.s.Store().ListGroups(r.Context())
	if err != nil {
		return err
	}
	for _, g := range groups {
		if p.Can(api.RoleAuditor, g.Name) {
			d.Groups = append(d.Groups, g.Name)
		}
	}
	q := url.Values{"limit": {strconv.Itoa(devicesPerPage)}, "offset": {strconv.Itoa(offset)}}
	for k, v := range map[string]string{"q": d.Q, "group": d.Group, "status": d.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	v := view{Title: "Devices", Nav: "devices", P: p}
	list, err := c.s.ListDevices(withQuery(r, q), p)
	if err != nil {
		status, msg := server.ErrorMessage(err)
		if status != http.StatusBadRequest {
			return err
		}
		v.Error, v.Data = sentence(msg), d
		c.render(w, r, status, "devices", v)
		return nil
	}
	d.Devices, d.Total = list.Devices, list.Total
	if len(d.Devices) > 0 {
		d.From, d.To = offset+1, offset+len(d.Devices)
	}
	page := func(off int) string {
		pq := url.Values{}
		for k, v := range map[string]string{"q": d.Q, "group": d.Group, "status": d.Status} {
			if v != "" {
				pq.Set(k, v)
			}
		}
		if off > 0 {
			pq.Set("offset", strconv.Itoa(off))
		}
		if len(pq) == 0 {
			return Prefix + "devices"
		}
		return Prefix + "devices?" + pq.Encode()
	}
	if offset > 0 {
		d.PrevURL = page(max(0, offset-devicesPerPage))
	}
	if offset+len(d.Devices) < d.Total {
		d.NextURL = page(offset + devicesPerPage)
	}
	v.Data = d
	c.render(w, r, http.StatusOK, "devices", v)
	return nil
}

type deviceData struct {
	D         api.Device
	Health    string
	Activity  []api.AuditEntry
	Commands  []api.CommandStatus
	CanRevoke bool
	Identity  identityData
	Events    []securityEvent
	MoreURL   string // the event search for this device, when it holds more
}

func (c *console) device(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	sd, err := c.s.VisibleDevice(r, p, r.PathValue("id"), api.RoleAuditor)
	if err != nil {
		return err
	}
	d := c.s.DeviceView(sd, true)
	activity, err := c.s.Store().RecentAudit(r.Context(), "device:"+d.ID, 20)
	if err != nil {
		return err
	}
	cmds, err := c.s.DeviceCommands(r, d.ID)
	if err != nil {
		return err
	}
	if len(cmds) > 20 {
		cmds = cmds[:20]
	}
	ident, err := c.identity(r, p, d)
	if err != nil {
		return err
	}
	evs, more, err := c.deviceEvents(r, p, d.ID)
	if err != nil {
		return err
	}
	title := d.Hostname
	if title == "" {
		title = d.ID
	}
	c.render(w, r, http.StatusOK, "device", view{Title: title, Nav: "devices", Crumb: devicesCrumb, P: p, Flash: flash(r, "done"),
		Data: deviceData{D: d, Health: healthOf(d), Activity: activity, Commands: cmds,
			CanRevoke: d.Status == api.DeviceActive && p.Can(api.RoleOperator, d.Group), Identity: ident,
			Events: evs, MoreURL: more}})
	return nil
}

func (c *console) revokeConfirm(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	sd, err := c.s.VisibleDevice(r, p, r.PathValue("id"), api.RoleOperator)
	if err != nil {
		return err
	}
	d := c.s.DeviceView(sd, false)
	if d.Status != api.DeviceActive {
		redirect(w, r, Prefix+"devices/"+url.PathEscape(d.ID), nil)
		return nil
	}
	c.render(w, r, http.StatusOK, "revoke", view{Title: "Revoke device", Nav: "devices", Crumb: devicesCrumb, P: p, Data: d})
	return nil
}

func (c *console) revoke(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	id := r.PathValue("id")
	if err := c.s.RevokeDevice(r, p, id); err != nil {
		return err
	}
	redirect(w, r, Prefix+"devices/"+url.PathEscape(id), url.Values{"done": {"revoked"}})
	return nil
}

// ---- users and tokens (admins) ----

func (c *console) users(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	us, err := c.s.Store().ListUsers(r.Context())
	if err != nil {
		return err
	}
	out := make([]api.User, 0, len(us))
	for _, u := range us {
		out = append(out, server.UserView(u))
	}
	c.render(w, r, http.StatusOK, "users", view{Title: "Users", Nav: "users", P: p, Data: out})
	return nil
}

type tokensData struct {
	Tokens  []api.APIToken
	Groups  []string
	Created *api.APIToken // set once, right after creation
	Form    api.APITokenCreate
	Now     time.Time
}

func (c *console) tokensPage(w http.ResponseWriter, r *http.Request, p *server.Principal, status int, d tokensData, errMsg string) error {
	toks, err := c.s.ListAPITokens(r)
	if err != nil {
		return err
	}
	groups, err := c.s.Store().ListGroups(r.Context())
	if err != nil {
		return err
	}
	for _, g := range groups {
		d.Groups = append(d.Groups, g.Name)
	}
	d.Tokens, d.Now = toks, c.s.Now()
	if d.Form.Role == "" {
		d.Form.Role = api.RoleAuditor
	}
	c.render(w, r, status, "tokens", view{Title: "API tokens", Nav: "tokens", P: p, Flash: flash(r, "done"), Error: errMsg, Data: d})
	return nil
}

func (c *console) tokens(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	return c.tokensPage(w, r, p, http.StatusOK, tokensData{}, "")
}

func (c *console) createToken(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	f := r.PostForm
	req := api.APITokenCreate{Name: strings.TrimSpace(f.Get("name")), Role: f.Get("role"), Group: f.Get("group"), TTL: strings.TrimSpace(f.Get("ttl"))}
	tok, err := c.s.CreateAPIToken(r, p, req)
	if err != nil {
		status, msg := server.ErrorMessage(err)
		if status >= 500 {
			return err
		}
		return c.tokensPage(w, r, p, status, tokensData{Form: req}, sentence(msg))
	}
	// The secret is shown in this response only: never in a URL, never
	// again.
	return c.tokensPage(w, r, p, http.StatusCreated, tokensData{Created: &tok}, "")
}

func (c *console) revokeToken(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	if err := c.s.RevokeAPIToken(r, p, r.PathValue("id")); err != nil {
		return err
	}
	redirect(w, r, Prefix+"tokens", url.Values{"done": {"token-revoked"}})
	return nil
}

// ---- account ----

type accountData struct {
	User    api.User
	Pending bool
	Secret  string
	URL     string
	QR      template.URL // data: URL of a PNG QR code
}

func (c *console) accountPage(w http.ResponseWriter, r *http.Request, p *server.Principal, status int, showSecret bool, errMsg string) error {
	u, err := c.s.Store().GetUser(r.Context(), p.ID)
	if err != nil {
		return err
	}
	d := accountData{User: server.UserView(u), Pending: u.TOTPPending != ""}
	if showSecret && d.Pending {
		enr, ok, err := c.s.PendingTOTP(r, p)
		if err != nil {
			return err
		}
		if ok {
			d.Secret, d.URL = enr.Secret, enr.URL
			if key, err := otp.NewKeyFromURL(enr.URL); err == nil {
				if img, err := key.Image(220, 220); err == nil {
					var buf bytes.Buffer
					if png.Encode(&buf, img) == nil {
						d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))
					}
				}
			}
		}
	}
	c.render(w, r, status, "account", view{Title: "Account", Nav: "account", P: p, Flash: flash(r, "done"), Error: errMsg, Data: d})
	return nil
}

func (c *console) account(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	return c.accountPage(w, r, p, http.StatusOK, false, "")
}

func (c *console) startTOTP(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	if _, err := c.s.StartTOTP(r, p); err != nil {
		return err
	}
	// Rendered in the answer to the POST, not behind a redirect: the
	// secret is never in a URL and a later visit does not show it.
	return c.accountPage(w, r, p, http.StatusOK, true, "")
}

func (c *console) confirmTOTP(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	code := strings.ReplaceAll(strings.TrimSpace(r.PostForm.Get("code")), " ", "")
	if err := c.s.ConfirmTOTP(r, p, code); err != nil {
		status, msg := server.ErrorMessage(err)
		if status >= 500 {
			return err
		}
		return c.accountPage(w, r, p, status, true, sentence(msg))
	}
	redirect(w, r, Prefix+"account", url.Values{"done": {"totp-on"}})
	return nil
}

// ---- audit log ----

const auditPerPage = 50

type auditData struct {
	Entries   []api.AuditEntry
	Ascending bool
	NewerURL  string
	OlderURL  string
	FirstURL  string
	NextURL   string
}

func (c *console) audit(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	if !p.Global(api.RoleAuditor) {
		return errForbidden
	}
	q := r.URL.Query()
	num := func(k string) int64 {
		n, err := strconv.ParseInt(q.Get(k), 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return n
	}
	d := auditData{Ascending: q.Get("order") == "seq"}
	if d.Ascending {
		after := num("after")
		page, err := c.s.AuditPage(r, after, auditPerPage)
		if err != nil {
			return err
		}
		d.Entries = page.Entries
		if after > 0 {
			d.FirstURL = Prefix + "audit?order=seq"
		}
		if page.Next > 0 {
			d.NextURL = Prefix + "audit?" + url.Values{"order": {"seq"}, "after": {strconv.FormatInt(page.Next, 10)}}.Encode()
		}
	} else {
		before := num("before")
		entries, err := c.newestFirst(r, before)
		if err != nil {
			return err
		}
		d.Entries = entries
		if before > 0 {
			d.NewerURL = Prefix + "audit"
		}
		if n := len(entries); n == auditPerPage && entries[n-1].Seq > 1 {
			d.OlderURL = Prefix + "audit?" + url.Values{"before": {strconv.FormatInt(entries[n-1].Seq, 10)}}.Encode()
		}
	}
	c.render(w, r, http.StatusOK, "audit", view{Title: "Audit log", Nav: "audit", P: p, Data: d})
	return nil
}

// newestFirst returns up to a page of audit entries with seq < before
// (all when before is 0), newest first.
func (c *console) newestFirst(r *http.Request, before int64) ([]api.AuditEntry, error) {
	st := c.s.Store()
	if before == 0 {
		return st.RecentAudit(r.Context(), "", auditPerPage)
	}
	// Sequence numbers can have gaps, so widen the window until it holds
	// a page or reaches the start.
	var out []api.AuditEntry
	hi := before
	for i := 0; i < 8 && hi > 1 && len(out) < auditPerPage; i++ {
		lo := max(0, hi-1-int64(auditPerPage-len(out)))
		es, err := st.ListAudit(r.Context(), lo, int(hi-1-lo), "")
		if err != nil {
			return nil, err
		}
		slices.Reverse(es)
		out = append(out, es...)
		hi = lo + 1
	}
	return out, nil
}

func (c *console) changePassword(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	f := r.PostForm
	if f.Get("new_password") != f.Get("confirm_password") {
		return c.accountPage(w, r, p, http.StatusBadRequest, false, "The two new passwords differ.")
	}
	if err := c.s.ChangePassword(r, p, f.Get("current_password"), f.Get("new_password")); err != nil {
		status, msg := server.ErrorMessage(err)
		if status >= 500 {
			return err
		}
		return c.accountPage(w, r, p, status, false, sentence(msg))
	}
	redirect(w, r, Prefix+"account", url.Values{"done": {"password"}})
	return nil
}
