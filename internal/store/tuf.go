package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// TUFMetadata is one signed version of a top-level TUF role. Every
// version is kept, so that clients can walk the root chain and fetch the
// consistent snapshot they were pointed at.
type TUFMetadata struct {
	Role      string // root, targets, snapshot or timestamp
	Version   int64
	Body      []byte // the signed JSON, served as is
	Expires   time.Time
	CreatedAt time.Time
}

// TUFKey is a TUF signing key. Public is the TUF key object (JSON);
// Sealed is the private key sealed with the KEK, empty when the key is
// kept offline.
type TUFKey struct {
	ID        string
	Role      string
	Public    []byte
	Sealed    []byte
	CreatedAt time.Time
}

const tufMetaCols = `role, version, body, expires, created_at`

func scanTUFMetadata(row *sql.Row) (*TUFMetadata, error) {
	var m TUFMetadata
	var exp, created int64
	err := row.Scan(&m.Role, &m.Version, &m.Body, &exp, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	m.Expires, m.CreatedAt = fromTS(exp), fromTS(created)
	return &m, nil
}

// LatestTUFMetadata returns the highest version of role, or ErrNotFound.
func (s *Store) LatestTUFMetadata(ctx context.Context, role string) (*TUFMetadata, error) {
	return scanTUFMetadata(s.queryRow(ctx, `SELECT `+tufMetaCols+` FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT 1`, role))
}

// GetTUFMetadata returns one version of role, or ErrNotFound.
func (s *Store) GetTUFMetadata(ctx context.Context, role string, version int64) (*TUFMetadata, error) {
	return scanTUFMetadata(s.queryRow(ctx, `SELECT `+tufMetaCols+` FROM tuf_metadata WHERE role = ? AND version = ?`, role, version))
}

// CommitTUF stores new keys and new metadata versions in one transaction:
// all of them or none. It returns ErrConflict, storing nothing, when any
// key or role version already exists — another server signed first, and
// the caller should reload and try again.
func (s *Store) CommitTUF(ctx context.Context, keys []*TUFKey, metas []*TUFMetadata) error {
	err := s.inTx(ctx, func(tx *Tx) error {
		for _, k := range keys {
			if _, err := tx.exec(ctx, `INSERT INTO tuf_keys (key_id, role, public, sealed, created_at) VALUES (?, ?, ?, ?, ?)`,
				k.ID, k.Role, k.Public, tufNonNil(k.Sealed), ts(k.CreatedAt)); err != nil {
				return err
			}
		}
		for _, m := range metas {
			if _, err := tx.exec(ctx, `INSERT INTO tuf_metadata (role, version, body, expires, created_at) VALUES (?, ?, ?, ?, ?)`,
				m.Role, m.Version, m.Body, ts(m.Expires), ts(m.CreatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if isUniqueViolation(err) {
		return ErrConflict
	}
	return err
}

// GetTUFKey returns a key by its TUF key ID, or ErrNotFound.
func (s *Store) GetTUFKey(ctx context.Context, id string) (*TUFKey, error) {
	var k TUFKey
	var created int64
	err := s.queryRow(ctx, `SELECT key_id, role, public, sealed, created_at FROM tuf_keys WHERE key_id = ?`, id).
		Scan(&k.ID, &k.Role, &k.Public, &k.Sealed, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	k.CreatedAt = fromTS(created)
	return &k, nil
}

// SetTUFKeySealed replaces the sealed private half of a key: nil removes
// it (the key is then offline), a value imports it. ErrNotFound when
// there is no such key.
func (s *Store) SetTUFKeySealed(ctx context.Context, id string, sealed []byte) error {
	res, err := s.exec(ctx, `UPDATE tuf_keys SET sealed = ? WHERE key_id = ?`, tufNonNil(sealed), id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// AddTUFKey stores a key; ErrConflict when its ID exists.
func (s *Store) AddTUFKey(ctx context.Context, k *TUFKey) error {
	return s.CommitTUF(ctx, []*TUFKey{k}, nil)
}

func tufNonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
