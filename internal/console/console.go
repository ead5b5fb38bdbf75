// Package console is Bulwark's web console: server-rendered HTML pages
// (html/template) with embedded templates and CSS, served under /ui/ by
// the control plane. It needs no JavaScript and no build step.
//
// Every page except the login page needs a console session (the session
// cookie; API bearer tokens are not accepted here). Every form that
// changes state carries the session's CSRF token, and the login form,
// which has no session yet, a double-submit token bound to a short-lived
// cookie. Authorisation is the server's: the console calls the same
// exported helpers as the admin API, so scoping and auditing are the same.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/auth"
	"github.com/bulwark-iot/bulwark/internal/server"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// LoginCookie holds the double-submit token of the login form. The
// __Host- prefix makes browsers insist on Secure, Path=/ and no Domain, so
// neither a sibling subdomain nor a plain-HTTP page can plant one.
const LoginCookie = "__Host-bulwark_login"

// loginCookieLifetime bounds how long a login form stays usable.
const loginCookieLifetime = 15 * time.Minute

// maxForm bounds a console form body.
const maxForm = 64 << 10

type console struct {
	s        *server.Server
	log      *slog.Logger
	pages    map[string]*template.Template
	cssHref  string
	mux      *http.ServeMux
	staticFS fs.FS
}

// New returns the console handler for s, to be mounted at /ui/.
func New(s *server.Server) http.Handler {
	c := &console{s: s, log: s.Logger()}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	c.staticFS = sub
	css, err := fs.ReadFile(sub, "console.css")
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(css)
	c.cssHref = Prefix + "static/console.css?v=" + hex.EncodeToString(sum[:6])
	c.pages = c.parseTemplates()
	c.routes()
	return c
}

func (c *console) routes() {
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", c.static())
	m.HandleFunc("GET /ui/login", c.loginForm)
	m.HandleFunc("POST /ui/login", c.loginSubmit)
	m.Handle("POST /ui/logout", c.auth(c.logout))
	m.Handle("GET /ui/{$}", c.auth(c.overview))
	m.Handle("GET /ui/devices", c.auth(c.devices))
	m.Handle("GET /ui/devices/{id}", c.auth(c.device))
	m.Handle("GET /ui/devices/{id}/revoke", c.auth(c.revokeConfirm))
	m.Handle("POST /ui/devices/{id}/revoke", c.auth(c.revoke))
	m.Handle("GET /ui/users", c.auth(c.adminOnly(c.users)))
	m.Handle("GET /ui/tokens", c.auth(c.adminOnly(c.tokens)))
	m.Handle("POST /ui/tokens", c.auth(c.adminOnly(c.createToken)))
	m.Handle("POST /ui/tokens/{id}/revoke", c.auth(c.adminOnly(c.revokeToken)))
	m.Handle("GET /ui/account", c.auth(c.account))
	m.Handle("POST /ui/account/totp", c.auth(c.startTOTP))
	m.Handle("POST /ui/account/totp/confirm", c.auth(c.confirmTOTP))
	m.Handle("POST /ui/account/password", c.auth(c.changePassword))
	m.Handle("GET /ui/audit", c.auth(c.audit))
	c.disclosureRoutes(m)
	c.rolloutRoutes(m)
	c.attestRoutes(m)
	c.eventRoutes(m)
	// Anything else under /ui/ is a 404 page (for a logged-in user, with
	// the navigation; otherwise the login redirect would reveal nothing
	// either, so a bare 404 is as good).
	m.HandleFunc("/ui/", c.notFound)
	c.mux = m
}

func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			c.log.Error("panic in console handler", "path", r.URL.Path, "panic", v)
			c.renderError(w, r, nil, http.StatusInternalServerError, "Something went wrong", "internal error; the server log has details")
		}
	}()
	c.mux.ServeHTTP(w, r)
}

func (c *console) static() http.Handler {
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(c.staticFS))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			c.notFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}

// handler is a console page handler for an authenticated principal.
type handler func(w http.ResponseWriter, r *http.Request, p *server.Principal) error

// auth demands a console session: without one, a GET goes to the login
// page (and back afterwards), anything else to the login page. A POST
// must carry the session's CSRF token in the csrf form field.
func (c *console) auth(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := c.session(r)
		if err != nil || p == nil {
			if err != nil {
				server.ClearSessionCookie(w)
			}
			target := Prefix + "login"
			q := url.Values{}
			if err != nil {
				q.Set("m", "expired")
			}
			if r.Method == http.MethodGet && r.URL.Path != Prefix {
				q.Set("next", r.URL.RequestURI())
			}
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				c.renderError(w, r, p, http.StatusBadRequest, "Bad request", "the form could not be read")
				return
			}
			if !auth.CSRFValid(p.CSRF, r.PostForm.Get("csrf")) {
				c.renderError(w, r, p, http.StatusForbidden, "Request refused",
					"the form was missing its security token or came from another site; reload the page and try again")
				return
			}
		}
		r = r.WithContext(server.WithPrincipal(r.Context(), p))
		if err := h(w, r, p); err != nil {
			c.handleError(w, r, p, err)
		}
	})
}

