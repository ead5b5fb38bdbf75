package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// AKTemplate is the public template of the attestation key: a restricted
// ECC P-256 signing key with the fixed scheme ECDSA-SHA256 (go-attestation's
// ECDSA AK template). Restricted means the TPM signs with it only
// structures it made itself (quotes, certifications), never a digest that
// could pass for one, so a verifier can trust what the AK signs. It cannot
// leave the TPM (fixedTPM, fixedParent), the TPM generated it
// (sensitiveDataOrigin), and its empty password is exempt from dictionary
// attack lockout (noDA).
var AKTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		Restricted:          true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	}),
}

// akScheme is the AK's signing scheme, named explicitly in the commands
// that take one (it must equal the key's own).
var akScheme = tpm2.TPMTSigScheme{
	Scheme:  tpm2.TPMAlgECDSA,
	Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
}

// AK is an attestation key loaded in the TPM. It signs quotes and
// certifications; it is not a crypto.Signer (being restricted, it cannot
// sign arbitrary digests). Close flushes it.
type AK struct {
	tpm    *TPM
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	pub    *ecdsa.PublicKey
	pubB   []byte // TPM2B_PUBLIC
	privB  []byte // TPM2B_PRIVATE (wrapped by the SRK)
	params api.AKParameters

	mu     sync.Mutex
	closed bool
}

