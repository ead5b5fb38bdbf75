package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// EAR (draft-ietf-rats-ear) constants.
const (
	EARProfile   = "tag:github.com,2023:veraison/ear"
	EARSubmod    = "bulwark-tpm"
	EARDeveloper = "https://github.com/bulwark-iot/bulwark"
	EARBuild     = "bulwark-attest/1"
	// MaxEAR bounds a token VerifyEAR accepts.
	MaxEAR = 16 << 10
)

// ErrEAR is wrapped by every VerifyEAR error.
var ErrEAR = errors.New("attest: EAR rejected")

// EARClaims are the claims of a verified EAR.
type EARClaims struct {
	Profile   string
	IssuedAt  time.Time
	Developer string
	Build     string
	DeviceID  string // "sub"
	Nonce     []byte // eat_nonce
	Status    string
	Vector    api.TrustVector
	PolicyID  string
	KeyID     string
}

type earVerifierID struct {
	Developer string `json:"developer"`
	Build     string `json:"build"`
}

type earAppraisal struct {
	Status   string         `json:"ear.status"`
	Vector   map[string]int `json:"ear.trustworthiness-vector,omitempty"`
	PolicyID string         `json:"ear.appraisal-policy-id,omitempty"`
}

type earBody struct {
	Profile    string                  `json:"eat_profile"`
	IssuedAt   int64                   `json:"iat"`
	VerifierID earVerifierID           `json:"ear.verifier-id"`
	Subject    string                  `json:"sub,omitempty"`
	Nonce      string                  `json:"eat_nonce,omitempty"`
	Submods    map[string]earAppraisal `json:"submods"`
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid,omitempty"`
}

var b64 = base64.RawURLEncoding

func vectorMap(v api.TrustVector) map[string]int {
	m := map[string]int{}
	for k, c := range map[string]int{
		"instance-identity": v.InstanceIdentity, "configuration": v.Configuration,
		"executables": v.Executables, "file-system": v.FileSystem, "hardware": v.Hardware,
		"runtime-opaque": v.RuntimeOpaque, "storage-opaque": v.StorageOpaque, "sourced-data": v.SourcedData,
	} {
		if c != 0 {
			m[k] = c
		}
	}
	return m
}

// SignEAR signs r as an EAT Attestation Result (draft-ietf-rats-ear), a
// JWT signed with ES256 by key (an ECDSA P-256 signer) and labelled kid:
//
//	{"eat_profile": "tag:github.com,2023:veraison/ear", "iat": ...,
//	 "ear.verifier-id": {"developer": ..., "build": ...},
//	 "sub": deviceID, "eat_nonce": base64url(nonce),
//	 "submods": {"bulwark-tpm": {"ear.status": ...,
//	   "ear.trustworthiness-vector": {...non-zero claims...},
//	   "ear.appraisal-policy-id": ...}}}
func SignEAR(key crypto.Signer, kid string, deviceID string, nonce []byte, r *Result, now time.Time) (string, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return "", errors.New("attest: sign EAR: ES256 needs an ECDSA P-256 key")
	}
	if r == nil {
		return "", errors.New("attest: sign EAR: no result")
	}
	if len(nonce) > 0 && (len(nonce) < 8 || len(nonce) > 64) {
		return "", errors.New("attest: sign EAR: eat_nonce must be 8 to 64 bytes")
	}
	h, err := json.Marshal(jwtHeader{Alg: "ES256", Typ: "JWT", Kid: kid})
	if err != nil {
		return "", fmt.Errorf("attest: sign EAR: %w", err)
	}
	status := r.Status
	if status == "" {
		status = statusOf(r.Vector)
	}
	body := earBody{
		Profile:    EARProfile,
		IssuedAt:   now.Unix(),
		VerifierID: earVerifierID{Developer: EARDeveloper, Build: EARBuild},
		Subject:    deviceID,
		Submods: map[string]earAppraisal{EARSubmod: {
			Status:   status,
			Vector:   vectorMap(r.Vector),
			PolicyID: r.PolicyID,
		}},
	}
	if len(nonce) > 0 {
		body.Nonce = b64.EncodeToString(nonce)
	}
	c, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("attest: sign EAR: %w", err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	d := sha256.Sum256([]byte(signing))
	der, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("attest: sign EAR: %w", err)
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 {
		return "", errors.New("attest: sign EAR: signer returned a malformed ECDSA signature")
	}
	raw := make([]byte, 64)
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	return signing + "." + b64.EncodeToString(raw), nil
}

