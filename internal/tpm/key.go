package tpm

import (
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// DeviceKeyTemplate is the public template of the device key: an ECC
// P-256 signing key that cannot leave this TPM (fixedTPM), cannot be
// re-parented (fixedParent), whose private part the TPM generated
// (sensitiveDataOrigin), usable with an empty password (userWithAuth). Its
// scheme is left NULL so that Sign can choose the hash (ECDSA with SHA-256
// for TLS 1.3 and CSRs).
var DeviceKeyTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	}),
}

// Key is a device key loaded in the TPM. It implements crypto.Signer; the
// private key never leaves the TPM. Close flushes it.
type Key struct {
	tpm    *TPM
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public *tpm2.TPMTPublic
	pub    *ecdsa.PublicKey
	pubB   []byte // TPM2B_PUBLIC
	privB  []byte // TPM2B_PRIVATE (wrapped by the SRK)

	mu     sync.Mutex
	closed bool
}

// withSRK creates the TCG reference ECC P-256 storage root key (a primary
// in the owner hierarchy, the same key each time for the same TPM), runs f
// with it and flushes it.
func withSRK(t transport.TPM, f func(srk tpm2.AuthHandle) error) error {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("tpm: creating storage root key: %w", err)
	}
	defer tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(t)
	return f(tpm2.AuthHandle{Handle: rsp.ObjectHandle, Name: rsp.Name, Auth: tpm2.PasswordAuth(nil)})
}

