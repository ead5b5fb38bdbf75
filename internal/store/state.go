package store

import (
	"context"
	"database/sql"
	"errors"
)

// GetState returns a server state value (CA certificate, sealed keys, …).
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.queryRow(ctx, `SELECT value FROM server_state WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return v, err
}

// PutStateIfAbsent stores value under key unless a value is already there;
// it reports whether it stored. Servers racing on first start all end up
// using the first value written.
func (s *Store) PutStateIfAbsent(ctx context.Context, key string, value []byte) (bool, error) {
	res, err := s.exec(ctx, `INSERT INTO server_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// PutState stores or replaces a server state value.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	_, err := s.exec(ctx, `INSERT INTO server_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}
