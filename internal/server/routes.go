package server

import (
	_ "embed"
	"net/http"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// openAPISpec is the OpenAPI 3 description of the device and admin APIs;
// docs/openapi.json is a copy, and TestOpenAPIInSync keeps both in step
// with the route table below.
//
//go:embed openapi.json
var openAPISpec []byte

// route is one API endpoint.
type route struct {
	Method  string
	Path    string // net/http pattern path, e.g. /api/v1/devices/{id}
	Auth    string // "public", "device", "admin", "admin-global"
	handler handlerFunc
}

// Routes lists the API routes (method and path) the server serves, for
// documentation and tests.
func (s *Server) Routes() [][2]string {
	out := make([][2]string, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, [2]string{r.Method, r.Path})
	}
	return out
}

func (s *Server) routesHandler() http.Handler {
	s.routes = []route{
		{"POST", api.PathEnroll, "public", s.handleEnroll},
		{"POST", api.PathRenew, "device", s.handleRenew},
		{"POST", api.PathCheckin, "device", s.handleCheckin},
		{"GET", api.PathCommands, "device", s.handleCommandsWait},
		{"POST", api.PathUpdateStatus, "device", s.handleUpdateStatus},
		{"POST", api.PathAttestNonce, "device", s.handleAttestNonce},
		{"POST", api.PathAttest, "device", s.handleAttest},
		{"POST", api.PathHealthReport, "device", s.handleHealthReport},
		{"GET", "/api/v1/attestation/keys", "public", s.handleAttestationKeys},
		{"GET", "/api/v1/health/definition", "public", s.handleHealthDefinition},
		{"GET", "/api/v1/devices/{id}/attestations", "admin", s.handleListAttestations},
		{"POST", "/api/v1/devices/{id}/attest", "admin", s.handleRequestAttestation},
		{"POST", "/api/v1/devices/{id}/attestation/approve-baseline", "admin", s.handleApproveBaseline},
		{"PUT", "/api/v1/devices/{id}/trust", "admin", s.handleSetTrust},
		{"GET", "/api/v1/devices/{id}/health-reports", "admin", s.handleListHealthReports},
		{"GET", "/api/v1/ek-registrations", "admin-global", s.handleListEKRegistrations},
		{"POST", "/api/v1/ek-registrations", "admin-global", s.handleCreateEKRegistrations},
		{"POST", api.PathEvents, "device", s.afterEvents(s.handleEvents)},

		{"POST", "/api/v1/auth/login", "public", s.handleLogin},
		{"POST", "/api/v1/auth/logout", "admin", s.handleLogout},
		{"GET", "/api/v1/whoami", "admin", s.handleWhoami},
		{"GET", "/api/v1/fleet", "admin", s.handleFleet},
		{"GET", "/api/v1/devices", "admin", s.handleDevices},
		{"GET", "/api/v1/devices/{id}", "admin", s.handleDevice},
		{"POST", "/api/v1/devices/{id}/revoke", "admin", s.handleRevoke},
		{"GET", "/api/v1/devices/{id}/commands", "admin", s.handleListCommands},
		{"POST", "/api/v1/devices/{id}/commands", "admin", s.handleCreateCommand},
		{"GET", "/api/v1/enroll-tokens", "admin", s.handleListEnrollTokens},
		{"POST", "/api/v1/enroll-tokens", "admin", s.handleCreateEnrollToken},
		{"DELETE", "/api/v1/enroll-tokens/{id}", "admin", s.handleRevokeEnrollToken},
		{"GET", "/api/v1/groups", "admin", s.handleListGroups},
		{"POST", "/api/v1/groups", "admin", s.handleCreateGroup},
		{"GET", "/api/v1/users", "admin-global", s.handleListUsers},
		{"POST", "/api/v1/users", "admin-global", s.handleCreateUser},
		{"PUT", "/api/v1/users/{id}/grants", "admin-global", s.handleSetGrants},
		{"POST", "/api/v1/users/{id}/disable", "admin-global", s.handleSetDisabled(true)},
		{"POST", "/api/v1/users/{id}/enable", "admin-global", s.handleSetDisabled(false)},
		{"DELETE", "/api/v1/users/{id}/totp", "admin-global", s.handleResetTOTP},
		{"POST", "/api/v1/me/totp", "admin", s.handleStartTOTP},
		{"POST", "/api/v1/me/totp/confirm", "admin", s.handleConfirmTOTP},
		{"POST", "/api/v1/me/password", "admin", s.handleChangePassword},
		{"GET", "/api/v1/tokens", "admin-global", s.handleListAPITokens},
		{"POST", "/api/v1/tokens", "admin-global", s.handleCreateAPIToken},
		{"DELETE", "/api/v1/tokens/{id}", "admin-global", s.handleRevokeAPIToken},
		{"GET", "/api/v1/audit", "admin", s.handleAudit},
		{"GET", "/api/v1/events", "admin", s.handleListEvents},
		{"GET", "/api/v1/events/export", "admin", s.handleExportEvents},
		{"GET", "/api/v1/alerts", "admin", s.handleListAlerts},
		{"POST", "/api/v1/alerts/{id}/ack", "admin", s.handleAckAlert},
		{"GET", "/api/v1/releases", "admin", s.handleListReleases},
		{"POST", "/api/v1/releases", "admin-global", s.handlePublishRelease},
		{"POST", "/api/v1/releases/{product}/{version}/sbom", "admin-global", s.handleReleaseSBOM},
		{"GET", "/api/v1/releases/{product}/{version}/reference-values", "admin", s.handleGetReferenceValues},
		{"POST", "/api/v1/releases/{product}/{version}/reference-values", "admin-global", s.handlePutReferenceValues},
		{"GET", "/api/v1/version-floors", "admin", s.handleListFloors},
		{"POST", "/api/v1/version-floors", "admin-global", s.handleSetFloor},
		{"GET", "/api/v1/deployments", "admin", s.handleListDeployments},
		{"POST", "/api/v1/deployments", "admin", s.handleCreateDeployment},
		{"GET", "/api/v1/deployments/{id}", "admin", s.handleShowDeployment},
		{"POST", "/api/v1/deployments/{id}/pause", "admin", s.handleDeploymentAction("pause")},
		{"POST", "/api/v1/deployments/{id}/resume", "admin", s.handleDeploymentAction("resume")},
		{"POST", "/api/v1/deployments/{id}/abort", "admin", s.handleDeploymentAction("abort")},
		{"PUT", "/api/v1/groups/{name}/maintenance-windows", "admin", s.handleSetWindows},
		{"GET", api.PathIoC, "device", s.handleDeviceIoC},
		{"GET", "/api/v1/ioc/sources", "admin", s.handleListIoCSources},
		{"POST", "/api/v1/ioc/sources", "admin-global", s.handleImportIoC},
		{"DELETE", "/api/v1/ioc/sources/{name}", "admin-global", s.handleDeleteIoCSource},
		{"POST", "/api/v1/ioc/feeds", "admin-global", s.handleCreateIoCFeed},
		{"GET", "/api/v1/ioc/indicators", "admin", s.handleListIoCIndicators},
		{"GET", "/api/v1/openapi.json", "public", s.handleOpenAPI},
		{"GET", "/healthz", "public", s.handleHealthz},
	}
	disc := s.newDisclosureService()
	s.routes = append(s.routes, disc.routes()...)
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		h := rt.handler
		switch rt.Auth {
		case "device":
			h = s.requireDevice(h)
		case "admin":
			h = s.requireAdmin(h)
		case "admin-global":
			h = s.requireAdmin(s.requireGlobalAdmin(h))
		}
		mux.Handle(rt.Method+" "+rt.Path, s.serve(h))
	}
	// Anything else under the APIs is a JSON 404 (or 405), never HTML.
	for _, prefix := range []string{"/api/", "/device/"} {
		mux.Handle(prefix, s.serve(func(w http.ResponseWriter, r *http.Request) error {
			var allow []string
			for _, rt := range s.routes {
				if pathMatches(rt.Path, r.URL.Path) {
					allow = append(allow, rt.Method)
				}
			}
			if len(allow) > 0 {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				return errf(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+strings.Join(allow, ", ")+")")
			}
			return errf(http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
		}))
	}
	disc.mount(mux)
	// Release SBOMs are public, like the advisories they support.
	mux.Handle("GET /releases/{product}/{version}/sbom.cdx.json", s.serve(s.handlePublicSBOM))
	s.mountAdvisories(mux) // CSAF 2.0, OSV and HTML advisories, public
	// The update repository is public: clients verify its signatures.
	mux.Handle("/tuf/", s.tuf.Handler())
	if s.cfg.Console != nil {
		ui := s.cfg.Console(s)
		mux.Handle("/ui/", ui)
		mux.Handle("/{$}", http.RedirectHandler("/ui/", http.StatusSeeOther))
	}
	return securityHeaders(mux)
}

// serve turns a handlerFunc into an http.Handler, recovering from panics
// so that a bug answers 500 JSON rather than dropping the connection.
func (s *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", v)
				s.writeError(w, r, internal(nil))
			}
		}()
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Strict-Transport-Security", "max-age=63072000")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(r.URL.Path, "/ui/") {
			h.Set("X-Frame-Options", "DENY")
			h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPISpec)
	return nil
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.Ping(r.Context()); err != nil {
		return &httpError{Status: http.StatusServiceUnavailable, Code: "unavailable", Msg: "the store is unreachable", Err: err}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// pathMatches reports whether path fits a route pattern, where a {name}
// segment matches any one non-empty segment.
func pathMatches(pattern, path string) bool {
	ps, qs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(qs) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ps[i], "{") {
			if qs[i] == "" {
				return false
			}
		} else if ps[i] != qs[i] {
			return false
		}
	}
	return true
}
