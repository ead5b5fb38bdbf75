package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

func TestReleaseReferenceValuesCommands(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
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
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	h := strings.Repeat("0f", 32)
	artifact := write("fw.tar.gz", "firmware")
	v1 := write("v1.json", `{"product": "cam-fw", "version": "1.0.0", "pcrs": {"0": "`+h+`", "4": "`+h+`"}}`)

	// A manifest for another release is refused before anything is
	// uploaded.
	if code, _, errs := run("release", "publish", "--product", "cam-fw", "--version", "1.0.0", "--file", artifact, "--reference-values", v1[:len(v1)-7]+"x.json"); code == 0 {
		t.Fatalf("publish with a missing manifest succeeded: %s", errs)
	}
	wrong := write("wrong.json", `{"product": "cam-fw", "version": "0.9.0", "pcrs": {"0": "`+h+`"}}`)
	if code, _, errs := run("release", "publish", "--product", "cam-fw", "--version", "1.0.0", "--file", artifact, "--reference-values", wrong); code == 0 || !strings.Contains(errs, "not cam-fw 1.0.0") {
		t.Fatalf("publish with another release's manifest: %d %s", code, errs)
	}
	if code, out, _ := run("release", "list", "--json"); code != 0 || strings.Contains(out, "cam-fw") {
		t.Fatalf("a refused publish uploaded the release: %s", out)
	}

	code, out, errs := run("release", "publish", "--product", "cam-fw", "--version", "1.0.0", "--file", artifact, "--reference-values", v1)
	if code != 0 || !strings.Contains(out, "cam-fw/1.0.0/reference-values.json") {
		t.Fatalf("publish: %d %s %s", code, out, errs)
	}
	code, out, errs = run("release", "reference-values", "cam-fw", "1.0.0")
	if code != 0 || !strings.Contains(out, "\n4    "+h) {
		t.Fatalf("show: %d %q %s", code, out, errs)
	}

	// A second manifest needs --replace.
	v1b := write("v1b.json", `{"product": "cam-fw", "version": "1.0.0", "pcrs": {"0": "`+h+`"}, "files": [{"path": "/bin/camd", "sha256": "`+h+`"}]}`)
	if code, _, errs := run("release", "reference-values", "cam-fw", "1.0.0", v1b); code == 0 || !strings.Contains(errs, "replace") {
		t.Fatalf("second manifest without --replace: %d %s", code, errs)
	}
	if code, out, errs := run("release", "reference-values", "--replace", "cam-fw", "1.0.0", v1b); code != 0 || !strings.Contains(out, "replaced") {
		t.Fatalf("replace: %d %s %s", code, out, errs)
	}
	if code, out, _ := run("release", "reference-values", "cam-fw", "1.0.0"); code != 0 || !strings.Contains(out, "/bin/camd") {
		t.Fatalf("show after replace: %s", out)
	}
}
