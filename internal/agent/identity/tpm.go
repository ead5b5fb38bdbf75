package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
	tpmdev "github.com/bulwark-iot/bulwark/internal/tpm"
)

// TPMKeyFile holds the TPM device key's blobs in the state directory: a PEM
// "TPM2B PUBLIC" block and a "TPM2B PRIVATE" block. The private blob is
// wrapped by the TPM's storage root key and is useless outside that TPM,
// but anyone who can read it and talk to the same TPM can use the key (its
// auth is empty), so the file is mode 0600 like the software key.
const TPMKeyFile = "device.tpmkey"

const (
	pemTPMPublic  = "TPM2B PUBLIC"
	pemTPMPrivate = "TPM2B PRIVATE"
)

// TPM is an identity whose key lives in a TPM (fixedTPM, fixedParent): the
// private key never exists outside it. Close flushes the key from the TPM.
type TPM struct {
	key  *tpmdev.Key
	cert *tls.Certificate
}

// NewTPM pairs a TPM device key with a PEM certificate, checking that the
// certificate is for that key. The identity takes over key: its Close
// closes key.
func NewTPM(key *tpmdev.Key, certPEM []byte) (*TPM, error) {
	chain, leaf, err := parseChain(certPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("device certificate is not for the TPM device key")
	}
	return &TPM{key: key, cert: &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}}, nil
}

func parseChain(certPEM []byte) ([][]byte, *x509.Certificate, error) {
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
		return nil, nil, errors.New("device certificate: no PEM CERTIFICATE block")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, nil, fmt.Errorf("device certificate: %w", err)
	}
	return chain, leaf, nil
}

// Certificate implements Identity.
func (t *TPM) Certificate() *tls.Certificate { return t.cert }

// Signer implements Identity; it signs inside the TPM.
func (t *TPM) Signer() crypto.Signer { return t.key }

// KeyAssurance implements Identity.
func (t *TPM) KeyAssurance() string { return AssuranceTPM }

// Close flushes the device key from the TPM (the TPM itself stays open).
func (t *TPM) Close() error { return t.key.Close() }

// MarshalTPMKey encodes key's blobs for TPMKeyFile.
func MarshalTPMKey(key *tpmdev.Key) []byte {
	b := pem.EncodeToMemory(&pem.Block{Type: pemTPMPublic, Bytes: key.PublicBlob()})
	return append(b, pem.EncodeToMemory(&pem.Block{Type: pemTPMPrivate, Bytes: key.PrivateBlob()})...)
}

// TPMFiles returns the state files holding key's blobs and certPEM, for
// state.Commit.
func TPMFiles(key *tpmdev.Key, certPEM []byte) []state.File {
	return []state.File{
		{Name: TPMKeyFile, Data: MarshalTPMKey(key), Mode: 0o600},
		{Name: state.CertFile, Data: certPEM, Mode: 0o644},
	}
}

// LoadTPMKey reads the blobs in dir's TPMKeyFile and loads the key into
// dev. It refuses a file that other users can read. The caller closes the
// key.
func LoadTPMKey(dir string, dev *tpmdev.TPM) (*tpmdev.Key, error) {
	p := filepath.Join(dir, TPMKeyFile)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading TPM device key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading TPM device key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("TPM device key %s has mode %04o: it must not be accessible to other users (chmod 600)", p, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reading TPM device key: %w", err)
	}
	var pub, priv []byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case pemTPMPublic:
			pub = b.Bytes
		case pemTPMPrivate:
			priv = b.Bytes
		}
	}
	if pub == nil || priv == nil {
		return nil, fmt.Errorf("reading TPM device key %s: want %q and %q PEM blocks", p, pemTPMPublic, pemTPMPrivate)
	}
	k, err := dev.LoadDeviceKey(pub, priv)
	if err != nil {
		return nil, fmt.Errorf("loading TPM device key %s: %w", p, err)
	}
	return k, nil
}

// LoadTPM reads the TPM identity of dir: the key blobs, loaded into dev,
// and the certificate. The caller closes the identity.
func LoadTPM(dir string, dev *tpmdev.TPM) (*TPM, error) {
	key, err := LoadTPMKey(dir, dev)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, state.CertFile))
	if err != nil {
		key.Close()
		return nil, fmt.Errorf("reading device certificate: %w", err)
	}
	id, err := NewTPM(key, certPEM)
	if err != nil {
		key.Close()
		return nil, err
	}
	return id, nil
}

var _ Identity = (*TPM)(nil)
