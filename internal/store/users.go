package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Grant is a role over all devices (Group "") or one device group.
type Grant struct {
	Role  string
	Group string
}

// User is an admin user.
type User struct {
	ID           string
	Username     string
	PasswordHash string
	TOTPSecret   string // active secret; empty when TOTP is off
	TOTPPending  string // secret awaiting confirmation
	TOTPLastStep int64
	FailedLogins int
	LockedUntil  time.Time
	Disabled     bool
	CreatedAt    time.Time
	LastLogin    time.Time
	Grants       []Grant
}

// CreateUser inserts a user with grants. ErrConflict if the name is taken.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	return s.inTx(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)`,
			u.ID, u.Username, u.PasswordHash, ts(u.CreatedAt))
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		return tx.setGrants(ctx, u.ID, u.Grants)
	})
}

func (tx *Tx) setGrants(ctx context.Context, userID string, grants []Grant) error {
	if _, err := tx.exec(ctx, `DELETE FROM user_grants WHERE user_id = ?`, userID); err != nil {
		return err
	}
	for _, g := range grants {
		if _, err := tx.exec(ctx, `INSERT INTO user_grants (user_id, role, grp) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, userID, g.Role, g.Group); err != nil {
			return err
		}
	}
	return nil
}

// SetGrants replaces a user's grants.
func (s *Store) SetGrants(ctx context.Context, userID string, grants []Grant) error {
	return s.inTx(ctx, func(tx *Tx) error {
		var one int
		if err := tx.queryRow(ctx, `SELECT 1 FROM users WHERE id = ?`, userID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		return tx.setGrants(ctx, userID, grants)
	})
}

const userCols = `id, username, password_hash, totp_secret, totp_pending, totp_last_step, failed_logins, locked_until, disabled, created_at, last_login`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var u User
	var locked, created, last, disabled int64
	err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.TOTPSecret, &u.TOTPPending, &u.TOTPLastStep, &u.FailedLogins, &locked, &disabled, &created, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	u.LockedUntil, u.CreatedAt, u.LastLogin, u.Disabled = fromTS(locked), fromTS(created), fromTS(last), disabled != 0
	return &u, nil
}

func (s *Store) loadGrants(ctx context.Context, u *User) error {
	rows, err := s.query(ctx, `SELECT role, grp FROM user_grants WHERE user_id = ? ORDER BY role, grp`, u.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	u.Grants = nil
	for rows.Next() {
		var g Grant
		if err := rows.Scan(&g.Role, &g.Group); err != nil {
			return err
		}
		u.Grants = append(u.Grants, g)
	}
	return rows.Err()
}

// GetUserByName returns a user with grants.
func (s *Store) GetUserByName(ctx context.Context, username string) (*User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, username))
	if err != nil {
		return nil, err
	}
	return u, s.loadGrants(ctx, u)
}

// GetUser returns a user by ID with grants.
func (s *Store) GetUser(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return nil, err
	}
	return u, s.loadGrants(ctx, u)
}

// ListUsers returns all users with grants, by name.
func (s *Store) ListUsers(ctx context.Context) ([]*User, error) {
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, err
	}
	var users []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		users = append(users, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, u := range users {
		if err := s.loadGrants(ctx, u); err != nil {
			return nil, err
		}
	}
	return users, nil
}

// CountUsers returns the number of users.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}

// RecordLoginFailure increments the failure count and sets the lockout
// computed by lockout from the new count, returning the new count.
func (s *Store) RecordLoginFailure(ctx context.Context, userID string, lockout func(failures int) time.Time) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *Tx) error {
		if err := tx.queryRow(ctx, `UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ? RETURNING failed_logins`, userID).Scan(&n); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `UPDATE users SET locked_until = ? WHERE id = ?`, ts(lockout(n)), userID)
		return err
	})
	return n, err
}

// RecordLoginSuccess clears failures and records the login time.
func (s *Store) RecordLoginSuccess(ctx context.Context, userID string, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = 0, last_login = ? WHERE id = ?`, ts(at), userID)
	return err
}

// SetTOTPPending stores a TOTP secret awaiting confirmation.
func (s *Store) SetTOTPPending(ctx context.Context, userID, secret string) error {
	return s.updateUser(ctx, `UPDATE users SET totp_pending = ? WHERE id = ?`, secret, userID)
}

// ActivateTOTP makes the pending secret active, recording the used step.
func (s *Store) ActivateTOTP(ctx context.Context, userID string, step int64) error {
	return s.updateUser(ctx, `UPDATE users SET totp_secret = totp_pending, totp_pending = '', totp_last_step = ? WHERE id = ? AND totp_pending <> ''`, step, userID)
}

// DisableTOTP turns TOTP off for a user.
func (s *Store) DisableTOTP(ctx context.Context, userID string) error {
	return s.updateUser(ctx, `UPDATE users SET totp_secret = '', totp_pending = '', totp_last_step = 0 WHERE id = ?`, userID)
}

// UseTOTPStep records a consumed TOTP step, refusing (ErrConflict) a step
// that is not newer than the last one: a code cannot be replayed, even by
// two servers racing.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	res, err := s.exec(ctx, `UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`, step, userID, step)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

// SetPassword replaces a user's password hash and clears lockout.
func (s *Store) SetPassword(ctx context.Context, userID, hash string) error {
	return s.updateUser(ctx, `UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = 0 WHERE id = ?`, hash, userID)
}

// SetUserDisabled enables or disables a user; disabling ends its sessions.
func (s *Store) SetUserDisabled(ctx context.Context, userID string, disabled bool) error {
	return s.inTx(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE users SET disabled = ? WHERE id = ?`, boolInt(disabled), userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if disabled {
			_, err = tx.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		}
		return err
	})
}

func (s *Store) updateUser(ctx context.Context, q string, args ...any) error {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Session is a console login session. ID is the public half of the
// session token; only a hash of the secret half is stored.
type Session struct {
	ID         string
	SecretHash []byte
	UserID     string
	CSRF       string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Remote     string
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se *Session) error {
	_, err := s.exec(ctx, `INSERT INTO sessions (id, secret_hash, user_id, csrf, created_at, expires_at, remote) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		se.ID, se.SecretHash, se.UserID, se.CSRF, ts(se.CreatedAt), ts(se.ExpiresAt), se.Remote)
	return err
}

// GetSession returns a session by ID.
func (s *Store) GetSession(ctx context.Context, id string) (*Session, error) {
	var se Session
	var created, expires int64
	err := s.queryRow(ctx, `SELECT id, secret_hash, user_id, csrf, created_at, expires_at, remote FROM sessions WHERE id = ?`, id).
		Scan(&se.ID, &se.SecretHash, &se.UserID, &se.CSRF, &created, &expires, &se.Remote)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	se.CreatedAt, se.ExpiresAt = fromTS(created), fromTS(expires)
	return &se, nil
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return err
}

// DeleteUserSessions ends a user's sessions except the one named keep.
func (s *Store) DeleteUserSessions(ctx context.Context, userID, keep string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE user_id = ? AND id <> ?`, userID, keep)
	return err
}

// DeleteExpiredSessions removes sessions that expired before now.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at < ?`, ts(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
