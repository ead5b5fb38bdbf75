package tpm_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-attestation/attest"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/tpm"
	"github.com/bulwark-iot/bulwark/internal/tpm/swtpmtest"
	"github.com/bulwark-iot/bulwark/internal/tpm/tpmsim"
)

// startSwtpmWithEKCert runs a swtpm manufactured as a vendor would, with
// EK certificates in NV issued by a local CA (see swtpmtest), and returns
// its spec and the CA's directory.
func startSwtpmWithEKCert(t *testing.T) (spec, caDir string) {
	t.Helper()
	tp := swtpmtest.StartWithEKCert(t)
	return tp.Spec, tp.CADir
}

// TestSwtpmAttestation runs the whole agent side of TPM attestation on a
// real swtpm manufactured with an EK certificate, checking each output
// with go-attestation, and a quote with tpm2-tools' tpm2_checkquote.
func TestSwtpmAttestation(t *testing.T) {
	spec, caDir := startSwtpmWithEKCert(t)
	tp, err := tpm.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()

	// The EK certificate, issued by swtpm_localca, is for our EK.
	ek, err := tp.EK()
	if err != nil {
		t.Fatal(err)
	}
	if ek.Certificate == nil {
		t.Fatal("no EK certificate read from NV")
	}
	cert, err := x509.ParseCertificate(ek.Certificate)
	if err != nil {
		t.Fatalf("EK certificate: %v", err)
	}
	ekPub, ok := ek.Public.(*rsa.PublicKey)
	if !ok || !ekPub.Equal(cert.PublicKey) {
		t.Fatalf("EK certificate is for %T, not the EK %T", cert.PublicKey, ek.Public)
	}
	issuerPEM, err := os.ReadFile(filepath.Join(caDir, "issuercert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(issuerPEM)
	issuer, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(issuer); err != nil {
		t.Errorf("EK certificate not signed by the local CA: %v", err)
	}

	// Enrolment: the server (go-attestation) checks the AK, makes a
	// credential for it and the EK from the certificate, and the TPM
	// decrypts it.
	ak, err := tp.CreateAK()
	if err != nil {
		t.Fatal(err)
	}
	defer ak.Close()
	key, err := tp.CreateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	en, err := tp.Enrollment(ak, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(en.EKCertificate, ek.Certificate) {
		t.Error("enrolment carries another EK certificate")
	}
	if err := activate(t, ak, cert.PublicKey); err != nil {
		t.Fatalf("ActivateCredential on swtpm: %v", err)
	}
	akPub, err := attest.ParseAKPublic(en.AK.Public)
	if err != nil {
		t.Fatal(err)
	}
	if cp := certParams(&en.DeviceKey); cp.Verify(attest.VerifyOpts{Public: akPub.Public, Hash: akPub.Hash}) != nil {
		t.Error("device key certification does not verify")
	}

	// Another TPM's EK (the simulator's): the credential does not activate.
	sim, err := tpmsim.Open()
	if err != nil {
		t.Fatal(err)
	}
	simEK, err := sim.EK()
	sim.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := activate(t, ak, simEK.Public); err == nil {
		t.Error("credential for another TPM's EK activated on swtpm")
	}

	// A quote over measured-boot PCRs.
	for i, s := range []string{"firmware", "bootloader", "kernel"} {
		d := sha256Sum(s)
		if err := tp.ExtendPCR(i*2, d); err != nil {
			t.Fatal(err)
		}
	}
	nonce := bytes.Repeat([]byte{0x5a}, api.NonceSize)
	pcrs := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14}
	ev, err := ak.Quote(nonce, pcrs)
	if err != nil {
		t.Fatal(err)
	}
	q := attest.Quote{Quote: ev.Quote, Signature: ev.Signature}
	if err := akPub.Verify(q, attestPCRs(ev.PCRs), nonce); err != nil {
		t.Fatalf("go-attestation rejects the swtpm quote: %v", err)
	}
	if err := akPub.Verify(q, attestPCRs(ev.PCRs), nonce[1:]); err == nil {
		t.Error("swtpm quote verifies with another nonce")
	}

	checkQuote(t, ak.Public(), ev, nonce, "")
	wrong := bytes.Clone(nonce)
	wrong[len(wrong)-1] ^= 1
	checkQuote(t, ak.Public(), ev, wrong, "Error validating nonce")
	changed := *ev
	changed.PCRs = append([]api.PCRValue(nil), ev.PCRs...)
	changed.PCRs[2].Digest = sha256Sum("another kernel")
	checkQuote(t, ak.Public(), &changed, nonce, "Error validating PCR composite")
}

func sha256Sum(s string) []byte {
	h := crypto.SHA256.New()
	h.Write([]byte(s))
	return h.Sum(nil)
}

// checkQuote runs tpm2_checkquote on ev with nonce as the qualifying data
// and checks that it accepts it (wantErr "") or rejects it with an error
// containing wantErr.
func checkQuote(t *testing.T, akPub crypto.PublicKey, ev *api.Evidence, nonce []byte, wantErr string) {
	t.Helper()
	bin, err := exec.LookPath("tpm2_checkquote")
	if err != nil {
		t.Skip("tpm2_checkquote not installed (apt-get install tpm2-tools)")
	}
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(akPub)
	if err != nil {
		t.Fatal(err)
	}
	pcrs, list := checkquotePCRs(ev.PCRs)
	for name, data := range map[string][]byte{
		"ak.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"quote":  ev.Quote,     // TPMS_ATTEST
		"sig":    ev.Signature, // TPMT_SIGNATURE
		"pcrs":   pcrs,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-u", "ak.pem", "-g", "sha256", "-m", "quote", "-s", "sig",
		"-f", "pcrs", "-q", hex.EncodeToString(nonce))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	want := wantErr == ""
	if want && err != nil {
		t.Errorf("tpm2_checkquote rejects the quote: %v\n%s", err, out)
	}
	if !want {
		if err == nil {
			t.Errorf("tpm2_checkquote accepts a quote it should reject:\n%s", out)
		} else if !strings.Contains(string(out), wantErr) {
			t.Errorf("tpm2_checkquote rejects the quote, but not for %q:\n%s", wantErr, out)
		}
	}
	if want && err == nil && !strings.Contains(string(out), list) {
		t.Errorf("tpm2_checkquote output lacks the PCRs %s:\n%s", list, out)
	}
}

// checkquotePCRs writes PCR values in tpm2-tools' "serialized" PCR file
// format, which tpm2_quote -o writes and tpm2_checkquote -f reads without
// -l: the tools' in-memory structures, little-endian. (With -l and a file
// of bare digests, tpm2-tools 5.4 mishandles more than seven PCRs.)
//
//	TPML_PCR_SELECTION: count u32, then 16 TPMS_PCR_SELECTION
//	    {hash u16, sizeofSelect u8, pcrSelect [4]u8, 1 byte padding}
//	u32 number of TPML_DIGEST lists that follow
//	TPML_DIGEST, 8 digests each: count u32, then 8 TPM2B_DIGEST
//	    {size u16, buffer [64]u8}
//
// It also returns the first PCR's line as tpm2_checkquote prints it.
func checkquotePCRs(pcrs []api.PCRValue) ([]byte, string) {
	le := binary.LittleEndian
	sel := make([]byte, 4+16*8)
	le.PutUint32(sel, 1)
	le.PutUint16(sel[4:], 0x000b) // TPM_ALG_SHA256
	sel[6] = 3
	for _, p := range pcrs {
		sel[7+p.Index/8] |= 1 << (p.Index % 8)
	}
	lists := (len(pcrs) + 7) / 8
	out := le.AppendUint32(sel, uint32(lists))
	for l := range lists {
		list := make([]byte, 4+8*66)
		chunk := pcrs[8*l : min(8*l+8, len(pcrs))]
		le.PutUint32(list, uint32(len(chunk)))
		for i, p := range chunk {
			le.PutUint16(list[4+66*i:], uint16(len(p.Digest)))
			copy(list[4+66*i+2:], p.Digest)
		}
		out = append(out, list...)
	}
	return out, fmt.Sprintf("%d : 0x%X", pcrs[0].Index, pcrs[0].Digest)
}
