//go:build cgo

package attest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	gattest "github.com/google/go-attestation/attest"
	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/legacy/tpm2"
	"github.com/google/go-tpm/tpmutil"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
	_ "github.com/bulwark-iot/bulwark/internal/tpm/tpmsim"
)

// simChannel gives go-attestation the reference simulator as a TPM 2.0
// command channel.
type simChannel struct{ *simulator.Simulator }

func (simChannel) MeasurementLog() ([]byte, error) { return nil, nil }

// TestInteropSimulator proves the verifier against the TPM 2.0 reference
// implementation (go-tpm-tools' simulator) driven by go-attestation's own
// client code, not just against softtpm: enrolment, credential
// activation, a quote over a boot log and IMA list extended into the real
// PCRs, and the detection of an unlogged extension.
func TestInteropSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("simulator test skipped in -short mode")
	}
	sim, err := simulator.Get()
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	tpm, err := gattest.OpenTPM(&gattest.OpenConfig{CommandChannel: simChannel{sim}})
	if err != nil {
		sim.Close()
		t.Fatalf("OpenTPM: %v", err)
	}
	defer tpm.Close()

	// Enrolment.
	eks, err := tpm.EKs()
	if err != nil || len(eks) == 0 {
		t.Fatalf("EKs: %v (%d)", err, len(eks))
	}
	ak, err := tpm.NewAK(&gattest.AKConfig{Algorithm: gattest.ECDSA})
	if err != nil {
		t.Fatalf("NewAK: %v", err)
	}
	key, err := tpm.NewKey(ak, &gattest.KeyConfig{Algorithm: gattest.ECDSA, Size: 256})
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	ap, cp := ak.AttestationParameters(), key.CertificationParameters()
	ekDER := mustPKIX(t, eks[0].Public)
	req := &api.TPMEnrollment{
		EKPublic:  ekDER,
		AK:        api.AKParameters{Public: ap.Public, CreateData: ap.CreateData, CreateAttestation: ap.CreateAttestation, CreateSignature: ap.CreateSignature},
		DeviceKey: api.CertifyParameters{Public: cp.Public, Attestation: cp.CreateAttestation, Signature: cp.CreateSignature},
	}
	enr, err := attest.VerifyEnrollment(req, key.Public(), nil)
	if err != nil {
		t.Fatalf("VerifyEnrollment: %v", err)
	}
	secret, cred, enc, err := enr.Challenge()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ak.ActivateCredential(tpm, gattest.EncryptedCredential{Credential: cred, Secret: enc})
	if err != nil {
		t.Fatalf("ActivateCredential on the simulator: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("activated %x, want %x", got, secret)
	}
	firstCred, firstEnc := cred, enc
	// A device key the AK did not certify is refused.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.VerifyEnrollment(req, &other.PublicKey, nil); err == nil {
		t.Error("accepted a CSR key other than the certified one")
	}

	// Measured boot and IMA, extended into the simulator's PCRs with the
	// exported writers.
	boot, err := softtpm.New(softtpm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := boot.Boot(softtpm.BootConfig{SecureBoot: true, Events: 40}); err != nil {
		t.Fatal(err)
	}
	log := boot.EventLog()
	for _, e := range log.Events {
		extendSim(t, sim, e.PCR, e.Digest)
	}
	var ima softtpm.IMAList
	for i := 0; i < 5; i++ {
		extendSim(t, sim, 10, ima.Add("/usr/bin/tool"+string(rune('a'+i)), sha256.Sum256([]byte{byte(i)})))
	}
	allowed := map[string]bool{}
	for _, e := range ima.Entries {
		allowed[hexOf(e.FileHash)] = true
	}
	pol := &attest.Policy{AllowedFiles: allowed}

	quoteBy := func(ak *gattest.AK, nonce []byte) *api.Evidence {
		t.Helper()
		q, err := ak.QuotePCRs(tpm, nonce, gattest.HashSHA256, quotePCRs)
		if err != nil {
			t.Fatalf("QuotePCRs: %v", err)
		}
		pcrs, err := tpm.PCRs(gattest.HashSHA256)
		if err != nil {
			t.Fatal(err)
		}
		ev := &api.Evidence{Nonce: nonce, Quote: q.Quote, Signature: q.Signature, EventLog: log.Bytes(), IMALog: ima.Bytes(), SecureBoot: "enabled"}
		for _, p := range pcrs {
			for _, want := range quotePCRs {
				if p.Index == want {
					ev.PCRs = append(ev.PCRs, api.PCRValue{Index: p.Index, Digest: p.Digest})
				}
			}
		}
		return ev
	}
	quote := func(nonce []byte) *api.Evidence { return quoteBy(ak, nonce) }
	nonce := newNonce(t)
	r := attest.Verify(enr.AKPublic, quote(nonce), nonce, pol)
	// No reference: a warning, with everything else verified.
	wantStatus(t, r, api.AttestWarning)
	wantProblem(t, r, "no approved reference")
	if !r.QuoteVerified || !r.SecureBootVerified || r.SecureBoot != "enabled" || r.IMAEntries != 5 || r.Vector.Executables != attest.ClaimApprovedRuntime {
		t.Fatalf("result = %+v", r)
	}
	ref, err := attest.CaptureReference("sim", r, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol.Reference = ref
	nonce = newNonce(t)
	r = attest.Verify(enr.AKPublic, quote(nonce), nonce, pol)
	wantStatus(t, r, api.AttestAffirming)

	// A stale quote.
	r = attest.Verify(enr.AKPublic, quote(nonce), newNonce(t), pol)
	wantStatus(t, r, api.AttestContraindicated)

	// An RSA AK (go-attestation's default) with its own device key.
	key.Close()
	ak.Close(tpm)
	rsaAK, err := tpm.NewAK(&gattest.AKConfig{Algorithm: gattest.RSA})
	if err != nil {
		t.Fatalf("NewAK(RSA): %v", err)
	}
	rsaKey, err := tpm.NewKey(rsaAK, &gattest.KeyConfig{Algorithm: gattest.ECDSA, Size: 256})
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	ap, cp = rsaAK.AttestationParameters(), rsaKey.CertificationParameters()
	req = &api.TPMEnrollment{
		EKPublic:  ekDER,
		AK:        api.AKParameters{Public: ap.Public, CreateData: ap.CreateData, CreateAttestation: ap.CreateAttestation, CreateSignature: ap.CreateSignature},
		DeviceKey: api.CertifyParameters{Public: cp.Public, Attestation: cp.CreateAttestation, Signature: cp.CreateSignature},
	}
	rsaEnr, err := attest.VerifyEnrollment(req, rsaKey.Public(), nil)
	if err != nil {
		t.Fatalf("VerifyEnrollment(RSA AK): %v", err)
	}
	secret, cred, enc, err = rsaEnr.Challenge()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rsaAK.ActivateCredential(tpm, gattest.EncryptedCredential{Credential: cred, Secret: enc}); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ActivateCredential(RSA AK): %x, %v", got, err)
	}
	// The first AK's challenge is bound to the first AK's name.
	if _, err := rsaAK.ActivateCredential(tpm, gattest.EncryptedCredential{Credential: firstCred, Secret: firstEnc}); err == nil {
		t.Error("the RSA AK activated a credential made for the ECDSA AK")
	}
	nonce = newNonce(t)
	r = attest.Verify(rsaEnr.AKPublic, quoteBy(rsaAK, nonce), nonce, pol)
	wantStatus(t, r, api.AttestAffirming)
	// A quote by one AK does not verify as another's.
	r = attest.Verify(enr.AKPublic, quoteBy(rsaAK, nonce), nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)

	// Something extends PCR 4 without logging it.
	extendSim(t, sim, 4, sha256.Sum256([]byte("bootkit")))
	nonce = newNonce(t)
	r = attest.Verify(rsaEnr.AKPublic, quoteBy(rsaAK, nonce), nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "does not replay", "[4]")
	rsaKey.Close()
	rsaAK.Close(tpm)
}

func extendSim(t *testing.T, sim *simulator.Simulator, pcr int, digest [32]byte) {
	t.Helper()
	if err := tpm2.PCRExtend(sim, tpmutil.Handle(pcr), tpm2.AlgSHA256, digest[:], ""); err != nil {
		t.Fatalf("PCRExtend(%d): %v", pcr, err)
	}
}
