package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// DisclosureReport is a vulnerability report sent by a reporter.
type DisclosureReport struct {
	ID              string
	KeyHash         []byte // hash of the reporter's follow-up key
	State           string
	Summary         string
	Product         string
	AffectedVersion string
	Details         string
	Email           string
	AcknowledgeAs   string
	Advisory        string
	Remote          string
	ReceivedAt      time.Time
	UpdatedAt       time.Time
}

// DisclosureEvent is one step of a report's timeline.
type DisclosureEvent struct {
	Seq      int64
	Time     time.Time
	Actor    string
	From     string
	To       string
	Note     string
	Advisory string
}

// ErrStateChanged is returned by TransitionDisclosure when the report is
// no longer in the state the caller saw.
var ErrStateChanged = errors.New("the report's state changed meanwhile")

// CreateDisclosure stores a new report and the first entry of its
// timeline in one transaction. ErrConflict if the ID is taken.
func (s *Store) CreateDisclosure(ctx context.Context, r *DisclosureReport, first *DisclosureEvent) error {
	return s.inTx(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO disclosure_reports (id, key_hash, state, summary, product, affected_version, details, email, acknowledge_as, advisory, remote, received_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.KeyHash, r.State, r.Summary, r.Product, r.AffectedVersion, r.Details, r.Email, r.AcknowledgeAs, r.Advisory, r.Remote, ts(r.ReceivedAt), ts(r.UpdatedAt))
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		first.Seq = 1
		return tx.insertDisclosureEvent(ctx, r.ID, first)
	})
}

func (tx *Tx) insertDisclosureEvent(ctx context.Context, id string, e *DisclosureEvent) error {
	_, err := tx.exec(ctx, `INSERT INTO disclosure_events (report_id, seq, ts, actor, from_state, to_state, note, advisory) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		id, e.Seq, ts(e.Time), e.Actor, e.From, e.To, e.Note, e.Advisory)
	return err
}

// TransitionDisclosure moves report id from state e.From to e.To,
// records e in its timeline and, when advisory is not empty, links the
// advisory. ErrNotFound if there is no such report; ErrStateChanged if
// it is no longer in e.From.
func (s *Store) TransitionDisclosure(ctx context.Context, id string, e *DisclosureEvent, advisory string) error {
	return s.inTx(ctx, func(tx *Tx) error {
		var state string
		var seq int64
		err := tx.queryRow(ctx, `SELECT state FROM disclosure_reports WHERE id = ?`, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		q := `UPDATE disclosure_reports SET state = ?, updated_at = ?, advisory = CASE WHEN ? = '' THEN advisory ELSE ? END WHERE id = ? AND state = ?`
		res, err := tx.exec(ctx, q, e.To, ts(e.Time), advisory, advisory, id, e.From)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return ErrStateChanged
		}
		if err := tx.queryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM disclosure_events WHERE report_id = ?`, id).Scan(&seq); err != nil {
			return err
		}
		e.Seq = seq + 1
		return tx.insertDisclosureEvent(ctx, id, e)
	})
}

// AddDisclosureEvent appends e to report id's timeline without changing
// its state (a message from the reporter), and marks the report updated.
// ErrNotFound if there is no such report.
func (s *Store) AddDisclosureEvent(ctx context.Context, id string, e *DisclosureEvent) error {
	return s.inTx(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE disclosure_reports SET updated_at = ? WHERE id = ?`, ts(e.Time), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return ErrNotFound
		}
		var seq int64
		if err := tx.queryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM disclosure_events WHERE report_id = ?`, id).Scan(&seq); err != nil {
			return err
		}
		e.Seq = seq + 1
		return tx.insertDisclosureEvent(ctx, id, e)
	})
}

const disclosureCols = `id, key_hash, state, summary, product, affected_version, details, email, acknowledge_as, advisory, remote, received_at, updated_at`

