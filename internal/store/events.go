package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Event sources.
const (
	EventFromDevice = "device" // forwarded from the device's journal
	EventFromServer = "server" // raised by the server about the device
)

// Event is a stored security event. Data is the event envelope (JSON) as
// the device sent it, without server_time; ServerTime is the receipt time.
type Event struct {
	ID         int64
	DeviceID   string
	Seq        uint64 // journal seq; 0 for server events
	Source     string
	Type       string
	SeverityID int
	DeviceTime time.Time
	ServerTime time.Time
	PrevHash   string
	Hash       string
	Data       []byte
}

// EventHead is the stored head of a device's journal chain and the newest
// verified signed checkpoint.
type EventHead struct {
	DeviceID       string
	LastSeq        uint64
	LastHash       string
	CheckpointSeq  uint64
	CheckpointHash string
	CheckpointTime time.Time
}

// EventIngest is what IngestEvents's check function decides inside the
// transaction: the events to insert (device records and server events, in
// order) and the new head.
type EventIngest struct {
	Insert []Event
	Head   EventHead
}

// IngestEvents stores a batch of a device's events in one transaction.
// check runs inside it with the device's current head (LastSeq 0 when it
// has none) and the stored hashes of the journal seqs in [lo, hi] that the
// store already holds (for resent records), and returns what to insert
// and the new head; an error from check rolls everything back. Events whose
// (device, seq) the store holds already are skipped, never duplicated.
// Concurrent batches of one device are serialised by the head row.
func (s *Store) IngestEvents(ctx context.Context, deviceID string, lo, hi uint64, now time.Time,
	check func(head EventHead, known map[uint64]string) (EventIngest, error)) error {
	s.prepareWrites(ctx, insertEventsChunkSQL, qEnsureHead, qReadHead, qWriteHead, qKnownHashes)
	return s.inTx(ctx, func(tx *Tx) error {
		if _, err := tx.exec(ctx, qEnsureHead, deviceID); err != nil {
			return err
		}
		if err := tx.lockEventInserts(ctx); err != nil {
			return err
		}
		q := qReadHead
		if s.dialect == Postgres {
			q += ` FOR UPDATE`
		}
		head := EventHead{DeviceID: deviceID}
		var cpTime int64
		var lastSeq, cpSeq int64
		if err := tx.queryRowStmt(ctx, q, deviceID).Scan(&lastSeq, &head.LastHash, &cpSeq, &head.CheckpointHash, &cpTime); err != nil {
			return err
		}
		head.LastSeq, head.CheckpointSeq, head.CheckpointTime = uint64(lastSeq), uint64(cpSeq), fromTS(cpTime)
		known := map[uint64]string{}
		if lo <= head.LastSeq && lo > 0 {
			rows, err := tx.queryStmt(ctx, qKnownHashes, deviceID, int64(lo), int64(min(hi, head.LastSeq)))
			if err != nil {
				return err
			}
			for rows.Next() {
				var seq int64
				var h string
				if err := rows.Scan(&seq, &h); err != nil {
					rows.Close()
					return err
				}
				known[uint64(seq)] = h
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		res, err := check(head, known)
		if err != nil {
			return err
		}
		if err := tx.insertEvents(ctx, res.Insert); err != nil {
			return err
		}
		h := res.Head
		_, err = tx.exec(ctx, qWriteHead, int64(h.LastSeq), h.LastHash, int64(h.CheckpointSeq), h.CheckpointHash, ts(h.CheckpointTime), ts(now), deviceID)
		return err
	})
}

// eventInsertLockKey is the PostgreSQL advisory lock that serialises the
// transactions inserting events (lockEventInserts).
const eventInsertLockKey int64 = 0x42756c7761726b01

// lockEventInserts makes the transaction the only one inserting events
// until it ends, on PostgreSQL (SQLite has one writer anyway). Event ids
// then become visible in increasing order: the alerter and the SIEM
// forwarders read new events by id cursor, and without it an id committed
// after a higher one (two batches committing out of order, or on two
// server replicas) would be passed over by them for good.
func (t *Tx) lockEventInserts(ctx context.Context) error {
	if t.s.dialect != Postgres {
		return nil
	}
	_, err := t.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, eventInsertLockKey)
	return err
}

const (
	qEnsureHead    = `INSERT INTO event_heads (device_id) VALUES (?) ON CONFLICT (device_id) DO NOTHING`
	qReadHead      = `SELECT last_seq, last_hash, checkpoint_seq, checkpoint_hash, checkpoint_time FROM event_heads WHERE device_id = ?`
	qWriteHead     = `UPDATE event_heads SET last_seq = ?, last_hash = ?, checkpoint_seq = ?, checkpoint_hash = ?, checkpoint_time = ?, updated_at = ? WHERE device_id = ?`
	qKnownHashes   = `SELECT seq, hash FROM events WHERE device_id = ? AND seq >= ? AND seq <= ? AND seq > 0`
	eventCols      = `id, device_id, seq, source, type, severity_id, device_time, server_time, prev_hash, hash, data`
	eventInsertCol = `device_id, seq, source, type, severity_id, device_time, server_time, prev_hash, hash, data`
	// eventChunk rows go in one INSERT statement (10 parameters each).
	eventChunk = 100
)

// insertEventsChunkSQL inserts eventChunk rows.
var insertEventsChunkSQL = insertEventsSQL(eventChunk)

func insertEventsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO events (` + eventInsertCol + `) VALUES `)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT DO NOTHING`)
	return b.String()
}

