// Package integrity is the agent's file integrity monitor, used where the
// kernel has no IMA (Code of Practice 4.3): it hashes configured files and
// directory trees with SHA-256 into []api.FileMeasurement and reports what
// was added, removed or changed since the previous run.
//
// Directories are walked recursively in lexical order. Symbolic links
// inside a tree are never followed — a link is measured by its target
// text, so retargeting it is a change and it cannot lead the monitor out
// of the tree; a configured path that is itself a link is resolved once,
// because the operator named it. Only regular files are read (never FIFOs
// or devices). Limits bound the number of files and the bytes read.
//
// Scan is safe for concurrent use; a Monitor serialises its runs and is
// safe for concurrent use too.
package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Defaults of the limits in Config.
const (
	DefaultMaxFiles    = api.MaxFileReports // what one Evidence may carry
	DefaultMaxFileSize = 256 << 20
	DefaultMaxBytes    = 2 << 30
)

// Config says what to measure. The zero value of each limit is its default.
type Config struct {
	// Paths are files and directories, absolute. A directory is measured
	// recursively.
	Paths []string
	// MaxFiles caps the measurements of one scan; zero means
	// DefaultMaxFiles. Files past the cap are left out and the scan is
	// reported truncated.
	MaxFiles int
	// MaxFileSize is the largest file hashed; zero means
	// DefaultMaxFileSize. Larger files are left out with a problem.
	MaxFileSize int64
	// MaxBytes caps the bytes read in one scan; zero means
	// DefaultMaxBytes. Once reached, the rest is left out and the scan is
	// reported truncated.
	MaxBytes int64
}

func (c Config) withDefaults() Config {
	if c.MaxFiles <= 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	return c
}

// Measurement of a symbolic link: SHA-256 of this prefix and the link's
// target text, so a link never hashes like a file with the same bytes.
const linkPrefix = "symlink\x00"

// Result is one scan.
type Result struct {
	// Files are sorted by path. A configured path that does not exist is
	// listed with an empty SHA256.
	Files []api.FileMeasurement
	// Problems name files that could not be measured, for people.
	Problems []string
	// Truncated says a limit cut the scan short.
	Truncated bool
}

// Scan measures cfg.Paths once.
func Scan(cfg Config) Result {
	cfg = cfg.withDefaults()
	s := scanner{cfg: cfg, seen: map[string]bool{}}
	for _, p := range cfg.Paths {
		s.root(filepath.Clean(p))
	}
	sort.Slice(s.res.Files, func(i, j int) bool { return s.res.Files[i].Path < s.res.Files[j].Path })
	return s.res
}

type scanner struct {
	cfg   Config
	res   Result
	bytes int64
	seen  map[string]bool
	full  bool // a limit was reached
}

func (s *scanner) problem(format string, args ...any) {
	if len(s.res.Problems) < 100 {
		s.res.Problems = append(s.res.Problems, fmt.Sprintf(format, args...))
	}
}

func (s *scanner) add(path, sum string) {
	if s.seen[path] {
		return
	}
	if len(s.res.Files) >= s.cfg.MaxFiles {
		s.truncate(fmt.Sprintf("more than %d files; the rest are not measured", s.cfg.MaxFiles))
		return
	}
	s.seen[path] = true
	s.res.Files = append(s.res.Files, api.FileMeasurement{Path: path, SHA256: sum})
}

func (s *scanner) truncate(why string) {
	if !s.full {
		s.problem("%s", why)
	}
	s.full, s.res.Truncated = true, true
}

// root measures one configured path.
func (s *scanner) root(p string) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		s.add(p, "")
		return
	}
	if err != nil {
		s.problem("%s: %v", p, err)
		return
	}
	walkRoot := p
	if fi.Mode()&fs.ModeSymlink != 0 {
		// The configured path itself is followed; links inside are not.
		resolved, err := filepath.EvalSymlinks(p)
		if errors.Is(err, fs.ErrNotExist) {
			s.add(p, "")
			return
		}
		if err != nil {
			s.problem("%s: %v", p, err)
			return
		}
		if fi, err = os.Lstat(resolved); err != nil {
			s.problem("%s: %v", p, err)
			return
		}
		walkRoot = resolved
	}
	if !fi.IsDir() {
		s.entry(p, walkRoot, fi)
		return
	}
	err = filepath.WalkDir(walkRoot, func(path string, d fs.DirEntry, err error) error {
		if s.full {
			return fs.SkipAll
		}
		rel, _ := filepath.Rel(walkRoot, path)
		shown := filepath.Join(p, rel)
		if err != nil {
			s.problem("%s: %v", shown, err)
			return nil // WalkDir skips an unreadable directory
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			s.problem("%s: %v", shown, err)
			return nil
		}
		s.entry(shown, path, info)
		return nil
	})
	if err != nil {
		s.problem("%s: %v", p, err)
	}
}

