package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/auth"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// SessionCookie is the console session cookie. The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain.
const SessionCookie = "__Host-bulwark_session"

// SessionLifetime bounds a console session.
const SessionLifetime = 12 * time.Hour

var roleRank = map[string]int{api.RoleAuditor: 1, api.RoleOperator: 2, api.RoleAdmin: 3}

// ValidRole reports whether r names a role.
func ValidRole(r string) bool { return roleRank[r] > 0 }

// Principal is an authenticated admin: a user (console session or login)
// or an API token.
type Principal struct {
	Kind      string // "user" or "token"
	ID        string
	Name      string
	Grants    []store.Grant
	SessionID string // set for console sessions
	CSRF      string // the session's CSRF token
}

// Actor is how the principal appears in the audit log.
func (p *Principal) Actor() string { return p.Kind + ":" + p.Name }

// Can reports whether p holds at least role over devices in group.
func (p *Principal) Can(role, group string) bool {
	for _, g := range p.Grants {
		if roleRank[g.Role] >= roleRank[role] && (g.Group == "" || g.Group == group) {
			return true
		}
	}
	return false
}

// Global reports whether p holds at least role over all devices.
func (p *Principal) Global(role string) bool { return p.Can(role, "\x00") }

// Scope returns nil when p holds role over every group, else the groups
// where it does (possibly none).
func (p *Principal) Scope(role string) []string {
	if p.Global(role) {
		return nil
	}
	out := []string{}
	for _, g := range p.Grants {
		if roleRank[g.Role] >= roleRank[role] && g.Group != "" {
			out = append(out, g.Group)
		}
	}
	return out
}

type principalKey struct{}

// PrincipalFrom returns the request's authenticated principal, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// WithPrincipal attaches p to ctx.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Authenticate finds the principal of a request: a bearer API token, or a
// console session cookie. It returns (nil, nil) when the request carries
// neither, and an error for credentials that are present but bad.
func (s *Server) Authenticate(r *http.Request) (*Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, errf(http.StatusUnauthorized, "unauthorized", "the Authorization header must be \"Bearer <API token>\"")
		}
		return s.authToken(r, strings.TrimSpace(tok))
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, nil
	}
	return s.authSession(r.Context(), c.Value)
}

func (s *Server) authToken(r *http.Request, plain string) (*Principal, error) {
	bad := errf(http.StatusUnauthorized, "invalid_token", "the API token is not valid, expired or revoked")
	id, hash, err := auth.ParseSecretToken(auth.PrefixAPIToken, plain)
	if err != nil {
		return nil, bad
	}
	t, err := s.store.GetAPIToken(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, internal(err)
	}
	now := s.now()
	if !auth.HashesEqual(t.SecretHash, hash) || t.Revoked || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
		return nil, bad
	}
	if used, err := s.store.TouchAPIToken(r.Context(), t.ID, now); err == nil && used {
		s.audit(r.Context(), auditRecord{actor: "token:" + t.Name, action: "api_token.use", target: "api_token:" + t.ID, remote: ClientIP(r), outcome: "ok"})
	}
	return &Principal{Kind: "token", ID: t.ID, Name: t.Name, Grants: []store.Grant{{Role: t.Role, Group: t.Group}}}, nil
}

func (s *Server) authSession(ctx context.Context, plain string) (*Principal, error) {
	expired := errf(http.StatusUnauthorized, "session_expired", "your session has ended: log in again")
	id, hash, err := auth.ParseSecretToken(auth.PrefixSession, plain)
	if err != nil {
		return nil, expired
	}
	se, err := s.store.GetSession(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, expired
	}
	if err != nil {
		return nil, internal(err)
	}
	if !auth.HashesEqual(se.SecretHash, hash) || !s.now().Before(se.ExpiresAt) {
		return nil, expired
	}
	u, err := s.store.GetUser(ctx, se.UserID)
	if err != nil || u.Disabled {
		return nil, expired
	}
	return &Principal{Kind: "user", ID: u.ID, Name: u.Username, Grants: u.Grants, SessionID: se.ID, CSRF: se.CSRF}, nil
}

// LoginError is a failed login; Msg is safe to show.
type LoginError struct {
	Msg       string
	NeedsTOTP bool
	Status    int
}

func (e *LoginError) Error() string { return e.Msg }

