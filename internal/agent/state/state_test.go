package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func TestEnsureDirMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, want 0700", fi.Mode().Perm())
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("Load of empty dir: %v, want ErrNotEnrolled", err)
	}
	want := State{DeviceID: "dev-1", Server: "https://s", EnrolledAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), KeyAssurance: "software", CheckinInterval: 30}
	if err := WriteFile(filepath.Join(dir, StateFile), want.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if *got != want {
		t.Errorf("Load = %+v, want %+v", *got, want)
	}
	fi, _ := os.Stat(filepath.Join(dir, StateFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v", fi.Mode().Perm())
	}
	// No temporary files are left behind.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("dir holds %d entries, want 1", len(ents))
	}
}

func TestLoadRejectsBadState(t *testing.T) {
	for name, body := range map[string]string{
		"garbage":       "not json",
		"unknown field": `{"device_id":"d","server":"https://s","extra":1}`,
		"no device id":  `{"server":"https://s"}`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, StateFile), []byte(body), 0o600)
		if _, err := Load(dir); err == nil || errors.Is(err, ErrNotEnrolled) {
			t.Errorf("%s: Load err = %v, want a decode error", name, err)
		}
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two, longer", "3"} {
		if err := WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != content {
			t.Errorf("content = %q, want %q", b, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v", fi.Mode().Perm())
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestCommitAndRecover(t *testing.T) {
	dir := t.TempDir()
	WriteFile(filepath.Join(dir, "a"), []byte("old a"), 0o600)
	WriteFile(filepath.Join(dir, "b"), []byte("old b"), 0o600)
	read := func(n string) string { b, _ := os.ReadFile(filepath.Join(dir, n)); return string(b) }

	// Undecided: staged files without a commit record are discarded.
	WriteFile(filepath.Join(dir, "a.next"), []byte("half"), 0o600)
	if err := Recover(dir); err != nil {
		t.Fatal(err)
	}
	if read("a") != "old a" || fileExists(filepath.Join(dir, "a.next")) {
		t.Errorf("undecided change was applied or left: a=%q", read("a"))
	}

	// Decided but interrupted after the first rename: Recover finishes.
	WriteFile(filepath.Join(dir, "a"), []byte("new a"), 0o600)
	WriteFile(filepath.Join(dir, "b.next"), []byte("new b"), 0o600)
	WriteFile(filepath.Join(dir, commitFile), []byte(`["a","b"]`), 0o600)
	if err := Recover(dir); err != nil {
		t.Fatal(err)
	}
	if read("a") != "new a" || read("b") != "new b" || fileExists(filepath.Join(dir, commitFile)) {
		t.Errorf("interrupted commit not finished: a=%q b=%q", read("a"), read("b"))
	}

	if err := Commit(dir, []File{{Name: "a", Data: []byte("A"), Mode: 0o600}, {Name: "c", Data: []byte("C"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	if read("a") != "A" || read("c") != "C" || read("b") != "new b" {
		t.Errorf("commit: a=%q c=%q b=%q", read("a"), read("c"), read("b"))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("dir holds %d entries after commit, want 3", len(ents))
	}
	if err := Commit(dir, []File{{Name: "../x"}}); err == nil {
		t.Error("commit accepted a path")
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestAcksRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if acks, err := LoadAcks(dir); err != nil || len(acks) != 0 {
		t.Fatalf("LoadAcks of empty dir = %v, %v", acks, err)
	}
	want := []api.CommandAck{{ID: "c1", Status: "done"}, {ID: "c2", Status: "failed", Detail: "x"}}
	if err := SaveAcks(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadAcks(dir)
	if err != nil || len(got) != 2 || got[1] != want[1] {
		t.Fatalf("LoadAcks = %v, %v", got, err)
	}
	if err := SaveAcks(dir, nil); err != nil {
		t.Fatal(err)
	}
	if fileExists(filepath.Join(dir, AcksFile)) {
		t.Error("empty ack list left the file")
	}
}
