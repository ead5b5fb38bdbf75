package tpm

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// NV indices of the EK certificates (TCG EK Credential Profile 2.0,
// section 2.2.1.4: low range).
const (
	NVIndexRSAEKCert = 0x01c00002 // RSA 2048 EK certificate
	NVIndexECCEKCert = 0x01c0000a // ECC NIST P-256 EK certificate
)

// EK is the TPM's endorsement key: a decryption key derived from the
// endorsement seed that the TPM's manufacturer certified.
type EK struct {
	// Public is the *rsa.PublicKey (RSA 2048, the TCG default template
	// "L-1") or, on TPMs without RSA, the *ecdsa.PublicKey (P-256).
	Public crypto.PublicKey
	// Certificate is the EK certificate, DER, as read from the TPM's NV
	// (NVIndexRSAEKCert or NVIndexECCEKCert); nil when the TPM has none.
	// It is not verified.
	Certificate []byte
}

// defaultEKTemplates are the TCG default EK templates, RSA first.
var defaultEKTemplates = []tpm2.TPMTPublic{tpm2.RSAEKTemplate, tpm2.ECCEKTemplate}

// Persistent handles where the OS or the vendor may have stored the EK
// (TCG TPM v2.0 Provisioning Guidance, section 7.8).
const (
	persistentRSAEK = 0x81010001
	persistentECCEK = 0x81010002
)

// ek is an endorsement key in the TPM; flush it after use.
type ek struct {
	handle     tpm2.TPMHandle
	name       tpm2.TPM2BName
	public     crypto.PublicKey
	nv         tpm2.TPMHandle // certificate index
	persistent bool
}

func (e *ek) flush(tt transport.TPM) {
	if !e.persistent {
		tpm2.FlushContext{FlushHandle: e.handle}.Execute(tt)
	}
}

// persistedEK returns the EK stored at the TCG's persistent handle for
// tmpl's algorithm, when there is one made from tmpl, or nil. Using it
// spares the TPM generating the key (an RSA primary can take seconds on
// real TPMs). A key there made from any other template is ignored.
func persistedEK(tt transport.TPM, tmpl tpm2.TPMTPublic) *ek {
	h := tpm2.TPMHandle(persistentRSAEK)
	if tmpl.Type == tpm2.TPMAlgECC {
		h = persistentECCEK
	}
	rsp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(tt)
	if err != nil {
		return nil
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		return nil
	}
	// Same template but for the unique field (the public key).
	masked := *pub
	masked.Unique = tmpl.Unique
	if !bytes.Equal(tpm2.Marshal(masked), tpm2.Marshal(tmpl)) {
		return nil
	}
	e := &ek{handle: h, name: rsp.Name, persistent: true}
	if e.public, e.nv, err = ekPublic(pub); err != nil {
		return nil
	}
	return e
}

