package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Alert states.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// MaxAlertRefs bounds the event references an alert keeps (the most
// recent).
const MaxAlertRefs = 100

// AlertRef names an event behind an alert.
type AlertRef struct {
	EventID  int64  `json:"event_id,omitempty"`
	DeviceID string `json:"device_id"`
	Seq      uint64 `json:"seq"`
	Type     string `json:"type"`
}

// Alert is a stored alert.
type Alert struct {
	ID         string
	Rule       string
	SeverityID int
	DeviceID   string
	DedupKey   string
	Summary    string
	FirstSeen  time.Time
	LastSeen   time.Time
	Count      int
	Status     string
	AckedBy    string
	AckedAt    time.Time
	ResolvedAt time.Time
	Refs       []AlertRef
}

const alertCols = `id, rule, severity_id, device_id, dedup_key, summary, first_seen, last_seen, hit_count, status, acked_by, acked_at, resolved_at, refs`

func scanAlert(row interface{ Scan(...any) error }) (*Alert, error) {
	var a Alert
	var first, last, acked, resolved int64
	var refs string
	if err := row.Scan(&a.ID, &a.Rule, &a.SeverityID, &a.DeviceID, &a.DedupKey, &a.Summary, &first, &last, &a.Count, &a.Status,
		&a.AckedBy, &acked, &resolved, &refs); err != nil {
		return nil, err
	}
	a.FirstSeen, a.LastSeen, a.AckedAt, a.ResolvedAt = fromTS(first), fromTS(last), fromTS(acked), fromTS(resolved)
	if err := json.Unmarshal([]byte(refs), &a.Refs); err != nil {
		return nil, fmt.Errorf("store: alert %s refs: %w", a.ID, err)
	}
	return &a, nil
}

func encodeRefs(refs []AlertRef) string {
	if len(refs) > MaxAlertRefs {
		refs = refs[len(refs)-MaxAlertRefs:]
	}
	if refs == nil {
		refs = []AlertRef{}
	}
	b, _ := json.Marshal(refs)
	return string(b)
}

// RaiseAlert records that a rule fired. When an open alert of the same
// rule, device and dedup key exists, it counts on that one: its count
// goes up by one, last_seen and the summary follow the new firing, the
// severity is the higher of the two and the new references are added;
// *a is then overwritten with the stored alert and created is false.
// Otherwise a is inserted (a.ID, FirstSeen and LastSeen set by the
// caller; Count and Status are set here) with a pending delivery for each
// of sinks, due at once.
func (s *Store) RaiseAlert(ctx context.Context, a *Alert, sinks []string) (created bool, err error) {
	if a.ID == "" || a.Rule == "" || a.DeviceID == "" {
		return false, errors.New("store: an alert needs an id, rule and device")
	}
	// Two PostgreSQL writers may both find no open alert and insert; the
	// loser's unique violation sends it round again to count on the
	// winner's.
	for attempt := 0; ; attempt++ {
		err = s.inTx(ctx, func(tx *Tx) error {
			var e error
			created, e = raiseAlert(ctx, tx, a, sinks)
			return e
		})
		if err == nil || !isUniqueViolation(err) || attempt == 2 {
			return created, err
		}
	}
}

func raiseAlert(ctx context.Context, tx *Tx, a *Alert, sinks []string) (bool, error) {
	q := `SELECT ` + alertCols + ` FROM alerts WHERE rule = ? AND device_id = ? AND dedup_key = ? AND status = 'open'`
	if tx.s.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	cur, err := scanAlert(tx.queryRow(ctx, q, a.Rule, a.DeviceID, a.DedupKey))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		a.Count, a.Status = 1, AlertOpen
		if a.LastSeen.Before(a.FirstSeen) {
			a.LastSeen = a.FirstSeen
		}
		if len(a.Refs) > MaxAlertRefs {
			a.Refs = a.Refs[len(a.Refs)-MaxAlertRefs:]
		}
		if _, err := tx.exec(ctx, `INSERT INTO alerts (id, rule, severity_id, device_id, dedup_key, summary, first_seen, last_seen, hit_count, status, refs)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 'open', ?)`,
			a.ID, a.Rule, a.SeverityID, a.DeviceID, a.DedupKey, a.Summary, ts(a.FirstSeen), ts(a.LastSeen), encodeRefs(a.Refs)); err != nil {
			return false, err
		}
		for _, sink := range sinks {
			if _, err := tx.exec(ctx, `INSERT INTO alert_deliveries (alert_id, sink, next_at) VALUES (?, ?, ?)`, a.ID, sink, ts(a.FirstSeen)); err != nil {
				return false, err
			}
		}
		return true, nil
	case err != nil:
		return false, err
	}
	seen := map[AlertRef]bool{}
	for _, r := range cur.Refs {
		seen[r] = true
	}
	for _, r := range a.Refs {
		if !seen[r] {
			cur.Refs = append(cur.Refs, r)
			seen[r] = true
		}
	}
	if len(cur.Refs) > MaxAlertRefs {
		cur.Refs = cur.Refs[len(cur.Refs)-MaxAlertRefs:]
	}
	cur.Count++
	if a.LastSeen.After(cur.LastSeen) {
		cur.LastSeen = a.LastSeen
	}
	cur.SeverityID = max(cur.SeverityID, a.SeverityID)
	cur.Summary = a.Summary
	if _, err := tx.exec(ctx, `UPDATE alerts SET hit_count = ?, last_seen = ?, severity_id = ?, summary = ?, refs = ? WHERE id = ?`,
		cur.Count, ts(cur.LastSeen), cur.SeverityID, cur.Summary, encodeRefs(cur.Refs), cur.ID); err != nil {
		return false, err
	}
	*a = *cur
	return false, nil
}