// VerifyEAR verifies an EAR signed by SignEAR with one of keys (by the
// token's kid; any key when the token has no kid) and returns its claims.
// Only ES256 is accepted. Expiry is the caller's decision, from IssuedAt.
func VerifyEAR(token string, keys map[string]crypto.PublicKey) (*EARClaims, error) {
	if len(token) > MaxEAR {
		return nil, fmt.Errorf("%w: token too large", ErrEAR)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrEAR)
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrEAR, err)
	}
	var h jwtHeader
	if err := strictJSON(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrEAR, err)
	}
	if h.Alg != "ES256" {
		return nil, fmt.Errorf("%w: algorithm %q; ES256 required", ErrEAR, h.Alg)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, fmt.Errorf("%w: malformed ES256 signature", ErrEAR)
	}
	var candidates []crypto.PublicKey
	if h.Kid != "" {
		if k, ok := keys[h.Kid]; ok {
			candidates = append(candidates, k)
		}
	} else {
		for _, k := range keys {
			candidates = append(candidates, k)
		}
	}
	d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	verified := false
	for _, k := range candidates {
		if pk, ok := k.(*ecdsa.PublicKey); ok && pk.Curve == elliptic.P256() && ecdsa.Verify(pk, d[:], r, s) {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: signature does not verify with key %q", ErrEAR, h.Kid)
	}
	cb, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrEAR, err)
	}
	var body earBody
	if err := json.Unmarshal(cb, &body); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrEAR, err)
	}
	if body.Profile != EARProfile {
		return nil, fmt.Errorf("%w: eat_profile %q", ErrEAR, body.Profile)
	}
	sub, ok := body.Submods[EARSubmod]
	if !ok {
		return nil, fmt.Errorf("%w: no %q submod", ErrEAR, EARSubmod)
	}
	out := &EARClaims{
		Profile: body.Profile, IssuedAt: time.Unix(body.IssuedAt, 0),
		Developer: body.VerifierID.Developer, Build: body.VerifierID.Build,
		DeviceID: body.Subject, Status: sub.Status, PolicyID: sub.PolicyID, KeyID: h.Kid,
	}
	if body.Nonce != "" {
		if out.Nonce, err = b64.DecodeString(body.Nonce); err != nil {
			return nil, fmt.Errorf("%w: eat_nonce: %w", ErrEAR, err)
		}
	}
	for k, v := range sub.Vector {
		switch k {
		case "instance-identity":
			out.Vector.InstanceIdentity = v
		case "configuration":
			out.Vector.Configuration = v
		case "executables":
			out.Vector.Executables = v
		case "file-system":
			out.Vector.FileSystem = v
		case "hardware":
			out.Vector.Hardware = v
		case "runtime-opaque":
			out.Vector.RuntimeOpaque = v
		case "storage-opaque":
			out.Vector.StorageOpaque = v
		case "sourced-data":
			out.Vector.SourcedData = v
		default:
			return nil, fmt.Errorf("%w: unknown trustworthiness claim %q", ErrEAR, k)
		}
	}
	switch out.Status {
	case api.AttestAffirming, api.AttestWarning, api.AttestContraindicated, api.AttestNone:
	default:
		return nil, fmt.Errorf("%w: ear.status %q", ErrEAR, out.Status)
	}
	return out, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// JWKS returns the JSON Web Key Set (RFC 7517) of the ECDSA P-256 keys by
// kid, sorted by kid, for publishing the keys that verify EARs.
func JWKS(keys map[string]crypto.PublicKey) ([]byte, error) {
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	kids := make([]string, 0, len(keys))
	for k := range keys {
		kids = append(kids, k)
	}
	sort.Strings(kids)
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, kid := range kids {
		pk, ok := keys[kid].(*ecdsa.PublicKey)
		if !ok || pk.Curve != elliptic.P256() {
			return nil, fmt.Errorf("attest: JWKS: key %q is not ECDSA P-256", kid)
		}
		pt, err := pk.Bytes() // 0x04 || X || Y
		if err != nil {
			return nil, fmt.Errorf("attest: JWKS: key %q: %w", kid, err)
		}
		set.Keys = append(set.Keys, jwk{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(pt[1:33]), Y: b64.EncodeToString(pt[33:]), Kid: kid, Alg: "ES256", Use: "sig"})
	}
	return json.Marshal(set)
}
