// Package store keeps all of Bulwark's server state in SQL: SQLite (the
// embedded default, modernc.org/sqlite in WAL mode) or PostgreSQL (pgx).
// Both backends share one set of queries and versioned, embedded
// migrations; the store tests run every case against both.
//
// A *Store is safe for concurrent use. On SQLite all writes go through one
// connection and reads through a pool, so writers never contend.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite"
)

//go:embed migrations
var migrations embed.FS

// Dialect names a SQL backend.
type Dialect string

// Supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Errors the store returns for states callers act on.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Store is the server's state.
type Store struct {
	dialect Dialect
	w       *sql.DB // writes (one connection on SQLite)
	r       *sql.DB // reads

	// SQLite only: the background checkpointer.
	ckpt     *sql.DB
	stopCkpt chan struct{}
	ckptDone chan struct{}
	closeMu  sync.Once

	// Prepared statements by query text, per handle: parsing SQL is a
	// large share of a check-in's cost otherwise.
	stmtMu sync.Mutex
	stmts  map[stmtKey]*sql.Stmt
}

type stmtKey struct {
	db *sql.DB
	q  string
}

// maxStmts bounds the statement cache; queries past it run unprepared.
const maxStmts = 512

// stmt returns a prepared statement for q on db, or nil when it cannot be
// cached (the caller then runs q directly). Only a lookup is done when
// prepare is false: inside a transaction on SQLite the one writer
// connection is taken, so preparing on the pool would wait forever.
func (s *Store) stmt(ctx context.Context, db *sql.DB, q string, prepare ...bool) *sql.Stmt {
	k := stmtKey{db, q}
	s.stmtMu.Lock()
	st, ok := s.stmts[k]
	full := len(s.stmts) >= maxStmts
	s.stmtMu.Unlock()
	if ok {
		return st
	}
	if len(prepare) > 0 && !prepare[0] || full {
		return nil
	}
	// Prepare without holding the lock: on SQLite this may wait for the
	// writer connection, held by a transaction that needs the lock.
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if prev, ok := s.stmts[k]; ok {
		st.Close()
		return prev
	}
	if s.stmts == nil {
		s.stmts = map[stmtKey]*sql.Stmt{}
	}
	s.stmts[k] = st
	return st
}

// Open opens (creating if needed) the store named by dsn and applies any
// pending migrations. A dsn starting with postgres:// or postgresql://
// selects PostgreSQL; anything else is a SQLite file path (optionally
// prefixed with sqlite://).
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: opening PostgreSQL: %w", err)
		}
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(32)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s := &Store{dialect: Postgres, w: db, r: db}
		if err := s.init(ctx); err != nil {
			db.Close()
			return nil, err
		}
		return s, nil
	}
	path := strings.TrimPrefix(dsn, "sqlite://")
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	// The database holds credentials' hashes and sealed keys: owner only.
	// SQLite gives its -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	q := url.Values{}
	// Checkpoints run in the background (see checkpointLoop), not in the
	// commit of whichever check-in batch crosses the threshold.
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)", "wal_autocheckpoint(0)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	base := "file:" + filepath.ToSlash(path) + "?"
	w, err := sql.Open("sqlite", base+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: opening SQLite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	rq := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "query_only(1)"} {
		rq.Add("_pragma", p)
	}
	r, err := sql.Open("sqlite", base+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: opening SQLite: %w", err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	ck, err := sql.Open("sqlite", base+"_pragma=busy_timeout(10000)")
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("store: opening SQLite: %w", err)
	}
	ck.SetMaxOpenConns(1)
	s := &Store{dialect: SQLite, w: w, r: r, ckpt: ck, stopCkpt: make(chan struct{}), ckptDone: make(chan struct{})}
	if err := s.init(ctx); err != nil {
		close(s.ckptDone)
		s.Close()
		return nil, err
	}
	go s.checkpointLoop()
	return s, nil
}

