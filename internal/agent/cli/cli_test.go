package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/agenttest"
	"github.com/bulwark-iot/bulwark/internal/agent/localapi"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/healthdef"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// oneLine checks that stderr is a single error line naming the command
// and containing want.
func oneLine(t *testing.T, args []string, wantCode int, stderr, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("%v: stderr is not one line: %q", args, stderr)
	}
	if !strings.HasPrefix(stderr, "bulwark-agent") || !strings.Contains(stderr, want) {
		t.Errorf("%v: stderr = %q, want it to contain %q", args, stderr, want)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("not a certificate"), 0o644)
	stateDir := filepath.Join(dir, "state")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"enroll", "--state", stateDir}, 2, "--server is required"},
		{[]string{"enroll", "--server", "https://x", "--state", stateDir}, 2, "--token or --token-file is required"},
		{[]string{"enroll", "--server", "https://x", "--token", "t", "--state", stateDir}, 2, "--ca-cert is required"},
		{[]string{"enroll", "--server", "https://x", "--token", "t", "--token-file", "f", "--ca-cert", ca}, 2, "not both"},
		{[]string{"enroll", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"enroll", "--server", "https://x", "--token", "t", "--ca-cert", filepath.Join(dir, "missing.pem"), "--state", stateDir}, 1, "reading --ca-cert: open"},
		{[]string{"enroll", "--server", "https://x", "--token", "t", "--ca-cert", ca, "--state", stateDir}, 1, "holds no PEM certificate"},
		{[]string{"run", "--interval", "10ms", "--state", stateDir}, 2, "--interval must be 0"},
		{[]string{"run", "--log-level", "loud", "--state", stateDir}, 2, "--log-level"},
		{[]string{"run", "--state", stateDir}, 1, "not enrolled"},
		{[]string{"status", "extra", "--state", stateDir}, 2, `unexpected argument "extra"`},
		{[]string{"health", "--state", stateDir}, 1, "not running"},
	} {
		code, _, stderr := run(t, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr)
		}
		oneLine(t, tc.args, tc.code, stderr, tc.want)
	}
	if _, err := os.Stat(filepath.Join(stateDir, state.KeyFile)); err == nil {
		t.Error("a failed enrol left a key")
	}
}

