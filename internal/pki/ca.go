package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

const (
	caValidityYears = 10
	// backdate is subtracted from NotBefore to tolerate clock skew between
	// the server and devices.
	backdate = 5 * time.Minute
)

// caKeyAAD labels the sealed CA private key.
var caKeyAAD = []byte("bulwark-ca-key")

// CA is a certificate authority: the device CA that signs device client
// certificates and the control plane's server certificates. It is
// immutable after NewCA or LoadCA and safe for concurrent use.
type CA struct {
	// Cert is the CA's self-signed certificate. Do not modify it.
	Cert *x509.Certificate
	// CertPEM is Cert, PEM-encoded. Do not modify it.
	CertPEM []byte

	signer crypto.Signer
	pool   *x509.CertPool // holds Cert only; used by VerifyDevice
}

// NewCA creates a self-signed root CA with a new ECDSA P-256 key, valid
// from now (less five minutes for clock skew) for ten years. It may sign
// end-entity certificates only (MaxPathLen 0).
func NewCA(commonName string, now time.Time) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("pki: new CA: common name is empty")
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(caValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	return newCA(cert, key), nil
}

func newCA(cert *x509.Certificate, signer crypto.Signer) *CA {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		Cert:    cert,
		CertPEM: EncodeCertPEM(cert.Raw),
		signer:  signer,
		pool:    pool,
	}
}

// SealKey returns the CA's private key as PKCS#8 DER sealed with k, for
// storage next to CertPEM. LoadCA reverses it.
func (ca *CA) SealKey(k KEK) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.signer)
	if err != nil {
		return nil, fmt.Errorf("pki: seal CA key: %w", err)
	}
	defer clear(der)
	sealed, err := k.Seal(der, caKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("pki: seal CA key: %w", err)
	}
	return sealed, nil
}

// LoadCA loads a CA from its PEM certificate and its private key sealed by
// SealKey. It fails if the certificate is not a CA certificate or the key
// does not belong to it.
func LoadCA(certPEM, sealedKey []byte, k KEK) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("pki: load CA: certificate is not a CA certificate")
	}
	der, err := k.Open(sealedKey, caKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA key: %w", err)
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: load CA key: %T is not a signing key", key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("pki: load CA: private key does not match the CA certificate")
	}
	return newCA(cert, signer), nil
}

// Pool returns a new certificate pool holding only the CA certificate, for
// tls.Config.ClientCAs (server) or RootCAs (device). Each call returns a
// new pool, so the caller may modify it.
func (ca *CA) Pool() *x509.CertPool {
	return ca.pool.Clone()
}

// serialLimit is 2^128: serials are 128 random bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// newSerial returns a random, positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
