package measuredboot_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/agent/measuredboot"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/tpm"
	"github.com/bulwark-iot/bulwark/internal/tpm/tpmsim"
)

// TestEmulateReplays measures an emulated boot into the reference TPM
// simulator and checks that the server's verifier replays the written log
// to the quoted PCRs and reads Secure Boot from it; a second boot without
// a reset is refused.
func TestEmulateReplays(t *testing.T) {
	dev, err := tpmsim.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	root := t.TempDir()
	if err := measuredboot.Emulate(dev, root, measuredboot.Options{SecureBoot: true}); err != nil {
		t.Fatal(err)
	}
	if err := measuredboot.Emulate(dev, root, measuredboot.Options{}); err == nil || !strings.Contains(err.Error(), "already extended") {
		t.Fatalf("a second boot without a reset: %v", err)
	}
	ak, err := dev.CreateAK()
	if err != nil {
		t.Fatal(err)
	}
	defer ak.Close()
	nonce := make([]byte, api.NonceSize)
	rand.Read(nonce)
	ev, err := ak.Quote(nonce, []int{0, 1, 2, 3, 4, 5, 6, 7})
	if err != nil {
		t.Fatal(err)
	}
	tpm.Platform{Root: root}.AddTo(ev)
	if len(ev.EventLog) == 0 || ev.SecureBoot != "enabled" {
		t.Fatalf("platform files: log %d bytes, secure boot %q", len(ev.EventLog), ev.SecureBoot)
	}
	res := attest.Verify(ak.Parameters().Public, ev, nonce, nil)
	if !res.QuoteVerified || len(res.Replayed) != 8 || res.SecureBoot != "enabled" || !res.SecureBootVerified {
		t.Fatalf("emulated boot does not replay: %+v", res)
	}
	// Tampering after the boot is caught by the same replay.
	if err := dev.ExtendPCR(4, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	rand.Read(nonce)
	ev, _ = ak.Quote(nonce, []int{0, 1, 2, 3, 4, 5, 6, 7})
	tpm.Platform{Root: root}.AddTo(ev)
	if res := attest.Verify(ak.Parameters().Public, ev, nonce, nil); res.Status != api.AttestContraindicated {
		t.Fatalf("PCR 4 extended outside the log: %+v", res)
	}
}