// CreateDeviceKey creates a new device key (DeviceKeyTemplate) under the
// storage root key and loads it. Persist PublicBlob and PrivateBlob to
// reload it later with LoadDeviceKey.
func (t *TPM) CreateDeviceKey() (*Key, error) {
	k := &Key{tpm: t}
	_, err := t.exec(func(tt transport.TPM) (any, error) {
		return nil, withSRK(tt, func(srk tpm2.AuthHandle) error {
			c, err := tpm2.Create{ParentHandle: srk, InPublic: tpm2.New2B(DeviceKeyTemplate)}.Execute(tt)
			if err != nil {
				return fmt.Errorf("tpm: creating device key: %w", err)
			}
			k.pubB = tpm2.Marshal(c.OutPublic)
			k.privB = tpm2.Marshal(c.OutPrivate)
			return k.load(tt, srk, c.OutPublic, c.OutPrivate)
		})
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// LoadDeviceKey loads a device key from its blobs. The private blob is
// wrapped by this TPM's storage root key, so it loads only in the TPM that
// created it. A public area that is not a fixedTPM/fixedParent P-256
// signing key is refused.
func (t *TPM) LoadDeviceKey(pub, priv []byte) (*Key, error) {
	p, err := tpm2.Unmarshal[tpm2.TPM2BPublic](pub)
	if err != nil {
		return nil, fmt.Errorf("tpm: device key public blob: %w", err)
	}
	s, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](priv)
	if err != nil {
		return nil, fmt.Errorf("tpm: device key private blob: %w", err)
	}
	area, err := p.Contents()
	if err != nil {
		return nil, fmt.Errorf("tpm: device key public blob: %w", err)
	}
	if err := checkDeviceKey(area); err != nil {
		return nil, err
	}
	k := &Key{tpm: t, pubB: append([]byte(nil), pub...), privB: append([]byte(nil), priv...)}
	_, err = t.exec(func(tt transport.TPM) (any, error) {
		return nil, withSRK(tt, func(srk tpm2.AuthHandle) error {
			return k.load(tt, srk, *p, *s)
		})
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

func checkDeviceKey(p *tpm2.TPMTPublic) error {
	a := p.ObjectAttributes
	if p.Type != tpm2.TPMAlgECC || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.SignEncrypt || a.Decrypt || a.Restricted {
		return errors.New("tpm: device key blob is not a non-exportable ECC signing key")
	}
	ecc, err := p.Parameters.ECCDetail()
	if err != nil || ecc.CurveID != tpm2.TPMECCNistP256 {
		return errors.New("tpm: device key blob is not on curve P-256")
	}
	return nil
}

func (k *Key) load(tt transport.TPM, srk tpm2.AuthHandle, pub tpm2.TPM2BPublic, priv tpm2.TPM2BPrivate) error {
	l, err := tpm2.Load{ParentHandle: srk, InPrivate: priv, InPublic: pub}.Execute(tt)
	if err != nil {
		return fmt.Errorf("tpm: loading device key: %w", err)
	}
	area, err := pub.Contents()
	if err == nil {
		err = checkDeviceKey(area)
	}
	var ecc *tpm2.TPMSECCParms
	var pt *tpm2.TPMSECCPoint
	if err == nil {
		ecc, err = area.Parameters.ECCDetail()
	}
	if err == nil {
		pt, err = area.Unique.ECC()
	}
	if err == nil {
		k.pub, err = tpm2.ECDSAPub(ecc, pt)
	}
	if err == nil && !k.pub.Curve.IsOnCurve(k.pub.X, k.pub.Y) {
		err = errors.New("tpm: device key public point is not on P-256")
	}
	if err != nil {
		tpm2.FlushContext{FlushHandle: l.ObjectHandle}.Execute(tt)
		return fmt.Errorf("tpm: device key public area: %w", err)
	}
	k.handle, k.name, k.public = l.ObjectHandle, l.Name, area
	return nil
}

// Public returns the *ecdsa.PublicKey (P-256).
func (k *Key) Public() crypto.PublicKey { return k.pub }

// PublicBlob returns the key's TPM2B_PUBLIC.
func (k *Key) PublicBlob() []byte { return append([]byte(nil), k.pubB...) }

// PrivateBlob returns the key's TPM2B_PRIVATE, wrapped by the storage root
// key: it is usable only inside the same TPM.
func (k *Key) PrivateBlob() []byte { return append([]byte(nil), k.privB...) }

// PublicArea returns the key's public area as the TPM holds it, read back
// with TPM2_ReadPublic.
func (k *Key) PublicArea() (*tpm2.TPMTPublic, error) {
	r, err := k.do(func(tt transport.TPM) (any, error) {
		return tpm2.ReadPublic{ObjectHandle: k.handle}.Execute(tt)
	})
	if err != nil {
		return nil, fmt.Errorf("tpm: reading device key public area: %w", err)
	}
	return r.(*tpm2.ReadPublicResponse).OutPublic.Contents()
}

// Sign signs digest with TPM2_Sign (ECDSA) and returns an ASN.1 DER
// signature, as crypto.Signer requires. opts must name SHA-256, SHA-384 or
// SHA-1 and digest must be of that size; rand is unused (the TPM has its
// own).
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var alg tpm2.TPMAlgID
	switch opts.HashFunc() {
	case crypto.SHA256:
		alg = tpm2.TPMAlgSHA256
	case crypto.SHA384:
		alg = tpm2.TPMAlgSHA384
	case crypto.SHA1:
		alg = tpm2.TPMAlgSHA1
	default:
		return nil, fmt.Errorf("tpm: unsupported hash %v for ECDSA signing", opts.HashFunc())
	}
	if len(digest) != opts.HashFunc().Size() {
		return nil, fmt.Errorf("tpm: digest is %d bytes, want %d", len(digest), opts.HashFunc().Size())
	}
	r, err := k.do(func(tt transport.TPM) (any, error) {
		return tpm2.Sign{
			KeyHandle: tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(nil)},
			Digest:    tpm2.TPM2BDigest{Buffer: digest},
			InScheme: tpm2.TPMTSigScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: alg}),
			},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(tt)
	})
	if err != nil {
		return nil, fmt.Errorf("tpm: signing: %w", err)
	}
	sig, err := r.(*tpm2.SignResponse).Signature.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("tpm: signing: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(sig.SignatureR.Buffer))
		b.AddASN1BigInt(new(big.Int).SetBytes(sig.SignatureS.Buffer))
	})
	return b.Bytes()
}

// do runs f on the TPM unless the key is closed.
func (k *Key) do(f func(transport.TPM) (any, error)) (any, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, errors.New("tpm: use of closed device key")
	}
	return k.tpm.exec(f)
}

// Close flushes the key from the TPM. The blobs stay valid.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	_, err := k.tpm.exec(func(tt transport.TPM) (any, error) {
		return tpm2.FlushContext{FlushHandle: k.handle}.Execute(tt)
	})
	return err
}

var _ crypto.Signer = (*Key)(nil)
