package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/agent/agenttest"
	"github.com/bulwark-iot/bulwark/internal/api"
)

// Check-ins report the releases the agent installed, which the server
// appraises attestation against; the same list as `status`.
func TestCheckinReportsInstalledReleases(t *testing.T) {
	srv := newServer(t)
	dir := filepath.Join(t.TempDir(), "state")
	st := enroll(t, srv, dir, false)
	root := t.TempDir()
	for _, p := range []struct{ product, version string }{{"cam-fw", "2.0.0"}, {"cam-app", "1.4.1"}} {
		if err := os.MkdirAll(filepath.Join(root, p.product, "versions", p.version), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("versions/"+p.version, filepath.Join(root, p.product, "current")); err != nil {
			t.Fatal(err)
		}
	}
	// A product directory with nothing active is not installed.
	if err := os.MkdirAll(filepath.Join(root, "cam-new", "versions"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.InstallRoot = root
	start(t, cfg)
	want := []api.InstalledRelease{{Product: "cam-app", Version: "1.4.1"}, {Product: "cam-fw", Version: "2.0.0"}}
	d := waitDevice(t, srv, st.DeviceID, "a check-in", func(d *agenttest.Device) bool { return len(d.Checkins) > 0 })
	if got := d.Checkins[0].Inventory.Installed; !slices.Equal(got, want) {
		t.Fatalf("check-in installed = %+v, want %+v", got, want)
	}
	var fromStatus []api.InstalledRelease
	for _, r := range status(t, dir).Installed {
		fromStatus = append(fromStatus, api.InstalledRelease{Product: r.Product, Version: r.Version})
	}
	if !slices.Equal(fromStatus, want) {
		t.Fatalf("status installed = %+v, want %+v", fromStatus, want)
	}
}
