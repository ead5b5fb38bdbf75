// Package advisorytest runs the official CSAF validator
// (@secvisogram/csaf-validator-lib, see internal/advisory/validate) over
// documents in tests.
package advisorytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ValidatorEnv names the environment variable holding the path of
// internal/advisory/validate/validate.mjs, with its node_modules installed
// (`npm ci --prefix internal/advisory/validate`); .ci/run sets it.
const ValidatorEnv = "BULWARK_CSAF_VALIDATOR"

// Validate writes each document to a temporary directory under its name
// and runs the validator (strict schema and every mandatory test) on
// them, failing the test with the validator's report if any is invalid.
// It skips the test when ValidatorEnv is not set.
func Validate(t testing.TB, docs map[string][]byte) {
	t.Helper()
	script := os.Getenv(ValidatorEnv)
	if script == "" {
		t.Skipf("the CSAF validator is not installed: run `npm ci --prefix internal/advisory/validate` and set %s to the absolute path of internal/advisory/validate/validate.mjs", ValidatorEnv)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("%s is set but node is not on PATH: %v", ValidatorEnv, err)
	}
	dir := t.TempDir()
	var files []string
	for name, data := range docs {
		f := filepath.Join(dir, filepath.Base(name))
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	out, err := exec.Command(node, append([]string{script}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("CSAF validator: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), ": valid ("); n != len(files) {
		t.Fatalf("CSAF validator reported %d of %d documents valid:\n%s", n, len(files), out)
	}
	t.Logf("CSAF validator:\n%s", out)
}
