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
	tpmdev "github.com/bulwark-iot/bulwark/internal/tpm"
	"github.com/bulwark-iot/bulwark/internal/tpm/tpmsim"
)

func openSim(t *testing.T) *tpmdev.TPM {
	t.Helper()
	dev, err := tpmsim.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

// certFor issues a certificate for the TPM key, signed by a throwaway CA.
func certFor(t *testing.T, pub any) []byte {
	t.Helper()
	ca, _ := GenerateKey()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "dev-tpm"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, pub, ca)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTPMIdentityFiles(t *testing.T) {
	dev := openSim(t)
	key, err := dev.CreateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM := certFor(t, key.Public())
	dir := t.TempDir()
	if err := state.Commit(dir, TPMFiles(key, certPEM)); err != nil {
		t.Fatal(err)
	}
	first, err := NewTPM(key, certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil { // free the slot; the blobs on disk stay valid
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, TPMKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("TPM key file mode = %04o, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, TPMKeyFile)); strings.Contains(string(b), "PRIVATE KEY") {
		t.Error("TPM key file holds a software private key")
	}

	id, err := LoadTPM(dir, dev)
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	var _ Identity = id
	if id.KeyAssurance() != AssuranceTPM {
		t.Errorf("KeyAssurance = %q", id.KeyAssurance())
	}
	if id.Certificate().Leaf == nil || id.Certificate().Leaf.Subject.CommonName != "dev-tpm" || id.Certificate().PrivateKey != id.Signer() {
		t.Errorf("certificate = %+v", id.Certificate())
	}
	// The re-enrolment proof made in the TPM verifies with the certificate's key.
	csr := []byte("csr der")
	p, err := Proof(id.Signer(), csr)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(p)
	sum := sha256.Sum256(csr)
	if !ecdsa.VerifyASN1(id.Certificate().Leaf.PublicKey.(*ecdsa.PublicKey), sum[:], sig) {
		t.Error("TPM proof does not verify")
	}

	os.Chmod(filepath.Join(dir, TPMKeyFile), 0o644)
	if _, err := LoadTPM(dir, dev); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadTPM of a 0644 key file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, TPMKeyFile), []byte("junk"), 0o600)
	if _, err := LoadTPM(dir, dev); err == nil {
		t.Error("junk key file loaded")
	}
}

func TestNewTPMRejectsMismatch(t *testing.T) {
	dev := openSim(t)
	key, err := dev.CreateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	other, _ := GenerateKey()
	if _, err := NewTPM(key, certFor(t, &other.PublicKey)); err == nil {
		t.Error("certificate for another key accepted")
	}
	if _, err := NewTPM(key, []byte("junk")); err == nil {
		t.Error("junk accepted")
	}
}