// CreateAK creates a new attestation key (AKTemplate) under the storage
// root key, loads it, and has it certify its own creation
// (TPM2_CertifyCreation), which only works right after creation: persist
// Parameters with the blobs.
func (t *TPM) CreateAK() (*AK, error) {
	a := &AK{tpm: t}
	_, err := t.exec(func(tt transport.TPM) (any, error) {
		return nil, withSRK(tt, func(srk tpm2.AuthHandle) error {
			c, err := tpm2.Create{ParentHandle: srk, InPublic: tpm2.New2B(AKTemplate)}.Execute(tt)
			if err != nil {
				return fmt.Errorf("tpm: creating attestation key: %w", err)
			}
			a.pubB = tpm2.Marshal(c.OutPublic)
			a.privB = tpm2.Marshal(c.OutPrivate)
			if err := a.load(tt, srk, c.OutPublic, c.OutPrivate); err != nil {
				return err
			}
			cc, err := tpm2.CertifyCreation{
				SignHandle:     a.authHandle(),
				ObjectHandle:   tpm2.NamedHandle{Handle: a.handle, Name: a.name},
				CreationHash:   c.CreationHash,
				InScheme:       akScheme,
				CreationTicket: c.CreationTicket,
			}.Execute(tt)
			if err != nil {
				tpm2.FlushContext{FlushHandle: a.handle}.Execute(tt)
				return fmt.Errorf("tpm: certifying attestation key creation: %w", err)
			}
			a.params = api.AKParameters{
				Public:            clone(c.OutPublic.Bytes()),
				CreateData:        clone(c.CreationData.Bytes()),
				CreateAttestation: clone(cc.CertifyInfo.Bytes()),
				CreateSignature:   tpm2.Marshal(cc.Signature),
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// LoadAK loads an attestation key from its blobs (PublicBlob,
// PrivateBlob), which load only in the TPM that created the key. params
// are the key's creation Parameters as saved: their Public, when set, must
// be the key's, and their creation attestation must name the key and the
// creation data (the signature is left to the verifier). A zero params is
// allowed: Parameters then carries Public only. A public area that is not
// AKTemplate's kind of key is refused.
func (t *TPM) LoadAK(pub, priv []byte, params api.AKParameters) (*AK, error) {
	p, err := tpm2.Unmarshal[tpm2.TPM2BPublic](pub)
	if err != nil {
		return nil, fmt.Errorf("tpm: attestation key public blob: %w", err)
	}
	s, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](priv)
	if err != nil {
		return nil, fmt.Errorf("tpm: attestation key private blob: %w", err)
	}
	if params.Public == nil {
		params.Public = clone(p.Bytes())
	} else if !bytes.Equal(params.Public, p.Bytes()) {
		return nil, errors.New("tpm: attestation key parameters are for another key")
	}
	if params.CreateAttestation != nil {
		if err := checkCreation(p, params); err != nil {
			return nil, err
		}
	}
	a := &AK{tpm: t, pubB: clone(pub), privB: clone(priv), params: params}
	_, err = t.exec(func(tt transport.TPM) (any, error) {
		return nil, withSRK(tt, func(srk tpm2.AuthHandle) error {
			return a.load(tt, srk, *p, *s)
		})
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// checkCreation checks that saved creation parameters are about the key
// pub: the attestation is a creation attestation naming pub and hashing
// CreateData.
func checkCreation(pub *tpm2.TPM2BPublic, params api.AKParameters) error {
	bad := errors.New("tpm: attestation key parameters are not about this key")
	area, err := pub.Contents()
	if err != nil {
		return fmt.Errorf("tpm: attestation key public blob: %w", err)
	}
	name, err := tpm2.ObjectName(area)
	if err != nil {
		return fmt.Errorf("tpm: attestation key public blob: %w", err)
	}
	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](params.CreateAttestation)
	if err != nil || att.Type != tpm2.TPMSTAttestCreation {
		return bad
	}
	info, err := att.Attested.Creation()
	if err != nil {
		return bad
	}
	sum := sha256.Sum256(params.CreateData)
	if !bytes.Equal(info.ObjectName.Buffer, name.Buffer) || !bytes.Equal(info.CreationHash.Buffer, sum[:]) {
		return bad
	}
	return nil
}

func checkAK(p *tpm2.TPMTPublic) error {
	a := p.ObjectAttributes
	if p.Type != tpm2.TPMAlgECC || p.NameAlg != tpm2.TPMAlgSHA256 || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.Restricted || !a.SignEncrypt || a.Decrypt {
		return errors.New("tpm: attestation key blob is not a restricted non-exportable ECC signing key")
	}
	ecc, err := p.Parameters.ECCDetail()
	if err != nil || ecc.CurveID != tpm2.TPMECCNistP256 || ecc.Scheme.Scheme != tpm2.TPMAlgECDSA {
		return errors.New("tpm: attestation key blob is not an ECDSA P-256 key")
	}
	if h, err := ecc.Scheme.Details.ECDSA(); err != nil || h.HashAlg != tpm2.TPMAlgSHA256 {
		return errors.New("tpm: attestation key blob does not sign with SHA-256")
	}
	return nil
}

func (a *AK) load(tt transport.TPM, srk tpm2.AuthHandle, pub tpm2.TPM2BPublic, priv tpm2.TPM2BPrivate) error {
	area, err := pub.Contents()
	if err != nil {
		return fmt.Errorf("tpm: attestation key public area: %w", err)
	}
	if err := checkAK(area); err != nil {
		return err
	}
	ecc, _ := area.Parameters.ECCDetail()
	pt, err := area.Unique.ECC()
	if err == nil {
		a.pub, err = tpm2.ECDSAPub(ecc, pt)
	}
	if err == nil && !a.pub.Curve.IsOnCurve(a.pub.X, a.pub.Y) {
		err = errors.New("point is not on P-256")
	}
	if err != nil {
		return fmt.Errorf("tpm: attestation key public area: %w", err)
	}
	l, err := tpm2.Load{ParentHandle: srk, InPrivate: priv, InPublic: pub}.Execute(tt)
	if err != nil {
		return fmt.Errorf("tpm: loading attestation key: %w", err)
	}
	a.handle, a.name = l.ObjectHandle, l.Name
	return nil
}

func (a *AK) authHandle() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: a.handle, Name: a.name, Auth: tpm2.PasswordAuth(nil)}
}

// Public returns the AK's *ecdsa.PublicKey (P-256).
func (a *AK) Public() crypto.PublicKey { return a.pub }

// PublicBlob returns the AK's TPM2B_PUBLIC.
func (a *AK) PublicBlob() []byte { return clone(a.pubB) }

// PrivateBlob returns the AK's TPM2B_PRIVATE, wrapped by the storage root
// key: it is usable only inside the same TPM.
func (a *AK) PrivateBlob() []byte { return clone(a.privB) }

// Parameters returns the AK's public area and the TPM's proof that it
// created it, for the server (go-attestation's AttestationParameters).
// For an AK loaded without saved parameters only Public is set.
func (a *AK) Parameters() api.AKParameters {
	return api.AKParameters{
		Public:            clone(a.params.Public),
		CreateData:        clone(a.params.CreateData),
		CreateAttestation: clone(a.params.CreateAttestation),
		CreateSignature:   clone(a.params.CreateSignature),
	}
}

// do runs f on the TPM unless the AK is closed.
func (a *AK) do(f func(transport.TPM) (any, error)) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("tpm: use of closed attestation key")
	}
	return a.tpm.exec(f)
}

// Close flushes the AK from the TPM. The blobs stay valid.
func (a *AK) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	_, err := a.tpm.exec(func(tt transport.TPM) (any, error) {
		return tpm2.FlushContext{FlushHandle: a.handle}.Execute(tt)
	})
	return err
}

// ActivateCredential decrypts a credential that the server made for this
// AK and this TPM's endorsement key (go-attestation's EncryptedCredential:
// credential and secret each with their 2-byte size prefix) and returns
// the secret inside. Only the TPM holding both keys can: the TPM checks
// that the credential names the AK. The endorsement key is recreated as
// EK does, used under a TPM2_PolicySecret(TPM_RH_ENDORSEMENT) session,
// and flushed.
func (a *AK) ActivateCredential(credential, secret []byte) ([]byte, error) {
	cred, err := unsized(credential)
	if err != nil {
		return nil, fmt.Errorf("tpm: activating credential: credential: %w", err)
	}
	sec, err := unsized(secret)
	if err != nil {
		return nil, fmt.Errorf("tpm: activating credential: secret: %w", err)
	}
	r, err := a.do(func(tt transport.TPM) (any, error) {
		e, err := a.tpm.createEK(tt)
		if err != nil {
			return nil, err
		}
		defer e.flush(tt)
		rsp, err := tpm2.ActivateCredential{
			ActivateHandle: a.authHandle(),
			KeyHandle: tpm2.AuthHandle{
				Handle: e.handle,
				Name:   e.name,
				Auth:   tpm2.Policy(tpm2.TPMAlgSHA256, 16, endorsementPolicy),
			},
			CredentialBlob: tpm2.TPM2BIDObject{Buffer: cred},
			Secret:         tpm2.TPM2BEncryptedSecret{Buffer: sec},
		}.Execute(tt)
		if err != nil {
			return nil, err
		}
		return clone(rsp.CertInfo.Buffer), nil
	})
	if err != nil {
		return nil, fmt.Errorf("tpm: activating credential: %w", err)
	}
	return r.([]byte), nil
}

// endorsementPolicy satisfies the TCG default EK policy:
// TPM2_PolicySecret(TPM_RH_ENDORSEMENT) with the (empty) endorsement
// hierarchy password.
func endorsementPolicy(tt transport.TPM, session tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
	_, err := tpm2.PolicySecret{
		AuthHandle:    tpm2.TPMRHEndorsement,
		PolicySession: session,
		NonceTPM:      nonceTPM,
	}.Execute(tt)
	return err
}

// unsized strips a TPM2B's 2-byte size prefix, checking it.
func unsized(b []byte) ([]byte, error) {
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
		return nil, errors.New("not a size-prefixed TPM2B")
	}
	return b[2:], nil
}

// Certify has the AK certify the device key with TPM2_Certify: the TPM
// states that it holds a key with that public area, signed by the AK.
// qualifyingData (a nonce, up to 64 bytes) may be nil. key must be loaded
// in the same TPM as the AK.
func (a *AK) Certify(key *Key, qualifyingData []byte) (*api.CertifyParameters, error) {
	if key == nil {
		return nil, errors.New("tpm: certifying: no device key")
	}
	if key.tpm != a.tpm {
		return nil, errors.New("tpm: certifying: the device key is in another TPM")
	}
	// Lock order: AK, device key, TPM.
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("tpm: use of closed attestation key")
	}
	r, err := key.do(func(tt transport.TPM) (any, error) {
		return tpm2.Certify{
			ObjectHandle:   tpm2.AuthHandle{Handle: key.handle, Name: key.name, Auth: tpm2.PasswordAuth(nil)},
			SignHandle:     a.authHandle(),
			QualifyingData: tpm2.TPM2BData{Buffer: qualifyingData},
			InScheme:       akScheme,
		}.Execute(tt)
	})
	if err != nil {
		return nil, fmt.Errorf("tpm: certifying device key: %w", err)
	}
	rsp := r.(*tpm2.CertifyResponse)
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](key.pubB)
	if err != nil {
		return nil, fmt.Errorf("tpm: certifying device key: %w", err)
	}
	return &api.CertifyParameters{
		Public:      clone(pub.Bytes()),
		Attestation: clone(rsp.CertifyInfo.Bytes()),
		Signature:   tpm2.Marshal(rsp.Signature),
	}, nil
}

// Enrollment gathers the TPM part of an enrolment request: the
// endorsement key and its certificate (EK), the AK's Parameters, and the
// device key certified by the AK with no qualifying data. The AK must
// have been created (or loaded with its saved parameters).
func (t *TPM) Enrollment(ak *AK, deviceKey *Key) (*api.TPMEnrollment, error) {
	if ak.params.CreateAttestation == nil {
		return nil, errors.New("tpm: enrolment: the attestation key has no creation parameters")
	}
	ek, err := t.EK()
	if err != nil {
		return nil, err
	}
	ekDER, err := x509.MarshalPKIXPublicKey(ek.Public)
	if err != nil {
		return nil, fmt.Errorf("tpm: enrolment: endorsement key: %w", err)
	}
	cert, err := ak.Certify(deviceKey, nil)
	if err != nil {
		return nil, err
	}
	return &api.TPMEnrollment{
		EKPublic:      ekDER,
		EKCertificate: ek.Certificate,
		AK:            ak.Parameters(),
		DeviceKey:     *cert,
	}, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
