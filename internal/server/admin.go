package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/auth"
	"github.com/bulwark-iot/bulwark/internal/store"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// DeviceView converts a stored device for the admin API.
func (s *Server) DeviceView(d *store.Device, detail bool) api.Device {
	out := api.Device{ID: d.ID, Status: d.Status, Group: d.Group, Hostname: d.Hostname, KeyAssurance: d.KeyAssurance,
		EnrolledAt: d.EnrolledAt, HealthStatus: d.HealthStatus, Trust: d.Trust}
	if d.Trust == api.TrustQuarantined || d.Trust == api.TrustUntrusted {
		// The server's own finding outranks what the device reports.
		out.HealthStatus = api.HealthUnhealthy
	}
	if out.KeyAssurance == "tpm" {
		out.KeyAssurance = api.AssuranceSoftware // self-reported before TPM enrolment existed: not proven
	}
	if !d.LastSeen.IsZero() {
		ls := d.LastSeen
		out.LastSeen = &ls
		out.Online = d.Status == api.DeviceActive && s.now().Sub(ls) < s.cfg.OnlineWindow
	}
	if !d.RevokedAt.IsZero() {
		ra := d.RevokedAt
		out.RevokedAt = &ra
	}
	if detail {
		if d.Inventory != "" {
			var inv api.Inventory
			if json.Unmarshal([]byte(d.Inventory), &inv) == nil {
				if !d.BootTime.IsZero() && !d.LastSeen.IsZero() {
					inv.UptimeSeconds = int64(d.LastSeen.Sub(d.BootTime) / time.Second)
				}
				out.Inventory = &inv
			}
		}
		if d.Health != "" {
			var h api.Health
			if json.Unmarshal([]byte(d.Health), &h) == nil {
				out.Health = &h
			}
		}
		out.Certificate = &api.CertInfo{Serial: d.CertSerial, NotBefore: d.CertNotBefore, NotAfter: d.CertNotAfter, PEM: d.CertPEM}
	}
	return out
}

// VisibleDevice returns a device if p may see it with role; a device out
// of scope is reported as not found so that its existence does not leak.
func (s *Server) VisibleDevice(r *http.Request, p *Principal, id, role string) (*store.Device, error) {
	d, err := s.store.GetDevice(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, internal(err)
	}
	if !p.Can(api.RoleAuditor, d.Group) {
		return nil, errNotFound
	}
	if !p.Can(role, d.Group) {
		return nil, errForbidden
	}
	return d, nil
}

func intParam(r *http.Request, name string, def, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > max {
		return 0, badRequest(fmt.Sprintf("%s must be a whole number from 0 to %d", name, max))
	}
	return n, nil
}