// session authenticates the console session cookie. A bearer token is
// ignored: API tokens are for the API, not for the console.
func (c *console) session(r *http.Request) (*server.Principal, error) {
	if _, err := r.Cookie(server.SessionCookie); err != nil {
		return nil, nil
	}
	rr := r
	if r.Header.Get("Authorization") != "" {
		rr = r.Clone(r.Context())
		rr.Header.Del("Authorization")
	}
	p, err := c.s.Authenticate(rr)
	if err != nil {
		return nil, err
	}
	if p == nil || p.Kind != "user" || p.SessionID == "" {
		return nil, nil
	}
	return p, nil
}

func (c *console) adminOnly(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
		if !p.Global(api.RoleAdmin) {
			return errForbidden
		}
		return h(w, r, p)
	}
}

// consoleError is an error the console itself raises.
type consoleError struct {
	status int
	msg    string
}

func (e *consoleError) Error() string { return e.msg }

var (
	errForbidden = &consoleError{http.StatusForbidden, "your role does not allow this page; ask an administrator if you need access"}
	errNotFound  = &consoleError{http.StatusNotFound, "there is nothing here, or you do not have access to it"}
)

func (c *console) handleError(w http.ResponseWriter, r *http.Request, p *server.Principal, err error) {
	status, msg := server.ErrorMessage(err)
	var ce *consoleError
	if errors.As(err, &ce) {
		status, msg = ce.status, ce.msg
	}
	if status >= 500 {
		c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	title := http.StatusText(status)
	switch status {
	case http.StatusNotFound:
		title, msg = "Not found", errNotFound.msg
	case http.StatusForbidden:
		title = "Access denied"
	}
	c.renderError(w, r, p, status, title, msg)
}

func (c *console) notFound(w http.ResponseWriter, r *http.Request) {
	p, _ := c.session(r)
	c.renderError(w, r, p, http.StatusNotFound, "Not found", errNotFound.msg)
}

func (c *console) renderError(w http.ResponseWriter, r *http.Request, p *server.Principal, status int, title, msg string) {
	c.render(w, r, status, "error", view{Title: title, P: p, Data: errorData{Status: status, Msg: sentence(msg)}})
}

// crumb links a page to its parent in the title bar.
type crumb struct{ Name, URL string }

var devicesCrumb = &crumb{"Devices", Prefix + "devices"}

type errorData struct {
	Status int
	Msg    string
}

// view is what every template gets.
type view struct {
	Title string
	Nav   string // the active navigation item
	Crumb *crumb // the parent page, if any
	P     *server.Principal
	Flash string
	Error string
	Data  any
	// Refresh, when positive, reloads the page after that many seconds
	// at RefreshURL (the event live tail).
	Refresh    int
	RefreshURL string
	// OpenAlerts is the navigation's count of open alerts; render sets
	// it.
	OpenAlerts string
}

// CSRF is the session's CSRF token for forms.
func (v view) CSRF() string {
	if v.P == nil {
		return ""
	}
	return v.P.CSRF
}

// IsAdmin reports whether the viewer is a global admin.
func (v view) IsAdmin() bool { return v.P != nil && v.P.Global(api.RoleAdmin) }

// IsAuditor reports whether the viewer may read the whole audit log.
func (v view) IsAuditor() bool { return v.P != nil && v.P.Global(api.RoleAuditor) }

// Roles describes the viewer's grants.
func (v view) Roles() string {
	if v.P == nil {
		return ""
	}
	var gs []api.Grant
	for _, g := range v.P.Grants {
		gs = append(gs, api.Grant{Role: g.Role, Group: g.Group})
	}
	return grantsText(gs)
}

func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	t, ok := c.pages[name]
	if !ok {
		panic("console: no template " + name)
	}
	if v.P != nil {
		v.OpenAlerts = c.openAlerts(r, v.P)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("rendering console page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// redirect answers a form with 303 See Other.
func redirect(w http.ResponseWriter, r *http.Request, path string, q url.Values) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// flashes are the fixed messages a redirect can ask a page to show (by
// name, so that no text from the URL reaches the page).
var flashes = map[string]string{
	"revoked":           "The device has been revoked. Its certificate no longer works and it cannot check in.",
	"token-revoked":     "The API token has been revoked.",
	"attest-requested":  "Attestation requested. The device attests when the command reaches it; the result appears below.",
	"baseline-approved": "The captured boot-state baseline is now the device's approved reference. Its next attestation is compared with it.",
	"trust-set":         "The device's trust has been changed and the change recorded in the audit log.",
	"totp-on":           "Two-factor authentication is on. From now on, log in with a code from your authenticator app.",
	"password":          "Your password has been changed.",
	"logged-out":        "You have logged out.",
	"expired":           "Your session has ended. Log in again.",
}

func flash(r *http.Request, key string) string { return flashes[r.URL.Query().Get(key)] }

// safeNext returns next when it is a console path to return to after
// login, else the overview; it never leads off the site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, Prefix) || strings.ContainsAny(next, "\\\r\n") ||
		strings.HasPrefix(next, Prefix+"login") || strings.HasPrefix(next, Prefix+"logout") {
		return Prefix
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return Prefix
	}
	return next
}

// sentence capitalises a server message and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.ContainsAny(s[len(s)-1:], ".!?") {
		s += "."
	}
	return s
}

func grantsText(gs []api.Grant) string {
	var parts []string
	for _, g := range gs {
		if g.Group == "" {
			parts = append(parts, g.Role)
		} else {
			parts = append(parts, fmt.Sprintf("%s @ %s", g.Role, g.Group))
		}
	}
	if len(parts) == 0 {
		return "no roles"
	}
	return strings.Join(parts, ", ")
}
