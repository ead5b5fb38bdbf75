// Package storetest opens throwaway stores for tests: a SQLite file in a
// temporary directory, and a fresh PostgreSQL database when the DSN in
// BULWARK_TEST_POSTGRES is set (CI sets it; elsewhere the PostgreSQL cases
// skip with a printed reason).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/store"
)

// EnvPostgres names the environment variable holding the PostgreSQL DSN.
const EnvPostgres = "BULWARK_TEST_POSTGRES"

// Backends lists the backends every store test runs on.
var Backends = []store.Dialect{store.SQLite, store.Postgres}

// DSN returns a DSN for a fresh, empty database of the given dialect,
// dropped when the test ends. It skips the test when PostgreSQL is asked
// for and not configured.
func DSN(t testing.TB, d store.Dialect) string {
	t.Helper()
	if d == store.SQLite {
		return filepath.Join(t.TempDir(), "bulwark.db")
	}
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Skipf("PostgreSQL backend: %s is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)", EnvPostgres)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("opening %s: %v", EnvPostgres, err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "bulwark_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		a.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parsing %s: %v", EnvPostgres, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open opens a fresh store of the given dialect, closed when the test ends.
func Open(t testing.TB, d store.Dialect) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), DSN(t, d))
	if err != nil {
		t.Fatalf("opening %s store: %v", d, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Run runs f as a subtest on every backend.
func Run(t *testing.T, f func(t *testing.T, s *store.Store)) {
	for _, d := range Backends {
		t.Run(string(d), func(t *testing.T) {
			f(t, Open(t, d))
		})
	}
}
