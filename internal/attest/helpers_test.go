package attest_test

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
)

var quotePCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 10}

func newNonce(t testing.TB) []byte {
	t.Helper()
	n := make([]byte, api.NonceSize)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

// device is a softtpm that booted a release and ran some software.
type device struct {
	tpm   *softtpm.TPM
	files map[string][32]byte
}

func fileHash(path, release string) [32]byte {
	return sha256.Sum256([]byte(path + " from release " + release))
}

// newDevice boots a software TPM (Secure Boot on, about bootEvents
// events) and measures imaFiles released files with IMA (none: no IMA).
func newDevice(t testing.TB, bootEvents, imaFiles int) *device {
	t.Helper()
	tpm, err := softtpm.New(softtpm.Options{EKCertificate: true})
	if err != nil {
		t.Fatal(err)
	}
	d := &device{tpm: tpm, files: map[string][32]byte{}}
	d.boot(t, softtpm.BootConfig{SecureBoot: true, Events: bootEvents})
	if imaFiles > 0 {
		tpm.MeasureIMA(softtpm.IMAEntry{PCR: 10, Template: "ima-ng", Path: "boot_aggregate", FileHash: sha256.Sum256([]byte("aggregate"))})
		for i := 1; i < imaFiles; i++ {
			p := fmt.Sprintf("/usr/lib/bulwark/lib%03d.so", i)
			d.files[p] = fileHash(p, "1")
			tpm.MeasureFile(p, d.files[p])
		}
	}
	return d
}

func (d *device) boot(t testing.TB, cfg softtpm.BootConfig) {
	t.Helper()
	if err := d.tpm.Boot(cfg); err != nil {
		t.Fatal(err)
	}
}

func (d *device) quote(t testing.TB, nonce []byte, pcrs ...int) *api.Evidence {
	t.Helper()
	if pcrs == nil {
		pcrs = quotePCRs
	}
	ev, err := d.tpm.Quote(nonce, pcrs)
	if err != nil {
		t.Fatal(err)
	}
	ev.SecureBoot = "enabled"
	return ev
}

// allowed is the released-software list for the device's files.
func (d *device) allowed() map[string]bool {
	m := map[string]bool{}
	for _, h := range d.files {
		m[hex.EncodeToString(h[:])] = true
	}
	return m
}

// policy is a policy the device satisfies: a reference captured from its
// own boot and its files.
func (d *device) policy(t testing.TB) *attest.Policy {
	t.Helper()
	ref := &attest.Reference{ID: "test release 1", PCRs: map[int][]byte{}}
	for i := 0; i < 8; i++ {
		v := d.tpm.PCR(i)
		ref.PCRs[i] = v[:]
	}
	return &attest.Policy{ID: "test", Reference: ref, AllowedFiles: d.allowed()}
}

func wantStatus(t *testing.T, r *attest.Result, status string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %s, want %s; problems:\n  %s", r.Status, status, strings.Join(r.Problems, "\n  "))
	}
	// Every problem shows in the status, and every status has a reason.
	if (status == api.AttestAffirming) != (len(r.Problems) == 0) {
		t.Fatalf("status %s with problems %q", r.Status, r.Problems)
	}
}

// wantProblem fails unless some problem contains every fragment.
func wantProblem(t *testing.T, r *attest.Result, fragments ...string) {
	t.Helper()
	if !slices.ContainsFunc(r.Problems, func(p string) bool {
		for _, f := range fragments {
			if !strings.Contains(p, f) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("no problem mentions %q; problems:\n  %s", fragments, strings.Join(r.Problems, "\n  "))
	}
}

func hexOf(h [32]byte) string { return hex.EncodeToString(h[:]) }

func mustPKIX(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
