package tpm

import (
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
