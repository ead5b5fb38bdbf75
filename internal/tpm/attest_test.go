package tpm_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-attestation/attest"
	"github.com/google/go-tpm/tpm2"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/tpm"
	"github.com/bulwark-iot/bulwark/internal/tpm/tpmsim"
)

// The tests here check the agent's TPM structures with go-attestation, the
// library the server verifies them with.

func newAK(t *testing.T, tp *tpm.TPM) *tpm.AK {
	t.Helper()
	ak, err := tp.CreateAK()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ak.Close() })
	return ak
}

func readEK(t *testing.T, tp *tpm.TPM) *tpm.EK {
	t.Helper()
	ek, err := tp.EK()
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

func attestParams(p api.AKParameters) attest.AttestationParameters {
	return attest.AttestationParameters{Public: p.Public, CreateData: p.CreateData, CreateAttestation: p.CreateAttestation, CreateSignature: p.CreateSignature}
}

// activate has go-attestation (the server) make a credential for ak and
// ekPub, and ak decrypt it; it returns whether the secret came back.
func activate(t *testing.T, ak *tpm.AK, ekPub crypto.PublicKey) error {
	t.Helper()
	ap := attest.ActivationParameters{EK: ekPub, AK: attestParams(ak.Parameters())}
	if err := ap.CheckAKParameters(); err != nil {
		t.Fatalf("go-attestation rejects the AK parameters: %v", err)
	}
	secret, ec, err := ap.Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ak.ActivateCredential(ec.Credential, ec.Secret)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("activated secret %x, want %x", got, secret)
	}
	return nil
}

func TestEK(t *testing.T) {
	tp := openSim(t)
	ek := readEK(t, tp)
	pub, ok := ek.Public.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != 2048 {
		t.Fatalf("EK public = %T, want RSA 2048", ek.Public)
	}
	if ek.Certificate != nil {
		t.Errorf("the simulator has no EK certificate, got %d bytes", len(ek.Certificate))
	}
	// The EK is derived from the endorsement seed: the same each time.
	if again := readEK(t, tp); !pub.Equal(again.Public) {
		t.Error("EK changed between reads")
	}
	// The EK was flushed: many reads do not exhaust the object slots.
	for range 4 {
		readEK(t, tp)
	}
}

func TestAKActivateCredential(t *testing.T) {
	tp := openSim(t)
	ak := newAK(t, tp)
	ek := readEK(t, tp)
	if err := activate(t, ak, ek.Public); err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	if _, ok := ak.Public().(*ecdsa.PublicKey); !ok {
		t.Fatalf("AK public = %T", ak.Public())
	}
	akPub, err := attest.ParseAKPublic(ak.Parameters().Public)
	if err != nil || !akPub.Public.(*ecdsa.PublicKey).Equal(ak.Public()) || akPub.Hash != crypto.SHA256 {
		t.Errorf("ParseAKPublic = %+v, %v", akPub, err)
	}

	// A tampered credential does not decrypt (its HMAC fails).
	ap := attest.ActivationParameters{EK: ek.Public, AK: attestParams(ak.Parameters())}
	_, ec, err := ap.Generate()
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(ec.Credential)
	bad[len(bad)-1] ^= 1
	if _, err := ak.ActivateCredential(bad, ec.Secret); err == nil {
		t.Error("tampered credential activated")
	}
	if _, err := ak.ActivateCredential(ec.Credential[2:], ec.Secret); err == nil {
		t.Error("credential without its size prefix accepted")
	}

	// A credential made for another AK name (another key's) is refused by
	// the TPM, even with the right EK.
	other := newAK(t, tp)
	ap2 := attest.ActivationParameters{EK: ek.Public, AK: attestParams(other.Parameters())}
	_, ec2, err := ap2.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ak.ActivateCredential(ec2.Credential, ec2.Secret); err == nil {
		t.Error("credential for another AK activated")
	}
	if err := activate(t, other, ek.Public); err != nil {
		t.Errorf("second AK: %v", err)
	}

	// go-attestation rejects tampered AK parameters.
	p := attestParams(ak.Parameters())
	p.CreateData = append(bytes.Clone(p.CreateData[:len(p.CreateData)-1]), p.CreateData[len(p.CreateData)-1]^1)
	if err := (&attest.ActivationParameters{EK: ek.Public, AK: p}).CheckAKParameters(); err == nil {
		t.Error("tampered creation data accepted")
	}
	p = attestParams(other.Parameters())
	p.Public = ak.Parameters().Public
	if err := (&attest.ActivationParameters{EK: ek.Public, AK: p}).CheckAKParameters(); err == nil {
		t.Error("creation attestation of another AK accepted")
	}
}

