package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// DeviceTPM is the TPM a device enrolled with. Byte values are base64.
type DeviceTPM struct {
	DeviceID          string
	EKHash            string
	EKPublic          string
	EKCert            string
	EKManufacturer    string
	AKPublic          string
	EnrolledAt        time.Time
	LastQuoteDigest   string
	LastAttestedAt    time.Time
	AttestRequestedAt time.Time
}

// ErrEKUnregistered means an endorsement key is not registered for
// zero-touch enrolment (or its registration was used by another device).
var ErrEKUnregistered = errors.New("endorsement key is not registered for zero-touch enrolment")

// EnrollTPMDevice records a device enrolled with a TPM in one transaction:
// it spends one use of the enrolment token (tokenID non-empty) or claims
// the zero-touch registration of the EK (tokenID empty), then writes the
// device, its certificate and its TPM.
func (s *Store) EnrollTPMDevice(ctx context.Context, tokenID string, secretHash []byte, d *Device, t *DeviceTPM) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if tokenID != "" {
			if err := tx.consumeToken(ctx, tokenID, secretHash, d.EnrolledAt); err != nil {
				return err
			}
		} else {
			res, err := tx.exec(ctx, `UPDATE ek_registrations SET device_id = ? WHERE ek_hash = ? AND device_id = ''`, d.ID, t.EKHash)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return ErrEKUnregistered
			}
		}
		_, err := tx.exec(ctx, `INSERT INTO devices (id, status, grp, hostname, key_assurance, cert_serial, cert_not_before, cert_not_after, cert_pem, enrolled_at, enroll_token, inventory) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Status, d.Group, d.Hostname, d.KeyAssurance, d.CertSerial, ts(d.CertNotBefore), ts(d.CertNotAfter), d.CertPEM, ts(d.EnrolledAt), tokenID, d.Inventory)
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		if err := tx.insertCert(ctx, d); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO device_tpm (device_id, ek_hash, ek_public, ek_cert, ek_manufacturer, ak_public, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			d.ID, t.EKHash, t.EKPublic, t.EKCert, t.EKManufacturer, t.AKPublic, ts(d.EnrolledAt))
		return err
	})
}

const deviceTPMCols = `device_id, ek_hash, ek_public, ek_cert, ek_manufacturer, ak_public, enrolled_at, last_quote_digest, last_attested_at, attest_requested_at`

// GetDeviceTPM returns a device's TPM, or ErrNotFound for devices enrolled
// without one.
func (s *Store) GetDeviceTPM(ctx context.Context, deviceID string) (*DeviceTPM, error) {
	var t DeviceTPM
	var enrolled, attested, requested int64
	err := s.queryRow(ctx, `SELECT `+deviceTPMCols+` FROM device_tpm WHERE device_id = ?`, deviceID).Scan(
		&t.DeviceID, &t.EKHash, &t.EKPublic, &t.EKCert, &t.EKManufacturer, &t.AKPublic, &enrolled, &t.LastQuoteDigest, &attested, &requested)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t.EnrolledAt, t.LastAttestedAt, t.AttestRequestedAt = fromTS(enrolled), fromTS(attested), fromTS(requested)
	return &t, nil
}

// FindDevicesByEK returns the IDs of active devices enrolled with an EK.
func (s *Store) FindDevicesByEK(ctx context.Context, ekHash string) ([]string, error) {
	rows, err := s.query(ctx, `SELECT t.device_id FROM device_tpm t JOIN devices d ON d.id = t.device_id WHERE t.ek_hash = ? AND d.status = 'active'`, ekHash)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// RequestAttestation marks that an admin asked the device to attest now.
func (s *Store) RequestAttestation(ctx context.Context, deviceID string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE device_tpm SET attest_requested_at = ? WHERE device_id = ?`, ts(at), deviceID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// AttestationRecord is one stored appraisal.
type AttestationRecord struct {
	ID       string
	DeviceID string
	At       time.Time
	Status   string
	Result   string // JSON of api.AttestationResult
}

// RecordAttestation stores an appraisal and, in the same transaction,
// updates the device's TPM record (last quote digest and time, clearing a
// pending request) and its trust when trust is non-empty.
func (s *Store) RecordAttestation(ctx context.Context, r *AttestationRecord, quoteDigest, trust string) error {
	return s.RecordAttestations(ctx, []AttestationWrite{{Record: r, QuoteDigest: quoteDigest, Trust: trust}})
}

// AttestationWrite is one appraisal to record: the result, the digest of
// the quote it appraised, and the trust state to set ("" leaves it).
type AttestationWrite struct {
	Record      *AttestationRecord
	QuoteDigest string
	Trust       string
}

// RecordAttestations records appraisals in one transaction (the server
// group-commits them): all or none.
func (s *Store) RecordAttestations(ctx context.Context, ws []AttestationWrite) error {
	return s.inTx(ctx, func(tx *Tx) error {
		for _, w := range ws {
			r := w.Record
			if _, err := tx.exec(ctx, `INSERT INTO attestation_results (id, device_id, at, status, result) VALUES (?, ?, ?, ?, ?)`,
				r.ID, r.DeviceID, ts(r.At), r.Status, r.Result); err != nil {
				return err
			}
			if _, err := tx.exec(ctx, `UPDATE device_tpm SET last_quote_digest = ?, last_attested_at = ?, attest_requested_at = 0 WHERE device_id = ?`,
				w.QuoteDigest, ts(r.At), r.DeviceID); err != nil {
				return err
			}
			if w.Trust != "" {
				if _, err := tx.exec(ctx, `UPDATE devices SET trust = ? WHERE id = ?`, w.Trust, r.DeviceID); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ListAttestations returns a device's appraisals, newest first.
func (s *Store) ListAttestations(ctx context.Context, deviceID string, limit int) ([]*AttestationRecord, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT id, device_id, at, status, result FROM attestation_results WHERE device_id = ? ORDER BY at DESC, id DESC LIMIT ?`, deviceID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*AttestationRecord
	for rows.Next() {
		var r AttestationRecord
		var at int64
		if err := rows.Scan(&r.ID, &r.DeviceID, &at, &r.Status, &r.Result); err != nil {
			return nil, err
		}
		r.At = fromTS(at)
		out = append(out, &r)
	}
	return out, rows.Err()
}

// SetTrust sets a device's trust state.
func (s *Store) SetTrust(ctx context.Context, deviceID, trust string) error {
	res, err := s.exec(ctx, `UPDATE devices SET trust = ? WHERE id = ?`, trust, deviceID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// AttestReference is the reference a device's measurements are compared
// with.
type AttestReference struct {
	DeviceID   string
	Source     string // "baseline" or "manifest:<product>@<version>"
	Reference  string // JSON
	CapturedAt time.Time
	ApprovedBy string
	ApprovedAt time.Time
}

// PutAttestReference stores (replaces) a device's reference.
func (s *Store) PutAttestReference(ctx context.Context, r *AttestReference) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if _, err := tx.exec(ctx, `DELETE FROM attestation_references WHERE device_id = ?`, r.DeviceID); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO attestation_references (device_id, source, reference, captured_at, approved_by, approved_at) VALUES (?, ?, ?, ?, ?, ?)`,
			r.DeviceID, r.Source, r.Reference, ts(r.CapturedAt), r.ApprovedBy, ts(r.ApprovedAt))
		return err
	})
}

// PutAttestReferenceIfAbsent stores a reference unless the device has one.
func (s *Store) PutAttestReferenceIfAbsent(ctx context.Context, r *AttestReference) error {
	_, err := s.GetAttestReference(ctx, r.DeviceID)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	err = s.PutAttestReference(ctx, r)
	if isUniqueViolation(err) {
		return nil
	}
	return err
}

// GetAttestReference returns a device's reference or ErrNotFound.
func (s *Store) GetAttestReference(ctx context.Context, deviceID string) (*AttestReference, error) {
	var r AttestReference
	var captured, approved int64
	err := s.queryRow(ctx, `SELECT device_id, source, reference, captured_at, approved_by, approved_at FROM attestation_references WHERE device_id = ?`, deviceID).Scan(
		&r.DeviceID, &r.Source, &r.Reference, &captured, &r.ApprovedBy, &approved)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r.CapturedAt, r.ApprovedAt = fromTS(captured), fromTS(approved)
	return &r, nil
}

// ApproveAttestReference marks a device's captured baseline approved.
func (s *Store) ApproveAttestReference(ctx context.Context, deviceID, by string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE attestation_references SET approved_by = ?, approved_at = ? WHERE device_id = ?`, by, ts(at), deviceID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// HealthReportRecord is a stored signed health report.
type HealthReportRecord struct {
	DeviceID  string
	At        time.Time
	Status    string
	Report    string // base64 of the signed bytes
	Signature string // base64
}

// AddHealthReport stores a signed health report; a second report with the
// same device and time is ignored.
func (s *Store) AddHealthReport(ctx context.Context, r *HealthReportRecord) error {
	_, err := s.exec(ctx, `INSERT INTO health_reports (device_id, at, status, report, signature) VALUES (?, ?, ?, ?, ?)`,
		r.DeviceID, ts(r.At), r.Status, r.Report, r.Signature)
	if isUniqueViolation(err) {
		return nil
	}
	return err
}

// ListHealthReports returns a device's health reports, newest first.
func (s *Store) ListHealthReports(ctx context.Context, deviceID string, limit int) ([]*HealthReportRecord, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT device_id, at, status, report, signature FROM health_reports WHERE device_id = ? ORDER BY at DESC LIMIT ?`, deviceID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*HealthReportRecord
	for rows.Next() {
		var r HealthReportRecord
		var at int64
		if err := rows.Scan(&r.DeviceID, &at, &r.Status, &r.Report, &r.Signature); err != nil {
			return nil, err
		}
		r.At = fromTS(at)
		out = append(out, &r)
	}
	return out, rows.Err()
}

// EKRegistration pre-registers an endorsement key for zero-touch
// enrolment into a group.
type EKRegistration struct {
	EKHash    string
	Group     string
	CreatedAt time.Time
	CreatedBy string
	DeviceID  string // the device that used it; empty while unused
}

// AddEKRegistrations registers endorsement keys, all or none; an already
// registered key is a conflict.
func (s *Store) AddEKRegistrations(ctx context.Context, regs []*EKRegistration) error {
	return s.inTx(ctx, func(tx *Tx) error {
		for _, r := range regs {
			_, err := tx.exec(ctx, `INSERT INTO ek_registrations (ek_hash, grp, created_at, created_by) VALUES (?, ?, ?, ?)`,
				r.EKHash, r.Group, ts(r.CreatedAt), r.CreatedBy)
			if isUniqueViolation(err) {
				return ErrConflict
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// GetEKRegistration returns the registration of an EK or ErrNotFound.
func (s *Store) GetEKRegistration(ctx context.Context, ekHash string) (*EKRegistration, error) {
	var r EKRegistration
	var created int64
	err := s.queryRow(ctx, `SELECT ek_hash, grp, created_at, created_by, device_id FROM ek_registrations WHERE ek_hash = ?`, ekHash).Scan(
		&r.EKHash, &r.Group, &created, &r.CreatedBy, &r.DeviceID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r.CreatedAt = fromTS(created)
	return &r, nil
}

// ListEKRegistrations returns every registration, oldest first.
func (s *Store) ListEKRegistrations(ctx context.Context) ([]*EKRegistration, error) {
	rows, err := s.query(ctx, `SELECT ek_hash, grp, created_at, created_by, device_id FROM ek_registrations ORDER BY created_at, ek_hash`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*EKRegistration
	for rows.Next() {
		var r EKRegistration
		var created int64
		if err := rows.Scan(&r.EKHash, &r.Group, &created, &r.CreatedBy, &r.DeviceID); err != nil {
			return nil, err
		}
		r.CreatedAt = fromTS(created)
		out = append(out, &r)
	}
	return out, rows.Err()
}
