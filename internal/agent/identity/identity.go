// Package identity holds the device identity: the private key the device
// generated for itself and the certificate the server issued for it.
//
// Identity is the small interface the rest of the agent uses; Software is
// the implementation with an ECDSA P-256 key in a file (mode 0600). A
// TPM-backed implementation, whose key never leaves the TPM, will satisfy
// the same interface. Identities are immutable and safe for concurrent use;
// renewal builds a new one.
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
)

// Key assurance levels reported to the server.
const (
	AssuranceSoftware = "software"
	AssuranceTPM      = "tpm"
)

// Identity is a device key with its certificate.
type Identity interface {
	// Certificate is the TLS client certificate, with Leaf set.
	Certificate() *tls.Certificate
	// Signer signs with the device key (re-enrolment proofs).
	Signer() crypto.Signer
	// KeyAssurance says where the key lives: "software" or "tpm".
	KeyAssurance() string
}

// Software is an identity whose key is held in memory and in a file.
type Software struct {
	key  *ecdsa.PrivateKey
	cert *tls.Certificate
}

// GenerateKey creates a new ECDSA P-256 device key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating device key: %w", err)
	}
	return k, nil
}

// NewSoftware pairs key with a PEM certificate, checking that the
// certificate is for that key.
func NewSoftware(key *ecdsa.PrivateKey, certPEM []byte) (*Software, error) {
	var chain [][]byte
	rest := certPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, errors.New("device certificate: no PEM CERTIFICATE block")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("device certificate: %w", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("device certificate is not for the device key")
	}
	return &Software{key: key, cert: &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}}, nil
}

// Certificate implements Identity.
func (s *Software) Certificate() *tls.Certificate { return s.cert }

// Signer implements Identity.
func (s *Software) Signer() crypto.Signer { return s.key }

// KeyAssurance implements Identity.
func (s *Software) KeyAssurance() string { return AssuranceSoftware }

// MarshalKey encodes key as a PKCS #8 PEM block.
func MarshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding device key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Files returns the state files holding key and certPEM, for state.Commit.
func Files(key *ecdsa.PrivateKey, certPEM []byte) ([]state.File, error) {
	kb, err := MarshalKey(key)
	if err != nil {
		return nil, err
	}
	return []state.File{
		{Name: state.KeyFile, Data: kb, Mode: 0o600},
		{Name: state.CertFile, Data: certPEM, Mode: 0o644},
	}, nil
}

// LoadKey reads the device key of dir. It refuses a key file that other
// users can read.
func LoadKey(dir string) (*ecdsa.PrivateKey, error) {
	p := filepath.Join(dir, state.KeyFile)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading device key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading device key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("device key %s has mode %04o: it must not be accessible to other users (chmod 600)", p, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reading device key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("reading device key %s: no PEM block", p)
	}
	var k any
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("reading device key %s: unexpected PEM block %q", p, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("reading device key %s: %w", p, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("reading device key %s: not an ECDSA key", p)
	}
	return ek, nil
}

// LoadSoftware reads the software identity of dir.
func LoadSoftware(dir string) (*Software, error) {
	key, err := LoadKey(dir)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, state.CertFile))
	if err != nil {
		return nil, fmt.Errorf("reading device certificate: %w", err)
	}
	return NewSoftware(key, certPEM)
}

// Proof signs SHA-256(csrDER) with signer, as the base64 (standard
// encoding) ASN.1 ECDSA signature the server expects in previous_proof.
func Proof(signer crypto.Signer, csrDER []byte) (string, error) {
	sum := sha256.Sum256(csrDER)
	sig, err := signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("signing re-enrolment proof: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// RenewalDue reports whether less than a third of leaf's lifetime remains
// at now.
func RenewalDue(leaf *x509.Certificate, now time.Time) bool {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Sub(now) < life/3
}