func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	out := api.Whoami{Principal: p.Name, Kind: p.Kind, Grants: []api.Grant{}}
	for _, g := range p.Grants {
		out.Grants = append(out.Grants, api.Grant{Role: g.Role, Group: g.Group})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// FleetSummary counts the devices p may see.
func (s *Server) FleetSummary(r *http.Request, p *Principal) (api.FleetSummary, error) {
	c, err := s.store.CountFleet(r.Context(), p.Scope(api.RoleAuditor), s.now().Add(-s.cfg.OnlineWindow))
	if err != nil {
		return api.FleetSummary{}, internal(err)
	}
	return api.FleetSummary{Total: c.Total, Active: c.Active, Revoked: c.Revoked, Online: c.Online,
		Offline: c.Active - c.Online, Never: c.Never, Degraded: c.Degraded}, nil
}

func (s *Server) handleFleet(w http.ResponseWriter, r *http.Request) error {
	sum, err := s.FleetSummary(r, PrincipalFrom(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sum)
	return nil
}

// ListDevices lists the devices p may see, filtered by the request's
// q, group, status, sort, limit and offset parameters.
func (s *Server) ListDevices(r *http.Request, p *Principal) (api.DeviceList, error) {
	q := r.URL.Query()
	limit, err := intParam(r, "limit", 100, 1000)
	if err != nil {
		return api.DeviceList{}, err
	}
	offset, err := intParam(r, "offset", 0, 1<<30)
	if err != nil {
		return api.DeviceList{}, err
	}
	status := q.Get("status")
	if status != "" && status != api.DeviceActive && status != api.DeviceRevoked {
		return api.DeviceList{}, badRequest("status must be active or revoked")
	}
	sort := q.Get("sort")
	if sort != "" && sort != "hostname" && sort != "last_seen" {
		return api.DeviceList{}, badRequest("sort must be hostname or last_seen")
	}
	if len(q.Get("q")) > 256 {
		return api.DeviceList{}, badRequest("q is longer than 256 characters")
	}
	devs, total, err := s.store.ListDevices(r.Context(), store.DeviceFilter{
		Query: q.Get("q"), Group: q.Get("group"), Status: status, Scope: p.Scope(api.RoleAuditor), Limit: limit, Offset: offset,
		RecentFirst: sort == "last_seen",
	})
	if err != nil {
		return api.DeviceList{}, internal(err)
	}
	out := api.DeviceList{Devices: []api.Device{}, Total: total}
	for _, d := range devs {
		out.Devices = append(out.Devices, s.DeviceView(d, false))
	}
	return out, nil
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) error {
	list, err := s.ListDevices(r, PrincipalFrom(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.VisibleDevice(r, PrincipalFrom(r.Context()), r.PathValue("id"), api.RoleAuditor)
	if err != nil {
		return err
	}
	out := s.DeviceView(d, true)
	if out.Attestation, err = s.latestAttestation(r, d.ID); err != nil {
		return internal(err)
	}
	if out.HealthReport, err = s.latestHealthReport(r, d.ID); err != nil {
		return internal(err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// RevokeDevice revokes a device for p, auditing the action.
func (s *Server) RevokeDevice(r *http.Request, p *Principal, id string) error {
	d, err := s.VisibleDevice(r, p, id, api.RoleOperator)
	if err != nil {
		return err
	}
	if d.Status == api.DeviceRevoked {
		return nil // already revoked: nothing to do, nothing to audit
	}
	if err := s.store.RevokeDevice(r.Context(), d.ID, s.now()); err != nil {
		return internal(err)
	}
	s.hub.notify(d.ID)
	s.alertRevoked(r.Context(), d.ID, p.Actor(), "revoked by an administrator")
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "device.revoke", target: "device:" + d.ID, remote: ClientIP(r),
		detail: "hostname=" + d.Hostname, outcome: "ok"})
	return nil
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	if err := s.RevokeDevice(r, PrincipalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	return s.handleDevice(w, r)
}

var commandKinds = map[string]bool{"ping": true, "checkin": true}

func (s *Server) handleCreateCommand(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	var req api.CommandCreate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if !commandKinds[req.Kind] {
		return badRequest("kind must be one of: ping, checkin")
	}
	if len(req.Payload) > 16<<10 {
		return badRequest("payload is longer than 16 KiB")
	}
	d, err := s.VisibleDevice(r, p, r.PathValue("id"), api.RoleOperator)
	if err != nil {
		return err
	}
	c := &store.Command{ID: newID("cmd"), DeviceID: d.ID, Kind: req.Kind, Payload: req.Payload, CreatedAt: s.now(), CreatedBy: p.Actor()}
	if err := s.store.CreateCommand(r.Context(), c); errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusConflict, "device_revoked", "commands cannot be queued for a revoked device")
	} else if err != nil {
		return internal(err)
	}
	s.hub.notify(d.ID)
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "command.create", target: "device:" + d.ID, remote: ClientIP(r),
		detail: "kind=" + c.Kind + " id=" + c.ID, outcome: "ok"})
	writeJSON(w, http.StatusCreated, commandView(c))
	return nil
}

func commandView(c *store.Command) api.CommandStatus {
	out := api.CommandStatus{Command: api.Command{ID: c.ID, Kind: c.Kind, Payload: c.Payload, CreatedAt: c.CreatedAt},
		DeviceID: c.DeviceID, Status: c.Status, Detail: c.Detail, CreatedBy: c.CreatedBy}
	if !c.DeliveredAt.IsZero() {
		t := c.DeliveredAt
		out.DeliveredAt = &t
	}
	if !c.AckedAt.IsZero() {
		t := c.AckedAt
		out.AckedAt = &t
	}
	return out
}

// DeviceCommands lists a device's recent commands.
func (s *Server) DeviceCommands(r *http.Request, deviceID string) ([]api.CommandStatus, error) {
	cmds, err := s.store.DeviceCommands(r.Context(), deviceID, 50)
	if err != nil {
		return nil, internal(err)
	}
	out := []api.CommandStatus{}
	for _, c := range cmds {
		out = append(out, commandView(c))
	}
	return out, nil
}

func (s *Server) handleListCommands(w http.ResponseWriter, r *http.Request) error {
	d, err := s.VisibleDevice(r, PrincipalFrom(r.Context()), r.PathValue("id"), api.RoleAuditor)
	if err != nil {
		return err
	}
	out, err := s.DeviceCommands(r, d.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// CreateEnrollToken creates an enrolment token for p.
func (s *Server) CreateEnrollToken(r *http.Request, p *Principal, req api.EnrollTokenCreate) (api.EnrollToken, error) {
	if req.Uses < 1 || req.Uses > 1000000 {
		return api.EnrollToken{}, badRequest("uses must be from 1 to 1000000")
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil || ttl <= 0 || ttl > 365*24*time.Hour {
		return api.EnrollToken{}, badRequest("ttl must be a duration such as 24h, greater than zero and at most 8760h")
	}
	if len(req.Name) > 128 {
		return api.EnrollToken{}, badRequest("name is longer than 128 characters")
	}
	if !p.Can(api.RoleOperator, req.Group) || (req.Group == "" && !p.Global(api.RoleOperator)) {
		return api.EnrollToken{}, errForbidden
	}
	if req.Group != "" {
		ok, err := s.store.GroupExists(r.Context(), req.Group)
		if err != nil {
			return api.EnrollToken{}, internal(err)
		}
		if !ok {
			return api.EnrollToken{}, badRequest(fmt.Sprintf("group %q does not exist", req.Group))
		}
	}
	tok, err := auth.NewSecretToken(auth.PrefixEnrolmentToken)
	if err != nil {
		return api.EnrollToken{}, internal(err)
	}
	now := s.now()
	st := &store.EnrollToken{ID: tok.ID, Name: req.Name, SecretHash: tok.Hash, Group: req.Group, MaxUses: req.Uses,
		ExpiresAt: now.Add(ttl), CreatedAt: now, CreatedBy: p.Actor()}
	if err := s.store.CreateEnrollToken(r.Context(), st); err != nil {
		return api.EnrollToken{}, internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "enroll_token.create", target: "enroll_token:" + st.ID, remote: ClientIP(r),
		detail: fmt.Sprintf("uses=%d ttl=%s group=%s", req.Uses, ttl, req.Group), outcome: "ok"})
	out := enrollTokenView(st)
	out.Token = tok.Plain
	return out, nil
}

func enrollTokenView(t *store.EnrollToken) api.EnrollToken {
	return api.EnrollToken{ID: t.ID, Name: t.Name, Group: t.Group, MaxUses: t.MaxUses, Used: t.Used, ExpiresAt: t.ExpiresAt,
		CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, Revoked: t.Revoked}
}

func (s *Server) handleCreateEnrollToken(w http.ResponseWriter, r *http.Request) error {
	var req api.EnrollTokenCreate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	out, err := s.CreateEnrollToken(r, PrincipalFrom(r.Context()), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) handleListEnrollTokens(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	toks, err := s.store.ListEnrollTokens(r.Context())
	if err != nil {
		return internal(err)
	}
	out := []api.EnrollToken{}
	for _, t := range toks {
		if p.Can(api.RoleAuditor, t.Group) && (t.Group != "" || p.Global(api.RoleAuditor)) {
			out = append(out, enrollTokenView(t))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleRevokeEnrollToken(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	t, err := s.store.GetEnrollToken(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return internal(err)
	}
	if !p.Can(api.RoleOperator, t.Group) || (t.Group == "" && !p.Global(api.RoleOperator)) {
		return errForbidden
	}
	if err := s.store.RevokeEnrollToken(r.Context(), t.ID); err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "enroll_token.revoke", target: "enroll_token:" + t.ID, remote: ClientIP(r), outcome: "ok"})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleListGroups(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	gs, err := s.store.ListGroups(r.Context())
	if err != nil {
		return internal(err)
	}
	out := []api.Group{}
	for _, g := range gs {
		if p.Can(api.RoleAuditor, g.Name) {
			out = append(out, api.Group{Name: g.Name, Description: g.Description, CreatedAt: g.CreatedAt, Devices: g.Devices})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleCreateGroup(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if !p.Global(api.RoleAdmin) {
		return errForbidden
	}
	var req api.Group
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return badRequest("group name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if len(req.Description) > 512 {
		return badRequest("description is longer than 512 characters")
	}
	g := &store.Group{Name: req.Name, Description: req.Description, CreatedAt: s.now()}
	if err := s.store.CreateGroup(r.Context(), g); errors.Is(err, store.ErrConflict) {
		return errf(http.StatusConflict, "conflict", fmt.Sprintf("group %q already exists", req.Name))
	} else if err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "group.create", target: "group:" + g.Name, remote: ClientIP(r), outcome: "ok"})
	writeJSON(w, http.StatusCreated, api.Group{Name: g.Name, Description: g.Description, CreatedAt: g.CreatedAt})
	return nil
}

func (s *Server) checkGrants(r *http.Request, grants []api.Grant) ([]store.Grant, error) {
	if len(grants) == 0 {
		return nil, badRequest("at least one grant is required")
	}
	if len(grants) > 64 {
		return nil, badRequest("at most 64 grants")
	}
	var out []store.Grant
	for _, g := range grants {
		if !ValidRole(g.Role) {
			return nil, badRequest(fmt.Sprintf("role %q is not one of admin, operator, auditor", g.Role))
		}
		if g.Group != "" {
			ok, err := s.store.GroupExists(r.Context(), g.Group)
			if err != nil {
				return nil, internal(err)
			}
			if !ok {
				return nil, badRequest(fmt.Sprintf("group %q does not exist", g.Group))
			}
		}
		out = append(out, store.Grant{Role: g.Role, Group: g.Group})
	}
	return out, nil
}

// UserView converts a stored user; a lockout is shown while it lasts.
func UserView(u *store.User) api.User {
	out := api.User{ID: u.ID, Username: u.Username, TOTP: u.TOTPSecret != "", Disabled: u.Disabled, CreatedAt: u.CreatedAt, Grants: []api.Grant{}}
	for _, g := range u.Grants {
		out.Grants = append(out.Grants, api.Grant{Role: g.Role, Group: g.Group})
	}
	if !u.LockedUntil.IsZero() && time.Now().Before(u.LockedUntil) {
		t := u.LockedUntil
		out.LockedUntil = &t
	}
	if !u.LastLogin.IsZero() {
		t := u.LastLogin
		out.LastLogin = &t
	}
	return out
}

func (s *Server) requireGlobalAdmin(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !PrincipalFrom(r.Context()).Global(api.RoleAdmin) {
			return errForbidden
		}
		return next(w, r)
	}
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := s.store.ListUsers(r.Context())
	if err != nil {
		return internal(err)
	}
	out := []api.User{}
	for _, u := range us {
		out = append(out, UserView(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// CreateUser creates an admin user; a missing password is generated and
// returned once.
func (s *Server) CreateUser(r *http.Request, p *Principal, req api.UserCreate) (api.UserCreated, error) {
	if !nameRE.MatchString(req.Username) {
		return api.UserCreated{}, badRequest("username must be 1-64 letters, digits, '.', '_' or '-'")
	}
	grants, err := s.checkGrants(r, req.Grants)
	if err != nil {
		return api.UserCreated{}, err
	}
	pw, generated := req.Password, false
	if pw == "" {
		if pw, err = auth.GeneratePassword(); err != nil {
			return api.UserCreated{}, internal(err)
		}
		generated = true
	}
	if err := auth.CheckPasswordPolicy(pw); err != nil {
		return api.UserCreated{}, badRequest(err.Error())
	}
	hash, err := s.hasher.Hash(r.Context(), pw)
	if err != nil {
		return api.UserCreated{}, internal(err)
	}
	u := &store.User{ID: newID("usr"), Username: req.Username, PasswordHash: hash, CreatedAt: s.now(), Grants: grants}
	if err := s.store.CreateUser(r.Context(), u); errors.Is(err, store.ErrConflict) {
		return api.UserCreated{}, errf(http.StatusConflict, "conflict", fmt.Sprintf("user %q already exists", req.Username))
	} else if err != nil {
		return api.UserCreated{}, internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "user.create", target: "user:" + u.Username, remote: ClientIP(r),
		detail: grantsString(grants), outcome: "ok"})
	out := api.UserCreated{User: UserView(u)}
	if generated {
		out.Password = pw
	}
	return out, nil
}

func grantsString(gs []store.Grant) string {
	s := ""
	for i, g := range gs {
		if i > 0 {
			s += ","
		}
		s += g.Role
		if g.Group != "" {
			s += "@" + g.Group
		}
	}
	return "grants=" + s
}

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) error {
	var req api.UserCreate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	out, err := s.CreateUser(r, PrincipalFrom(r.Context()), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) userByID(r *http.Request) (*store.User, error) {
	u, err := s.store.GetUser(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, internal(err)
	}
	return u, nil
}

func (s *Server) handleSetGrants(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	var req []api.Grant
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	u, err := s.userByID(r)
	if err != nil {
		return err
	}
	grants, err := s.checkGrants(r, req)
	if err != nil {
		return err
	}
	if err := s.store.SetGrants(r.Context(), u.ID, grants); err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "user.grants", target: "user:" + u.Username, remote: ClientIP(r), detail: grantsString(grants), outcome: "ok"})
	u.Grants = grants
	writeJSON(w, http.StatusOK, UserView(u))
	return nil
}

func (s *Server) handleSetDisabled(disabled bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := PrincipalFrom(r.Context())
		u, err := s.userByID(r)
		if err != nil {
			return err
		}
		if disabled && u.ID == p.ID {
			return badRequest("you cannot disable your own account")
		}
		if err := s.store.SetUserDisabled(r.Context(), u.ID, disabled); err != nil {
			return internal(err)
		}
		action := "user.enable"
		if disabled {
			action = "user.disable"
		}
		s.audit(r.Context(), auditRecord{actor: p.Actor(), action: action, target: "user:" + u.Username, remote: ClientIP(r), outcome: "ok"})
		u.Disabled = disabled
		writeJSON(w, http.StatusOK, UserView(u))
		return nil
	}
}

func (s *Server) handleResetTOTP(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	u, err := s.userByID(r)
	if err != nil {
		return err
	}
	if err := s.store.DisableTOTP(r.Context(), u.ID); err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "user.totp_reset", target: "user:" + u.Username, remote: ClientIP(r), outcome: "ok"})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// StartTOTP begins TOTP set-up for the logged-in user.
func (s *Server) StartTOTP(r *http.Request, p *Principal) (api.TOTPEnrollment, error) {
	if p.Kind != "user" {
		return api.TOTPEnrollment{}, badRequest("TOTP belongs to a user: log in as the user to set it up")
	}
	secret, url, err := auth.NewTOTP("Bulwark", p.Name)
	if err != nil {
		return api.TOTPEnrollment{}, internal(err)
	}
	sealed, err := s.sealTOTP(p.ID, secret)
	if err != nil {
		return api.TOTPEnrollment{}, internal(err)
	}
	if err := s.store.SetTOTPPending(r.Context(), p.ID, sealed); err != nil {
		return api.TOTPEnrollment{}, internal(err)
	}
	return api.TOTPEnrollment{Secret: secret, URL: url}, nil
}

// ChangePassword changes p's own password after checking the current one,
// and ends p's other sessions.
func (s *Server) ChangePassword(r *http.Request, p *Principal, current, next string) error {
	if p.Kind != "user" {
		return badRequest("a password belongs to a user: log in as the user to change it")
	}
	u, err := s.store.GetUser(r.Context(), p.ID)
	if err != nil {
		return internal(err)
	}
	ok, err := s.hasher.Verify(r.Context(), u.PasswordHash, current)
	if err != nil {
		return internal(err)
	}
	if !ok {
		s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "user.password_change", target: "user:" + u.Username, remote: ClientIP(r), outcome: "refused: wrong current password"})
		return badRequest("the current password is wrong")
	}
	if err := auth.CheckPasswordPolicy(next); err != nil {
		return badRequest(err.Error())
	}
	if next == current {
		return badRequest("the new password must differ from the current one")
	}
	hash, err := s.hasher.Hash(r.Context(), next)
	if err != nil {
		return internal(err)
	}
	if err := s.store.SetPassword(r.Context(), u.ID, hash); err != nil {
		return internal(err)
	}
	if err := s.store.DeleteUserSessions(r.Context(), u.ID, p.SessionID); err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "user.password_change", target: "user:" + u.Username, remote: ClientIP(r), outcome: "ok"})
	return nil
}

func (s *Server) handleChangePassword(w http.ResponseWriter, r *http.Request) error {
	var req api.PasswordChange
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if err := s.ChangePassword(r, PrincipalFrom(r.Context()), req.Current, req.New); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PendingTOTP returns the TOTP set-up in progress for p (to show it again
// after a mistyped confirmation code); ok is false when there is none.
func (s *Server) PendingTOTP(r *http.Request, p *Principal) (enr api.TOTPEnrollment, ok bool, err error) {
	u, err := s.store.GetUser(r.Context(), p.ID)
	if err != nil {
		return enr, false, internal(err)
	}
	if u.TOTPPending == "" {
		return enr, false, nil
	}
	secret, err := s.openTOTP(u.ID, u.TOTPPending)
	if err != nil {
		return enr, false, internal(err)
	}
	return api.TOTPEnrollment{Secret: secret, URL: auth.TOTPURL("Bulwark", u.Username, secret)}, true, nil
}

// ConfirmTOTP activates the pending TOTP secret once a valid code is shown.
func (s *Server) ConfirmTOTP(r *http.Request, p *Principal, code string) error {
	if p.Kind != "user" {
		return badRequest("TOTP belongs to a user: log in as the user to set it up")
	}
	u, err := s.store.GetUser(r.Context(), p.ID)
	if err != nil {
		return internal(err)
	}
	if u.TOTPPending == "" {
		return badRequest("no TOTP set-up is in progress: start one first")
	}
	pending, err := s.openTOTP(u.ID, u.TOTPPending)
	if err != nil {
		return internal(err)
	}
	step, err := auth.ValidateTOTP(pending, code, s.now(), 0)
	if err != nil {
		return badRequest("the code does not match: check the authenticator app's clock and try the current code")
	}
	if err := s.store.ActivateTOTP(r.Context(), u.ID, step); err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "user.totp_enable", target: "user:" + u.Username, remote: ClientIP(r), outcome: "ok"})
	return nil
}

func (s *Server) handleStartTOTP(w http.ResponseWriter, r *http.Request) error {
	out, err := s.StartTOTP(r, PrincipalFrom(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleConfirmTOTP(w http.ResponseWriter, r *http.Request) error {
	var req api.TOTPConfirm
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if err := s.ConfirmTOTP(r, PrincipalFrom(r.Context()), req.Code); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createAPIToken creates an API token on behalf of actor.
func createAPIToken(ctx context.Context, st *store.Store, actor string, req api.APITokenCreate, now time.Time) (api.APIToken, *store.APIToken, error) {
	if !nameRE.MatchString(req.Name) {
		return api.APIToken{}, nil, badRequest("token name must be 1-64 letters, digits, '.', '_' or '-'")
	}
	if !ValidRole(req.Role) {
		return api.APIToken{}, nil, badRequest(fmt.Sprintf("role %q is not one of admin, operator, auditor", req.Role))
	}
	ttl := 90 * 24 * time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > 5*365*24*time.Hour {
			return api.APIToken{}, nil, badRequest("ttl must be a duration such as 720h, greater than zero and at most 43800h")
		}
		ttl = d
	}
	if req.Group != "" {
		ok, err := st.GroupExists(ctx, req.Group)
		if err != nil {
			return api.APIToken{}, nil, internal(err)
		}
		if !ok {
			return api.APIToken{}, nil, badRequest(fmt.Sprintf("group %q does not exist", req.Group))
		}
	}
	tok, err := auth.NewSecretToken(auth.PrefixAPIToken)
	if err != nil {
		return api.APIToken{}, nil, internal(err)
	}
	t := &store.APIToken{ID: tok.ID, Name: req.Name, SecretHash: tok.Hash, Role: req.Role, Group: req.Group,
		CreatedAt: now, CreatedBy: actor, ExpiresAt: now.Add(ttl)}
	if err := st.CreateAPIToken(ctx, t); err != nil {
		return api.APIToken{}, nil, internal(err)
	}
	out := apiTokenView(t)
	out.Token = tok.Plain
	return out, t, nil
}

func apiTokenView(t *store.APIToken) api.APIToken {
	out := api.APIToken{ID: t.ID, Name: t.Name, Role: t.Role, Group: t.Group, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, Revoked: t.Revoked}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt
		out.ExpiresAt = &e
	}
	if !t.LastUsed.IsZero() {
		l := t.LastUsed
		out.LastUsed = &l
	}
	return out
}

// CreateAPIToken creates an API token for p, auditing it.
func (s *Server) CreateAPIToken(r *http.Request, p *Principal, req api.APITokenCreate) (api.APIToken, error) {
	out, t, err := createAPIToken(r.Context(), s.store, p.Actor(), req, s.now())
	if err != nil {
		return out, err
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "api_token.create", target: "api_token:" + t.ID, remote: ClientIP(r),
		detail: fmt.Sprintf("name=%s role=%s group=%s", t.Name, t.Role, t.Group), outcome: "ok"})
	return out, nil
}

func (s *Server) handleCreateAPIToken(w http.ResponseWriter, r *http.Request) error {
	var req api.APITokenCreate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	out, err := s.CreateAPIToken(r, PrincipalFrom(r.Context()), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// ListAPITokens lists API tokens (never their secrets).
func (s *Server) ListAPITokens(r *http.Request) ([]api.APIToken, error) {
	ts, err := s.store.ListAPITokens(r.Context())
	if err != nil {
		return nil, internal(err)
	}
	out := []api.APIToken{}
	for _, t := range ts {
		out = append(out, apiTokenView(t))
	}
	return out, nil
}

func (s *Server) handleListAPITokens(w http.ResponseWriter, r *http.Request) error {
	out, err := s.ListAPITokens(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// RevokeAPIToken revokes an API token for p.
func (s *Server) RevokeAPIToken(r *http.Request, p *Principal, id string) error {
	if err := s.store.RevokeAPIToken(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		return errNotFound
	} else if err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "api_token.revoke", target: "api_token:" + id, remote: ClientIP(r), outcome: "ok"})
	return nil
}

func (s *Server) handleRevokeAPIToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.RevokeAPIToken(r, PrincipalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// AuditPage returns audit entries after a sequence number.
func (s *Server) AuditPage(r *http.Request, after int64, limit int) (api.AuditPage, error) {
	entries, err := s.store.ListAudit(r.Context(), after, limit, "")
	if err != nil {
		return api.AuditPage{}, internal(err)
	}
	page := api.AuditPage{Entries: entries}
	if page.Entries == nil {
		page.Entries = []api.AuditEntry{}
	}
	if len(entries) == limit {
		page.Next = entries[len(entries)-1].Seq
	}
	return page, nil
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if !p.Global(api.RoleAuditor) {
		return errForbidden
	}
	after, err := strconv.ParseInt(r.URL.Query().Get("after")+"0", 10, 64)
	if err != nil || after < 0 {
		return badRequest("after must be a sequence number")
	}
	after /= 10
	limit, err := intParam(r, "limit", 500, 5000)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = 500
	}
	page, err := s.AuditPage(r, after, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"`
}

type loginResponse struct {
	api.Whoami
	CSRF string `json:"csrf_token"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decode(r, 4<<10, &req); err != nil {
		return err
	}
	cookie, p, err := s.Login(r.Context(), req.Username, req.Password, req.TOTP, ClientIP(r))
	var le *LoginError
	if errors.As(err, &le) {
		code := "invalid_credentials"
		if le.NeedsTOTP {
			code = "totp_required"
		} else if le.Status == http.StatusTooManyRequests {
			code = "locked"
		}
		return errf(le.Status, code, le.Msg)
	}
	if err != nil {
		return internal(err)
	}
	SetSessionCookie(w, cookie)
	out := loginResponse{Whoami: api.Whoami{Principal: p.Name, Kind: p.Kind, Grants: []api.Grant{}}, CSRF: p.CSRF}
	for _, g := range p.Grants {
		out.Grants = append(out.Grants, api.Grant{Role: g.Role, Group: g.Group})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) error {
	if err := s.Logout(r.Context(), PrincipalFrom(r.Context()), ClientIP(r)); err != nil {
		return internal(err)
	}
	ClearSessionCookie(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// CreateAPITokenLocal creates an API token directly in the store of a
// data directory: the break-glass and automation path for someone with
// file access to the server host. It is audited with actor (for example
// "local:root"). Errors are one-line messages for the CLI.
func CreateAPITokenLocal(ctx context.Context, st *store.Store, actor string, req api.APITokenCreate) (api.APIToken, error) {
	now := time.Now()
	out, t, err := createAPIToken(ctx, st, actor, req, now)
	var he *httpError
	if errors.As(err, &he) {
		if he.Err != nil {
			return out, fmt.Errorf("%s: %w", he.Msg, he.Err)
		}
		return out, errors.New(he.Msg)
	}
	if err != nil {
		return out, err
	}
	err = st.AppendAudit(ctx, &api.AuditEntry{Time: now, Actor: actor, Action: "api_token.create", Target: "api_token:" + t.ID,
		Detail: fmt.Sprintf("name=%s role=%s group=%s via local data directory", t.Name, t.Role, t.Group), Outcome: "ok"})
	if err != nil {
		st.RevokeAPIToken(ctx, t.ID)
		return api.APIToken{}, fmt.Errorf("recording the audit entry failed, token revoked: %w", err)
	}
	return out, nil
}
