package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/tpm/swtpmtest"
)

// runAgent runs "bulwark-agent run" with args until stop is called or the
// test ends, and returns stop, which waits for the agent to exit.
func (s *system) runAgent(t *testing.T, name string, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, s.agent, append([]string{"run"}, args...)...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if t.Failed() {
			t.Logf("agent %s log:\n%s", name, logs.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

func (s *system) device(t *testing.T, id string) api.Device {
	t.Helper()
	var d api.Device
	out := s.r.ok(s.bulwark, "devices", "show", id, "--json")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("devices show --json: %v\n%s", err, out)
	}
	return d
}

// TestAttestationEndToEnd runs the real binaries against a real swtpm
// manufactured with an EK certificate: the agent enrols with its key in
// the TPM (credential activation, EK chain checked against the local CA),
// attests an emulated measured boot, the admin approves the baseline, a
// requested attestation is affirming; then the boot is tampered with (a
// PCR extended outside the log), and the next attestation is
// contraindicated, quarantines the device and turns it unhealthy on the
// server and on the device.
func TestAttestationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds binaries; skipped with -short")
	}
	tp := swtpmtest.StartWithEKCert(t)
	var roots []byte
	for _, f := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		b, err := os.ReadFile(filepath.Join(tp.CADir, f))
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, b...)
	}
	rootsFile := filepath.Join(t.TempDir(), "ek-roots.pem")
	if err := os.WriteFile(rootsFile, roots, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSystem(t, "--ek-roots", rootsFile, "--attest-failure-action", "quarantine")

	// swtpm has no firmware: emulate a measured Secure Boot into it.
	platform := filepath.Join(s.tmp, "platform")
	s.r.ok(s.agent, "tpm", "emulate-boot", "--tpm", tp.Spec, "--platform-root", platform)
	ekHash := strings.TrimSpace(s.r.ok(s.agent, "tpm", "info", "--tpm", tp.Spec))
	if len(ekHash) != 64 {
		t.Fatalf("tpm info printed %q", ekHash)
	}

	tok := strings.TrimSpace(s.r.ok(s.bulwark, "enroll-token", "create", "--uses", "1", "--ttl", "1h"))
	state := filepath.Join(s.tmp, "tpm-agent")
	out, errOut, code := s.r.run(s.agent, "enroll", "--server", s.base, "--token", tok, "--ca-cert", filepath.Join(s.data, "ca.pem"),
		"--state", state, "--tpm", tp.Spec, "--platform-root", platform)
	if code != 0 {
		t.Fatalf("enroll with swtpm: exit %d\n%s", code, errOut)
	}
	id := strings.TrimSpace(out)
	if !strings.Contains(errOut, "hardware-bound") || !strings.Contains(errOut, "enrolment attestation: warning") {
		t.Fatalf("enroll output does not show the hardware key and the enrolment attestation:\n%s", errOut)
	}
	// Nothing of the key is on disk but TPM-wrapped blobs.
	if _, err := os.Stat(filepath.Join(state, "device.key")); !os.IsNotExist(err) {
		t.Fatalf("a software device key exists next to the TPM key: %v", err)
	}

	d := s.device(t, id)
	if d.KeyAssurance != api.AssuranceHardware || d.Attestation == nil || d.Attestation.Status != api.AttestWarning || d.Attestation.Reason != "enrolment" {
		t.Fatalf("after enrolment: key %q attestation %+v", d.KeyAssurance, d.Attestation)
	}
	if d.Attestation.SecureBoot != "enabled" {
		t.Errorf("secure boot = %q", d.Attestation.SecureBoot)
	}

	stop := s.runAgent(t, "tpm-agent", "--state", state, "--interval", "1s", "--platform-root", platform)
	s.r.ok(s.bulwark, "attest", "approve-baseline", id)
	var res api.AttestationResult
	out = s.r.ok(s.bulwark, "attest", id, "--json", "--wait", "60s")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("attest --json: %v\n%s", err, out)
	}
	if res.Status != api.AttestAffirming || res.Reason != "requested" || res.EAR == "" {
		t.Fatalf("requested attestation = %+v", res)
	}
	// The device has the result, and its signed health report reached the
	// server bound to that quote.
	eventually(t, "a signed health report", 30*time.Second, func() bool {
		return s.device(t, id).HealthReport != nil
	})
	var h api.Health
	hout, _, _ := s.r.run(s.agent, "health", "--json", "--state", state)
	if err := json.Unmarshal([]byte(hout), &h); err != nil {
		t.Fatalf("health --json: %v\n%s", err, hout)
	}
	if c := findCheck(h, "attestation"); c == nil || c.Status != api.HealthHealthy {
		t.Fatalf("device attestation check after an affirming result: %+v", c)
	}

	// Tamper with the boot: an attacker's component is measured into PCR
	// 4 but hidden from the event log. The device "reboots" (the agent
	// restarts on the same TPM).
	stop()
	s.r.ok(s.agent, "tpm", "extend", "--tpm", tp.Spec, "--pcr", "4", "--data", "bootkit")
	s.runAgent(t, "tpm-agent-2", "--state", state, "--interval", "1s", "--platform-root", platform)
	out, errOut, code = s.r.run(s.bulwark, "attest", id, "--json", "--wait", "60s")
	if code == 0 {
		t.Fatalf("attestation of a tampered boot succeeded:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("attest --json: %v\n%s\n%s", err, out, errOut)
	}
	if res.Status != api.AttestContraindicated || len(res.Problems) == 0 {
		t.Fatalf("tampered boot = %+v", res)
	}
	d = s.device(t, id)
	if d.Trust != api.TrustQuarantined || d.HealthStatus != api.HealthUnhealthy {
		t.Fatalf("after a failed attestation: trust %q health %q", d.Trust, d.HealthStatus)
	}
	eventually(t, "the device to see itself unhealthy", 30*time.Second, func() bool {
		hout, _, _ := s.r.run(s.agent, "health", "--json", "--state", state)
		var h api.Health
		json.Unmarshal([]byte(hout), &h)
		c := findCheck(h, "attestation")
		return c != nil && c.Status == api.HealthUnhealthy && h.Status == api.HealthUnhealthy
	})
	// The action is in the audit log.
	audit := s.r.ok(s.bulwark, "audit", "list", "--json")
	if !strings.Contains(audit, "attestation.failed") {
		t.Fatalf("the failed attestation is not in the audit log")
	}
}

func findCheck(h api.Health, name string) *api.HealthCheck {
	for i := range h.Checks {
		if h.Checks[i].Name == name {
			return &h.Checks[i]
		}
	}
	return nil
}