func TestHelpAndVersion(t *testing.T) {
	if code, _, stderr := run(t); code != 2 || !strings.Contains(stderr, "usage: bulwark-agent") {
		t.Errorf("no args: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := run(t, "enroll", "-h"); code != 0 || !strings.Contains(stdout, "--ca-cert") && !strings.Contains(stdout, "-ca-cert") {
		t.Errorf("enroll -h: exit %d, stdout %q", code, stdout)
	}
	if code, stdout, _ := run(t, "version"); code != 0 || !strings.HasPrefix(stdout, "bulwark-agent ") {
		t.Errorf("version: exit %d, stdout %q", code, stdout)
	}
}

func TestEnrollRunStatus(t *testing.T) {
	srv := agenttest.New()
	t.Cleanup(srv.Close)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "state")
	ca := filepath.Join(tmp, "ca.pem")
	os.WriteFile(ca, srv.CAPEM, 0o644)
	tokenFile := filepath.Join(tmp, "token")
	os.WriteFile(tokenFile, []byte(srv.Token+"\n"), 0o600)

	args := []string{"enroll", "--server", "http://" + strings.TrimPrefix(srv.URL, "https://"), "--token", "t", "--ca-cert", ca, "--state", dir}
	code, _, stderr := run(t, args...)
	if code != 1 {
		t.Errorf("http server URL: exit %d", code)
	}
	oneLine(t, args, 1, stderr, "must be an https:// URL")

	args = []string{"enroll", "--server", srv.URL, "--token", "wrong", "--ca-cert", ca, "--state", dir}
	code, _, stderr = run(t, args...)
	if code != 1 {
		t.Errorf("bad token: exit %d", code)
	}
	oneLine(t, args, 1, stderr, "the server refused the enrolment token")

	code, stdout, stderr := run(t, "enroll", "--server", srv.URL, "--token-file", tokenFile, "--ca-cert", ca, "--state", dir)
	if code != 0 {
		t.Fatalf("enroll: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(stdout)
	if srv.Device(id) == nil {
		t.Fatalf("enroll printed %q, not a device ID the server knows", stdout)
	}

	args = []string{"enroll", "--server", srv.URL, "--token", srv.Token, "--ca-cert", ca, "--state", dir}
	code, _, stderr = run(t, args...)
	if code != 1 {
		t.Errorf("second enroll: exit %d", code)
	}
	oneLine(t, args, 1, stderr, "already enrolled as device "+id)

	// Daemon not running: say so, exit 1, still show the enrolment.
	code, stdout, stderr = run(t, "status", "--json", "--state", dir)
	if code != 1 {
		t.Errorf("status without daemon: exit %d", code)
	}
	oneLine(t, []string{"status"}, 1, stderr, "daemon is not running")
	var st localapi.Status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status --json: %v: %q", err, stdout)
	}
	if st.DaemonRunning || !st.Enrolled || st.DeviceID != id || st.CertificateNotAfter == nil {
		t.Errorf("offline status = %+v", st)
	}
	if !strings.Contains(stdout, `"daemon_running": false`) {
		t.Errorf("status --json lacks daemon_running false: %s", stdout)
	}
	code, stdout, _ = run(t, "status", "--state", dir)
	if code != 1 || !strings.Contains(stdout, "not running") || !strings.Contains(stdout, id) {
		t.Errorf("status (text) without daemon: exit %d:\n%s", code, stdout)
	}

	// Run the daemon through the CLI and ask it.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- Run(ctx, []string{"run", "--state", dir, "--interval", "1h"}, &bytes.Buffer{}, &logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run: exit %d\n%s", code, logs.String())
		}
	}()
	if _, ok := srv.Wait(id, 10*time.Second, func(d *agenttest.Device) bool { return d != nil && len(d.Checkins) > 0 }); !ok {
		t.Fatal("no check-in from the daemon")
	}
	srv.Queue(id, api.Command{ID: "p1", Kind: "ping"})
	if _, ok := srv.Wait(id, 10*time.Second, func(d *agenttest.Device) bool { return len(d.Acks) == 1 }); !ok {
		t.Fatal("ping not acknowledged")
	}

	code, stdout, stderr = run(t, "status", "--json", "--state", dir)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	st = localapi.Status{}
	json.Unmarshal([]byte(stdout), &st)
	if !st.DaemonRunning || st.DeviceID != id || st.LastCheckinResult != "ok" || st.Health == nil || st.AgentVersion == "" ||
		st.IoC == nil || st.IoC.Blocking != "off" {
		t.Errorf("status = %+v", st)
	}
	code, stdout, _ = run(t, "status", "--state", dir)
	for _, want := range []string{"Device ID:", id, "Last check-in:", "(ok)", "Revoked:", "Health:", "identity", "Certificate:", "IoC set:", "blocking off"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status text lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = run(t, "health", "--json", "--state", dir)
	var h api.Health
	if err := json.Unmarshal([]byte(stdout), &h); err != nil || len(h.Checks) != len(healthdef.CheckNames()) {
		t.Errorf("health --json = %q (%v)", stdout, err)
	}
	if want := map[string]int{api.HealthHealthy: 0, api.HealthDegraded: 3, api.HealthUnhealthy: 3, api.HealthUnknown: 3}[h.Status]; code != want {
		t.Errorf("health %s: exit %d, want %d", h.Status, code, want)
	}
	if _, err := os.Stat(filepath.Join(dir, state.SocketFile)); err != nil {
		t.Errorf("socket: %v", err)
	}
}
