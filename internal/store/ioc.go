package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IoCSource is a named set of indicators of compromise: an imported file
// (Interval zero) or a feed polled every Interval.
type IoCSource struct {
	Name string
	// Kind is how the indicators were read: stix, misp or list for files,
	// taxii or misp-feed for feeds.
	Kind       string
	URL        string // feeds: the TAXII API root or the MISP feed URL
	Collection string // TAXII: the collection id
	// Interval is the poll interval of a feed; zero for an imported file.
	Interval time.Duration
	// DefaultExpiry, if positive, is the lifetime given at import to
	// indicators that carry no expiry of their own.
	DefaultExpiry time.Duration
	// Version counts the replacements of the source's indicators.
	Version    int64
	Indicators int // stored (expired ones are pruned)
	Skipped    int // entries of the last import that carried no usable indicator
	CreatedAt  time.Time
	CreatedBy  string
	UpdatedAt  time.Time // last replacement of the indicators
	// Feeds: the last poll (successful or not), when the next is due,
	// consecutive failures and the last failure's message.
	LastPoll  time.Time
	NextPoll  time.Time
	Failures  int
	LastError string
}

// IsFeed reports whether the source is polled rather than imported.
func (s *IoCSource) IsFeed() bool { return s.Interval > 0 }

// IoCIndicator is one stored indicator, normalised as by internal/ioc.
type IoCIndicator struct {
	Source  string
	Type    string
	Value   string
	Ref     string
	Expires time.Time // zero: never
}

const iocSourceCols = `name, kind, url, collection, poll_interval, default_expiry, version, indicators, skipped,
	created_at, created_by, updated_at, last_poll, next_poll, failures, last_error`

func scanIoCSource(sc interface{ Scan(...any) error }) (*IoCSource, error) {
	var s IoCSource
	var interval, expiry, created, updated, lastPoll, nextPoll int64
	if err := sc.Scan(&s.Name, &s.Kind, &s.URL, &s.Collection, &interval, &expiry, &s.Version, &s.Indicators, &s.Skipped,
		&created, &s.CreatedBy, &updated, &lastPoll, &nextPoll, &s.Failures, &s.LastError); err != nil {
		return nil, err
	}
	s.Interval, s.DefaultExpiry = time.Duration(interval)*time.Second, time.Duration(expiry)*time.Second
	s.CreatedAt, s.UpdatedAt, s.LastPoll, s.NextPoll = fromTS(created), fromTS(updated), fromTS(lastPoll), fromTS(nextPoll)
	return &s, nil
}

// IoCSources returns every source, by name.
func (s *Store) IoCSources(ctx context.Context) ([]*IoCSource, error) {
	rows, err := s.query(ctx, `SELECT `+iocSourceCols+` FROM ioc_sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: listing IoC sources: %w", err)
	}
	defer rows.Close()
	var out []*IoCSource
	for rows.Next() {
		src, err := scanIoCSource(rows)
		if err != nil {
			return nil, fmt.Errorf("store: listing IoC sources: %w", err)
		}
		out = append(out, src)
	}
	return out, rows.Err()
}

// GetIoCSource returns the named source, or ErrNotFound.
func (s *Store) GetIoCSource(ctx context.Context, name string) (*IoCSource, error) {
	src, err := scanIoCSource(s.queryRow(ctx, `SELECT `+iocSourceCols+` FROM ioc_sources WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return src, err
}

// CreateIoCFeed adds a feed source (src.Interval must be positive) with no
// indicators, due for its first poll at src.NextPoll. A source of the same
// name is ErrConflict.
func (s *Store) CreateIoCFeed(ctx context.Context, src *IoCSource) error {
	if !src.IsFeed() {
		return errors.New("store: a feed needs a poll interval")
	}
	_, err := s.exec(ctx, `INSERT INTO ioc_sources (name, kind, url, collection, poll_interval, default_expiry, created_at, created_by, next_poll)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, src.Name, src.Kind, src.URL, src.Collection, int64(src.Interval/time.Second),
		int64(src.DefaultExpiry/time.Second), ts(src.CreatedAt), src.CreatedBy, ts(src.NextPoll))
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("store: creating IoC feed: %w", err)
	}
	return nil
}

// iocChunk indicators go in one INSERT statement (5 parameters each).
const iocChunk = 500

func insertIoCSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO ioc_indicators (source, type, value, ref, expires) VALUES `)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?)")
	}
	return b.String()
}

