package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// APIToken is a bearer token for the admin API. Only a hash of its secret
// is stored.
type APIToken struct {
	ID         string
	Name       string
	SecretHash []byte
	Role       string
	Group      string
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  time.Time // zero: never
	LastUsed   time.Time
	Revoked    bool
}

// CreateAPIToken stores a token.
func (s *Store) CreateAPIToken(ctx context.Context, t *APIToken) error {
	_, err := s.exec(ctx, `INSERT INTO api_tokens (id, name, secret_hash, role, grp, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.SecretHash, t.Role, t.Group, ts(t.CreatedAt), t.CreatedBy, ts(t.ExpiresAt))
	if isUniqueViolation(err) {
		return ErrConflict
	}
	return err
}

const apiTokenCols = `id, name, secret_hash, role, grp, created_at, created_by, expires_at, last_used, revoked`

func scanAPIToken(row interface{ Scan(...any) error }) (*APIToken, error) {
	var t APIToken
	var created, expires, last, revoked int64
	err := row.Scan(&t.ID, &t.Name, &t.SecretHash, &t.Role, &t.Group, &created, &t.CreatedBy, &expires, &last, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.LastUsed, t.Revoked = fromTS(created), fromTS(expires), fromTS(last), revoked != 0
	return &t, nil
}

// GetAPIToken returns a token by ID.
func (s *Store) GetAPIToken(ctx context.Context, id string) (*APIToken, error) {
	return scanAPIToken(s.queryRow(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE id = ?`, id))
}

// ListAPITokens returns all tokens, newest first.
func (s *Store) ListAPITokens(ctx context.Context) ([]*APIToken, error) {
	rows, err := s.query(ctx, `SELECT `+apiTokenCols+` FROM api_tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken revokes a token.
func (s *Store) RevokeAPIToken(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `UPDATE api_tokens SET revoked = 1 WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TouchAPIToken records a use of the token, at most once a minute; it
// reports whether it recorded one.
func (s *Store) TouchAPIToken(ctx context.Context, id string, at time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE api_tokens SET last_used = ? WHERE id = ? AND last_used < ?`, ts(at), id, ts(at.Add(-time.Minute)))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// EnrollToken is a device enrolment token.
type EnrollToken struct {
	ID         string
	Name       string
	SecretHash []byte
	Group      string
	MaxUses    int
	Used       int
	ExpiresAt  time.Time
	CreatedAt  time.Time
	CreatedBy  string
	Revoked    bool
}

// CreateEnrollToken stores an enrolment token.
func (s *Store) CreateEnrollToken(ctx context.Context, t *EnrollToken) error {
	_, err := s.exec(ctx, `INSERT INTO enroll_tokens (id, name, secret_hash, grp, max_uses, expires_at, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.SecretHash, t.Group, t.MaxUses, ts(t.ExpiresAt), ts(t.CreatedAt), t.CreatedBy)
	if isUniqueViolation(err) {
		return ErrConflict
	}
	return err
}

const enrollTokenCols = `id, name, secret_hash, grp, max_uses, used, expires_at, created_at, created_by, revoked`

func scanEnrollToken(row interface{ Scan(...any) error }) (*EnrollToken, error) {
	var t EnrollToken
	var expires, created, revoked int64
	err := row.Scan(&t.ID, &t.Name, &t.SecretHash, &t.Group, &t.MaxUses, &t.Used, &expires, &created, &t.CreatedBy, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t.ExpiresAt, t.CreatedAt, t.Revoked = fromTS(expires), fromTS(created), revoked != 0
	return &t, nil
}

// GetEnrollToken returns an enrolment token by ID.
func (s *Store) GetEnrollToken(ctx context.Context, id string) (*EnrollToken, error) {
	return scanEnrollToken(s.queryRow(ctx, `SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE id = ?`, id))
}

// ListEnrollTokens returns enrolment tokens, newest first.
func (s *Store) ListEnrollTokens(ctx context.Context) ([]*EnrollToken, error) {
	rows, err := s.query(ctx, `SELECT `+enrollTokenCols+` FROM enroll_tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*EnrollToken
	for rows.Next() {
		t, err := scanEnrollToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeEnrollToken revokes an enrolment token.
func (s *Store) RevokeEnrollToken(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `UPDATE enroll_tokens SET revoked = 1 WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Group is a device group.
type Group struct {
	Name        string
	Description string
	CreatedAt   time.Time
	Devices     int
}

// CreateGroup adds a device group; ErrConflict if it exists.
func (s *Store) CreateGroup(ctx context.Context, g *Group) error {
	_, err := s.exec(ctx, `INSERT INTO groups (name, description, created_at) VALUES (?, ?, ?)`, g.Name, g.Description, ts(g.CreatedAt))
	if isUniqueViolation(err) {
		return ErrConflict
	}
	return err
}

// GroupExists reports whether a group exists.
func (s *Store) GroupExists(ctx context.Context, name string) (bool, error) {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM groups WHERE name = ?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ListGroups returns groups with their device counts.
func (s *Store) ListGroups(ctx context.Context) ([]*Group, error) {
	rows, err := s.query(ctx, `SELECT g.name, g.description, g.created_at, (SELECT COUNT(*) FROM devices d WHERE d.grp = g.name) FROM groups g ORDER BY g.name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Group
	for rows.Next() {
		var g Group
		var created int64
		if err := rows.Scan(&g.Name, &g.Description, &created, &g.Devices); err != nil {
			return nil, err
		}
		g.CreatedAt = fromTS(created)
		out = append(out, &g)
	}
	return out, rows.Err()
}