// TestActivateWrongEK: a credential encrypted to another TPM's EK does not
// activate. The simulator is one instance per process, so the other TPM
// is an earlier, separately manufactured instance.
func TestActivateWrongEK(t *testing.T) {
	tp1, err := tpmsim.Open()
	if err != nil {
		t.Fatal(err)
	}
	otherEK, err := tp1.EK()
	tp1.Close()
	if err != nil {
		t.Fatal(err)
	}

	tp := openSim(t)
	ak := newAK(t, tp)
	if otherEK.Public.(*rsa.PublicKey).Equal(readEK(t, tp).Public) {
		t.Fatal("two simulator instances have the same EK")
	}
	if err := activate(t, ak, otherEK.Public); err == nil {
		t.Fatal("credential for another TPM's EK activated")
	} else {
		t.Logf("with another TPM's EK: %v", err)
	}
}

func TestECCEK(t *testing.T) {
	tp := openSim(t)
	tpm.UseECCEK(tp)
	ek := readEK(t, tp)
	pub, ok := ek.Public.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("EK public = %T, want ECC P-256", ek.Public)
	}
	ak := newAK(t, tp)
	if err := activate(t, ak, ek.Public); err != nil {
		t.Fatalf("ActivateCredential with the ECC EK: %v", err)
	}
}

func TestAKPersistReload(t *testing.T) {
	tp := openSim(t)
	ak := newAK(t, tp)
	pub, priv, params := ak.PublicBlob(), ak.PrivateBlob(), ak.Parameters()
	want := ak.Public().(*ecdsa.PublicKey)
	if err := ak.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ak.Quote(make([]byte, 32), []int{0}); err == nil {
		t.Error("closed AK quoted")
	}

	ak2, err := tp.LoadAK(pub, priv, params)
	if err != nil {
		t.Fatal(err)
	}
	if !ak2.Public().(*ecdsa.PublicKey).Equal(want) {
		t.Error("reloaded AK has another public key")
	}
	if p := ak2.Parameters(); !bytes.Equal(p.CreateAttestation, params.CreateAttestation) || !bytes.Equal(p.Public, params.Public) {
		t.Error("reloaded AK lost its parameters")
	}
	if err := activate(t, ak2, readEK(t, tp).Public); err != nil {
		t.Fatalf("reloaded AK: %v", err)
	}
	ev, err := ak2.Quote([]byte("n"), []int{0})
	if err != nil {
		t.Fatal(err)
	}
	akPub, _ := attest.ParseAKPublic(params.Public)
	if err := akPub.Verify(attest.Quote{Quote: ev.Quote, Signature: ev.Signature}, attestPCRs(ev.PCRs), []byte("n")); err != nil {
		t.Errorf("quote by the reloaded AK: %v", err)
	}

	// Without saved parameters only Public is known.
	ak3, err := tp.LoadAK(pub, priv, api.AKParameters{})
	if err != nil {
		t.Fatal(err)
	}
	if p := ak3.Parameters(); !bytes.Equal(p.Public, params.Public) || p.CreateAttestation != nil {
		t.Errorf("parameters of an AK loaded without them: %+v", p)
	}
	if _, err := tp.Enrollment(ak3, nil); err == nil {
		t.Error("enrolment with an AK without creation parameters")
	}
	ak3.Close()
	ak2.Close()

	// Parameters of another AK, a device key's blobs as an AK, and an
	// AK's blobs as a device key are refused.
	other := newAK(t, tp)
	if a, err := tp.LoadAK(pub, priv, other.Parameters()); err == nil {
		a.Close()
		t.Error("AK loaded with another AK's parameters")
	}
	mixed := other.Parameters()
	mixed.Public = params.Public
	if a, err := tp.LoadAK(pub, priv, mixed); err == nil {
		a.Close()
		t.Error("AK loaded with another AK's creation attestation")
	}
	mixed = params
	mixed.CreateData = bytes.Clone(params.CreateData)
	mixed.CreateData[len(mixed.CreateData)-1] ^= 1
	if a, err := tp.LoadAK(pub, priv, mixed); err == nil {
		a.Close()
		t.Error("AK loaded with altered creation data")
	}
	k := newKey(t, tp)
	if a, err := tp.LoadAK(k.PublicBlob(), k.PrivateBlob(), api.AKParameters{}); err == nil {
		a.Close()
		t.Error("device key loaded as an AK")
	}
	if dk, err := tp.LoadDeviceKey(pub, priv); err == nil {
		dk.Close()
		t.Error("AK loaded as a device key")
	}
}

