package store

import (
	"context"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// AppendAudit appends e to the hash-chained audit log, filling in Seq,
// PrevHash and Hash. The chain head is a single row updated in the same
// transaction, which serialises appends even across server processes
// sharing one PostgreSQL.
func (s *Store) AppendAudit(ctx context.Context, e *api.AuditEntry) error {
	return s.inTx(ctx, func(tx *Tx) error {
		var seq int64
		var prev string
		q := `SELECT seq, hash FROM audit_head WHERE id = 1`
		if s.dialect == Postgres {
			q += ` FOR UPDATE`
		}
		if err := tx.queryRow(ctx, q).Scan(&seq, &prev); err != nil {
			return err
		}
		e.Seq, e.PrevHash = seq+1, prev
		e.Time = e.Time.UTC().Truncate(1000) // stored in microseconds
		e.Hash = api.AuditHash(*e)
		if _, err := tx.exec(ctx, `INSERT INTO audit_log (seq, ts, actor, action, target, detail, remote, outcome, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, ts(e.Time), e.Actor, e.Action, e.Target, e.Detail, e.Remote, e.Outcome, e.PrevHash, e.Hash); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, e.Seq, e.Hash)
		return err
	})
}

// AuditHead returns the sequence number and hash of the last entry.
func (s *Store) AuditHead(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := s.queryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash)
	return seq, hash, err
}

// ListAudit returns up to limit entries with Seq > after in order. When
// target is set only entries about that target are returned.
func (s *Store) ListAudit(ctx context.Context, after int64, limit int, target string) ([]api.AuditEntry, error) {
	q := `SELECT seq, ts, actor, action, target, detail, remote, outcome, prev_hash, hash FROM audit_log WHERE seq > ?`
	args := []any{after}
	if target != "" {
		q += ` AND target = ?`
		args = append(args, target)
	}
	q += ` ORDER BY seq LIMIT ?`
	rows, err := s.query(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.AuditEntry
	for rows.Next() {
		var e api.AuditEntry
		var t int64
		if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Remote, &e.Outcome, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.Time = fromTS(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// RecentAudit returns the newest entries about target (all when empty),
// newest first.
func (s *Store) RecentAudit(ctx context.Context, target string, limit int) ([]api.AuditEntry, error) {
	q := `SELECT seq, ts, actor, action, target, detail, remote, outcome, prev_hash, hash FROM audit_log`
	var args []any
	if target != "" {
		q += ` WHERE target = ?`
		args = append(args, target)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	rows, err := s.query(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.AuditEntry
	for rows.Next() {
		var e api.AuditEntry
		var t int64
		if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Remote, &e.Outcome, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.Time = fromTS(t)
		out = append(out, e)
	}
	return out, rows.Err()
}
