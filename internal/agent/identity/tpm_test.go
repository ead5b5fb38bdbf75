package identity

import (
	"bytes"
	"crypto"
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

	"github.com/google/go-attestation/attest"

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
	if id.AK() != nil {
		t.Error("identity without an AK file has an AK")
	}
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
	os.Chmod(filepath.Join(dir, TPMKeyFile), 0o600)
	os.WriteFile(filepath.Join(dir, TPMKeyFile), []byte("junk"), 0o600)
	if _, err := LoadTPM(dir, dev); err == nil || strings.Contains(err.Error(), "chmod") {
		t.Errorf("junk key file: %v", err)
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

func TestTPMIdentityAK(t *testing.T) {
	dev := openSim(t)
	key, err := dev.CreateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	ak, err := dev.CreateAK()
	if err != nil {
		t.Fatal(err)
	}
	certPEM := certFor(t, key.Public())
	dir := t.TempDir()
	want := ak.Parameters()
	if err := state.Commit(dir, append(TPMFiles(key, certPEM), TPMAKStateFile(ak))); err != nil {
		t.Fatal(err)
	}
	first, err := NewTPMWithAK(key, ak, certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if first.AK() != ak {
		t.Error("NewTPMWithAK lost the AK")
	}
	if err := first.Close(); err != nil { // closes both keys
		t.Fatal(err)
	}
	if _, err := ak.Quote([]byte("n"), []int{0}); err == nil {
		t.Error("the identity's Close left the AK loaded")
	}
	fi, err := os.Stat(filepath.Join(dir, TPMAKFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("AK file: %v, %v", fi, err)
	}

	id, err := LoadTPM(dir, dev)
	if err != nil {
		t.Fatal(err)
	}
	got := id.AK()
	if got == nil {
		t.Fatal("LoadTPM did not load the AK")
	}
	p := got.Parameters()
	if !bytes.Equal(p.Public, want.Public) || !bytes.Equal(p.CreateData, want.CreateData) ||
		!bytes.Equal(p.CreateAttestation, want.CreateAttestation) || !bytes.Equal(p.CreateSignature, want.CreateSignature) {
		t.Error("the reloaded AK's creation parameters differ")
	}
	// The reloaded AK works: it quotes, and its quote verifies.
	nonce := []byte("identity nonce")
	ev, err := got.Quote(nonce, []int{0, 7})
	if err != nil {
		t.Fatal(err)
	}
	akPub, err := attest.ParseAKPublic(p.Public)
	if err != nil {
		t.Fatal(err)
	}
	pcrs := []attest.PCR{{Index: 0, Digest: ev.PCRs[0].Digest, DigestAlg: crypto.SHA256}, {Index: 7, Digest: ev.PCRs[1].Digest, DigestAlg: crypto.SHA256}}
	if err := akPub.Verify(attest.Quote{Quote: ev.Quote, Signature: ev.Signature}, pcrs, nonce); err != nil {
		t.Errorf("quote by the reloaded AK: %v", err)
	}
	// It also certifies the identity's device key.
	c, err := got.Certify(id.Signer().(*tpmdev.Key), nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := attest.CertificationParameters{Public: c.Public, CreateAttestation: c.Attestation, CreateSignature: c.Signature}
	if err := cp.Verify(attest.VerifyOpts{Public: akPub.Public, Hash: crypto.SHA256}); err != nil {
		t.Errorf("certification of the device key: %v", err)
	}
	id.Close()

	akPath := filepath.Join(dir, TPMAKFile)
	os.Chmod(akPath, 0o644)
	if _, err := LoadTPM(dir, dev); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadTPM with a 0644 AK file: %v", err)
	}
	os.Chmod(akPath, 0o600)
	os.WriteFile(akPath, []byte("junk"), 0o600)
	if _, err := LoadTPM(dir, dev); err == nil || !strings.Contains(err.Error(), "PEM blocks") {
		t.Errorf("junk AK file: %v", err)
	}
	// Creation parameters of another AK are refused.
	other, err := dev.CreateAK()
	if err != nil {
		t.Fatal(err)
	}
	op := other.Parameters()
	var mixed []byte
	for _, b := range []pem.Block{
		{Type: pemTPMPublic, Bytes: ak.PublicBlob()},
		{Type: pemTPMPrivate, Bytes: ak.PrivateBlob()},
		{Type: pemTPMCreationData, Bytes: op.CreateData},
		{Type: pemTPMAttest, Bytes: op.CreateAttestation},
		{Type: pemTPMSignature, Bytes: op.CreateSignature},
	} {
		mixed = append(mixed, pem.EncodeToMemory(&b)...)
	}
	other.Close()
	os.WriteFile(akPath, mixed, 0o600)
	if _, err := LoadTPMAK(dir, dev); err == nil {
		t.Error("AK loaded with another AK's creation parameters")
	} else if !strings.Contains(err.Error(), "not about this key") {
		t.Errorf("AK with another AK's creation parameters: %v", err)
	}
	// The genuine file still loads.
	os.WriteFile(akPath, MarshalTPMAK(ak), 0o600)
	back, err := LoadTPMAK(dir, dev)
	if err != nil {
		t.Fatal(err)
	}
	back.Close()
}
