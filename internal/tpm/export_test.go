package tpm

import (
	"crypto"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// UseECCEK makes t use the TCG default ECC P-256 endorsement key, as on a
// TPM without RSA.
func UseECCEK(t *TPM) { t.ekTemplates = []tpm2.TPMTPublic{tpm2.ECCEKTemplate} }

// WriteNV defines NV index idx (owner-written, readable with its empty
// auth, like a vendor's EK certificate index) and writes data to it, as a
// TPM manufacturer provisions an EK certificate.
func WriteNV(t *TPM, idx uint32, data []byte) error {
	_, err := t.exec(func(tt transport.TPM) (any, error) {
		def := tpm2.NVDefineSpace{
			AuthHandle: tpm2.TPMRHOwner,
			PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
				NVIndex: tpm2.TPMHandle(idx),
				NameAlg: tpm2.TPMAlgSHA256,
				Attributes: tpm2.TPMANV{
					OwnerWrite: true, OwnerRead: true, AuthRead: true, NoDA: true,
					NT: tpm2.TPMNTOrdinary,
				},
				DataSize: uint16(len(data)),
			}),
		}
		if _, err := def.Execute(tt); err != nil {
			return nil, err
		}
		pub, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(idx)}.Execute(tt)
		if err != nil {
			return nil, err
		}
		for off := 0; off < len(data); off += nvChunk {
			_, err := tpm2.NVWrite{
				AuthHandle: tpm2.TPMRHOwner,
				NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(idx), Name: pub.NVName},
				Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data[off:min(off+nvChunk, len(data))]},
				Offset:     uint16(off),
			}.Execute(tt)
			if err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	return err
}

// PersistPrimary creates a primary key from tmpl in the endorsement
// hierarchy and makes it persistent at handle, evicting what was there,
// as an OS or vendor provisions an EK. It returns the key's public key.
func PersistPrimary(t *TPM, tmpl tpm2.TPMTPublic, handle uint32) (crypto.PublicKey, error) {
	r, err := t.exec(func(tt transport.TPM) (any, error) {
		ph := tpm2.TPMHandle(handle)
		if old, err := (tpm2.ReadPublic{ObjectHandle: ph}).Execute(tt); err == nil {
			if _, err := (tpm2.EvictControl{
				Auth:             tpm2.TPMRHOwner,
				ObjectHandle:     tpm2.NamedHandle{Handle: ph, Name: old.Name},
				PersistentHandle: ph,
			}).Execute(tt); err != nil {
				return nil, err
			}
		}
		rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tmpl)}.Execute(tt)
		if err != nil {
			return nil, err
		}
		defer tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(tt)
		if _, err := (tpm2.EvictControl{
			Auth:             tpm2.TPMRHOwner,
			ObjectHandle:     tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name},
			PersistentHandle: ph,
		}).Execute(tt); err != nil {
			return nil, err
		}
		pub, err := rsp.OutPublic.Contents()
		if err != nil {
			return nil, err
		}
		k, _, err := ekPublic(pub)
		return k, err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// SetEndorsementAuth sets the endorsement hierarchy's password (empty
// before), after which no primary key can be created there with an empty
// one.
func SetEndorsementAuth(t *TPM, auth []byte) error {
	_, err := t.exec(func(tt transport.TPM) (any, error) {
		return tpm2.HierarchyChangeAuth{
			AuthHandle: tpm2.TPMRHEndorsement,
			NewAuth:    tpm2.TPM2BAuth{Buffer: auth},
		}.Execute(tt)
	})
	return err
}
