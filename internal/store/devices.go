package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// Enrolment token failures, in the order they are checked.
var (
	ErrTokenInvalid = errors.New("enrolment token is not valid")
	ErrTokenRevoked = errors.New("enrolment token has been revoked")
	ErrTokenExpired = errors.New("enrolment token has expired")
	ErrTokenUsedUp  = errors.New("enrolment token has no uses left")
)

// Device is an enrolled device.
type Device struct {
	ID            string
	Status        string // "active" or "revoked"
	Group         string
	Hostname      string
	KeyAssurance  string
	CertSerial    string
	CertNotBefore time.Time
	CertNotAfter  time.Time
	CertPEM       string
	EnrolledAt    time.Time
	EnrollToken   string
	LastSeen      time.Time
	HealthStatus  string
	Inventory     string    // JSON of api.Inventory (uptime zero: see BootTime), empty before the first check-in
	BootTime      time.Time // when the device last booted, from its reported uptime
	Health        string    // JSON of api.Health
	RevokedAt     time.Time
	Trust         string // "trusted", "untrusted" or "quarantined"
}

const (
	deviceCols = `d.id, d.status, d.grp, d.hostname, d.key_assurance, d.cert_serial, d.cert_not_before, d.cert_not_after, d.cert_pem, d.enrolled_at, d.enroll_token, COALESCE(s.last_seen, 0), COALESCE(s.health_status, ''), d.inventory, d.health, d.revoked_at, COALESCE(s.boot_time, 0), d.trust`
	deviceFrom = ` FROM devices d LEFT JOIN device_status s ON s.device_id = d.id`
)

func scanDevice(row interface{ Scan(...any) error }) (*Device, error) {
	var d Device
	var nb, na, enrolled, last, revoked, boot int64
	err := row.Scan(&d.ID, &d.Status, &d.Group, &d.Hostname, &d.KeyAssurance, &d.CertSerial, &nb, &na, &d.CertPEM, &enrolled, &d.EnrollToken, &last, &d.HealthStatus, &d.Inventory, &d.Health, &revoked, &boot, &d.Trust)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	d.CertNotBefore, d.CertNotAfter, d.EnrolledAt, d.LastSeen, d.RevokedAt, d.BootTime = fromTS(nb), fromTS(na), fromTS(enrolled), fromTS(last), fromTS(revoked), fromTS(boot)
	return &d, nil
}

// CheckEnrollToken verifies an enrolment token without consuming it and
// returns it; errors are ErrTokenInvalid, ErrTokenRevoked, ErrTokenExpired
// or ErrTokenUsedUp.
func (s *Store) CheckEnrollToken(ctx context.Context, id string, secretHash []byte, now time.Time) (*EnrollToken, error) {
	t, err := s.GetEnrollToken(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	return t, t.usable(secretHash, now)
}

func (t *EnrollToken) usable(secretHash []byte, now time.Time) error {
	switch {
	case subtle.ConstantTimeCompare(t.SecretHash, secretHash) != 1:
		return ErrTokenInvalid
	case t.Revoked:
		return ErrTokenRevoked
	case !now.Before(t.ExpiresAt):
		return ErrTokenExpired
	case t.Used >= t.MaxUses:
		return ErrTokenUsedUp
	}
	return nil
}

// consumeToken re-checks and spends one use of a token inside tx.
func (tx *Tx) consumeToken(ctx context.Context, id string, secretHash []byte, now time.Time) error {
	t, err := scanEnrollToken(tx.queryRow(ctx, `SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE id = ?`, id))
	if errors.Is(err, ErrNotFound) {
		return ErrTokenInvalid
	}
	if err != nil {
		return err
	}
	if err := t.usable(secretHash, now); err != nil {
		return err
	}
	res, err := tx.exec(ctx, `UPDATE enroll_tokens SET used = used + 1 WHERE id = ? AND used < max_uses AND revoked = 0`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrTokenUsedUp
	}
	return nil
}

func (tx *Tx) insertCert(ctx context.Context, d *Device) error {
	_, err := tx.exec(ctx, `INSERT INTO device_certs (serial, device_id, not_before, not_after, issued_at) VALUES (?, ?, ?, ?, ?)`,
		d.CertSerial, d.ID, ts(d.CertNotBefore), ts(d.CertNotAfter), ts(d.EnrolledAt))
	return err
}

// EnrollDevice spends one use of the token and records the new device and
// its certificate, all in one transaction: either everything is written or
// nothing is.
func (s *Store) EnrollDevice(ctx context.Context, tokenID string, secretHash []byte, d *Device) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := tx.consumeToken(ctx, tokenID, secretHash, d.EnrolledAt); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO devices (id, status, grp, hostname, key_assurance, cert_serial, cert_not_before, cert_not_after, cert_pem, enrolled_at, enroll_token, inventory) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Status, d.Group, d.Hostname, d.KeyAssurance, d.CertSerial, ts(d.CertNotBefore), ts(d.CertNotAfter), d.CertPEM, ts(d.EnrolledAt), tokenID, d.Inventory)
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		return tx.insertCert(ctx, d)
	})
}

