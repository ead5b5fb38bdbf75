package tpm_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentDoesNotLinkSimulator: the simulator (cgo, test-only) must stay
// out of the production agent; only tpmsim imports it. So must
// go-attestation: the agent builds its TPM structures with go-tpm's tpm2
// package, and only tests check them with go-attestation, the server's
// verifier.
func TestAgentDoesNotLinkSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, pkg := range []string{"github.com/bulwark-iot/bulwark/internal/tpm", "github.com/bulwark-iot/bulwark/cmd/bulwark-agent"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/google/go-tpm-tools/") || strings.HasSuffix(dep, "/internal/tpm/tpmsim") ||
				strings.HasPrefix(dep, "github.com/google/go-attestation/") {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}