// insertEvents inserts evs with multi-row INSERTs: full chunks through a
// prepared statement, the rest unprepared.
func (t *Tx) insertEvents(ctx context.Context, evs []Event) error {
	args := make([]any, 0, 10*eventChunk)
	for len(evs) > 0 {
		n := min(len(evs), eventChunk)
		args = args[:0]
		for _, e := range evs[:n] {
			args = append(args, e.DeviceID, int64(e.Seq), e.Source, e.Type, e.SeverityID, ts(e.DeviceTime), ts(e.ServerTime), e.PrevHash, e.Hash, string(e.Data))
		}
		var err error
		if n == eventChunk {
			_, err = t.exec(ctx, insertEventsChunkSQL, args...)
		} else {
			_, err = t.tx.ExecContext(ctx, t.s.rebind(insertEventsSQL(n)), args...)
		}
		if err != nil {
			return fmt.Errorf("store: inserting events: %w", err)
		}
		evs = evs[n:]
	}
	return nil
}

// queryRowStmt and queryStmt use a cached prepared statement when there is
// one (see prepareWrites).
func (t *Tx) queryRowStmt(ctx context.Context, q string, args ...any) *sql.Row {
	q = t.s.rebind(q)
	if st := t.s.stmt(ctx, t.s.w, q, false); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t *Tx) queryStmt(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = t.s.rebind(q)
	if st := t.s.stmt(ctx, t.s.w, q, false); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

// GetEventHead returns a device's chain head (ErrNotFound before its
// first batch).
func (s *Store) GetEventHead(ctx context.Context, deviceID string) (EventHead, error) {
	h := EventHead{DeviceID: deviceID}
	var lastSeq, cpSeq, cpTime int64
	err := s.queryRow(ctx, qReadHead, deviceID).Scan(&lastSeq, &h.LastHash, &cpSeq, &h.CheckpointHash, &cpTime)
	if errors.Is(err, sql.ErrNoRows) {
		return h, ErrNotFound
	}
	h.LastSeq, h.CheckpointSeq, h.CheckpointTime = uint64(lastSeq), uint64(cpSeq), fromTS(cpTime)
	return h, err
}

// EventFilter selects events. Zero fields do not filter.
type EventFilter struct {
	DeviceID string
	Group    string
	// Scope limits to devices of these groups; nil means every device,
	// an empty list none.
	Scope []string
	Type  string
	// Types, when set, limits to events of these types.
	Types       []string
	MinSeverity int // severity_id at least this
	// Since and Until bound the server receipt time: Since <= t < Until.
	Since, Until time.Time
	// Before returns events with ID < Before (newest-first paging);
	// After events with ID > After, oldest first.
	Before, After int64
	// AtMost, when above zero, returns events with ID <= AtMost.
	AtMost int64
	// Ascending orders by ID ascending (export); the default is newest
	// first.
	Ascending bool
	// Limit bounds the page; 0 means 100, at most 5000.
	Limit int
}

func (f *EventFilter) where() (string, []any) {
	var conds []string
	var args []any
	if f.DeviceID != "" {
		conds = append(conds, `device_id = ?`)
		args = append(args, f.DeviceID)
	}
	if f.Group != "" {
		conds = append(conds, `device_id IN (SELECT id FROM devices WHERE grp = ?)`)
		args = append(args, f.Group)
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
	if f.Type != "" {
		conds = append(conds, `type = ?`)
		args = append(args, f.Type)
	}
	if len(f.Types) > 0 {
		conds = append(conds, `type IN (?`+strings.Repeat(", ?", len(f.Types)-1)+`)`)
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	if f.MinSeverity > 0 {
		conds = append(conds, `severity_id >= ?`)
		args = append(args, f.MinSeverity)
	}
	if !f.Since.IsZero() {
		conds = append(conds, `server_time >= ?`)
		args = append(args, ts(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, `server_time < ?`)
		args = append(args, ts(f.Until))
	}
	if f.Before > 0 {
		conds = append(conds, `id < ?`)
		args = append(args, f.Before)
	}
	if f.After > 0 {
		conds = append(conds, `id > ?`)
		args = append(args, f.After)
	}
	if f.AtMost > 0 {
		conds = append(conds, `id <= ?`)
		args = append(args, f.AtMost)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// MaxEventID returns the highest event id stored (0 when none). On
// PostgreSQL every lower id is committed too (lockEventInserts).
func (s *Store) MaxEventID(ctx context.Context) (int64, error) {
	var id int64
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&id)
	return id, err
}

// ListEvents returns one page of events matching f.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 5000)
	where, args := f.where()
	order := ` ORDER BY id DESC`
	if f.Ascending {
		order = ` ORDER BY id`
	}
	rows, err := s.query(ctx, `SELECT `+eventCols+` FROM events`+where+order+` LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var seq, dt, st int64
		var data string
		if err := rows.Scan(&e.ID, &e.DeviceID, &seq, &e.Source, &e.Type, &e.SeverityID, &dt, &st, &e.PrevHash, &e.Hash, &data); err != nil {
			return nil, err
		}
		e.Seq, e.DeviceTime, e.ServerTime, e.Data = uint64(seq), fromTS(dt), fromTS(st), []byte(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PruneEvents deletes events received before cutoff, in chunks so that
// writers are not held up, and returns how many it deleted. The chain
// heads stay: a device's next batch still links to them.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.exec(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE server_time < ? ORDER BY server_time LIMIT 5000)`, ts(cutoff))
		if err != nil {
			return total, fmt.Errorf("store: pruning events: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < 5000 || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
