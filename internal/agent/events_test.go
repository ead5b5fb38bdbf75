package agent

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/events"
)

func journalTypes(t *testing.T, d *daemon) []string {
	t.Helper()
	recs, err := d.ev.j.Read(1, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		var e struct{ Type string }
		json.Unmarshal(r.Event, &e)
		out = append(out, e.Type)
	}
	return out
}

// openJournalDaemon loads the enrolled state in dir with the test
// configuration (changed by change, if not nil) and opens its journal,
// closed when the test ends.
func openJournalDaemon(t *testing.T, dir string, change func(*Config)) *daemon {
	t.Helper()
	cfg := testConfig(dir)
	if change != nil {
		change(&cfg)
	}
	d := &daemon{cfg: cfg.withDefaults(), log: slog.New(slog.DiscardHandler), dir: dir}
	if err := d.load(); err != nil {
		t.Fatal(err)
	}
	if err := d.openEvents(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.closeEvents)
	return d
}

// TestEventJournalOpen: the first start records the enrolment once, and an
// unreadable journal is kept aside and replaced, with the failure recorded.
func TestEventJournalOpen(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	st := enroll(t, srv, dir, false)
	open := func() *daemon { return openJournalDaemon(t, dir, nil) }
	d := open()
	if got := journalTypes(t, d); len(got) != 1 || got[0] != events.TypeEnrolment {
		t.Fatalf("first start journal: %v", got)
	}
	d.closeEvents()
	d = open()
	if got := journalTypes(t, d); len(got) != 1 {
		t.Fatalf("second start recorded again: %v", got)
	}
	d.closeEvents()

	jdir := eventsDir(dir, st.DeviceID)
	segs, _ := filepath.Glob(filepath.Join(jdir, "seg-*.log"))
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	if err := os.WriteFile(segs[len(segs)-1], []byte("not a record\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d = open()
	got := journalTypes(t, d)
	if len(got) != 2 || got[0] != events.TypeIntegrityResult || got[1] != events.TypeEnrolment {
		t.Fatalf("journal after corruption: %v", got)
	}
	if aside, _ := filepath.Glob(jdir + ".broken-*"); len(aside) != 1 {
		t.Fatalf("broken journal kept in %v", aside)
	}
}

// TestJournalVerifiedAtStart: a record altered on disk while the agent was
// stopped, which opening the journal does not read, is found by the
// verification at start and recorded as a failed journal check.
func TestJournalVerifiedAtStart(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	st := enroll(t, srv, dir, false)
	open := func() *daemon { return openJournalDaemon(t, dir, nil) }
	d := open()
	for _, p := range []string{"/etc/first", "/etc/second", "/etc/third"} {
		d.recordEvent(events.TypeIntegrityResult, events.SeverityInformational, events.IntegrityResult{Check: "file", Outcome: "pass", Path: p})
	}
	d.verifyJournal()
	if got := journalTypes(t, d); len(got) != 4 {
		t.Fatalf("an intact journal failed verification: %v", got)
	}
	d.closeEvents()

	segs, _ := filepath.Glob(filepath.Join(eventsDir(dir, st.DeviceID), "seg-*.log"))
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(b, []byte("/etc/second"), []byte("/etc/SECOND"), 1)
	if bytes.Equal(altered, b) {
		t.Fatal("the record to alter is not in the first segment")
	}
	if err := os.WriteFile(segs[0], altered, 0o600); err != nil {
		t.Fatal(err)
	}
	d = open()
	d.verifyJournal()
	recs, err := d.ev.j.Read(5, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records after verification: %d, %v", len(recs), err)
	}
	ev, err := events.Decode(recs[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := ev.Details.(*events.IntegrityResult)
	if !ok || ev.Type != events.TypeIntegrityResult || res.Check != "journal" || res.Outcome != "fail" || !strings.Contains(res.Actual, "record 3") {
		t.Fatalf("recorded %s %+v, want a failed journal check naming record 3", ev.Type, ev.Details)
	}
}

// TestConfigDrift: a security setting changed between runs is journalled
// as a local config.change (which raises config.drift), once; the first
// run only keeps the settings.
func TestConfigDrift(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	enroll(t, srv, dir, false)
	open := func(change func(*Config)) *daemon { return openJournalDaemon(t, dir, change) }
	changes := func(d *daemon) []events.ConfigChange {
		recs, err := d.ev.j.Read(1, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []events.ConfigChange
		for _, r := range recs {
			ev, err := events.Decode(r.Event)
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := ev.Details.(*events.ConfigChange); ok {
				out = append(out, *c)
			}
		}
		return out
	}
	d := open(func(c *Config) { c.IntegrityPaths = []string{"/etc", "/usr/bin"} })
	if got := changes(d); len(got) != 0 {
		t.Fatalf("first run journalled %+v", got)
	}
	d.closeEvents()
	d = open(func(c *Config) { c.IntegrityPaths = []string{"/etc", "/usr/bin"} })
	if got := changes(d); len(got) != 0 {
		t.Fatalf("an unchanged run journalled %+v", got)
	}
	d.closeEvents()
	d = open(func(c *Config) {
		c.IntegrityPaths = []string{"/etc"}
		c.Collectors.NetOff = true
	})
	got := changes(d)
	want := []events.ConfigChange{
		{Setting: "collectors.net", Old: "on", New: "off", Source: "local"},
		{Setting: "integrity.paths", Old: "/etc,/usr/bin", New: "/etc", Source: "local"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("journalled %+v, want %+v", got, want)
	}
	d.closeEvents()
	d = open(func(c *Config) {
		c.IntegrityPaths = []string{"/etc"}
		c.Collectors.NetOff = true
	})
	if got := changes(d); len(got) != 2 {
		t.Fatalf("the same settings again journalled more: %+v", got)
	}
}