// ReplaceIoCIndicators sets the indicators of the source src.Name to inds
// in one transaction, creating the source if it does not exist (from
// src's Kind, URL, Collection, Interval, DefaultExpiry, CreatedAt,
// CreatedBy) and otherwise updating its Kind, DefaultExpiry (files only)
// and counts. Its version goes up by one, UpdatedAt becomes src.UpdatedAt
// and, for a feed, LastPoll src.UpdatedAt and NextPoll src.NextPoll with
// the failures cleared. Replacing the indicators of a feed by an import,
// or of an imported file by a poll, is ErrConflict; so is a poll of a
// feed deleted meanwhile (ErrNotFound). On return src holds the stored
// source.
func (s *Store) ReplaceIoCIndicators(ctx context.Context, src *IoCSource, skipped int, inds []IoCIndicator) error {
	s.prepareWrites(ctx, insertIoCSQL(iocChunk))
	var out *IoCSource
	err := s.inTx(ctx, func(tx *Tx) error {
		q := `SELECT ` + iocSourceCols + ` FROM ioc_sources WHERE name = ?`
		if s.dialect == Postgres {
			q += ` FOR UPDATE`
		}
		cur, err := scanIoCSource(tx.queryRow(ctx, q, src.Name))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if src.IsFeed() {
				return ErrNotFound
			}
			if _, err := tx.exec(ctx, `INSERT INTO ioc_sources (name, kind, default_expiry, created_at, created_by) VALUES (?, ?, ?, ?, ?)`,
				src.Name, src.Kind, int64(src.DefaultExpiry/time.Second), ts(src.CreatedAt), src.CreatedBy); err != nil {
				if isUniqueViolation(err) {
					return ErrConflict // created concurrently: let the caller retry
				}
				return err
			}
			cur = &IoCSource{Name: src.Name, Kind: src.Kind, DefaultExpiry: src.DefaultExpiry, CreatedAt: src.CreatedAt, CreatedBy: src.CreatedBy}
		case err != nil:
			return err
		case cur.IsFeed() != src.IsFeed():
			return ErrConflict
		}
		if _, err := tx.exec(ctx, `DELETE FROM ioc_indicators WHERE source = ?`, src.Name); err != nil {
			return err
		}
		args := make([]any, 0, 5*iocChunk)
		for rest := inds; len(rest) > 0; {
			n := min(len(rest), iocChunk)
			args = args[:0]
			for _, in := range rest[:n] {
				args = append(args, src.Name, in.Type, in.Value, in.Ref, ts(in.Expires))
			}
			if n == iocChunk {
				_, err = tx.exec(ctx, insertIoCSQL(n), args...)
			} else {
				_, err = tx.tx.ExecContext(ctx, s.rebind(insertIoCSQL(n)), args...)
			}
			if err != nil {
				return fmt.Errorf("inserting indicators: %w", err)
			}
			rest = rest[n:]
		}
		cur.Version++
		cur.Indicators, cur.Skipped, cur.UpdatedAt = len(inds), skipped, src.UpdatedAt
		if cur.IsFeed() {
			cur.LastPoll, cur.NextPoll, cur.Failures, cur.LastError = src.UpdatedAt, src.NextPoll, 0, ""
		} else {
			cur.Kind, cur.DefaultExpiry = src.Kind, src.DefaultExpiry
		}
		_, err = tx.exec(ctx, `UPDATE ioc_sources SET kind = ?, default_expiry = ?, version = ?, indicators = ?, skipped = ?, updated_at = ?,
			last_poll = ?, next_poll = ?, failures = ?, last_error = ? WHERE name = ?`,
			cur.Kind, int64(cur.DefaultExpiry/time.Second), cur.Version, cur.Indicators, cur.Skipped, ts(cur.UpdatedAt),
			ts(cur.LastPoll), ts(cur.NextPoll), cur.Failures, cur.LastError, cur.Name)
		out = cur
		return err
	})
	if err != nil {
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("store: replacing indicators of %q: %w", src.Name, err)
	}
	*src = *out
	return nil
}

