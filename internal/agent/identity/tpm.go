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
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/api"
	tpmdev "github.com/bulwark-iot/bulwark/internal/tpm"
)

// TPMKeyFile holds the TPM device key's blobs in the state directory: a PEM
// "TPM2B PUBLIC" block and a "TPM2B PRIVATE" block. The private blob is
// wrapped by the TPM's storage root key and is useless outside that TPM,
// but anyone who can read it and talk to the same TPM can use the key (its
// auth is empty), so the file is mode 0600 like the software key.
const TPMKeyFile = "device.tpmkey"

// TPMAKFile holds the TPM attestation key in the state directory: its
// blobs ("TPM2B PUBLIC", "TPM2B PRIVATE") and the TPM's proof of its
// creation ("TPMS CREATION DATA", "TPMS ATTEST", "TPMT SIGNATURE"), which
// can be made only when the key is created and is needed to enrol again.
// Like TPMKeyFile it is mode 0600.
const TPMAKFile = "device.tpmak"

const (
	pemTPMPublic       = "TPM2B PUBLIC"
	pemTPMPrivate      = "TPM2B PRIVATE"
	pemTPMCreationData = "TPMS CREATION DATA"
	pemTPMAttest       = "TPMS ATTEST"
	pemTPMSignature    = "TPMT SIGNATURE"
)

// TPM is an identity whose key lives in a TPM (fixedTPM, fixedParent): the
// private key never exists outside it. It may also hold the TPM's
// attestation key (AK), which quotes PCRs and certified the device key.
// Close flushes the keys from the TPM.
type TPM struct {
	key  *tpmdev.Key
	ak   *tpmdev.AK // nil when the identity has none
	cert *tls.Certificate
}

// NewTPM pairs a TPM device key with a PEM certificate, checking that the
// certificate is for that key. The identity takes over key: its Close
// closes key.
func NewTPM(key *tpmdev.Key, certPEM []byte) (*TPM, error) {
	return NewTPMWithAK(key, nil, certPEM)
}

// NewTPMWithAK is NewTPM for an identity that also keeps the TPM's
// attestation key ak (nil for none). The identity takes over both keys.
func NewTPMWithAK(key *tpmdev.Key, ak *tpmdev.AK, certPEM []byte) (*TPM, error) {
	chain, leaf, err := parseChain(certPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("device certificate is not for the TPM device key")
	}
	return &TPM{key: key, ak: ak, cert: &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}}, nil
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

// AK returns the identity's attestation key, or nil when it has none (a
// state directory from before attestation keys).
func (t *TPM) AK() *tpmdev.AK { return t.ak }

// Close flushes the device key and the attestation key from the TPM (the
// TPM itself stays open).
func (t *TPM) Close() error {
	err := t.key.Close()
	if t.ak != nil {
		err = errors.Join(err, t.ak.Close())
	}
	return err
}

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

// MarshalTPMAK encodes ak's blobs and creation parameters for TPMAKFile.
func MarshalTPMAK(ak *tpmdev.AK) []byte {
	p := ak.Parameters()
	var b []byte
	for _, blk := range []pem.Block{
		{Type: pemTPMPublic, Bytes: ak.PublicBlob()},
		{Type: pemTPMPrivate, Bytes: ak.PrivateBlob()},
		{Type: pemTPMCreationData, Bytes: p.CreateData},
		{Type: pemTPMAttest, Bytes: p.CreateAttestation},
		{Type: pemTPMSignature, Bytes: p.CreateSignature},
	} {
		if blk.Bytes != nil {
			b = append(b, pem.EncodeToMemory(&blk)...)
		}
	}
	return b
}

// TPMAKStateFile returns the state file holding ak, for state.Commit
// (with TPMFiles).
func TPMAKStateFile(ak *tpmdev.AK) state.File {
	return state.File{Name: TPMAKFile, Data: MarshalTPMAK(ak), Mode: 0o600}
}

// readPrivatePEM reads the PEM blocks of a 0600 state file, by type. It
// refuses a file that other users can read; what names the file in
// errors.
func readPrivatePEM(p, what string) (map[string][]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s has mode %04o: it must not be accessible to other users (chmod 600)", what, p, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	blocks := make(map[string][]byte)
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		blocks[b.Type] = b.Bytes
	}
	return blocks, nil
}

// LoadTPMKey reads the blobs in dir's TPMKeyFile and loads the key into
// dev. It refuses a file that other users can read. The caller closes the
// key.
func LoadTPMKey(dir string, dev *tpmdev.TPM) (*tpmdev.Key, error) {
	p := filepath.Join(dir, TPMKeyFile)
	blocks, err := readPrivatePEM(p, "TPM device key")
	if err != nil {
		return nil, err
	}
	pub, priv := blocks[pemTPMPublic], blocks[pemTPMPrivate]
	if pub == nil || priv == nil {
		return nil, fmt.Errorf("reading TPM device key %s: want %q and %q PEM blocks", p, pemTPMPublic, pemTPMPrivate)
	}
	k, err := dev.LoadDeviceKey(pub, priv)
	if err != nil {
		return nil, fmt.Errorf("loading TPM device key %s: %w", p, err)
	}
	return k, nil
}

// LoadTPMAK reads dir's TPMAKFile and loads the attestation key into dev,
// with its creation parameters. It refuses a file that other users can
// read. The caller closes the key.
func LoadTPMAK(dir string, dev *tpmdev.TPM) (*tpmdev.AK, error) {
	p := filepath.Join(dir, TPMAKFile)
	blocks, err := readPrivatePEM(p, "TPM attestation key")
	if err != nil {
		return nil, err
	}
	pub, priv := blocks[pemTPMPublic], blocks[pemTPMPrivate]
	if pub == nil || priv == nil {
		return nil, fmt.Errorf("reading TPM attestation key %s: want %q and %q PEM blocks", p, pemTPMPublic, pemTPMPrivate)
	}
	ak, err := dev.LoadAK(pub, priv, api.AKParameters{
		CreateData:        blocks[pemTPMCreationData],
		CreateAttestation: blocks[pemTPMAttest],
		CreateSignature:   blocks[pemTPMSignature],
	})
	if err != nil {
		return nil, fmt.Errorf("loading TPM attestation key %s: %w", p, err)
	}
	return ak, nil
}

// LoadTPM reads the TPM identity of dir: the key blobs, loaded into dev,
// the attestation key when dir has one (TPMAKFile), and the certificate.
// The caller closes the identity.
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
	var ak *tpmdev.AK
	if _, err := os.Lstat(filepath.Join(dir, TPMAKFile)); err == nil {
		if ak, err = LoadTPMAK(dir, dev); err != nil {
			key.Close()
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		key.Close()
		return nil, fmt.Errorf("reading TPM attestation key: %w", err)
	}
	id, err := NewTPMWithAK(key, ak, certPEM)
	if err != nil {
		key.Close()
		if ak != nil {
			ak.Close()
		}
		return nil, err
	}
	return id, nil
}

var _ Identity = (*TPM)(nil)
