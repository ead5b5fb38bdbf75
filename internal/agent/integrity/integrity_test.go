package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func measured(res Result) map[string]string {
	m := map[string]string{}
	for _, f := range res.Files {
		m[f.Path] = f.SHA256
	}
	return m
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "app")
	outside := filepath.Join(dir, "outside")
	write(t, filepath.Join(tree, "bin", "app"), "binary")
	write(t, filepath.Join(tree, "etc", "app.conf"), "setting=1\n")
	write(t, filepath.Join(tree, "empty"), "")
	write(t, filepath.Join(outside, "secret"), "not part of the tree")
	// Links inside the tree are measured by their target text and never
	// followed, whether they point out of it or not.
	symlink(t, filepath.Join(outside, "secret"), filepath.Join(tree, "leak"))
	symlink(t, outside, filepath.Join(tree, "outdir"))
	symlink(t, "bin/app", filepath.Join(tree, "app-link"))
	if err := syscall.Mkfifo(filepath.Join(tree, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(dir, "single.conf")
	write(t, single, "x")
	// A configured path that is a link is resolved; the files are
	// reported under the configured name.
	current := filepath.Join(dir, "current")
	symlink(t, tree, current)
	missing := filepath.Join(dir, "missing")

	res := Scan(Config{Paths: []string{tree, single, missing, current}})
	want := map[string]string{
		filepath.Join(tree, "bin", "app"):         sum("binary"),
		filepath.Join(tree, "etc", "app.conf"):    sum("setting=1\n"),
		filepath.Join(tree, "empty"):              sum(""),
		filepath.Join(tree, "leak"):               sum(linkPrefix + filepath.Join(outside, "secret")),
		filepath.Join(tree, "outdir"):             sum(linkPrefix + outside),
		filepath.Join(tree, "app-link"):           sum(linkPrefix + "bin/app"),
		single:                                    sum("x"),
		missing:                                   "",
		filepath.Join(current, "bin", "app"):      sum("binary"),
		filepath.Join(current, "etc", "app.conf"): sum("setting=1\n"),
		filepath.Join(current, "empty"):           sum(""),
		filepath.Join(current, "leak"):            sum(linkPrefix + filepath.Join(outside, "secret")),
		filepath.Join(current, "outdir"):          sum(linkPrefix + outside),
		filepath.Join(current, "app-link"):        sum(linkPrefix + "bin/app"),
	}
	if got := measured(res); !reflect.DeepEqual(got, want) {
		t.Errorf("Scan measured\n%v\nwant\n%v", got, want)
	}
	for i := 1; i < len(res.Files); i++ {
		if res.Files[i-1].Path >= res.Files[i].Path {
			t.Fatalf("files not sorted: %v", res.Files)
		}
	}
	if res.Truncated || len(res.Problems) != 0 {
		t.Errorf("truncated %v, problems %v", res.Truncated, res.Problems)
	}
}

func TestScanLimits(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c", "d"} {
		write(t, filepath.Join(dir, n), strings.Repeat(n, 10))
	}
	write(t, filepath.Join(dir, "z-big"), strings.Repeat("x", 100))

	res := Scan(Config{Paths: []string{dir}, MaxFiles: 2})
	if len(res.Files) != 2 || !res.Truncated || len(res.Problems) != 1 {
		t.Errorf("MaxFiles 2: %d files, truncated %v, problems %v", len(res.Files), res.Truncated, res.Problems)
	}

	res = Scan(Config{Paths: []string{dir}, MaxFileSize: 50})
	if _, ok := measured(res)[filepath.Join(dir, "z-big")]; ok || len(res.Files) != 4 || res.Truncated {
		t.Errorf("MaxFileSize 50: %v truncated %v", res.Files, res.Truncated)
	}
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "big") {
		t.Errorf("MaxFileSize problems %v", res.Problems)
	}

	// 4×10 bytes fit in 45; "z-big" (walked after a..d) does not.
	res = Scan(Config{Paths: []string{dir}, MaxBytes: 45})
	if len(res.Files) != 4 || !res.Truncated {
		t.Errorf("MaxBytes 45: %v truncated %v", res.Files, res.Truncated)
	}
	res = Scan(Config{Paths: []string{dir}, MaxBytes: 25})
	if len(res.Files) != 2 || !res.Truncated {
		t.Errorf("MaxBytes 25: %v truncated %v", res.Files, res.Truncated)
	}
}