// ClaimIoCPoll takes the poll of a due feed: it moves the feed's next poll
// to leaseUntil if it is at or before now, so that of several servers
// sharing a store one polls. It reports whether the claim succeeded.
func (s *Store) ClaimIoCPoll(ctx context.Context, name string, now, leaseUntil time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE ioc_sources SET next_poll = ? WHERE name = ? AND poll_interval > 0 AND next_poll <= ?`,
		ts(leaseUntil), name, ts(now))
	if err != nil {
		return false, fmt.Errorf("store: claiming IoC poll: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// RecordIoCPollFailure notes a failed poll of a feed: one more consecutive
// failure, the message, and when to try again. The indicators are kept.
func (s *Store) RecordIoCPollFailure(ctx context.Context, name string, at, next time.Time, msg string) error {
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	_, err := s.exec(ctx, `UPDATE ioc_sources SET failures = failures + 1, last_error = ?, last_poll = ?, next_poll = ? WHERE name = ?`,
		msg, ts(at), ts(next), name)
	if err != nil {
		return fmt.Errorf("store: recording IoC poll failure: %w", err)
	}
	return nil
}

// DueIoCFeeds returns the feeds whose next poll is at or before now.
func (s *Store) DueIoCFeeds(ctx context.Context, now time.Time) ([]*IoCSource, error) {
	rows, err := s.query(ctx, `SELECT `+iocSourceCols+` FROM ioc_sources WHERE poll_interval > 0 AND next_poll <= ? ORDER BY next_poll, name`, ts(now))
	if err != nil {
		return nil, fmt.Errorf("store: listing due IoC feeds: %w", err)
	}
	defer rows.Close()
	var out []*IoCSource
	for rows.Next() {
		src, err := scanIoCSource(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, rows.Err()
}

// DeleteIoCSource deletes a source and its indicators (ErrNotFound if
// there is none).
func (s *Store) DeleteIoCSource(ctx context.Context, name string) error {
	var n int64
	err := s.inTx(ctx, func(tx *Tx) error {
		if _, err := tx.exec(ctx, `DELETE FROM ioc_indicators WHERE source = ?`, name); err != nil {
			return err
		}
		res, err := tx.exec(ctx, `DELETE FROM ioc_sources WHERE name = ?`, name)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("store: deleting IoC source: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// IoCIndicators returns the indicators of source (every source when
// empty), ordered by source, type and value; limit > 0 bounds how many.
func (s *Store) IoCIndicators(ctx context.Context, source string, limit int) ([]IoCIndicator, error) {
	q := `SELECT source, type, value, ref, expires FROM ioc_indicators`
	var args []any
	if source != "" {
		q += ` WHERE source = ?`
		args = append(args, source)
	}
	q += ` ORDER BY source, type, value, ref`
	if limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, limit)
	}
	rows, err := s.r.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: listing indicators: %w", err)
	}
	defer rows.Close()
	var out []IoCIndicator
	for rows.Next() {
		var in IoCIndicator
		var exp int64
		if err := rows.Scan(&in.Source, &in.Type, &in.Value, &in.Ref, &exp); err != nil {
			return nil, fmt.Errorf("store: listing indicators: %w", err)
		}
		in.Expires = fromTS(exp)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: listing indicators: %w", err)
	}
	return out, nil
}

// PruneExpiredIoC deletes indicators expired at now and recounts their
// sources. Versions do not change: expired indicators match nothing.
func (s *Store) PruneExpiredIoC(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *Tx) error {
		rows, err := tx.query(ctx, `SELECT DISTINCT source FROM ioc_indicators WHERE expires > 0 AND expires <= ?`, ts(now))
		if err != nil {
			return err
		}
		var sources []string
		for rows.Next() {
			var src string
			if err := rows.Scan(&src); err != nil {
				rows.Close()
				return err
			}
			sources = append(sources, src)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(sources) == 0 {
			return err
		}
		res, err := tx.exec(ctx, `DELETE FROM ioc_indicators WHERE expires > 0 AND expires <= ?`, ts(now))
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		for _, src := range sources {
			if _, err := tx.exec(ctx, `UPDATE ioc_sources SET indicators = (SELECT COUNT(*) FROM ioc_indicators WHERE source = ?) WHERE name = ?`, src, src); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: pruning expired indicators: %w", err)
	}
	return n, nil
}

// AddServerEvents stores events the server raises about devices (Source
// EventFromServer, seq 0) in one transaction, such as indicator hits.
func (s *Store) AddServerEvents(ctx context.Context, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	for i := range evs {
		evs[i].Source, evs[i].Seq = EventFromServer, 0
	}
	return s.inTx(ctx, func(tx *Tx) error {
		if err := tx.lockEventInserts(ctx); err != nil {
			return err
		}
		return tx.insertEvents(ctx, evs)
	})
}