func certParams(c *api.CertifyParameters) attest.CertificationParameters {
	return attest.CertificationParameters{Public: c.Public, CreateAttestation: c.Attestation, CreateSignature: c.Signature}
}

func TestCertify(t *testing.T) {
	tp := openSim(t)
	ak := newAK(t, tp)
	k := newKey(t, tp)
	nonce := []byte("certify nonce")
	c, err := ak.Certify(k, nonce)
	if err != nil {
		t.Fatal(err)
	}
	cp := certParams(c)
	if err := cp.Verify(attest.VerifyOpts{Public: ak.Public(), Hash: crypto.SHA256}); err != nil {
		t.Fatalf("go-attestation rejects the certification: %v", err)
	}
	// The certified public area is the device key's.
	if certified := eccPublic(t, c.Public); !certified.Equal(k.Public()) {
		t.Error("the certified key is not the device key")
	}
	if !bytes.Contains(c.Attestation, nonce) {
		t.Error("the qualifying data is not in the attestation")
	}

	// Signed by the AK, not by any other key. (The simulator holds three
	// objects: close what is not needed.)
	k.Close()
	other := newAK(t, tp)
	if err := cp.Verify(attest.VerifyOpts{Public: other.Public(), Hash: crypto.SHA256}); err == nil {
		t.Error("certification verifies with another AK")
	}
	// The certification is of this key: another key's public area fails.
	ak.Close()
	k2, err := tp.CreateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := other.Certify(k2, nil)
	k2.Close()
	if err != nil {
		t.Fatal(err)
	}
	swapped := cp
	swapped.Public = c2.Public
	if err := swapped.Verify(attest.VerifyOpts{Public: ak.Public(), Hash: crypto.SHA256}); err == nil {
		t.Error("certification verifies for another key's public area")
	}
	if cp2 := certParams(c2); cp2.Verify(attest.VerifyOpts{Public: other.Public(), Hash: crypto.SHA256}) != nil {
		t.Error("certification without qualifying data does not verify")
	}
	// A closed key cannot be certified, nor can a closed AK certify.
	if _, err := other.Certify(k, nil); err == nil {
		t.Error("closed device key certified")
	}
	if _, err := ak.Certify(k2, nil); err == nil {
		t.Error("closed AK certified")
	}
}

func attestPCRs(pcrs []api.PCRValue) []attest.PCR {
	out := make([]attest.PCR, len(pcrs))
	for i, p := range pcrs {
		out[i] = attest.PCR{Index: p.Index, Digest: bytes.Clone(p.Digest), DigestAlg: crypto.SHA256}
	}
	return out
}

func allPCRs() []int {
	var pcrs []int
	for i := range 24 {
		pcrs = append(pcrs, i)
	}
	return pcrs
}

