package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// tarGz builds an app artifact holding the given files.
func tarGz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// system is a running server with the CLI set up against it.
type system struct {
	r       *runner
	bulwark string
	agent   string
	data    string
	base    string
	tmp     string
}

func startSystem(t *testing.T, serverArgs ...string) *system {
	t.Helper()
	tmp := t.TempDir()
	s := &system{tmp: tmp, bulwark: build(t, tmp, "cmd/bulwark"), agent: build(t, tmp, "cmd/bulwark-agent"), data: filepath.Join(tmp, "data")}
	addr := freePort(t)
	s.base = "https://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, s.bulwark, append([]string{"server", "--data", s.data, "--listen", addr}, serverArgs...)...)
	var srvErr bytes.Buffer
	srv.Stderr = &srvErr
	srv.Cancel = func() error { return srv.Process.Signal(os.Interrupt) }
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("server log:\n%s", srvErr.String())
		}
	})
	s.r = &runner{t: t}
	eventually(t, "server to listen", 30*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	token := strings.TrimSpace(s.r.ok(s.bulwark, "token", "create", "--data", s.data, "--role", "admin", "--name", "e2e"))
	s.r.env = []string{"BULWARK_ADDR=" + s.base, "BULWARK_TOKEN=" + token, "BULWARK_CACERT=" + filepath.Join(s.data, "ca.pem")}
	return s
}

// startAgent enrols and runs an agent in group with a health check.
func (s *system) startAgent(t *testing.T, name, group, health string) string {
	t.Helper()
	tok := strings.TrimSpace(s.r.ok(s.bulwark, "enroll-token", "create", "--uses", "1", "--ttl", "1h", "--group", group))
	state := filepath.Join(s.tmp, name)
	s.r.ok(s.agent, "enroll", "--server", s.base, "--token", tok, "--ca-cert", filepath.Join(s.data, "ca.pem"), "--state", state)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, s.agent, "run", "--state", state, "--interval", "1s", "--health-check", health, "--hardware", "cam-v2")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("agent %s log:\n%s", name, logs.String())
		}
	})
	return state
}

type agentStatus struct {
	Installed []struct {
		Product, Version string
	} `json:"installed"`
	LastUpdate *struct {
		Status, Detail, Version string
	} `json:"last_update"`
}

func (s *system) status(state string) agentStatus {
	out, _, _ := s.r.run(s.agent, "status", "--json", "--state", state)
	var st agentStatus
	json.Unmarshal([]byte(out), &st)
	return st
}

func TestUpdateEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds binaries; skipped with -short")
	}
	s := startSystem(t)
	s.r.ok(s.bulwark, "groups", "create", "lab")
	state := s.startAgent(t, "agent", "lab", "test -f "+filepath.Join(s.tmp, "agent", "apps", "camera", "current", "HEALTHY"))

	// Release 1.0.0 installs and passes its health check.
	v1 := filepath.Join(s.tmp, "camera-1.0.0.tar.gz")
	os.WriteFile(v1, tarGz(t, map[string]string{"bin/camera": "v1", "HEALTHY": "yes"}), 0o644)
	sbom := filepath.Join(s.tmp, "sbom.json")
	os.WriteFile(sbom, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[]}`), 0o644)
	s.r.ok(s.bulwark, "release", "publish", "--product", "camera", "--version", "1.0.0", "--file", v1, "--sbom", sbom)
	dep1 := strings.TrimSpace(s.r.ok(s.bulwark, "deploy", "create", "--release", "camera@1.0.0", "--group", "lab"))
	eventually(t, "1.0.0 to be installed and reported", 60*time.Second, func() bool {
		var d api.Deployment
		json.Unmarshal([]byte(s.r.ok(s.bulwark, "deploy", "show", dep1, "--json")), &d)
		return d.Counts["success"] == 1
	})
	st := s.status(state)
	if len(st.Installed) != 1 || st.Installed[0].Product != "camera" || st.Installed[0].Version != "1.0.0" {
		t.Fatalf("installed %+v", st.Installed)
	}
	if b, err := os.ReadFile(filepath.Join(s.tmp, "agent", "apps", "camera", "current", "bin", "camera")); err != nil || string(b) != "v1" {
		t.Fatalf("installed file: %q %v", b, err)
	}

	// Release 1.1.0 fails its health check: rolled back, the deployment
	// halts with the reason, and 1.0.0 stays active.
	v2 := filepath.Join(s.tmp, "camera-1.1.0.tar.gz")
	os.WriteFile(v2, tarGz(t, map[string]string{"bin/camera": "v2"}), 0o644)
	s.r.ok(s.bulwark, "release", "publish", "--product", "camera", "--version", "1.1.0", "--file", v2, "--fixes", "CVE-2026-0001", "--severity", "high")
	dep2 := strings.TrimSpace(s.r.ok(s.bulwark, "deploy", "create", "--release", "camera@1.1.0", "--group", "lab"))
	var d2 api.Deployment
	eventually(t, "1.1.0 to be rolled back", 60*time.Second, func() bool {
		json.Unmarshal([]byte(s.r.ok(s.bulwark, "deploy", "show", dep2, "--json")), &d2)
		return d2.Counts["rolled-back"] == 1
	})
	if d2.State != "halted" || !strings.Contains(d2.Reason, "1 of 1 devices failed") {
		t.Fatalf("deployment after a rollback: %s %q", d2.State, d2.Reason)
	}
	if len(d2.Devices) != 1 || d2.Devices[0].Reason == "" {
		t.Fatalf("no rollback reason recorded: %+v", d2.Devices)
	}
	if st := s.status(state); st.Installed[0].Version != "1.0.0" || st.LastUpdate == nil || st.LastUpdate.Status != "rolled-back" {
		t.Fatalf("after rollback: %+v %+v", st.Installed, st.LastUpdate)
	}

	// A tampered artifact in the server's store is refused by the agent:
	// nothing is installed.
	v3 := filepath.Join(s.tmp, "camera-1.2.0.tar.gz")
	good := tarGz(t, map[string]string{"bin/camera": "v3", "HEALTHY": "yes"})
	os.WriteFile(v3, good, 0o644)
	s.r.ok(s.bulwark, "release", "publish", "--product", "camera", "--version", "1.2.0", "--file", v3)
	sum := sha256.Sum256(good)
	stored := filepath.Join(s.data, "artifacts", hex.EncodeToString(sum[:]))
	evil := append([]byte(nil), good...)
	evil[len(evil)/2] ^= 0xff
	if err := os.WriteFile(stored, evil, 0o600); err != nil {
		t.Fatal(err)
	}
	dep3 := strings.TrimSpace(s.r.ok(s.bulwark, "deploy", "create", "--release", "camera@1.2.0", "--group", "lab"))
	var d3 api.Deployment
	eventually(t, "the tampered release to fail", 60*time.Second, func() bool {
		json.Unmarshal([]byte(s.r.ok(s.bulwark, "deploy", "show", dep3, "--json")), &d3)
		return d3.Counts["failed"] == 1
	})
	if !strings.Contains(strings.ToLower(d3.Devices[0].Reason), "hash") {
		t.Fatalf("tampered artifact failed for another reason: %q", d3.Devices[0].Reason)
	}
	if st := s.status(state); st.Installed[0].Version != "1.0.0" {
		t.Fatalf("tampered release changed the installed version: %+v", st.Installed)
	}
	// A newer good release installs; going back to 1.0.0 is refused
	// unless an admin allows the downgrade, which the server signs.
	v4 := filepath.Join(s.tmp, "camera-1.3.0.tar.gz")
	os.WriteFile(v4, tarGz(t, map[string]string{"bin/camera": "v4", "HEALTHY": "yes"}), 0o644)
	s.r.ok(s.bulwark, "release", "publish", "--product", "camera", "--version", "1.3.0", "--file", v4)
	dep4 := strings.TrimSpace(s.r.ok(s.bulwark, "deploy", "create", "--release", "camera@1.3.0", "--group", "lab"))
	waitCount := func(dep, status, what string) api.Deployment {
		var d api.Deployment
		eventually(t, what, 60*time.Second, func() bool {
			json.Unmarshal([]byte(s.r.ok(s.bulwark, "deploy", "show", dep, "--json")), &d)
			return d.Counts[status] == 1
		})
		return d
	}
	waitCount(dep4, "success", "1.3.0 to install")
	back := waitCount(strings.TrimSpace(s.r.ok(s.bulwark, "deploy", "create", "--release", "camera@1.0.0", "--group", "lab")), "failed", "an unsigned downgrade to be refused")
	if !strings.Contains(back.Devices[0].Reason, "older version") {
		t.Fatalf("unsigned downgrade failed for another reason: %q", back.Devices[0].Reason)
	}
	if st := s.status(state); st.Installed[0].Version != "1.3.0" {
		t.Fatalf("refused downgrade changed the installed version: %+v", st.Installed)
	}
	waitCount(strings.TrimSpace(s.r.ok(s.bulwark, "deploy", "create", "--release", "camera@1.0.0", "--group", "lab", "--allow-downgrade")), "success", "a signed downgrade to install")
	if st := s.status(state); st.Installed[0].Version != "1.0.0" {
		t.Fatalf("signed downgrade not installed: %+v", st.Installed)
	}

	// A release for other hardware is refused; one for this hardware
	// installs.
	v5 := filepath.Join(s.tmp, "camera-1.4.0.tar.gz")
	os.WriteFile(v5, tarGz(t, map[string]string{"bin/camera": "v5", "HEALTHY": "yes"}), 0o644)
	s.r.ok(s.bulwark, "release", "publish", "--product", "camera", "--version", "1.4.0", "--file", v5, "--hardware", "cam-v3")
	other := waitCount(strings.TrimSpace(s.r.ok(s.bulwark, "deploy", "create", "--release", "camera@1.4.0", "--group", "lab")), "failed", "a release for other hardware to be refused")
	if !strings.Contains(other.Devices[0].Reason, "is for hardware cam-v3") {
		t.Fatalf("other-hardware release failed for another reason: %q", other.Devices[0].Reason)
	}
	v6 := filepath.Join(s.tmp, "camera-1.5.0.tar.gz")
	os.WriteFile(v6, tarGz(t, map[string]string{"bin/camera": "v6", "HEALTHY": "yes"}), 0o644)
	s.r.ok(s.bulwark, "release", "publish", "--product", "camera", "--version", "1.5.0", "--file", v6, "--hardware", "cam-v2,cam-v3")
	waitCount(strings.TrimSpace(s.r.ok(s.bulwark, "deploy", "create", "--release", "camera@1.5.0", "--group", "lab")), "success", "a release for this hardware to install")

	// The SBOM is public.
	if out := s.r.ok("curl", "-sS", "--fail", "--cacert", filepath.Join(s.data, "ca.pem"), s.base+"/releases/camera/1.0.0/sbom.cdx.json"); !strings.Contains(out, "CycloneDX") {
		t.Fatalf("public SBOM: %s", out)
	}
}
