package attest_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
)

func TestEAR(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.PublicKey{"k1": &key.PublicKey}
	r := &attest.Result{Status: api.AttestWarning, PolicyID: "p1", Vector: api.TrustVector{InstanceIdentity: 2, Configuration: 32, Hardware: 2}}
	nonce := bytes.Repeat([]byte{0xab}, 32)
	now := time.Unix(1_790_000_000, 0)
	tok, err := attest.SignEAR(key, "k1", "dev-1", nonce, r, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := attest.VerifyEAR(tok, keys)
	if err != nil {
		t.Fatalf("VerifyEAR: %v", err)
	}
	if c.Status != api.AttestWarning || c.Vector != r.Vector || c.PolicyID != "p1" || c.DeviceID != "dev-1" ||
		!bytes.Equal(c.Nonce, nonce) || !c.IssuedAt.Equal(now) || c.Profile != attest.EARProfile || c.KeyID != "k1" {
		t.Errorf("claims = %+v", c)
	}

	// The claims are the EAR shape.
	parts := strings.Split(tok, ".")
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	sub := m["submods"].(map[string]any)["bulwark-tpm"].(map[string]any)
	if m["eat_profile"] != "tag:github.com,2023:veraison/ear" || sub["ear.status"] != "warning" ||
		sub["ear.trustworthiness-vector"].(map[string]any)["configuration"] != 32.0 ||
		m["eat_nonce"] != base64.RawURLEncoding.EncodeToString(nonce) || m["iat"] != 1790000000.0 {
		t.Errorf("claims JSON = %s", body)
	}
	if _, ok := m["ear.verifier-id"].(map[string]any)["developer"]; !ok {
		t.Errorf("no ear.verifier-id.developer: %s", body)
	}

	reject := func(name, tok string, keys map[string]crypto.PublicKey) {
		t.Helper()
		if _, err := attest.VerifyEAR(tok, keys); !errors.Is(err, attest.ErrEAR) {
			t.Errorf("%s: err = %v, want ErrEAR", name, err)
		}
	}
	// Claims changed after signing.
	tampered := strings.Replace(string(body), `"warning"`, `"affirming"`, 1)
	reject("tampered claims", parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(tampered))+"."+parts[2], keys)
	// A flipped signature bit.
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[10] ^= 1
	reject("tampered signature", parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig), keys)
	// Another key under the same kid.
	reject("wrong key", tok, map[string]crypto.PublicKey{"k1": &other.PublicKey})
	reject("unknown kid", tok, map[string]crypto.PublicKey{"k2": &key.PublicKey})
	// alg none.
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`))
	reject("alg none", none+"."+parts[1]+".", keys)
	reject("not a JWS", "abc", keys)
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := attest.JWKS(map[string]crypto.PublicKey{"k1": &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct{ Kty, Crv, X, Y, Kid, Alg string }
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].Kty != "EC" || set.Keys[0].Crv != "P-256" || set.Keys[0].Kid != "k1" || set.Keys[0].Alg != "ES256" {
		t.Fatalf("JWKS = %s", b)
	}
	x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	pt, _ := key.PublicKey.Bytes()
	if len(x) != 32 || !bytes.Equal(x, pt[1:33]) {
		t.Errorf("x = %x", x)
	}
}