func TestQuote(t *testing.T) {
	tp := openSim(t)
	ak := newAK(t, tp)
	d := sha256.Sum256([]byte("bootloader"))
	if err := tp.ExtendPCR(7, d[:]); err != nil {
		t.Fatal(err)
	}
	if err := tp.ExtendPCR(16, d[:]); err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{0xa5}, api.NonceSize)
	// All 24 PCRs: more than one TPM2_PCR_Read (8 at a time).
	ev, err := ak.Quote(nonce, allPCRs())
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.PCRs) != 24 || !bytes.Equal(ev.Nonce, nonce) {
		t.Fatalf("evidence has %d PCRs, nonce %x", len(ev.PCRs), ev.Nonce)
	}
	for i, p := range ev.PCRs {
		if p.Index != i || len(p.Digest) != 32 {
			t.Fatalf("PCR %d = %+v", i, p)
		}
	}
	want7 := sha256.Sum256(append(make([]byte, 32), d[:]...))
	if !bytes.Equal(ev.PCRs[7].Digest, want7[:]) {
		t.Errorf("PCR 7 = %x, want %x", ev.PCRs[7].Digest, want7)
	}

	akPub, err := attest.ParseAKPublic(ak.Parameters().Public)
	if err != nil {
		t.Fatal(err)
	}
	q := attest.Quote{Quote: ev.Quote, Signature: ev.Signature}
	if err := akPub.Verify(q, attestPCRs(ev.PCRs), nonce); err != nil {
		t.Fatalf("go-attestation rejects the quote: %v", err)
	}
	wrong := bytes.Clone(nonce)
	wrong[0] ^= 1
	if err := akPub.Verify(q, attestPCRs(ev.PCRs), wrong); err == nil {
		t.Error("quote verifies with another nonce")
	}
	changed := attestPCRs(ev.PCRs)
	changed[7].Digest[0] ^= 1
	if err := akPub.Verify(q, changed, nonce); err == nil {
		t.Error("quote verifies with a changed PCR")
	}

	// After another extension, the old PCR values no longer match a new
	// quote, and the new ones do.
	if err := tp.ExtendPCR(7, d[:]); err != nil {
		t.Fatal(err)
	}
	ev2, err := ak.Quote(nonce, []int{7, 0, 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev2.PCRs) != 2 || ev2.PCRs[0].Index != 0 || ev2.PCRs[1].Index != 7 {
		t.Fatalf("PCRs = %+v, want 0 and 7", ev2.PCRs)
	}
	q2 := attest.Quote{Quote: ev2.Quote, Signature: ev2.Signature}
	if err := akPub.Verify(q2, attestPCRs(ev2.PCRs), nonce); err != nil {
		t.Errorf("second quote: %v", err)
	}
	stale := attestPCRs([]api.PCRValue{ev.PCRs[0], ev.PCRs[7]})
	if err := akPub.Verify(q2, stale, nonce); err == nil {
		t.Error("second quote verifies with the PCR values before the extension")
	}
	read, err := tp.ReadPCRs([]int{7})
	if err != nil || !bytes.Equal(read[0].Digest, ev2.PCRs[1].Digest) {
		t.Errorf("ReadPCRs = %+v, %v", read, err)
	}

	for _, bad := range [][]int{nil, {24}, {-1}} {
		if _, err := ak.Quote(nonce, bad); err == nil {
			t.Errorf("Quote(%v) succeeded", bad)
		}
	}
	if err := tp.ExtendPCR(7, d[:20]); err == nil {
		t.Error("extended with a 20-byte digest")
	}
}

func TestEnrollment(t *testing.T) {
	tp := openSim(t)
	ak := newAK(t, tp)
	k := newKey(t, tp)
	// Three objects are loaded now (AK, device key, and the EK while it
	// is read): the simulator's limit.
	en, err := tp.Enrollment(ak, k)
	if err != nil {
		t.Fatal(err)
	}
	ekPub, err := x509.ParsePKIXPublicKey(en.EKPublic)
	if err != nil {
		t.Fatal(err)
	}
	if en.EKCertificate != nil {
		t.Error("simulator EK certificate")
	}
	ap := attest.ActivationParameters{EK: ekPub, AK: attestParams(en.AK)}
	secret, ec, err := ap.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ak.ActivateCredential(ec.Credential, ec.Secret); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ActivateCredential = %x, %v", got, err)
	}
	akPub, _ := attest.ParseAKPublic(en.AK.Public)
	cp := certParams(&en.DeviceKey)
	if err := cp.Verify(attest.VerifyOpts{Public: akPub.Public, Hash: akPub.Hash}); err != nil {
		t.Errorf("device key certification: %v", err)
	}
}