// createEK gets the endorsement key of the first template the TPM
// accepts: the persisted key when there is one (persistedEK), else a
// primary key created from the template. The key is the same each time for
// the same TPM (it is derived from the endorsement primary seed), so the
// key the server encrypted a credential to can be recreated for
// ActivateCredential.
func (t *TPM) createEK(tt transport.TPM) (*ek, error) {
	templates := t.ekTemplates
	if templates == nil {
		templates = defaultEKTemplates
	}
	var errs []error
	for _, tmpl := range templates {
		if e := persistedEK(tt, tmpl); e != nil {
			return e, nil
		}
		rsp, err := tpm2.CreatePrimary{
			PrimaryHandle: tpm2.TPMRHEndorsement,
			InPublic:      tpm2.New2B(tmpl),
		}.Execute(tt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e := &ek{handle: rsp.ObjectHandle, name: rsp.Name}
		pub, err := rsp.OutPublic.Contents()
		if err == nil {
			e.public, e.nv, err = ekPublic(pub)
		}
		if err != nil {
			e.flush(tt)
			return nil, fmt.Errorf("tpm: endorsement key: %w", err)
		}
		return e, nil
	}
	return nil, fmt.Errorf("tpm: creating endorsement key: %w", errors.Join(errs...))
}

func ekPublic(p *tpm2.TPMTPublic) (crypto.PublicKey, tpm2.TPMHandle, error) {
	switch p.Type {
	case tpm2.TPMAlgRSA:
		parms, err := p.Parameters.RSADetail()
		if err != nil {
			return nil, 0, err
		}
		n, err := p.Unique.RSA()
		if err != nil {
			return nil, 0, err
		}
		pub, err := tpm2.RSAPub(parms, n)
		return pub, NVIndexRSAEKCert, err
	case tpm2.TPMAlgECC:
		parms, err := p.Parameters.ECCDetail()
		if err != nil {
			return nil, 0, err
		}
		pt, err := p.Unique.ECC()
		if err != nil {
			return nil, 0, err
		}
		pub, err := tpm2.ECDSAPub(parms, pt)
		return pub, NVIndexECCEKCert, err
	}
	return nil, 0, fmt.Errorf("unsupported key type %v", p.Type)
}

// EK creates the endorsement key in the endorsement hierarchy from the
// TCG default template (RSA 2048, or ECC P-256 when the TPM refuses RSA),
// flushes it, and reads the matching EK certificate from NV when there is
// one. When the EK made from that template is already persisted at the
// TCG's handle (0x81010001 RSA, 0x81010002 ECC), that key is used instead.
func (t *TPM) EK() (*EK, error) {
	r, err := t.exec(func(tt transport.TPM) (any, error) {
		e, err := t.createEK(tt)
		if err != nil {
			return nil, err
		}
		e.flush(tt)
		cert, err := readNVCert(tt, e.nv)
		if err != nil {
			return nil, err
		}
		return &EK{Public: e.public, Certificate: cert}, nil
	})
	if err != nil {
		return nil, err
	}
	return r.(*EK), nil
}

// nvChunk is how much TPM2_NV_Read is asked for at once; every TPM
// supports at least this much (MAX_NV_BUFFER_SIZE is 1024 on most).
const nvChunk = 512

// readNVCert reads a certificate from NV index idx: nil when the index is
// not defined. A DER certificate is returned without any padding that
// follows it.
func readNVCert(tt transport.TPM, idx tpm2.TPMHandle) ([]byte, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(tt)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, nil // not defined
		}
		return nil, fmt.Errorf("tpm: reading EK certificate index %#x: %w", uint32(idx), err)
	}
	nvPub, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("tpm: reading EK certificate index %#x: %w", uint32(idx), err)
	}
	size := int(nvPub.DataSize)
	// The index authorizes reads with its own (empty) auth value, or, on
	// TPMs where only the owner may read, with the owner's.
	var data []byte
	var errs []error
	for _, auth := range []tpm2.TPMHandle{idx, tpm2.TPMRHOwner} {
		data, err = readNV(tt, auth, idx, pub.NVName, size)
		if err == nil {
			break
		}
		errs = append(errs, err)
	}
	if data == nil {
		return nil, fmt.Errorf("tpm: reading EK certificate index %#x: %w", uint32(idx), errors.Join(errs...))
	}
	// Trim to the DER SEQUENCE (some TPMs pad the index).
	s := cryptobyte.String(data)
	var cert cryptobyte.String
	if s.ReadASN1Element(&cert, asn1.SEQUENCE) {
		return []byte(cert), nil
	}
	return data, nil
}

func readNV(tt transport.TPM, auth, idx tpm2.TPMHandle, name tpm2.TPM2BName, size int) ([]byte, error) {
	a := tpm2.AuthHandle{Handle: auth, Auth: tpm2.PasswordAuth(nil)}
	if auth == idx {
		a.Name = name
	}
	data := make([]byte, 0, size)
	for len(data) < size {
		n := min(nvChunk, size-len(data))
		rsp, err := tpm2.NVRead{
			AuthHandle: a,
			NVIndex:    tpm2.NamedHandle{Handle: idx, Name: name},
			Size:       uint16(n),
			Offset:     uint16(len(data)),
		}.Execute(tt)
		if err != nil {
			return nil, err
		}
		if len(rsp.Data.Buffer) == 0 {
			return nil, errors.New("empty NV read")
		}
		data = append(data, rsp.Data.Buffer...)
	}
	return data, nil
}
