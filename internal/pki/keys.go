package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// GenerateKey returns a new ECDSA P-256 private key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
// It fails for keys that cannot be exported, such as keys held in a TPM.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal private key: %w", err)
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM decodes one unencrypted PEM private key: PKCS#8
// ("PRIVATE KEY"), or for interoperability SEC 1 ("EC PRIVATE KEY") or
// PKCS#1 ("RSA PRIVATE KEY").
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, err := decodeOnePEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: parse private key: %w", err)
	}
	defer clear(block.Bytes)
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("pki: parse private key: PEM block has type %.40q, want \"PRIVATE KEY\"", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: parse private key: %T is not a signing key", key)
	}
	return signer, nil
}

// EncodeCertPEM encodes a DER certificate as a "CERTIFICATE" PEM block.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseCertPEM decodes exactly one "CERTIFICATE" PEM block (white space
// around it is allowed; anything else, including a second certificate, is
// an error).
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, err := decodeOnePEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: parse certificate: %w", err)
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: parse certificate: PEM block has type %.40q, want \"CERTIFICATE\"", block.Type)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse certificate: %w", err)
	}
	return cert, nil
}

// decodeOnePEM decodes data that holds exactly one PEM block without
// headers.
func decodeOnePEM(data []byte) (*pem.Block, error) {
	data = bytes.TrimLeft(data, " \t\r\n")
	if !bytes.HasPrefix(data, []byte("-----BEGIN ")) {
		return nil, errors.New("input does not start with a PEM block")
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("PEM block is malformed")
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("PEM block has headers (encrypted keys are not supported)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the PEM block")
	}
	return block, nil
}
