package identity

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
)

func selfSigned(t *testing.T, key *ecdsa.PrivateKey, nb, na time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "dev-1"}, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestSoftwareIdentityFiles(t *testing.T) {
	dir := t.TempDir()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	certPEM := selfSigned(t, key, now.Add(-time.Hour), now.Add(time.Hour))
	files, err := Files(key, certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := state.Commit(dir, files); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, state.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", fi.Mode().Perm())
	}
	id, err := LoadSoftware(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !id.Signer().Public().(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("loaded key differs")
	}
	if id.Certificate().Leaf == nil || id.Certificate().Leaf.Subject.CommonName != "dev-1" || id.KeyAssurance() != "software" {
		t.Errorf("identity = %+v", id.Certificate().Leaf)
	}

	// A key readable by others is refused.
	os.Chmod(filepath.Join(dir, state.KeyFile), 0o644)
	if _, err := LoadSoftware(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadSoftware of a 0644 key: %v", err)
	}
}

func TestNewSoftwareRejectsMismatch(t *testing.T) {
	k1, _ := GenerateKey()
	k2, _ := GenerateKey()
	now := time.Now()
	if _, err := NewSoftware(k1, selfSigned(t, k2, now, now.Add(time.Hour))); err == nil {
		t.Error("certificate for another key accepted")
	}
	if _, err := NewSoftware(k1, []byte("junk")); err == nil {
		t.Error("junk accepted")
	}
}

func TestProofVerifies(t *testing.T) {
	key, _ := GenerateKey()
	csr := []byte("csr der bytes")
	p, err := Proof(key, csr)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(csr)
	if !ecdsa.VerifyASN1(&key.PublicKey, sum[:], sig) {
		t.Error("proof does not verify")
	}
}

func TestRenewalDue(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(90 * time.Hour)}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{0, false}, {59 * time.Hour, false}, {61 * time.Hour, true}, {91 * time.Hour, true},
	} {
		if got := RenewalDue(leaf, nb.Add(tc.at)); got != tc.want {
			t.Errorf("RenewalDue at +%v = %v, want %v", tc.at, got, tc.want)
		}
	}
}