func TestDiff(t *testing.T) {
	m := func(kv ...string) []api.FileMeasurement {
		var out []api.FileMeasurement
		for i := 0; i < len(kv); i += 2 {
			out = append(out, api.FileMeasurement{Path: kv[i], SHA256: kv[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		prev, cur []api.FileMeasurement
		want      []Change
	}{
		{"same", m("/a", "1", "/b", "2"), m("/b", "2", "/a", "1"), nil},
		{"changed", m("/a", "1"), m("/a", "2"), []Change{{"/a", Changed, "1", "2"}}},
		{"added", m("/a", "1"), m("/a", "1", "/b", "2"), []Change{{"/b", Added, "", "2"}}},
		{"removed", m("/a", "1", "/b", "2"), m("/a", "1"), []Change{{"/b", Removed, "2", ""}}},
		{"went missing", m("/a", "1"), m("/a", ""), []Change{{"/a", Removed, "1", ""}}},
		{"appeared", m("/a", ""), m("/a", "1"), []Change{{"/a", Added, "", "1"}}},
		{"still missing", m("/a", ""), m("/a", ""), nil},
		{"sorted", m("/c", "1", "/a", "1"), m("/b", "1", "/c", "2"), []Change{
			{"/a", Removed, "1", ""}, {"/b", Added, "", "1"}, {"/c", Changed, "1", "2"}}},
	} {
		if got := Diff(tc.prev, tc.cur); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Diff = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMonitor(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	state := filepath.Join(dir, "integrity.json")
	write(t, filepath.Join(tree, "a"), "a1")
	write(t, filepath.Join(tree, "b"), "b1")
	cfg := Config{Paths: []string{tree}}
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

	m := NewMonitor(cfg, state)
	rep, err := m.Run(t0)
	if err != nil || !rep.Baseline || len(rep.Changes) != 0 || len(rep.Files) != 2 || !rep.LastChange.IsZero() {
		t.Fatalf("first run = %+v, %v", rep, err)
	}
	rep, err = m.Run(t0.Add(time.Minute))
	if err != nil || rep.Baseline || len(rep.Changes) != 0 {
		t.Fatalf("unchanged run = %+v, %v", rep, err)
	}

	write(t, filepath.Join(tree, "a"), "a2")
	os.Remove(filepath.Join(tree, "b"))
	write(t, filepath.Join(tree, "c"), "c1")
	t2 := t0.Add(2 * time.Minute)
	rep, err = m.Run(t2)
	want := []Change{
		{filepath.Join(tree, "a"), Changed, sum("a1"), sum("a2")},
		{filepath.Join(tree, "b"), Removed, sum("b1"), ""},
		{filepath.Join(tree, "c"), Added, "", sum("c1")},
	}
	if err != nil || rep.Baseline || !reflect.DeepEqual(rep.Changes, want) || !rep.LastChange.Equal(t2) {
		t.Fatalf("changed run = %+v, %v; want changes %v", rep, err, want)
	}

	// A restart keeps the previous run and the last change: a file changed
	// while the agent was down is still found.
	write(t, filepath.Join(tree, "c"), "c2")
	m = NewMonitor(cfg, state)
	t3 := t0.Add(3 * time.Minute)
	rep, err = m.Run(t3)
	if err != nil || rep.Baseline || len(rep.Changes) != 1 || rep.Changes[0].Kind != Changed || !rep.LastChange.Equal(t3) {
		t.Fatalf("run after restart = %+v, %v", rep, err)
	}
	m = NewMonitor(cfg, state)
	rep, err = m.Run(t0.Add(4 * time.Minute))
	if err != nil || len(rep.Changes) != 0 || !rep.LastChange.Equal(t3) || len(rep.LastChanges) != 1 {
		t.Fatalf("quiet run after restart = %+v, %v", rep, err)
	}

	// Other paths: a new baseline, not a list of spurious changes.
	other := filepath.Join(dir, "other")
	write(t, filepath.Join(other, "x"), "x")
	m = NewMonitor(Config{Paths: []string{other}}, state)
	rep, err = m.Run(t0.Add(5 * time.Minute))
	if err != nil || !rep.Baseline || len(rep.Changes) != 0 {
		t.Fatalf("run over new paths = %+v, %v", rep, err)
	}
}

func TestMonitorCorruptState(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "integrity.json")
	write(t, state, "{not json")
	write(t, filepath.Join(dir, "f"), "f")
	m := NewMonitor(Config{Paths: []string{filepath.Join(dir, "f")}}, state)
	rep, err := m.Run(time.Now())
	if err == nil || !rep.Baseline || len(rep.Files) != 1 {
		t.Fatalf("corrupt state: %+v, %v", rep, err)
	}
	if _, err := m.Run(time.Now()); err != nil {
		t.Fatalf("the state is rewritten: %v", err)
	}
}
