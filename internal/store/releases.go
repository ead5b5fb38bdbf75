package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Release is a published artifact of a product version.
type Release struct {
	ID         string
	Product    string
	Version    string
	Target     string // the TUF target name
	Length     int64
	SHA256     string // hex
	SHA512     string // hex
	Installer  string // "app" or "ab"
	Hardware   string // comma-separated compatible hardware; empty: any
	Fixes      string // JSON array of vulnerability IDs fixed
	Severity   string
	SBOMSHA256 string // hex of the attached CycloneDX SBOM, if any
	CreatedAt  time.Time
	CreatedBy  string
}

// ErrNotNewer is returned when a release's version does not exceed every
// published version of its product.
var ErrNotNewer = errors.New("version is not newer than the published ones")

const releaseCols = `id, product, version, target, length, sha256, sha512, installer, hardware, fixes, severity, sbom_sha256, created_at, created_by`

func scanRelease(row interface{ Scan(...any) error }) (*Release, error) {
	var r Release
	var created int64
	err := row.Scan(&r.ID, &r.Product, &r.Version, &r.Target, &r.Length, &r.SHA256, &r.SHA512, &r.Installer, &r.Hardware, &r.Fixes, &r.Severity, &r.SBOMSHA256, &created, &r.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r.CreatedAt = fromTS(created)
	return &r, nil
}

// CreateRelease records a release if newer reports that its version is
// greater than every version already published for the product (given
// in no particular order); otherwise it returns ErrNotNewer. The check and
// the insert are one transaction, serialised per product on PostgreSQL.
func (s *Store) CreateRelease(ctx context.Context, r *Release, newer func(published []string) bool) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(?))`, "release:"+r.Product); err != nil {
				return err
			}
		}
		rows, err := tx.query(ctx, `SELECT version FROM releases WHERE product = ?`, r.Product)
		if err != nil {
			return err
		}
		var published []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			published = append(published, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if !newer(published) {
			return ErrNotNewer
		}
		_, err = tx.exec(ctx, `INSERT INTO releases (`+releaseCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Product, r.Version, r.Target, r.Length, r.SHA256, r.SHA512, r.Installer, r.Hardware, r.Fixes, r.Severity, r.SBOMSHA256, ts(r.CreatedAt), r.CreatedBy)
		if isUniqueViolation(err) {
			return ErrConflict
		}
		return err
	})
}

// GetRelease returns the release of a product version.
func (s *Store) GetRelease(ctx context.Context, product, version string) (*Release, error) {
	return scanRelease(s.queryRow(ctx, `SELECT `+releaseCols+` FROM releases WHERE product = ? AND version = ?`, product, version))
}

// ListReleases returns releases, of one product when product is set,
// newest first.
func (s *Store) ListReleases(ctx context.Context, product string) ([]*Release, error) {
	q := `SELECT ` + releaseCols + ` FROM releases`
	var args []any
	if product != "" {
		q += ` WHERE product = ?`
		args = append(args, product)
	}
	rows, err := s.query(ctx, q+` ORDER BY created_at DESC, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SetReleaseSBOM records the SBOM attached to a release.
func (s *Store) SetReleaseSBOM(ctx context.Context, product, version, sha256hex string) error {
	res, err := s.exec(ctx, `UPDATE releases SET sbom_sha256 = ? WHERE product = ? AND version = ?`, sha256hex, product, version)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// VersionFloor is the lowest version of a product devices may install.
type VersionFloor struct {
	Product    string
	MinVersion string
	UpdatedAt  time.Time
	UpdatedBy  string
}

// SetVersionFloor raises a product's floor; raise reports whether the new
// floor is above the current one (it is given the current floor, or ""),
// so that a floor never goes down. It returns ErrNotNewer otherwise.
func (s *Store) SetVersionFloor(ctx context.Context, f *VersionFloor, raise func(current string) bool) error {
	return s.inTx(ctx, func(tx *Tx) error {
		var cur string
		q := `SELECT min_version FROM version_floors WHERE product = ?`
		if s.dialect == Postgres {
			q += ` FOR UPDATE`
		}
		err := tx.queryRow(ctx, q, f.Product).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if !raise(cur) {
			return ErrNotNewer
		}
		_, err = tx.exec(ctx, `INSERT INTO version_floors (product, min_version, updated_at, updated_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (product) DO UPDATE SET min_version = excluded.min_version, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			f.Product, f.MinVersion, ts(f.UpdatedAt), f.UpdatedBy)
		return err
	})
}

// VersionFloors returns every product's floor.
func (s *Store) VersionFloors(ctx context.Context) ([]*VersionFloor, error) {
	rows, err := s.query(ctx, `SELECT product, min_version, updated_at, updated_by FROM version_floors ORDER BY product`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*VersionFloor
	for rows.Next() {
		var f VersionFloor
		var at int64
		if err := rows.Scan(&f.Product, &f.MinVersion, &at, &f.UpdatedBy); err != nil {
			return nil, err
		}
		f.UpdatedAt = fromTS(at)
		out = append(out, &f)
	}
	return out, rows.Err()
}

// DeleteRelease removes a release record (used to undo a publication that
// could not be completed).
func (s *Store) DeleteRelease(ctx context.Context, product, version string) error {
	_, err := s.exec(ctx, `DELETE FROM releases WHERE product = ? AND version = ?`, product, version)
	return err
}
