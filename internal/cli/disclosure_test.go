package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/disclosure"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

func TestDisclosureAndProductCommands(t *testing.T) {
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

	body, _ := json.Marshal(disclosure.Submission{Summary: "Hard-coded key", Product: "cam-100", Details: "See /etc/key."})
	resp, err := ts.HTTP.Post(ts.URL+"/api/v1/disclosures", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var rec disclosure.Receipt
	json.NewDecoder(resp.Body).Decode(&rec)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("submit: %d", resp.StatusCode)
	}

	if code, out, errs := run("disclosures", "list"); code != 0 || !strings.Contains(out, rec.ID) || !strings.Contains(out, "Hard-coded key") {
		t.Errorf("list: %d %q %q", code, out, errs)
	}
	if code, out, errs := run("disclosures", "transition", rec.ID, "--to", "fixed"); code != 1 || out != "" || !strings.Contains(errs, "allowed: triaged, rejected, duplicate") {
		t.Errorf("forbidden transition: %d %q %q", code, out, errs)
	}
	if code, out, errs := run("disclosures", "transition", rec.ID, "--to", "triaged", "--note", "Confirmed."); code != 0 || !strings.Contains(out, "is now triaged") {
		t.Errorf("transition: %d %q %q", code, out, errs)
	}
	if code, out, errs := run("disclosures", "show", rec.ID); code != 0 || !strings.Contains(out, "received -> triaged") || !strings.Contains(out, "See /etc/key.") {
		t.Errorf("show: %d %q %q", code, out, errs)
	}
	if code, _, errs := run("disclosures", "transition", rec.ID); code != 2 || !strings.Contains(errs, "--to STATE is required") {
		t.Errorf("no --to: %d %q", code, errs)
	}

	if code, out, errs := run("products", "set", "--name", "cam-100", "--support-until", "2031-12-31", "--cadence", "monthly", "--critical-fix", "14 days"); code != 0 || !strings.Contains(out, "until 2031-12-31") {
		t.Errorf("products set: %d %q %q", code, out, errs)
	}
	if code, _, errs := run("products", "set", "--name", "cam-100", "--support-until", "2031-13-01", "--cadence", "monthly", "--critical-fix", "14 days"); code != 1 || !strings.Contains(errs, "support_until") {
		t.Errorf("bad date: %d %q", code, errs)
	}
	var ps []disclosure.Product
	code, out, errs := run("products", "list", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 1 || ps[0].CriticalFixTarget != "14 days" {
		t.Errorf("products list: %d %q %q", code, out, errs)
	}
}
