package softtpm

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"testing"

	"github.com/google/go-attestation/attest"
)

func generate(t *testing.T, ekOwner, akOwner *TPM) (secret, cred, encSecret []byte) {
	t.Helper()
	ak := akOwner.AKParameters()
	p := attest.ActivationParameters{
		EK: ekOwner.EKPublic(),
		AK: attest.AttestationParameters{Public: ak.Public, CreateData: ak.CreateData, CreateAttestation: ak.CreateAttestation, CreateSignature: ak.CreateSignature},
	}
	secret, ec, err := p.Generate()
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return secret, ec.Credential, ec.Secret
}

func TestActivateCredentialInvertsGenerate(t *testing.T) {
	a, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	secret, cred, enc := generate(t, a, a)
	got, err := a.ActivateCredential(cred, enc)
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("secret = %x, want %x", got, secret)
	}
	// Encrypted to a's EK but bound to b's AK: neither TPM can activate.
	_, cred, enc = generate(t, a, b)
	if _, err := a.ActivateCredential(cred, enc); err == nil {
		t.Error("a activated a credential bound to b's AK")
	}
	if _, err := b.ActivateCredential(cred, enc); err == nil {
		t.Error("b activated a credential encrypted to a's EK")
	}
	// A flipped bit in the credential fails the integrity check.
	_, cred, enc = generate(t, a, a)
	cred[len(cred)-1] ^= 1
	if _, err := a.ActivateCredential(cred, enc); err == nil {
		t.Error("activated a corrupted credential")
	}
}

func TestQuoteVerifiesWithGoAttestation(t *testing.T) {
	tpm, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tpm.Boot(BootConfig{SecureBoot: true}); err != nil {
		t.Fatal(err)
	}
	tpm.MeasureFile("/usr/bin/bulwark-agent", sha256.Sum256([]byte("agent")))
	nonce := []byte("0123456789abcdef0123456789abcdef")
	ev, err := tpm.Quote(nonce, []int{0, 1, 2, 3, 4, 5, 6, 7, 10})
	if err != nil {
		t.Fatal(err)
	}
	ak, err := attest.ParseAKPublic(tpm.AKPublic())
	if err != nil {
		t.Fatal(err)
	}
	var pcrs []attest.PCR
	for _, p := range ev.PCRs {
		pcrs = append(pcrs, attest.PCR{Index: p.Index, Digest: p.Digest, DigestAlg: crypto.SHA256})
	}
	if err := ak.Verify(attest.Quote{Quote: ev.Quote, Signature: ev.Signature}, pcrs, nonce); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	el, err := attest.ParseEventLog(ev.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	events, err := el.Verify(pcrs[:8])
	if err != nil {
		t.Fatalf("event log replay: %v", err)
	}
	sb, err := attest.ParseSecurebootState(events)
	if err != nil {
		t.Fatalf("ParseSecurebootState: %v", err)
	}
	if !sb.Enabled {
		t.Error("Secure Boot not enabled in the log")
	}
	// The log's own replay agrees with the TPM.
	want := tpm.EventLog().Replay()
	for i := 0; i < 8; i++ {
		if tpm.PCR(i) != want[i] {
			t.Errorf("PCR %d: TPM %x, log replay %x", i, tpm.PCR(i), want[i])
		}
	}
}
