package update

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileABInstaller runs updates, a failed health check and a refused
// downgrade through the A/B installer.
func TestFileABInstaller(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	root := t.TempDir()
	inst := &FileABInstaller{Root: root}
	newU := func(health ...string) *Updater {
		u, err := New(Config{Root: root, Installer: inst, HealthCheck: health})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	image := func(v string) []byte { return bytes.Repeat([]byte("image "+v+"\n"), 1000) }
	update := func(u *Updater, v string) (*Report, error) {
		url, want := srv.add("img-"+v, image(v))
		return u.Update(context.Background(), url, want, Release{Product: "os", Version: v})
	}
	booted := func() (slot, version string, good bool) {
		b, err := inst.boot()
		if err != nil {
			t.Fatal(err)
		}
		img, err := os.ReadFile(filepath.Join(root, "slots", b.Slot, "image"))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := inst.slotVersion(b.Slot)
		if !bytes.Equal(img, image(v)) {
			t.Fatalf("slot %s holds the wrong image for %s", b.Slot, v)
		}
		return b.Slot, v, b.Good
	}

	for i, v := range []string{"1.0.0", "1.1.0"} {
		if rep, err := update(newU(), v); err != nil || rep.Outcome != OutcomeInstalled {
			t.Fatalf("%s: %+v, %v", v, rep, err)
		}
		slot, got, good := booted()
		if got != v || slot != abSlots[i] || !good {
			t.Fatalf("after %s: slot %s version %s good %v", v, slot, got, good)
		}
	}
	if v, _ := inst.slotVersion("a"); v != "1.0.0" {
		t.Errorf("previous slot holds %q", v)
	}

	rep, err := update(newU("sh", "-c", "exit 1"), "2.0.0")
	if err == nil || rep.Outcome != OutcomeRolledBack || !strings.Contains(rep.Reason, "exit status 1") {
		t.Fatalf("failed health check: %+v, %v", rep, err)
	}
	if slot, v, good := booted(); slot != "b" || v != "1.1.0" || !good {
		t.Errorf("after rollback: slot %s version %s good %v", slot, v, good)
	}
	if v, _ := inst.slotVersion("a"); v != "" {
		t.Errorf("failed slot still valid with %q", v)
	}

	if _, err := update(newU(), "1.0.1"); !errors.Is(err, ErrDowngrade) {
		t.Errorf("downgrade: %v", err)
	}
	if rep, err := update(newU(), "2.0.1"); err != nil || rep.Outcome != OutcomeInstalled {
		t.Fatalf("2.0.1: %+v, %v", rep, err)
	}
	if slot, v, _ := booted(); slot != "a" || v != "2.0.1" {
		t.Errorf("after 2.0.1: slot %s version %s", slot, v)
	}
}
