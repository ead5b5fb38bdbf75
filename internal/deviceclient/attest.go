package deviceclient

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// AttestNonce asks the server for a nonce to attest with.
func (c *Client) AttestNonce(ctx context.Context) ([]byte, error) {
	var out api.AttestNonce
	if err := c.do(ctx, http.MethodPost, api.PathAttestNonce, c.timeout, struct{}{}, &out); err != nil {
		return nil, fmt.Errorf("attestation nonce: %w", err)
	}
	return out.Nonce, nil
}

// Attest sends evidence and returns the server's appraisal.
func (c *Client) Attest(ctx context.Context, ev *api.Evidence) (*api.AttestationResult, error) {
	var out api.AttestationResult
	if err := c.do(ctx, http.MethodPost, api.PathAttest, c.timeout, ev, &out); err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	return &out, nil
}

// SignHealthReport encodes rep and signs SHA-256 of the encoding with the
// device key (in the TPM, for a hardware identity).
func SignHealthReport(key crypto.Signer, rep *api.HealthReport) (*api.SignedHealthReport, error) {
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(b)
	var opts crypto.SignerOpts = crypto.SHA256
	switch key.Public().(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey:
	default:
		return nil, errors.New("health report: the device key must be ECDSA or RSA")
	}
	sig, err := key.Sign(rand.Reader, digest[:], opts)
	if err != nil {
		return nil, fmt.Errorf("health report: signing: %w", err)
	}
	return &api.SignedHealthReport{Report: b, Signature: sig}, nil
}

// SendHealthReport sends a signed health report.
func (c *Client) SendHealthReport(ctx context.Context, sr *api.SignedHealthReport) error {
	if err := c.do(ctx, http.MethodPost, api.PathHealthReport, c.timeout, sr, nil); err != nil {
		return fmt.Errorf("health report: %w", err)
	}
	return nil
}