// eccPublic parses a TPMT_PUBLIC of an ECC key.
func eccPublic(t *testing.T, b []byte) *ecdsa.PublicKey {
	t.Helper()
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		t.Fatal(err)
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		t.Fatal(err)
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		t.Fatal(err)
	}
	k, err := tpm2.ECDSAPub(parms, pt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ekCertFor issues a certificate for an EK public key from a throwaway
// CA, as a TPM vendor does, padded with a large extension so that reading
// it takes several TPM2_NV_Read commands.
func ekCertFor(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "EK"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: bytes.Repeat([]byte{0x04}, 1200)}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, ca)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestEKCertificateNV: an EK certificate provisioned in NV is read back
// whole, without the padding that some TPMs leave after it, from the
// index for the EK's algorithm.
func TestEKCertificateNV(t *testing.T) {
	for _, ecc := range []bool{false, true} {
		t.Run(map[bool]string{false: "RSA", true: "ECC"}[ecc], func(t *testing.T) {
			tp := openSim(t)
			idx, other := uint32(tpm.NVIndexRSAEKCert), uint32(tpm.NVIndexECCEKCert)
			if ecc {
				tpm.UseECCEK(tp)
				idx, other = other, idx
			}
			ek := readEK(t, tp)
			der := ekCertFor(t, ek.Public)
			// The certificate at the other algorithm's index (for another
			// key) is not the one returned.
			stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err := tpm.WriteNV(tp, other, ekCertFor(t, &stranger.PublicKey)); err != nil {
				t.Fatal(err)
			}
			if err := tpm.WriteNV(tp, idx, append(bytes.Clone(der), make([]byte, 100)...)); err != nil {
				t.Fatal(err)
			}
			got := readEK(t, tp)
			if !bytes.Equal(got.Certificate, der) {
				t.Fatalf("EK certificate: read %d bytes, want the %d of the certificate", len(got.Certificate), len(der))
			}
			cert, err := x509.ParseCertificate(got.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(got.Public) {
				t.Error("the certificate is not for the EK")
			}
		})
	}
}

// TestPersistedEK: an EK persisted at the TCG handle is used when it was
// made from the EK template, and ignored when it is some other key.
func TestPersistedEK(t *testing.T) {
	for _, ecc := range []bool{false, true} {
		t.Run(map[bool]string{false: "RSA", true: "ECC"}[ecc], func(t *testing.T) {
			tp := openSim(t)
			tmpl, wrongTmpl, handle := tpm2.RSAEKTemplate, tpm2.RSASRKTemplate, uint32(0x81010001)
			if ecc {
				tpm.UseECCEK(tp)
				tmpl, wrongTmpl, handle = tpm2.ECCEKTemplate, tpm2.ECCSRKTemplate, 0x81010002
			}
			want := readEK(t, tp).Public.(interface{ Equal(crypto.PublicKey) bool })
			ak := newAK(t, tp)

			// Another key at the EK's handle is not taken for the EK.
			wrong, err := tpm.PersistPrimary(tp, wrongTmpl, handle)
			if err != nil {
				t.Fatal(err)
			}
			if want.Equal(wrong) {
				t.Fatal("the wrong template made the EK")
			}
			if got := readEK(t, tp).Public; !want.Equal(got) {
				t.Fatal("EK() returned the persisted non-EK key")
			}
			if err := activate(t, ak, want); err != nil {
				t.Fatalf("ActivateCredential beside a persisted non-EK: %v", err)
			}

			// The real EK persisted: same key, and activation works with it.
			persisted, err := tpm.PersistPrimary(tp, tmpl, handle)
			if err != nil {
				t.Fatal(err)
			}
			if !want.Equal(persisted) {
				t.Fatal("the persisted EK is another key")
			}
			if got := readEK(t, tp).Public; !want.Equal(got) {
				t.Fatal("EK() with a persisted EK returned another key")
			}
			if err := activate(t, ak, want); err != nil {
				t.Fatalf("ActivateCredential with the persisted EK: %v", err)
			}

			// With an endorsement hierarchy password no EK can be created
			// with an empty one, so this read can only be the persisted EK's.
			if err := tpm.SetEndorsementAuth(tp, []byte("owner set this")); err != nil {
				t.Fatal(err)
			}
			if got, err := tp.EK(); err != nil || !want.Equal(got.Public) {
				t.Fatalf("EK() did not use the persisted EK: %v", err)
			}
		})
	}
}

// TestConcurrentAttestation: quotes, certifications, activations and
// device key signatures from many goroutines are serialized, without
// deadlock between the AK's, the key's and the TPM's locks.
func TestConcurrentAttestation(t *testing.T) {
	tp := openSim(t)
	ak := newAK(t, tp)
	k := newKey(t, tp)
	ekPub := readEK(t, tp).Public
	akPub, err := attest.ParseAKPublic(ak.Parameters().Public)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			switch i % 4 {
			case 0:
				nonce := []byte{byte(i)}
				var ev *api.Evidence
				if ev, err = ak.Quote(nonce, []int{0, 7}); err == nil {
					err = akPub.Verify(attest.Quote{Quote: ev.Quote, Signature: ev.Signature}, attestPCRs(ev.PCRs), nonce)
				}
			case 1:
				var c *api.CertifyParameters
				if c, err = ak.Certify(k, nil); err == nil {
					cp := certParams(c)
					err = cp.Verify(attest.VerifyOpts{Public: akPub.Public, Hash: crypto.SHA256})
				}
			case 2:
				ap := attest.ActivationParameters{EK: ekPub, AK: attestParams(ak.Parameters())}
				secret, ec, gerr := ap.Generate()
				if err = gerr; err == nil {
					var got []byte
					if got, err = ak.ActivateCredential(ec.Credential, ec.Secret); err == nil && !bytes.Equal(got, secret) {
						err = fmt.Errorf("activated %x, want %x", got, secret)
					}
				}
			case 3:
				sum := sha256.Sum256([]byte{byte(i)})
				_, err = k.Sign(nil, sum[:], crypto.SHA256)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
