package inventory

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCollectThisHost(t *testing.T) {
	inv := Collect("test-1")
	if inv.Hostname == "" || inv.Hostname == "unknown" {
		t.Errorf("hostname = %q", inv.Hostname)
	}
	if runtime.GOOS == "linux" && inv.Kernel == "" {
		t.Error("kernel release is empty")
	}
	if inv.Arch != runtime.GOARCH {
		t.Errorf("arch = %q, want %q", inv.Arch, runtime.GOARCH)
	}
	if inv.AgentVersion != "test-1" {
		t.Errorf("agent version = %q", inv.AgentVersion)
	}
	if inv.OS == "" {
		t.Error("OS is empty")
	}
	if _, err := os.Stat("/proc/uptime"); err == nil && inv.UptimeSeconds <= 0 {
		t.Errorf("uptime = %d", inv.UptimeSeconds)
	}
	if err := inv.Validate(); err != nil {
		t.Errorf("collected inventory does not validate: %v", err)
	}
	t.Logf("%+v", inv)
}

func TestSourceFiles(t *testing.T) {
	dir := t.TempDir()
	osr := filepath.Join(dir, "os-release")
	up := filepath.Join(dir, "uptime")
	os.WriteFile(osr, []byte("# c\nNAME=\"Yocto \\\"Poky\\\"\"\nID=poky\nVERSION_ID='4.0'\n\nBROKEN\n"), 0o644)
	os.WriteFile(up, []byte("12345.67 999.0\n"), 0o644)
	inv := Source{OSRelease: osr, Uptime: up}.Collect("v")
	if inv.OS != `Yocto "Poky"` || inv.OSVersion != "4.0" {
		t.Errorf("os = %q %q", inv.OS, inv.OSVersion)
	}
	if inv.UptimeSeconds != 12345 {
		t.Errorf("uptime = %d", inv.UptimeSeconds)
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\nb\x00c\td", "abc\td"},
		{"bad\xffutf8", "badutf8"},
		{strings.Repeat("é", 600), strings.Repeat("é", 512)},
	} {
		if got := clean(tc.in); got != tc.want {
			t.Errorf("clean(%.20q) = %.20q (len %d), want len %d", tc.in, got, len(got), len(tc.want))
		}
	}
}
