package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

func TestAlertsCommands(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, ts.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BULWARK_ADDR", ts.URL)
	t.Setenv("BULWARK_TOKEN", ts.AdminToken)
	t.Setenv("BULWARK_CACERT", ca)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}

	// Enrolling a device raises a device.enrolled alert.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	csr, _ := deviceclient.NewCSR(key)
	er, err := c.Enroll(context.Background(), api.EnrollRequest{Token: ts.EnrollToken(t, 1, ""), CSR: csr})
	if err != nil {
		t.Fatal(err)
	}

	code, out, errs := run("alerts", "list", "--open", "--json")
	if code != 0 {
		t.Fatalf("alerts list: %d %s", code, errs)
	}
	var list []api.Alert
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("alerts list --json: %v\n%s", err, out)
	}
	if len(list) != 1 || list[0].Rule != "device.enrolled" || list[0].DeviceID != er.DeviceID || list[0].Status != api.AlertOpen {
		t.Fatalf("open alerts = %+v", list)
	}
	id := list[0].ID
	code, out, _ = run("alerts", "list")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "Informational") || !strings.Contains(out, "device.enrolled") {
		t.Fatalf("alerts list table: %d\n%s", code, out)
	}
	code, out, errs = run("alerts", "ack", id)
	if code != 0 || !strings.Contains(out, "acknowledged alert "+id) {
		t.Fatalf("alerts ack: %d %s %s", code, out, errs)
	}
	_, out, _ = run("alerts", "list", "--open", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("open alerts after the ack: %s", out)
	}
	_, out, _ = run("alerts", "list", "--status", "acknowledged", "--device", er.DeviceID, "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].AckedBy != "token:test-admin" {
		t.Fatalf("acknowledged alerts = %s", out)
	}

	// Usage errors.
	for _, args := range [][]string{{"alerts"}, {"alerts", "nope"}, {"alerts", "ack"}, {"alerts", "list", "--open", "--status", "resolved"}, {"alerts", "list", "--limit", "0"}} {
		if code, _, _ := run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := run("alerts", "ack", "alr_unknown"); code != 1 || !strings.Contains(errs, "no such resource") {
		t.Errorf("ack of an unknown alert: %d %s", code, errs)
	}
}