// Login checks a username, password and (when enabled) TOTP code, applying
// per-address throttling and per-account lockout, and on success creates a
// console session. It returns the session cookie value and the principal.
// Every attempt is audited.
func (s *Server) Login(ctx context.Context, username, password, totpCode, remote string) (string, *Principal, error) {
	now := s.now()
	rec := auditRecord{actor: "user:" + username, action: "auth.login", target: "user:" + username, remote: remote}
	if len(username) > 128 {
		username = username[:128]
		rec.actor, rec.target = "user:"+username, "user:"+username
	}
	if !s.loginLimiter.Allow(remote, now) {
		rec.outcome = "refused: rate limited"
		s.audit(ctx, rec)
		return "", nil, &LoginError{Msg: "too many login attempts from your address; wait a minute and try again", Status: http.StatusTooManyRequests}
	}
	invalid := &LoginError{Msg: "invalid username, password or code", Status: http.StatusUnauthorized}
	u, err := s.store.GetUserByName(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		s.hasher.DummyVerify(ctx)
		rec.outcome = "refused: unknown user"
		s.audit(ctx, rec)
		return "", nil, invalid
	}
	if err != nil {
		return "", nil, err
	}
	if u.Disabled {
		s.hasher.DummyVerify(ctx)
		rec.outcome = "refused: user disabled"
		s.audit(ctx, rec)
		return "", nil, invalid
	}
	if now.Before(u.LockedUntil) {
		rec.outcome = "refused: account locked"
		s.audit(ctx, rec)
		return "", nil, &LoginError{Msg: "this account is locked after repeated failed logins; try again after " + u.LockedUntil.UTC().Format(time.RFC3339), Status: http.StatusTooManyRequests}
	}
	ok, err := s.hasher.Verify(ctx, u.PasswordHash, password)
	if err != nil {
		return "", nil, err
	}
	failed := func(why string) (string, *Principal, error) {
		n, err := s.store.RecordLoginFailure(ctx, u.ID, func(n int) time.Time { return auth.LockoutUntil(n, now) })
		if err != nil {
			return "", nil, err
		}
		rec.outcome = "refused: " + why
		if !auth.LockoutUntil(n, now).IsZero() {
			rec.outcome += "; account locked"
		}
		s.audit(ctx, rec)
		return "", nil, invalid
	}
	if !ok {
		return failed("bad password")
	}
	if u.TOTPSecret != "" {
		if totpCode == "" {
			rec.outcome = "refused: TOTP code required"
			s.audit(ctx, rec)
			return "", nil, &LoginError{Msg: "a TOTP code is required for this account", NeedsTOTP: true, Status: http.StatusUnauthorized}
		}
		secret, err := s.openTOTP(u.ID, u.TOTPSecret)
		if err != nil {
			return "", nil, err
		}
		step, err := auth.ValidateTOTP(secret, totpCode, now, u.TOTPLastStep)
		if err != nil {
			return failed("bad TOTP code")
		}
		if err := s.store.UseTOTPStep(ctx, u.ID, step); err != nil {
			return failed("replayed TOTP code")
		}
	}
	if err := s.store.RecordLoginSuccess(ctx, u.ID, now); err != nil {
		return "", nil, err
	}
	tok, err := auth.NewSecretToken(auth.PrefixSession)
	if err != nil {
		return "", nil, err
	}
	csrf, err := auth.NewCSRFToken()
	if err != nil {
		return "", nil, err
	}
	se := &store.Session{ID: tok.ID, SecretHash: tok.Hash, UserID: u.ID, CSRF: csrf, CreatedAt: now, ExpiresAt: now.Add(SessionLifetime), Remote: remote}
	if err := s.store.CreateSession(ctx, se); err != nil {
		return "", nil, err
	}
	rec.outcome = "ok"
	s.audit(ctx, rec)
	return tok.Plain, &Principal{Kind: "user", ID: u.ID, Name: u.Username, Grants: u.Grants, SessionID: se.ID, CSRF: csrf}, nil
}

// Logout ends a session.
func (s *Server) Logout(ctx context.Context, p *Principal, remote string) error {
	if p == nil || p.SessionID == "" {
		return nil
	}
	if err := s.store.DeleteSession(ctx, p.SessionID); err != nil {
		return err
	}
	s.audit(ctx, auditRecord{actor: p.Actor(), action: "auth.logout", target: "user:" + p.Name, remote: remote, outcome: "ok"})
	return nil
}

// SetSessionCookie writes the session cookie.
func SetSessionCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: value, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionLifetime / time.Second)})
}

// ClearSessionCookie removes the session cookie.
func ClearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// requireAdmin authenticates admin API requests; for session-cookie
// requests that change state it also demands the CSRF token in the
// X-CSRF-Token header.
func (s *Server) requireAdmin(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.Authenticate(r)
		if err != nil {
			return err
		}
		if p == nil {
			return errUnauthorized
		}
		if p.SessionID != "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !auth.CSRFValid(p.CSRF, r.Header.Get("X-CSRF-Token")) {
				return errf(http.StatusForbidden, "csrf", "missing or wrong X-CSRF-Token header for a session request")
			}
		}
		return next(w, r.WithContext(WithPrincipal(r.Context(), p)))
	}
}

func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// NewID returns a random identifier with the given prefix.
func NewID(prefix string) string { return newID(prefix) }

// TOTP seeds are stored sealed with the key-encryption key, bound to
// their user, so a copy of the database alone does not yield them.
func (s *Server) sealTOTP(userID, secret string) (string, error) {
	b, err := s.kek.Seal([]byte(secret), []byte("bulwark-totp:"+userID))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func (s *Server) openTOTP(userID, sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("TOTP seed of user %s is not sealed: %w", userID, err)
	}
	plain, err := s.kek.Open(b, []byte("bulwark-totp:"+userID))
	if err != nil {
		return "", fmt.Errorf("opening the TOTP seed of user %s: %w", userID, err)
	}
	return string(plain), nil
}
