package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// ReferenceManifest is the signed reference values published with a
// release: the attest.ReferenceManifest JSON as uploaded.
type ReferenceManifest struct {
	Product   string
	Version   string
	Manifest  string // JSON of attest.ReferenceManifest
	SHA256    string // hex SHA-256 of Manifest
	CreatedAt time.Time
	CreatedBy string
}

// ReleaseRef names a release.
type ReleaseRef struct {
	Product string
	Version string
}

// MaxReleaseRefs bounds the releases ListReferenceManifests looks up at
// once (api.MaxInstalled is the same bound on what a device reports).
const MaxReleaseRefs = 64

const referenceCols = `product, version, manifest, sha256, created_at, created_by`

func scanReferenceManifest(row interface{ Scan(...any) error }) (*ReferenceManifest, error) {
	var m ReferenceManifest
	var created int64
	err := row.Scan(&m.Product, &m.Version, &m.Manifest, &m.SHA256, &created, &m.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	m.CreatedAt = fromTS(created)
	return &m, nil
}

// PutReferenceManifest records the reference values of a release. The
// release must exist (ErrNotFound otherwise). A release has one manifest:
// when it already has one, PutReferenceManifest returns ErrConflict unless
// replace is set, and then replaces it and returns the manifest it
// replaced (nil when there was none), for the caller to audit.
func (s *Store) PutReferenceManifest(ctx context.Context, m *ReferenceManifest, replace bool) (*ReferenceManifest, error) {
	var prev *ReferenceManifest
	err := s.inTx(ctx, func(tx *Tx) error {
		prev = nil
		var one int
		q := `SELECT 1 FROM releases WHERE product = ? AND version = ?`
		if s.dialect == Postgres {
			q += ` FOR SHARE`
		}
		if err := tx.queryRow(ctx, q, m.Product, m.Version).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		q = `SELECT ` + referenceCols + ` FROM reference_manifests WHERE product = ? AND version = ?`
		if s.dialect == Postgres {
			q += ` FOR UPDATE`
		}
		cur, err := scanReferenceManifest(tx.queryRow(ctx, q, m.Product, m.Version))
		switch {
		case errors.Is(err, ErrNotFound):
			_, err = tx.exec(ctx, `INSERT INTO reference_manifests (`+referenceCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
				m.Product, m.Version, m.Manifest, m.SHA256, ts(m.CreatedAt), m.CreatedBy)
			if isUniqueViolation(err) {
				return ErrConflict // a concurrent first upload won
			}
			return err
		case err != nil:
			return err
		case !replace:
			return ErrConflict
		}
		prev = cur
		_, err = tx.exec(ctx, `UPDATE reference_manifests SET manifest = ?, sha256 = ?, created_at = ?, created_by = ? WHERE product = ? AND version = ?`,
			m.Manifest, m.SHA256, ts(m.CreatedAt), m.CreatedBy, m.Product, m.Version)
		return err
	})
	if err != nil {
		return nil, err
	}
	return prev, nil
}

// GetReferenceManifest returns the reference values of a release, or
// ErrNotFound.
func (s *Store) GetReferenceManifest(ctx context.Context, product, version string) (*ReferenceManifest, error) {
	return scanReferenceManifest(s.queryRow(ctx, `SELECT `+referenceCols+` FROM reference_manifests WHERE product = ? AND version = ?`, product, version))
}

// DeleteReferenceManifest removes the reference values of a release (used
// to undo an upload that could not be signed). Deleting none is not an
// error.
func (s *Store) DeleteReferenceManifest(ctx context.Context, product, version string) error {
	_, err := s.exec(ctx, `DELETE FROM reference_manifests WHERE product = ? AND version = ?`, product, version)
	return err
}

// ListReferenceManifests returns the reference values of those of the
// releases (at most MaxReleaseRefs) that have them, ordered by product and
// version. Releases without reference values are left out.
func (s *Store) ListReferenceManifests(ctx context.Context, releases []ReleaseRef) ([]*ReferenceManifest, error) {
	if len(releases) == 0 {
		return nil, nil
	}
	if len(releases) > MaxReleaseRefs {
		return nil, errors.New("store: list reference manifests: more than 64 releases")
	}
	// The number of pairs is rounded up to a power of two (repeating the
	// last) so that at most seven statements are prepared and cached.
	n := 1
	for n < len(releases) {
		n *= 2
	}
	var b strings.Builder
	args := make([]any, 0, 2*n)
	b.WriteString(`SELECT ` + referenceCols + ` FROM reference_manifests WHERE `)
	for i := range n {
		if i > 0 {
			b.WriteString(` OR `)
		}
		b.WriteString(`(product = ? AND version = ?)`)
		r := releases[min(i, len(releases)-1)]
		args = append(args, r.Product, r.Version)
	}
	b.WriteString(` ORDER BY product, version`)
	rows, err := s.query(ctx, b.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ReferenceManifest
	for rows.Next() {
		m, err := scanReferenceManifest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