// GetAlert returns one alert.
func (s *Store) GetAlert(ctx context.Context, id string) (*Alert, error) {
	a, err := scanAlert(s.queryRow(ctx, `SELECT `+alertCols+` FROM alerts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return a, err
}

// AlertFilter selects alerts. Zero fields do not filter.
type AlertFilter struct {
	Status   string
	DeviceID string
	// Scope limits to devices of these groups; nil means every device,
	// an empty list none.
	Scope []string
	// Limit bounds the answer; 0 means 100, at most 1000.
	Limit int
}

// ListAlerts returns alerts matching f, most recently seen first.
func (s *Store) ListAlerts(ctx context.Context, f AlertFilter) ([]*Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	var conds []string
	var args []any
	if f.Status != "" {
		conds = append(conds, `status = ?`)
		args = append(args, f.Status)
	}
	if f.DeviceID != "" {
		conds = append(conds, `device_id = ?`)
		args = append(args, f.DeviceID)
	}
	if f.Scope != nil {
		if len(f.Scope) == 0 {
			conds = append(conds, `1 = 0`)
		} else {
			conds = append(conds, `device_id IN (SELECT id FROM devices WHERE grp IN (?`+strings.Repeat(", ?", len(f.Scope)-1)+`))`)
			for _, g := range f.Scope {
				args = append(args, g)
			}
		}
	}
	where := ""
	if len(conds) > 0 {
		where = ` WHERE ` + strings.Join(conds, ` AND `)
	}
	rows, err := s.query(ctx, `SELECT `+alertCols+` FROM alerts`+where+` ORDER BY last_seen DESC, id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AckAlert acknowledges an open alert for by, and returns it with changed
// true. Acknowledging an acknowledged alert changes nothing; a resolved
// one is ErrConflict, an unknown one ErrNotFound. An acknowledged alert no
// longer absorbs new firings: the next one opens a new alert.
func (s *Store) AckAlert(ctx context.Context, id, by string, at time.Time) (a *Alert, changed bool, err error) {
	res, err := s.exec(ctx, `UPDATE alerts SET status = 'acknowledged', acked_by = ?, acked_at = ? WHERE id = ? AND status = 'open'`, by, ts(at), id)
	if err != nil {
		return nil, false, err
	}
	n, _ := res.RowsAffected()
	a, err = s.GetAlert(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if n == 0 && a.Status == AlertResolved {
		return a, false, ErrConflict
	}
	return a, n > 0, nil
}

// ResolveAlerts resolves the open and acknowledged alerts of a rule for a
// device (its state is back to normal) and returns how many.
func (s *Store) ResolveAlerts(ctx context.Context, rule, deviceID string, at time.Time) (int64, error) {
	res, err := s.exec(ctx, `UPDATE alerts SET status = 'resolved', resolved_at = ? WHERE rule = ? AND device_id = ? AND status IN ('open', 'acknowledged')`,
		ts(at), rule, deviceID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// AlertDelivery is a pending delivery of an alert to one sink.
type AlertDelivery struct {
	Alert    *Alert
	Sink     string
	Attempts int // failed attempts so far
}

// ClaimAlertDeliveries returns up to limit deliveries to sink that are due
// at now, oldest first, and leases them: they are not due again until
// now+lease, so a sender that dies mid-delivery has them retried then.
func (s *Store) ClaimAlertDeliveries(ctx context.Context, sink string, now time.Time, lease time.Duration, limit int) ([]AlertDelivery, error) {
	var out []AlertDelivery
	err := s.inTx(ctx, func(tx *Tx) error {
		out = out[:0]
		q := `SELECT d.attempts, ` + prefixCols("a.", alertCols) + ` FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
			WHERE d.sink = ? AND d.delivered_at = 0 AND d.next_at <= ? ORDER BY d.next_at, d.alert_id LIMIT ?`
		if s.dialect == Postgres {
			q += ` FOR UPDATE OF d SKIP LOCKED`
		}
		rows, err := tx.query(ctx, q, sink, ts(now), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var attempts int
			var a Alert
			var first, last, acked, resolved int64
			var refs string
			if err := rows.Scan(&attempts, &a.ID, &a.Rule, &a.SeverityID, &a.DeviceID, &a.DedupKey, &a.Summary, &first, &last, &a.Count, &a.Status,
				&a.AckedBy, &acked, &resolved, &refs); err != nil {
				rows.Close()
				return err
			}
			a.FirstSeen, a.LastSeen, a.AckedAt, a.ResolvedAt = fromTS(first), fromTS(last), fromTS(acked), fromTS(resolved)
			if err := json.Unmarshal([]byte(refs), &a.Refs); err != nil {
				rows.Close()
				return fmt.Errorf("store: alert %s refs: %w", a.ID, err)
			}
			out = append(out, AlertDelivery{Alert: &a, Sink: sink, Attempts: attempts})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range out {
			if _, err := tx.exec(ctx, `UPDATE alert_deliveries SET next_at = ? WHERE alert_id = ? AND sink = ?`, ts(now.Add(lease)), d.Alert.ID, sink); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func prefixCols(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// AlertDelivered records a delivery done.
func (s *Store) AlertDelivered(ctx context.Context, alertID, sink string, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE alert_deliveries SET delivered_at = ?, last_error = '' WHERE alert_id = ? AND sink = ?`, ts(at), alertID, sink)
	return err
}

// AlertDeliveryFailed records a failed attempt and when to try again.
func (s *Store) AlertDeliveryFailed(ctx context.Context, alertID, sink string, next time.Time, reason string) error {
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	_, err := s.exec(ctx, `UPDATE alert_deliveries SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE alert_id = ? AND sink = ?`,
		ts(next), reason, alertID, sink)
	return err
}

// AlertDeliveryState is where one alert's delivery to one sink stands.
type AlertDeliveryState struct {
	Sink        string
	Attempts    int
	NextAt      time.Time
	DeliveredAt time.Time
	LastError   string
}

// AlertDeliveries returns the delivery state of an alert, by sink.
func (s *Store) AlertDeliveries(ctx context.Context, alertID string) ([]AlertDeliveryState, error) {
	rows, err := s.query(ctx, `SELECT sink, attempts, next_at, delivered_at, last_error FROM alert_deliveries WHERE alert_id = ? ORDER BY sink`, alertID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AlertDeliveryState
	for rows.Next() {
		var d AlertDeliveryState
		var next, done int64
		if err := rows.Scan(&d.Sink, &d.Attempts, &next, &done, &d.LastError); err != nil {
			return nil, err
		}
		d.NextAt, d.DeliveredAt = fromTS(next), fromTS(done)
		out = append(out, d)
	}
	return out, rows.Err()
}

// AlertCursor returns the id of the last event of the device the rules
// have read (0 if none).
func (s *Store) AlertCursor(ctx context.Context, deviceID string) (int64, error) {
	var id int64
	err := s.queryRow(ctx, `SELECT last_event_id FROM alert_cursors WHERE device_id = ?`, deviceID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return id, err
}

// SetAlertCursor moves a device's alert cursor forward to eventID (never
// back).
func (s *Store) SetAlertCursor(ctx context.Context, deviceID string, eventID int64) error {
	_, err := s.exec(ctx, `INSERT INTO alert_cursors (device_id, last_event_id) VALUES (?, ?)
		ON CONFLICT (device_id) DO UPDATE SET last_event_id = excluded.last_event_id WHERE alert_cursors.last_event_id < excluded.last_event_id`,
		deviceID, eventID)
	return err
}

// DevicesWithUnreadEvents lists up to limit devices holding events past
// their alert cursor.
func (s *Store) DevicesWithUnreadEvents(ctx context.Context, limit int) ([]string, error) {
	rows, err := s.query(ctx, `SELECT h.device_id FROM event_heads h LEFT JOIN alert_cursors c ON c.device_id = h.device_id
		WHERE EXISTS (SELECT 1 FROM events e WHERE e.device_id = h.device_id AND e.id > COALESCE(c.last_event_id, 0))
		ORDER BY h.device_id LIMIT ?`, limit)
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

// PruneAlerts deletes resolved alerts resolved before cutoff whose
// deliveries are all done, and returns how many.
func (s *Store) PruneAlerts(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM alerts WHERE status = 'resolved' AND resolved_at < ?
		AND NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = alerts.id AND d.delivered_at = 0)`, ts(cutoff))
	if err != nil {
		return 0, fmt.Errorf("store: pruning alerts: %w", err)
	}
	return res.RowsAffected()
}
