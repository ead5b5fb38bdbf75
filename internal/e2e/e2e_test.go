// Package e2e runs the real binaries over loopback: a server, the admin
// CLI and an agent process, from first start to revocation.
package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"

	_ "modernc.org/sqlite"
)

// build compiles a command of this module into dir.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "github.com/bulwark-iot/bulwark/"+pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	return out
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type runner struct {
	t   *testing.T
	env []string
}

// run runs a binary and returns stdout, stderr and the exit code.
func (r *runner) run(bin string, args ...string) (string, string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), r.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("%s %v: %v", bin, args, err)
	}
	return out.String(), errb.String(), code
}

func (r *runner) ok(bin string, args ...string) string {
	r.t.Helper()
	out, errs, code := r.run(bin, args...)
	if code != 0 {
		r.t.Fatalf("%s %s: exit %d\n%s%s", filepath.Base(bin), strings.Join(args, " "), code, out, errs)
	}
	return out
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds binaries; skipped with -short")
	}
	tmp := t.TempDir()
	bulwark := build(t, tmp, "cmd/bulwark")
	agent := build(t, tmp, "cmd/bulwark-agent")
	data := filepath.Join(tmp, "data")
	addr := freePort(t)
	base := "https://" + addr

	// First start initialises the data directory and prints the first
	// admin's generated password.
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, bulwark, "server", "--data", data, "--listen", addr)
	var srvOut, srvErr bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvErr
	srv.Cancel = func() error { return srv.Process.Signal(os.Interrupt) }
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-srvDone:
		case <-time.After(20 * time.Second):
			t.Error("server did not stop on SIGINT within 20 s")
			srv.Process.Kill()
		}
		if t.Failed() {
			t.Logf("server stdout:\n%s\nserver log:\n%s", srvOut.String(), srvErr.String())
		}
	})
	r := &runner{t: t}
	eventually(t, "server to listen", 30*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if !strings.Contains(srvOut.String(), "First admin login") {
		t.Fatalf("first start did not announce the admin credential:\n%s", srvOut.String())
	}
	if fi, err := os.Stat(filepath.Join(data, "kek")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kek file: %v %v", fi, err)
	}

	token := strings.TrimSpace(r.ok(bulwark, "token", "create", "--data", data, "--role", "admin", "--name", "e2e"))
	if !strings.HasPrefix(token, "bwk_") {
		t.Fatalf("token create printed %q", token)
	}
	r.env = []string{"BULWARK_ADDR=" + base, "BULWARK_TOKEN=" + token, "BULWARK_CACERT=" + filepath.Join(data, "ca.pem")}

	// CLI bad input: one line, non-zero exit.
	if _, errs, code := r.run(bulwark, "devices", "show"); code == 0 || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Fatalf("devices show without ID: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := r.run(bulwark, "enroll-token", "create", "--ttl", "soon"); code == 0 || !strings.Contains(errs, "--ttl") {
		t.Fatalf("bad ttl: exit %d, stderr %q", code, errs)
	}

	r.ok(bulwark, "groups", "create", "lab")
	enrollToken := strings.TrimSpace(r.ok(bulwark, "enroll-token", "create", "--uses", "1", "--ttl", "1h", "--group", "lab"))
	state := filepath.Join(tmp, "agent")
	r.ok(agent, "enroll", "--server", base, "--token", enrollToken, "--ca-cert", filepath.Join(data, "ca.pem"), "--state", state)
	if fi, err := os.Stat(filepath.Join(state, "device.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device key file: %v %v", fi, err)
	}
	// The update repository's root is embedded at enrolment.
	if b, err := os.ReadFile(filepath.Join(state, "tuf", "root.json")); err != nil || !strings.Contains(string(b), `"_type": "root"`) && !strings.Contains(string(b), `"_type":"root"`) {
		t.Fatalf("TUF root not taken at enrolment: %v %.80s", err, b)
	}
	// The single-use token is spent.
	if _, errs, code := r.run(agent, "enroll", "--server", base, "--token", enrollToken, "--ca-cert", filepath.Join(data, "ca.pem"), "--state", filepath.Join(tmp, "agent2")); code == 0 || !strings.Contains(errs, "no uses left") {
		t.Fatalf("second enrolment with a single-use token: exit %d %q", code, errs)
	}

	actx, acancel := context.WithCancel(context.Background())
	ag := exec.CommandContext(actx, agent, "run", "--state", state, "--interval", "1s")
	var agErr bytes.Buffer
	ag.Stderr = &agErr
	ag.Cancel = func() error { return ag.Process.Signal(os.Interrupt) }
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	agDone := make(chan error, 1)
	go func() { agDone <- ag.Wait() }()
	t.Cleanup(func() {
		acancel()
		select {
		case <-agDone:
		case <-time.After(15 * time.Second):
			t.Error("agent did not stop on SIGINT within 15 s")
			ag.Process.Kill()
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", agErr.String())
		}
	})

	var list api.DeviceList
	eventually(t, "the device to check in", 30*time.Second, func() bool {
		json.Unmarshal([]byte(r.ok(bulwark, "devices", "list", "--json")), &list)
		return list.Total == 1 && list.Devices[0].LastSeen != nil
	})
	dev := list.Devices[0]
	if dev.Group != "lab" || !dev.Online {
		t.Fatalf("device %+v", dev)
	}
	var shown api.Device
	json.Unmarshal([]byte(r.ok(bulwark, "devices", "show", dev.ID, "--json")), &shown)
	host, _ := os.Hostname()
	if shown.Inventory == nil || shown.Inventory.Hostname != host || shown.Inventory.Kernel == "" || shown.Health == nil {
		t.Fatalf("inventory/health not recorded: %+v", shown)
	}

	// Local status over the agent's socket.
	var st struct {
		DaemonRunning bool   `json:"daemon_running"`
		DeviceID      string `json:"device_id"`
		Revoked       bool   `json:"revoked"`
		LastSuccess   string `json:"last_checkin_success"`
	}
	eventually(t, "agent status", 15*time.Second, func() bool {
		out, _, _ := r.run(agent, "status", "--json", "--state", state)
		json.Unmarshal([]byte(out), &st)
		return st.DaemonRunning && st.LastSuccess != ""
	})
	if st.DeviceID != dev.ID {
		t.Fatalf("agent reports device %s, server %s", st.DeviceID, dev.ID)
	}

	// The health the agent reports locally is exactly the documented
	// definition (docs/device-health.md), and the server has the same.
	var health api.Health
	hout, _, _ := r.run(agent, "health", "--json", "--state", state)
	if err := json.Unmarshal([]byte(hout), &health); err != nil {
		t.Fatalf("bulwark-agent health --json: %v\n%s", err, hout)
	}
	documented := documentedChecks(t)
	var reported []string
	for _, c := range health.Checks {
		reported = append(reported, c.Name)
	}
	if strings.Join(reported, ",") != strings.Join(documented, ",") {
		t.Fatalf("agent reports health checks %v, docs/device-health.md defines %v", reported, documented)
	}
	if len(shown.Health.Checks) != len(documented) {
		t.Fatalf("server recorded health %+v", shown.Health)
	}

	// A command reaches the online agent and is acknowledged.
	r.ok(bulwark, "devices", "command", dev.ID, "--kind", "ping")
	eventually(t, "the ping to be acknowledged", 20*time.Second, func() bool {
		var cmds []api.CommandStatus
		json.Unmarshal([]byte(r.ok(bulwark, "devices", "commands", dev.ID, "--json")), &cmds)
		return len(cmds) == 1 && cmds[0].Status == "done"
	})

	// Revocation: the agent is refused on its next connection.
	r.ok(bulwark, "devices", "revoke", dev.ID)
	eventually(t, "the agent to see its revocation", 20*time.Second, func() bool {
		out, _, _ := r.run(agent, "status", "--json", "--state", state)
		json.Unmarshal([]byte(out), &st)
		return st.Revoked
	})
	if !strings.Contains(agErr.String(), "revoked") {
		t.Fatalf("agent log does not mention the revocation:\n%s", agErr.String())
	}

	anchor := filepath.Join(tmp, "audit.anchor")
	out := r.ok(bulwark, "audit", "verify", "--anchor", anchor)
	if !strings.Contains(out, "audit log OK") {
		t.Fatalf("audit verify: %s", out)
	}
	auditOut := r.ok(bulwark, "audit", "list", "--limit", "100")
	for _, action := range []string{"device.enroll", "device.revoke", "enroll_token.create", "command.create", "api_token.create"} {
		if !strings.Contains(auditOut, action) {
			t.Errorf("audit list lacks %s", action)
		}
	}

	// Tampering with the database is detected: an altered entry breaks
	// the chain, and entries cut from the end break the anchor.
	db, err := sql.Open("sqlite", filepath.Join(data, "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq > (SELECT MAX(seq) - 2 FROM audit_log)`); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := r.run(bulwark, "audit", "verify", "--anchor", anchor); code == 0 || !strings.Contains(errs, "entries were removed") {
		t.Fatalf("truncated audit log: exit %d %q", code, errs)
	}
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'user:nobody' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := r.run(bulwark, "audit", "verify"); code == 0 || !strings.Contains(errs, "entry 3 was altered") {
		t.Fatalf("altered audit log: exit %d %q", code, errs)
	}
}

// documentedChecks reads the check names from the table in
// docs/device-health.md.
func documentedChecks(t *testing.T) []string {
	b, err := os.ReadFile("../../docs/device-health.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `") {
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		t.Fatal("docs/device-health.md defines no checks")
	}
	return names
}