func scanDisclosure(row interface{ Scan(...any) error }) (*DisclosureReport, error) {
	var r DisclosureReport
	var received, updated int64
	err := row.Scan(&r.ID, &r.KeyHash, &r.State, &r.Summary, &r.Product, &r.AffectedVersion, &r.Details, &r.Email, &r.AcknowledgeAs, &r.Advisory, &r.Remote, &received, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r.ReceivedAt, r.UpdatedAt = fromTS(received), fromTS(updated)
	return &r, nil
}

// GetDisclosure returns a report.
func (s *Store) GetDisclosure(ctx context.Context, id string) (*DisclosureReport, error) {
	return scanDisclosure(s.queryRow(ctx, `SELECT `+disclosureCols+` FROM disclosure_reports WHERE id = ?`, id))
}

// DisclosureTimeline returns a report's timeline, oldest first.
func (s *Store) DisclosureTimeline(ctx context.Context, id string) ([]DisclosureEvent, error) {
	rows, err := s.query(ctx, `SELECT seq, ts, actor, from_state, to_state, note, advisory FROM disclosure_events WHERE report_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DisclosureEvent
	for rows.Next() {
		var e DisclosureEvent
		var t int64
		if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.From, &e.To, &e.Note, &e.Advisory); err != nil {
			return nil, err
		}
		e.Time = fromTS(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListDisclosures returns reports newest first, in one state when state
// is set, with the total count of matching reports.
func (s *Store) ListDisclosures(ctx context.Context, state string, limit, offset int) ([]*DisclosureReport, int, error) {
	where, args := ``, []any{}
	if state != "" {
		where, args = ` WHERE state = ?`, append(args, state)
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM disclosure_reports`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT `+disclosureCols+` FROM disclosure_reports`+where+` ORDER BY received_at DESC, id LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*DisclosureReport
	for rows.Next() {
		r, err := scanDisclosure(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}

// Acknowledgment credits a reporter of a published report.
type Acknowledgment struct {
	Name     string
	Advisory string
	Time     time.Time // when the report was last updated (published)
}

// ListAcknowledgments returns the credited reporters of published
// reports, most recent first.
func (s *Store) ListAcknowledgments(ctx context.Context, publishedState string, limit int) ([]Acknowledgment, error) {
	rows, err := s.query(ctx, `SELECT acknowledge_as, advisory, updated_at FROM disclosure_reports WHERE state = ? AND acknowledge_as <> '' ORDER BY updated_at DESC LIMIT ?`, publishedState, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Acknowledgment
	for rows.Next() {
		var a Acknowledgment
		var t int64
		if err := rows.Scan(&a.Name, &a.Advisory, &t); err != nil {
			return nil, err
		}
		a.Time = fromTS(t)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Product is a published product with its support period and update
// policy. SupportUntil is a date, YYYY-MM-DD.
type Product struct {
	Name              string
	Description       string
	SupportUntil      string
	UpdateCadence     string
	CriticalFixTarget string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// PutProduct creates a product or replaces an existing one's fields
// (keeping its creation time); it reports whether it created.
func (s *Store) PutProduct(ctx context.Context, p *Product) (created bool, err error) {
	err = s.inTx(ctx, func(tx *Tx) error {
		var one int
		err := tx.queryRow(ctx, `SELECT 1 FROM products WHERE name = ?`, p.Name).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			_, err = tx.exec(ctx, `INSERT INTO products (name, description, support_until, update_cadence, critical_fix_target, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				p.Name, p.Description, p.SupportUntil, p.UpdateCadence, p.CriticalFixTarget, ts(p.UpdatedAt), ts(p.UpdatedAt))
			if isUniqueViolation(err) {
				return ErrConflict
			}
			return err
		case err != nil:
			return err
		}
		created = false
		_, err = tx.exec(ctx, `UPDATE products SET description = ?, support_until = ?, update_cadence = ?, critical_fix_target = ?, updated_at = ? WHERE name = ?`,
			p.Description, p.SupportUntil, p.UpdateCadence, p.CriticalFixTarget, ts(p.UpdatedAt), p.Name)
		return err
	})
	return created, err
}

// ListProducts returns every product by name.
func (s *Store) ListProducts(ctx context.Context) ([]Product, error) {
	rows, err := s.query(ctx, `SELECT name, description, support_until, update_cadence, critical_fix_target, created_at, updated_at FROM products ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Product
	for rows.Next() {
		var p Product
		var c, u int64
		if err := rows.Scan(&p.Name, &p.Description, &p.SupportUntil, &p.UpdateCadence, &p.CriticalFixTarget, &c, &u); err != nil {
			return nil, err
		}
		p.CreatedAt, p.UpdatedAt = fromTS(c), fromTS(u)
		out = append(out, p)
	}
	return out, rows.Err()
}