// checkpointLoop copies the SQLite WAL back into the database every
// second on its own connection. PASSIVE checkpoints never block writers,
// so check-in commits do not stall behind them.
func (s *Store) checkpointLoop() {
	defer close(s.ckptDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stopCkpt:
			s.ckpt.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
			return
		case <-t.C:
			// PASSIVE copies what it can without blocking anyone. With
			// readers always active the WAL never wraps by itself, so
			// once PASSIVE has copied everything and the WAL passes
			// ~32 MB, a RESTART (which then only waits for the readers of
			// the moment) resets it.
			var busy, logFrames, done int
			err := s.ckpt.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &done)
			if err == nil && logFrames > 8192 && done == logFrames {
				s.ckpt.Exec(`PRAGMA wal_checkpoint(RESTART)`)
			}
		}
	}
}

// Dialect reports the backend in use.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the database handles.
func (s *Store) Close() error {
	var ckErr error
	if s.ckpt != nil {
		s.closeMu.Do(func() {
			close(s.stopCkpt)
			<-s.ckptDone
			ckErr = s.ckpt.Close()
		})
	}
	s.stmtMu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.stmtMu.Unlock()
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return errors.Join(err, ckErr)
}

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error { return s.w.PingContext(ctx) }

func (s *Store) init(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: connecting to %s: %w", s.dialect, err)
	}
	return s.migrate(ctx)
}

// migrate applies the embedded migrations of the store's dialect in order,
// each in its own transaction, recording versions in schema_migrations.
// On PostgreSQL an advisory lock keeps concurrent servers from racing.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()
	if s.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7411)`); err != nil {
			return fmt.Errorf("store: migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(7411)`)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	dir := "migrations/" + string(s.dialect)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	// Apply every migration not yet recorded (not just those above the
	// highest): migrations written on parallel branches may land out of
	// order.
	applied := map[int64]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("store: migrate: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("store: migrate: bad migration name %q", e.Name())
		}
		if applied[v] {
			continue
		}
		body, err := fs.ReadFile(migrations, dir+"/"+e.Name())
		if err != nil {
			return err
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: migrate %s: %w", e.Name(), err)
		}
		for _, stmt := range splitSQL(string(body)) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("store: migrate %s: %w", e.Name(), err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), v, time.Now().Unix()); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migrate %s: %w", e.Name(), err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migrate %s: %w", e.Name(), err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// splitSQL splits a migration into statements at semicolons outside
// quotes, dropping -- comments (which may contain semicolons).
func splitSQL(body string) []string {
	var out []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case inQuote:
			cur.WriteByte(c)
			if c == '\'' {
				inQuote = false
			}
		case c == '\'':
			inQuote = true
			cur.WriteByte(c)
		case c == '-' && i+1 < len(body) && body[i+1] == '-':
			for i < len(body) && body[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case c == ';':
			if strings.TrimSpace(cur.String()) != "" {
				out = append(out, cur.String())
			}
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// rebind turns ? placeholders into $1, $2, … for PostgreSQL.
func (s *Store) rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Tx is a transaction over the store's queries.
type Tx struct {
	s  *Store
	tx *sql.Tx
}

func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	q = t.s.rebind(q)
	if st := t.s.stmt(ctx, t.s.w, q, false); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.rebind(q), args...)
}

func (t *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.rebind(q), args...)
}

// prepareWrites caches statements that transactions will run, which must
// be prepared before the transaction takes the writer connection.
func (s *Store) prepareWrites(ctx context.Context, qs ...string) {
	for _, q := range qs {
		s.stmt(ctx, s.w, s.rebind(q))
	}
}

// inTx runs f in a write transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, f func(*Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(&Tx{s: s, tx: tx}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	q = s.rebind(q)
	if st := s.stmt(ctx, s.w, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.w.ExecContext(ctx, q, args...)
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	q = s.rebind(q)
	if st := s.stmt(ctx, s.r, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, q, args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = s.rebind(q)
	if st := s.stmt(ctx, s.r, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, q, args...)
}

// isUniqueViolation reports whether err is a unique-constraint failure.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505") || strings.Contains(msg, "constraint failed: PRIMARY KEY")
}

// Time values are stored as Unix microseconds; zero means unset.
func ts(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromTS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
