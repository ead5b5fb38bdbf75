package server_test

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/healthdef"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

var attestPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7}

// tpmDevice is a device with a software TPM, enrolled over the real
// credential-activation flow.
type tpmDevice struct {
	*device
	tpm   *softtpm.TPM
	nonce []byte // from the activation challenge
}

func newSoftTPM(t *testing.T) *softtpm.TPM {
	t.Helper()
	tp, err := softtpm.New(softtpm.Options{EKCertificate: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Boot(softtpm.BootConfig{SecureBoot: true}); err != nil {
		t.Fatal(err)
	}
	return tp
}

// startTPMEnroll sends the first half of a TPM enrolment.
func startTPMEnroll(t *testing.T, ts *servertest.Server, tp *softtpm.TPM, token string) (*deviceclient.Client, string, *api.EnrollResponse, error) {
	t.Helper()
	c, err := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := deviceclient.NewCSR(tp.DeviceKey())
	if err != nil {
		t.Fatal(err)
	}
	enr, err := tp.Enrollment()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Enroll(context.Background(), api.EnrollRequest{Token: token, CSR: csr, TPM: enr, Inventory: inventory("tpm-host")})
	return c, csr, resp, err
}

func enrollTPM(t *testing.T, ts *servertest.Server, tp *softtpm.TPM, token string) *tpmDevice {
	t.Helper()
	c, csr, resp, err := startTPMEnroll(t, ts, tp, token)
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.Activation
	if ch == nil || resp.Certificate != "" {
		t.Fatalf("TPM enrolment answered without a challenge: %+v", resp)
	}
	secret, err := tp.ActivateCredential(ch.Credential, ch.Secret)
	if err != nil {
		t.Fatal(err)
	}
	fin, err := c.Enroll(context.Background(), api.EnrollRequest{CSR: csr, Activation: &api.ActivationAnswer{Session: ch.Session, Secret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if fin.KeyAssurance != api.AssuranceHardware {
		t.Fatalf("key assurance = %q", fin.KeyAssurance)
	}
	key := tp.DeviceKey().(*ecdsa.PrivateKey)
	cert := tlsCert(fin.Certificate, key)
	c.SetCertificate(cert)
	return &tpmDevice{device: &device{id: fin.DeviceID, key: key, cert: cert, client: c}, tpm: tp, nonce: ch.Nonce}
}

func (d *tpmDevice) attest(t *testing.T, nonce []byte) *api.AttestationResult {
	t.Helper()
	ev, err := d.tpm.Quote(nonce, attestPCRs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.client.Attest(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (d *tpmDevice) freshNonce(t *testing.T) []byte {
	t.Helper()
	n, err := d.client.AttestNonce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTPMEnrolmentAttestationAndActions(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: server.Config{Attestation: server.AttestConfig{FailureAction: server.ActionQuarantine}}})
	d := enrollTPM(t, ts, newSoftTPM(t), ts.EnrollToken(t, 5, ""))

	// The enrolment attestation: quote verifies, no approved reference yet.
	first := d.attest(t, d.nonce)
	if first.Status != api.AttestWarning || first.Reason != "enrolment" || first.Vector.InstanceIdentity != attest.ClaimTrustworthyInstance {
		t.Fatalf("enrolment attestation = %+v", first)
	}
	if first.SecureBoot != "enabled" {
		t.Errorf("secure boot = %q", first.SecureBoot)
	}
	// The EAR verifies with the published keys.
	keys := fetchEARKeys(t, ts)
	claims, err := attest.VerifyEAR(first.EAR, keys)
	if err != nil {
		t.Fatalf("EAR does not verify with /api/v1/attestation/keys: %v", err)
	}
	_ = claims

	// Approve the captured baseline: the next attestation is affirming.
	if code := ts.Do(t, "POST", "/api/v1/devices/"+d.id+"/attestation/approve-baseline", ts.AdminToken, nil, nil); code != http.StatusNoContent {
		t.Fatalf("approve baseline: %d", code)
	}
	good := d.attest(t, d.freshNonce(t))
	if good.Status != api.AttestAffirming {
		t.Fatalf("attestation after approval = %+v", good)
	}

	// A signed health report bound to the latest quote is stored; one
	// bound to another quote or signed by another key is refused.
	lastQuote := quoteDigest(t, d, good)
	rep := &api.HealthReport{DeviceID: d.id, Time: time.Now().UTC(), Health: api.Health{Status: api.HealthHealthy}, QuoteDigest: lastQuote}
	sr, err := deviceclient.SignHealthReport(d.key, rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.client.SendHealthReport(context.Background(), sr); err != nil {
		t.Fatal(err)
	}
	forged := *sr
	forged.Report = []byte(string(sr.Report[:len(sr.Report)-2]) + " }")
	wantCode(t, d.client.SendHealthReport(context.Background(), &forged), http.StatusBadRequest, "bad_signature")
	other := newKey(t)
	sr2, _ := deviceclient.SignHealthReport(other, rep)
	wantCode(t, d.client.SendHealthReport(context.Background(), sr2), http.StatusBadRequest, "bad_signature")
	unbound := *rep
	unbound.QuoteDigest = hex.EncodeToString(make([]byte, 32))
	sr3, _ := deviceclient.SignHealthReport(d.key, &unbound)
	wantCode(t, d.client.SendHealthReport(context.Background(), sr3), http.StatusConflict, "quote_mismatch")

	// A replayed quote (its nonce already spent) fails and quarantines.
	goodEv, _ := d.tpm.Quote(d.nonce, attestPCRs)
	replay, err := d.client.Attest(context.Background(), goodEv)
	if err != nil {
		t.Fatal(err)
	}
	if replay.Status != api.AttestContraindicated {
		t.Fatalf("replayed quote = %+v", replay)
	}
	// The failure is a high-severity security event of the device.
	var evs api.EventPage
	if code := ts.Do(t, "GET", "/api/v1/events?device="+d.id+"&type=integrity.result", ts.AdminToken, nil, &evs); code != http.StatusOK ||
		len(evs.Events) != 1 || evs.Events[0].Source != "server" || !strings.Contains(string(evs.Events[0].Event), "tpm-attestation") {
		t.Fatalf("failed-attestation event: %d %+v", code, evs)
	}
	// Quarantined: renewal is refused, check-in still works and says so.
	csr, _ := deviceclient.NewCSR(d.key)
	_, err = d.client.Renew(context.Background(), csr)
	wantCode(t, err, http.StatusForbidden, "device_quarantined")
	resp, err := checkin(d.device, "tpm-host")
	if err != nil || resp.Trust != api.TrustQuarantined {
		t.Fatalf("check-in of a quarantined device: %+v, %v", resp, err)
	}
	var shown api.Device
	ts.Do(t, "GET", "/api/v1/devices/"+d.id, ts.AdminToken, nil, &shown)
	if shown.Trust != api.TrustQuarantined || shown.KeyAssurance != api.AssuranceHardware || shown.Attestation == nil ||
		shown.Attestation.Status != api.AttestContraindicated || shown.HealthReport == nil {
		t.Fatalf("device view = trust %q key %q attestation %+v report %v", shown.Trust, shown.KeyAssurance, shown.Attestation, shown.HealthReport != nil)
	}

	// An admin restores trust; then a measurement that is not in the event
	// log (tampered boot) fails again.
	if code := ts.Do(t, "PUT", "/api/v1/devices/"+d.id+"/trust", ts.AdminToken, api.TrustUpdate{Trust: api.TrustTrusted, Reason: "investigated"}, nil); code != http.StatusNoContent {
		t.Fatalf("set trust: %d", code)
	}
	d.tpm.Extend(4, sha256.Sum256([]byte("implant")))
	bad := d.attest(t, d.freshNonce(t))
	if bad.Status != api.AttestContraindicated {
		t.Fatalf("tampered boot = %+v", bad)
	}
	ts.Do(t, "GET", "/api/v1/devices/"+d.id, ts.AdminToken, nil, &shown)
	if shown.Trust != api.TrustQuarantined {
		t.Fatalf("trust after tampered boot = %q", shown.Trust)
	}

	// History, newest first.
	var hist api.AttestationList
	ts.Do(t, "GET", "/api/v1/devices/"+d.id+"/attestations", ts.AdminToken, nil, &hist)
	if len(hist.Results) != 5 || hist.Results[0].ID != bad.ID || hist.Results[4].ID != first.ID {
		t.Fatalf("history = %d results", len(hist.Results))
	}
}

func quoteDigest(t *testing.T, d *tpmDevice, _ *api.AttestationResult) string {
	t.Helper()
	// The server binds reports to SHA-256 of the latest quote it
	// appraised; the device knows it from what it sent. Re-deriving it
	// here would need the quote bytes, so ask for one more quote and use
	// that as the latest.
	ev, err := d.tpm.Quote(d.freshNonce(t), attestPCRs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.client.Attest(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ev.Quote)
	return hex.EncodeToString(sum[:])
}

func fetchEARKeys(t *testing.T, ts *servertest.Server) map[string]crypto.PublicKey {
	t.Helper()
	resp, err := ts.HTTP.Get(ts.URL + "/api/v1/attestation/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var set struct {
		Keys []struct {
			Kty, Crv, Kid, X, Y string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	k := set.Keys[0]
	if k.Kty != "EC" || k.Crv != "P-256" {
		t.Fatalf("JWK = %+v", k)
	}
	x, _ := base64.RawURLEncoding.DecodeString(k.X)
	y, _ := base64.RawURLEncoding.DecodeString(k.Y)
	pub, err := ecdh.P256().NewPublicKey(append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	ek, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.PublicKey{k.Kid: ek}
}

func TestTPMEnrolmentRefusals(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	token := ts.EnrollToken(t, 10, "")

	// The AK is not in the TPM that holds the EK: the challenge is
	// encrypted to another TPM's EK, so this TPM cannot answer it.
	a, b := newSoftTPM(t), newSoftTPM(t)
	c, err := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := deviceclient.NewCSR(a.DeviceKey())
	enr, _ := a.Enrollment()
	enr.EKPublic, enr.EKCertificate = b.EKPublicDER(), b.EKCertificate()
	resp, err := c.Enroll(context.Background(), api.EnrollRequest{Token: token, CSR: csr, TPM: enr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ActivateCredential(resp.Activation.Credential, resp.Activation.Secret); err == nil {
		t.Fatal("a TPM activated a credential made for another TPM's EK")
	}
	_, err = c.Enroll(context.Background(), api.EnrollRequest{CSR: csr, Activation: &api.ActivationAnswer{Session: resp.Activation.Session, Secret: make([]byte, 32)}})
	wantCode(t, err, http.StatusForbidden, "activation_failed")
	// A session is answered once.
	_, err = c.Enroll(context.Background(), api.EnrollRequest{CSR: csr, Activation: &api.ActivationAnswer{Session: resp.Activation.Session, Secret: make([]byte, 32)}})
	wantCode(t, err, http.StatusUnauthorized, "activation_expired")

	// The device key certified by the AK is not the CSR's key.
	enr2, _ := a.Enrollment()
	csrOther, _ := deviceclient.NewCSR(newKey(t))
	_, err = c.Enroll(context.Background(), api.EnrollRequest{Token: token, CSR: csrOther, TPM: enr2})
	wantCode(t, err, http.StatusBadRequest, "tpm_verification_failed")

	// Zero-touch: without a token an unregistered EK is refused; once its
	// hash is registered the device enrols into the registered group.
	z := newSoftTPM(t)
	_, _, _, err = startTPMEnroll(t, ts, z, "")
	wantCode(t, err, http.StatusUnauthorized, "ek_not_registered")
	ekPub, err := x509.ParsePKIXPublicKey(z.EKPublicDER())
	if err != nil {
		t.Fatal(err)
	}
	if code := ts.Do(t, "POST", "/api/v1/groups", ts.AdminToken, api.Group{Name: "factory"}, nil); code != http.StatusCreated {
		t.Fatalf("create group: %d", code)
	}
	reg := api.EKRegistrationCreate{Registrations: []api.EKRegistration{{EKHash: attest.EKHash(ekPub), Group: "factory"}}}
	if code := ts.Do(t, "POST", "/api/v1/ek-registrations", ts.AdminToken, reg, nil); code != http.StatusCreated {
		t.Fatalf("register EK: %d", code)
	}
	if code := ts.Do(t, "POST", "/api/v1/ek-registrations", ts.AdminToken, reg, nil); code != http.StatusConflict {
		t.Fatalf("register EK twice: %d", code)
	}
	zd := enrollTPM(t, ts, z, "")
	var shown api.Device
	ts.Do(t, "GET", "/api/v1/devices/"+zd.id, ts.AdminToken, nil, &shown)
	if shown.Group != "factory" || shown.KeyAssurance != api.AssuranceHardware {
		t.Fatalf("zero-touch device = group %q key %q", shown.Group, shown.KeyAssurance)
	}
	// The registration is spent.
	_, _, _, err = startTPMEnroll(t, ts, z, "")
	wantCode(t, err, http.StatusUnauthorized, "ek_not_registered")

	// A software device cannot attest, and its self-reported key
	// assurance is not believed.
	sw, err := tryEnrollAssurance(ts, token, "tpm")
	if err != nil {
		t.Fatal(err)
	}
	_, err = sw.client.AttestNonce(context.Background())
	wantCode(t, err, http.StatusConflict, "no_tpm")
	ts.Do(t, "GET", "/api/v1/devices/"+sw.id, ts.AdminToken, nil, &shown)
	if shown.KeyAssurance != api.AssuranceSoftware {
		t.Fatalf("self-reported TPM key shown as %q", shown.KeyAssurance)
	}
}

func tryEnrollAssurance(ts *servertest.Server, token, assurance string) (*device, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	if err != nil {
		return nil, err
	}
	csr, err := deviceclient.NewCSR(key)
	if err != nil {
		return nil, err
	}
	resp, err := c.Enroll(context.Background(), api.EnrollRequest{Token: token, CSR: csr, KeyAssurance: assurance, Inventory: inventory("sw")})
	if err != nil {
		return nil, err
	}
	cert := tlsCert(resp.Certificate, key)
	c.SetCertificate(cert)
	return &device{id: resp.DeviceID, key: key, cert: cert, client: c}, nil
}

func TestHealthDefinitionServed(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	resp, err := ts.HTTP.Get(ts.URL + "/api/v1/health/definition")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != string(healthdef.JSON()) {
		t.Fatalf("GET /api/v1/health/definition: %d, %d bytes; want the healthdef JSON", resp.StatusCode, len(b))
	}
}

// TestNoncesBoundedPerDevice: a device holds at most a few outstanding
// nonces; asking for more drops its oldest, which then no longer attests.
func TestNoncesBoundedPerDevice(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enrollTPM(t, ts, newSoftTPM(t), ts.EnrollToken(t, 1, ""))
	var nonces [][]byte
	for range 5 {
		nonces = append(nonces, d.freshNonce(t))
	}
	if res := d.attest(t, nonces[4]); res.Status == api.AttestContraindicated {
		t.Fatalf("the newest nonce does not attest: %+v", res)
	}
	if res := d.attest(t, nonces[0]); res.Status != api.AttestContraindicated || !strings.Contains(strings.Join(res.Problems, " "), "nonce") {
		t.Fatalf("the dropped oldest nonce still attests: %+v", res)
	}
}