// ReEnrollDevice spends one use of the token and gives an existing active
// device a new certificate (re-enrolment keeping its identity).
func (s *Store) ReEnrollDevice(ctx context.Context, tokenID string, secretHash []byte, d *Device) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if err := tx.consumeToken(ctx, tokenID, secretHash, d.EnrolledAt); err != nil {
			return err
		}
		return tx.replaceCert(ctx, d)
	})
}

func (tx *Tx) replaceCert(ctx context.Context, d *Device) error {
	res, err := tx.exec(ctx, `UPDATE devices SET cert_serial = ?, cert_not_before = ?, cert_not_after = ?, cert_pem = ?, key_assurance = ? WHERE id = ? AND status = 'active'`,
		d.CertSerial, ts(d.CertNotBefore), ts(d.CertNotAfter), d.CertPEM, d.KeyAssurance, d.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return tx.insertCert(ctx, d)
}

// RenewDeviceCert records a renewed certificate for an active device whose
// current certificate has serial oldSerial; the old certificate stops
// being accepted at once.
func (s *Store) RenewDeviceCert(ctx context.Context, oldSerial string, d *Device) error {
	return s.inTx(ctx, func(tx *Tx) error {
		var cur string
		if err := tx.queryRow(ctx, `SELECT cert_serial FROM devices WHERE id = ? AND status = 'active'`, d.ID).Scan(&cur); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if cur != oldSerial {
			return ErrConflict
		}
		return tx.replaceCert(ctx, d)
	})
}

// RevokeDevice marks a device revoked with all its certificates. Revoking
// a revoked device returns ErrNotFound only if the device does not exist.
func (s *Store) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE devices SET status = 'revoked', revoked_at = ? WHERE id = ? AND status <> 'revoked'`, ts(at), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := tx.queryRow(ctx, `SELECT 1 FROM devices WHERE id = ?`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			} else if err != nil {
				return err
			}
			return nil
		}
		_, err = tx.exec(ctx, `UPDATE device_certs SET revoked_at = ? WHERE device_id = ? AND revoked_at = 0`, ts(at), id)
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, `UPDATE commands SET status = 'cancelled', detail = 'device revoked' WHERE device_id = ? AND status IN ('queued', 'delivered')`, id)
		return err
	})
}

// GetDevice returns a device by ID.
func (s *Store) GetDevice(ctx context.Context, id string) (*Device, error) {
	return scanDevice(s.queryRow(ctx, `SELECT `+deviceCols+deviceFrom+` WHERE d.id = ?`, id))
}

// DeviceAuth is what the device API needs to admit a connection.
type DeviceAuth struct {
	Status     string
	CertSerial string
	Group      string
	NotAfter   time.Time
	Trust      string
}

// GetDeviceAuth returns a device's status and current certificate serial.
func (s *Store) GetDeviceAuth(ctx context.Context, id string) (*DeviceAuth, error) {
	var a DeviceAuth
	var na int64
	err := s.queryRow(ctx, `SELECT status, cert_serial, grp, cert_not_after, trust FROM devices WHERE id = ?`, id).Scan(&a.Status, &a.CertSerial, &a.Group, &na, &a.Trust)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	a.NotAfter = fromTS(na)
	return &a, err
}

// DeviceFilter selects devices.
type DeviceFilter struct {
	Query  string   // substring of ID or hostname
	Group  string   // exact group; "" any
	Status string   // "active", "revoked"; "" any
	Scope  []string // when non-nil, only devices in these groups
	// RecentFirst orders by last check-in, newest first, instead of by
	// hostname.
	RecentFirst bool
	Limit       int // 0: 100; at most 1000
	Offset      int
}

func (f *DeviceFilter) where() (string, []any) {
	var conds []string
	var args []any
	if f.Query != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(f.Query)) + "%"
		conds = append(conds, `(LOWER(d.id) LIKE ? ESCAPE '\' OR LOWER(d.hostname) LIKE ? ESCAPE '\')`)
		args = append(args, like, like)
	}
	if f.Group != "" {
		conds = append(conds, `d.grp = ?`)
		args = append(args, f.Group)
	}
	if f.Status != "" {
		conds = append(conds, `d.status = ?`)
		args = append(args, f.Status)
	}
	if f.Scope != nil {
		if len(f.Scope) == 0 {
			conds = append(conds, `1 = 0`)
		} else {
			conds = append(conds, `d.grp IN (?`+strings.Repeat(", ?", len(f.Scope)-1)+`)`)
			for _, g := range f.Scope {
				args = append(args, g)
			}
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// ListDevices returns one page of devices matching f, ordered by hostname
// then ID, and the total number matching.
func (s *Store) ListDevices(ctx context.Context, f DeviceFilter) ([]*Device, int, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	where, args := f.where()
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM devices d`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	order := ` ORDER BY d.hostname, d.id`
	if f.RecentFirst {
		order = ` ORDER BY COALESCE(s.last_seen, 0) DESC, d.id`
	}
	rows, err := s.query(ctx, `SELECT `+deviceCols+deviceFrom+where+order+` LIMIT ? OFFSET ?`, append(args, f.Limit, f.Offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, total, rows.Err()
}

// FleetCounts counts devices by state.
type FleetCounts struct {
	Total, Active, Revoked, Online, Never, Degraded int
}

// CountFleet counts devices in scope (nil: all); a device is online when
// it checked in after onlineSince.
func (s *Store) CountFleet(ctx context.Context, scope []string, onlineSince time.Time) (FleetCounts, error) {
	var c FleetCounts
	f := DeviceFilter{Scope: scope}
	where, args := f.where()
	err := s.queryRow(ctx, `SELECT COUNT(*),
		COALESCE(SUM(CASE WHEN d.status = 'active' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN d.status = 'revoked' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN d.status = 'active' AND s.last_seen >= ? THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN s.last_seen IS NULL THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN d.status = 'active' AND s.health_status IN ('degraded', 'unhealthy', 'failing') THEN 1 ELSE 0 END), 0)
		`+deviceFrom+where, append([]any{ts(onlineSince)}, args...)...).
		Scan(&c.Total, &c.Active, &c.Revoked, &c.Online, &c.Never, &c.Degraded)
	return c, err
}

// Checkin is one device's check-in, applied in a batch.
type Checkin struct {
	DeviceID     string
	At           time.Time
	Hostname     string
	Inventory    string
	Health       string
	HealthStatus string
	BootTime     time.Time // At minus the reported uptime
	Acks         []Ack
}

// Ack is a command outcome reported by a device.
type Ack struct {
	CommandID string
	Status    string // done, failed
	Detail    string
}

// ApplyCheckins records a batch of check-ins in one transaction (one
// fsync for the lot), so that thousands of devices a second cost little.
// Acks only move commands of the reporting device that are still open.
const (
	qSeen = `INSERT INTO device_status (device_id, last_seen, health_status, boot_time) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen, health_status = excluded.health_status, boot_time = excluded.boot_time`
	// Inventory and health rarely change: rows are rewritten only when
	// they do.
	qInventory = `UPDATE devices SET hostname = ?, inventory = ?, health = ? WHERE id = ? AND (hostname <> ? OR inventory <> ? OR health <> ?)`
	qAck       = `UPDATE commands SET status = ?, detail = ?, acked_at = ? WHERE id = ? AND device_id = ? AND status IN ('queued', 'delivered')`
)

func (s *Store) ApplyCheckins(ctx context.Context, batch []Checkin) error {
	s.prepareWrites(ctx, qSeen, qInventory, qAck)
	return s.inTx(ctx, func(tx *Tx) error {
		for _, c := range batch {
			if _, err := tx.exec(ctx, qSeen, c.DeviceID, ts(c.At), c.HealthStatus, ts(c.BootTime)); err != nil {
				return err
			}
			if _, err := tx.exec(ctx, qInventory, c.Hostname, c.Inventory, c.Health, c.DeviceID, c.Hostname, c.Inventory, c.Health); err != nil {
				return err
			}
			for _, a := range c.Acks {
				if _, err := tx.exec(ctx, qAck, a.Status, a.Detail, ts(c.At), a.CommandID, c.DeviceID); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
