package attest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
)

func newTPM(t *testing.T, cert bool) *softtpm.TPM {
	t.Helper()
	tpm, err := softtpm.New(softtpm.Options{EKCertificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	return tpm
}

func enrollment(t *testing.T, tpm *softtpm.TPM) *api.TPMEnrollment {
	t.Helper()
	e, err := tpm.Enrollment()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEnrollmentActivation(t *testing.T) {
	t.Parallel()
	tpm := newTPM(t, true)
	e, err := attest.VerifyEnrollment(enrollment(t, tpm), tpm.DeviceKey().Public(), tpm.EKRoots())
	if err != nil {
		t.Fatalf("VerifyEnrollment: %v", err)
	}
	if !e.EKCertificateVerified || e.TPMManufacturer != softtpm.Manufacturer || e.TPMModel != "softtpm" || e.TPMVersion != "id:00010000" {
		t.Errorf("EK certificate verified=%v manufacturer=%q model=%q version=%q", e.EKCertificateVerified, e.TPMManufacturer, e.TPMModel, e.TPMVersion)
	}
	sum := sha256.Sum256(tpm.EKPublicDER())
	if e.EKHash != hex.EncodeToString(sum[:]) || attest.EKHash(tpm.EKPublic()) != e.EKHash {
		t.Errorf("EK hash = %s", e.EKHash)
	}
	if !bytes.Equal(e.AKPublic, tpm.AKPublic()) {
		t.Error("AK public area is not the TPM's")
	}
	secret, cred, enc, err := e.Challenge()
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpm.ActivateCredential(cred, enc)
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	if !bytes.Equal(got, secret) || len(secret) != 32 {
		t.Fatalf("activated %x, want %x", got, secret)
	}
	// Without a certificate the EK is accepted, unverified.
	plain := newTPM(t, false)
	e, err = attest.VerifyEnrollment(enrollment(t, plain), plain.DeviceKey().Public(), tpm.EKRoots())
	if err != nil || e.EKCertificateVerified || e.EKCertificate != nil {
		t.Fatalf("without certificate: %v, verified=%v", err, e != nil && e.EKCertificateVerified)
	}
}

func TestEnrollmentAKNotBoundToEK(t *testing.T) {
	t.Parallel()
	victim, attacker := newTPM(t, true), newTPM(t, false)
	// The attacker presents the victim's EK (and certificate) with its own
	// AK and device key: the parameters verify, but the challenge is
	// encrypted to the victim's EK, which the attacker lacks.
	req := enrollment(t, attacker)
	req.EKPublic, req.EKCertificate = victim.EKPublicDER(), victim.EKCertificate()
	e, err := attest.VerifyEnrollment(req, attacker.DeviceKey().Public(), victim.EKRoots())
	if err != nil {
		t.Fatalf("VerifyEnrollment: %v", err)
	}
	_, cred, enc, err := e.Challenge()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attacker.ActivateCredential(cred, enc); err == nil {
		t.Error("the attacker activated a credential encrypted to another EK")
	}
	if _, err := victim.ActivateCredential(cred, enc); err == nil {
		t.Error("the victim's TPM activated a credential for the attacker's AK")
	}
}

func TestEnrollmentRejects(t *testing.T) {
	t.Parallel()
	tpm, other := newTPM(t, true), newTPM(t, true)
	devKey := tpm.DeviceKey().Public()
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notFixed, err := softtpm.DevicePublic(&stranger.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	notFixed.ObjectAttributes.FixedTPM = false
	notFixedCert, err := tpm.CertifyPublic(notFixed)
	if err != nil {
		t.Fatal(err)
	}
	strangerCert, err := tpm.Certify(&stranger.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := other.CertifyDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*api.TPMEnrollment)
		csrKey any
		roots  *x509.CertPool
		want   error
	}{
		{name: "certify of a different key", modify: func(e *api.TPMEnrollment) { e.DeviceKey = strangerCert }, want: attest.ErrDeviceKey},
		{name: "CSR key differs", csrKey: &stranger.PublicKey, want: attest.ErrDeviceKey},
		{name: "device key exportable", csrKey: &stranger.PublicKey, modify: func(e *api.TPMEnrollment) { e.DeviceKey = notFixedCert }, want: attest.ErrDeviceKey},
		{name: "certified by another TPM's AK", modify: func(e *api.TPMEnrollment) { e.DeviceKey = otherCert }, want: attest.ErrDeviceKey},
		{name: "AK creation signature by another TPM's AK", modify: func(e *api.TPMEnrollment) {
			ak := other.AKParameters()
			e.AK.CreateSignature = ak.CreateSignature
		}, want: attest.ErrAK},
		{name: "AK creation data altered", modify: func(e *api.TPMEnrollment) {
			e.AK.CreateData = append([]byte(nil), e.AK.CreateData...)
			e.AK.CreateData[len(e.AK.CreateData)-3] ^= 1
		}, want: attest.ErrAK},
		{name: "EK certificate of another TPM", modify: func(e *api.TPMEnrollment) { e.EKCertificate = other.EKCertificate() }, want: attest.ErrEKCertificate},
		{name: "EK certificate from an untrusted CA", roots: other.EKRoots(), want: attest.ErrEKCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := enrollment(t, tpm)
			if tt.modify != nil {
				tt.modify(req)
			}
			csr := tt.csrKey
			if csr == nil {
				csr = devKey
			}
			roots := tt.roots
			if roots == nil {
				roots = tpm.EKRoots()
			}
			_, err := attest.VerifyEnrollment(req, csr, roots)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseEKCertificate(t *testing.T) {
	t.Parallel()
	tpm := newTPM(t, true)
	// Go leaves the TPM SAN unhandled, so Verify refuses the raw parse.
	raw, err := x509.ParseCertificate(tpm.EKCertificate())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Verify(x509.VerifyOptions{Roots: tpm.EKRoots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Fatal("x509 accepted the unhandled critical SAN; this test no longer proves anything")
	}
	cert, id, err := attest.ParseEKCertificate(tpm.EKCertificate())
	if err != nil {
		t.Fatal(err)
	}
	if id.Manufacturer != softtpm.Manufacturer {
		t.Errorf("manufacturer = %q", id.Manufacturer)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: tpm.EKRoots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("Verify after ParseEKCertificate: %v", err)
	}
}