// entry measures one non-directory: shown is the path reported, path the
// one read.
func (s *scanner) entry(shown, path string, fi fs.FileInfo) {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			s.problem("%s: %v", shown, err)
			return
		}
		h := sha256.Sum256([]byte(linkPrefix + target))
		s.add(shown, hex.EncodeToString(h[:]))
	case fi.Mode().IsRegular():
		if s.seen[shown] {
			return
		}
		if fi.Size() > s.cfg.MaxFileSize {
			s.problem("%s: %d bytes, larger than the %d-byte limit; not measured", shown, fi.Size(), s.cfg.MaxFileSize)
			return
		}
		if s.bytes+fi.Size() > s.cfg.MaxBytes {
			s.truncate(fmt.Sprintf("more than %d bytes to hash; the rest are not measured", s.cfg.MaxBytes))
			return
		}
		sum, n, err := s.hash(path)
		s.bytes += n
		if err != nil {
			s.problem("%s: %v", shown, err)
			return
		}
		s.add(shown, sum)
	default:
		// Devices, FIFOs and sockets have no content to measure, and
		// opening a FIFO would block.
	}
}

func (s *scanner) hash(path string) (string, int64, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, errors.New("replaced by a non-regular file while scanning")
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, s.cfg.MaxFileSize+1))
	if err != nil {
		return "", n, err
	}
	if n > s.cfg.MaxFileSize {
		return "", n, fmt.Errorf("grew past the %d-byte limit while scanning; not measured", s.cfg.MaxFileSize)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Change kinds.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Change is one difference between two scans.
type Change struct {
	Path string `json:"path"`
	Kind string `json:"kind"`          // added, removed, changed
	Old  string `json:"old,omitempty"` // hex SHA-256 before
	New  string `json:"new,omitempty"` // hex SHA-256 after
}

func (c Change) String() string { return c.Kind + " " + c.Path }

// Diff lists the changes from prev to cur, sorted by path. A measurement
// with an empty SHA256 (a missing path) counts as absent.
func Diff(prev, cur []api.FileMeasurement) []Change {
	before := map[string]string{}
	for _, m := range prev {
		if m.SHA256 != "" {
			before[m.Path] = m.SHA256
		}
	}
	after := map[string]string{}
	for _, m := range cur {
		if m.SHA256 != "" {
			after[m.Path] = m.SHA256
		}
	}
	var out []Change
	for p, old := range before {
		switch nw, ok := after[p]; {
		case !ok:
			out = append(out, Change{Path: p, Kind: Removed, Old: old})
		case nw != old:
			out = append(out, Change{Path: p, Kind: Changed, Old: old, New: nw})
		}
	}
	for p, nw := range after {
		if _, ok := before[p]; !ok {
			out = append(out, Change{Path: p, Kind: Added, New: nw})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Report is one run of a Monitor.
type Report struct {
	Time time.Time
	Result
	// Baseline says there was no previous run to compare with; Changes
	// is then empty.
	Baseline bool
	// Changes are the differences from the previous run.
	Changes []Change
	// LastChange is when a run last found changes (this one or an
	// earlier one, across restarts), zero if none ever did, and
	// LastChanges what it found.
	LastChange  time.Time
	LastChanges []Change
}

// Monitor runs scans and compares each with the previous one, which it
// keeps in StateFile so that a restart does not hide a change.
type Monitor struct {
	cfg   Config
	state string

	mu   sync.Mutex
	last *saved
}

// saved is the Monitor's state file.
type saved struct {
	Time        time.Time             `json:"time"`
	Paths       []string              `json:"paths"`
	Files       []api.FileMeasurement `json:"files"`
	Truncated   bool                  `json:"truncated,omitempty"`
	LastChange  time.Time             `json:"last_change,omitzero"`
	LastChanges []Change              `json:"last_changes,omitempty"`
}

// NewMonitor returns a monitor of cfg.Paths keeping its previous run in
// stateFile; an empty stateFile keeps it in memory only.
func NewMonitor(cfg Config, stateFile string) *Monitor {
	return &Monitor{cfg: cfg, state: stateFile}
}

// maxChangesKept bounds LastChanges in the state file and in reports.
const maxChangesKept = 256

// Run scans once, compares with the previous run and records this one.
// A previous run over other paths, or one cut short by a limit, is a new
// baseline rather than a source of spurious changes. The error is about
// the state file only; the report is valid even then.
func (m *Monitor) Run(now time.Time) (Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var loadErr error
	if m.last == nil && m.state != "" {
		m.last, loadErr = load(m.state)
	}
	res := Scan(m.cfg)
	rep := Report{Time: now, Result: res}
	prev := m.last
	paths := slices.Clone(m.cfg.Paths)
	slices.Sort(paths)
	if prev == nil || !slices.Equal(prev.Paths, paths) || prev.Truncated || res.Truncated {
		rep.Baseline = true
	} else {
		rep.Changes = Diff(prev.Files, res.Files)
	}
	cur := &saved{Time: now, Paths: paths, Files: res.Files, Truncated: res.Truncated}
	if prev != nil {
		cur.LastChange, cur.LastChanges = prev.LastChange, prev.LastChanges
	}
	if len(rep.Changes) > 0 {
		cur.LastChange, cur.LastChanges = now, rep.Changes[:min(len(rep.Changes), maxChangesKept)]
	}
	rep.LastChange, rep.LastChanges = cur.LastChange, cur.LastChanges
	m.last = cur
	var saveErr error
	if m.state != "" {
		saveErr = save(m.state, cur)
	}
	return rep, errors.Join(loadErr, saveErr)
}

func load(path string) (*saved, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading integrity state: %w", err)
	}
	var s saved
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading integrity state %s: %w", path, err)
	}
	return &s, nil
}

// save writes the state file atomically.
func save(path string, s *saved) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing integrity state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing integrity state: %w", err)
	}
	return nil
}
