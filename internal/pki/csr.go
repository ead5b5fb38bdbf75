package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MaxCSRBytes is the largest certificate signing request ParseCSR accepts,
// PEM or DER. A 4096-bit RSA request is under 2 KiB of PEM.
const MaxCSRBytes = 16 << 10

// RSA key sizes accepted in requests. TPMs commonly hold RSA 2048 keys.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// ErrBadCSR is matched (with errors.Is) by every error ParseCSR returns.
// The error's own text says what is wrong, in one sentence starting with
// "csr: ", and is safe to return to the client that sent the request.
var ErrBadCSR = errors.New("bad certificate request")

// csrError is a client-safe description of a rejected request.
type csrError struct {
	msg   string
	cause error // optional, for logs
}

func (e *csrError) Error() string { return e.msg }

func (e *csrError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrBadCSR}
	}
	return []error{ErrBadCSR, e.cause}
}

func badCSR(cause error, format string, args ...any) error {
	return &csrError{msg: "csr: " + fmt.Sprintf(format, args...), cause: cause}
}

// ParseCSR decodes a PKCS#10 certificate signing request received from
// outside, as one PEM block of type "CERTIFICATE REQUEST" (optionally
// surrounded by white space) or as raw DER. It checks the request's size,
// that its public key is of an accepted type and size (ECDSA P-256 or
// P-384, Ed25519, RSA 2048 to 4096 bits), and that its signature verifies
// (proof of possession of the private key) with a hash no weaker than
// SHA-256.
//
// The subject, extensions and attributes of the request are parsed but not
// trusted; IssueDevice ignores them.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) == 0 {
		return nil, badCSR(nil, "request is empty")
	}
	if len(data) > MaxCSRBytes {
		return nil, badCSR(nil, "request of %d bytes is larger than the %d-byte limit", len(data), MaxCSRBytes)
	}
	der := data
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		block, rest := pem.Decode(trimmed)
		switch {
		case block == nil:
			return nil, badCSR(nil, "PEM block is malformed")
		case block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST":
			return nil, badCSR(nil, "PEM block has type %.40q, want \"CERTIFICATE REQUEST\"", block.Type)
		case len(block.Headers) != 0:
			return nil, badCSR(nil, "PEM block has headers, which are not allowed")
		case len(bytes.TrimSpace(rest)) != 0:
			return nil, badCSR(nil, "unexpected data after the PEM block")
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, badCSR(err, "not a well-formed PKCS#10 certificate request")
	}
	if err := checkCSR(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkCSR checks the request's key and signature.
func checkCSR(csr *x509.CertificateRequest) error {
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return err
	}
	switch alg := csr.SignatureAlgorithm; alg {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.DSAWithSHA256:
		return badCSR(nil, "signature algorithm %v is not allowed (use SHA-256 or stronger)", alg)
	}
	if err := csr.CheckSignature(); err != nil {
		var insecure x509.InsecureAlgorithmError
		if errors.As(err, &insecure) {
			return badCSR(err, "signature algorithm %v is not allowed", x509.SignatureAlgorithm(insecure))
		}
		if errors.Is(err, x509.ErrUnsupportedAlgorithm) {
			return badCSR(err, "signature algorithm %v is not supported", csr.SignatureAlgorithm)
		}
		return badCSR(err, "signature does not verify")
	}
	return nil
}

// checkPublicKey reports whether pub is a key type and size Bulwark
// accepts from devices.
func checkPublicKey(pub crypto.PublicKey) error {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return badCSR(nil, "ECDSA curve %s is not supported (use P-256 or P-384)", pub.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		switch bits := pub.N.BitLen(); {
		case bits < minRSABits:
			return badCSR(nil, "RSA key of %d bits is too small (minimum %d)", bits, minRSABits)
		case bits > maxRSABits:
			return badCSR(nil, "RSA key of %d bits is too large (maximum %d)", bits, maxRSABits)
		}
		return nil
	case nil:
		return badCSR(nil, "public key algorithm is not supported")
	default:
		return badCSR(nil, "public key type %T is not supported", pub)
	}
}
