package store

import (
	"context"
	"strings"
	"time"
)

// Command is an instruction queued for a device.
type Command struct {
	ID          string
	DeviceID    string
	Kind        string
	Payload     string
	Status      string // queued, delivered, done, failed, cancelled
	Detail      string
	CreatedAt   time.Time
	CreatedBy   string
	DeliveredAt time.Time
	AckedAt     time.Time
}

// CreateCommand queues a command for an active device.
func (s *Store) CreateCommand(ctx context.Context, c *Command) error {
	res, err := s.exec(ctx, `INSERT INTO commands (id, device_id, kind, payload, status, created_at, created_by)
		SELECT ?, id, ?, ?, 'queued', ?, ? FROM devices WHERE id = ? AND status = 'active'`,
		c.ID, c.Kind, c.Payload, ts(c.CreatedAt), c.CreatedBy, c.DeviceID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	c.Status = "queued"
	return nil
}

const commandCols = `id, device_id, kind, payload, status, detail, created_at, created_by, delivered_at, acked_at`

func (s *Store) listCommands(ctx context.Context, q string, args ...any) ([]*Command, error) {
	rows, err := s.query(ctx, `SELECT `+commandCols+` FROM commands WHERE `+q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Command
	for rows.Next() {
		var c Command
		var created, delivered, acked int64
		if err := rows.Scan(&c.ID, &c.DeviceID, &c.Kind, &c.Payload, &c.Status, &c.Detail, &created, &c.CreatedBy, &delivered, &acked); err != nil {
			return nil, err
		}
		c.CreatedAt, c.DeliveredAt, c.AckedAt = fromTS(created), fromTS(delivered), fromTS(acked)
		out = append(out, &c)
	}
	return out, rows.Err()
}

// OpenCommands returns a device's commands not yet acknowledged, oldest
// first. A delivered command is sent again until acknowledged.
func (s *Store) OpenCommands(ctx context.Context, deviceID string, limit int) ([]*Command, error) {
	return s.listCommands(ctx, `device_id = ? AND status IN ('queued', 'delivered') ORDER BY created_at, id LIMIT ?`, deviceID, limit)
}

// DeviceCommands returns a device's most recent commands, newest first.
func (s *Store) DeviceCommands(ctx context.Context, deviceID string, limit int) ([]*Command, error) {
	return s.listCommands(ctx, `device_id = ? ORDER BY created_at DESC, id LIMIT ?`, deviceID, limit)
}

// MarkDelivered records that queued commands were handed to their device.
func (s *Store) MarkDelivered(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{ts(at)}
	for _, id := range ids {
		args = append(args, id)
	}
	_, err := s.exec(ctx, `UPDATE commands SET status = 'delivered', delivered_at = ? WHERE status = 'queued' AND id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...)
	return err
}
