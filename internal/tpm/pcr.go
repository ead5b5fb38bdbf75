package tpm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// pcrIndices checks, sorts and deduplicates PCR indices.
func pcrIndices(pcrs []int) ([]uint, error) {
	if len(pcrs) == 0 {
		return nil, errors.New("no PCRs selected")
	}
	var out []uint
	for _, i := range pcrs {
		if i < 0 || i > api.MaxPCRIndex {
			return nil, fmt.Errorf("PCR %d out of range 0..%d", i, api.MaxPCRIndex)
		}
		out = append(out, uint(i))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func sha256Selection(pcrs []uint) tpm2.TPMLPCRSelection {
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(pcrs...),
	}}}
}

// readPCRs reads the SHA-256 bank's pcrs (sorted, distinct).
// TPM2_PCR_Read returns at most eight digests at a time, and says which
// PCRs it returned; ask again for the rest.
func readPCRs(tt transport.TPM, pcrs []uint) ([]api.PCRValue, error) {
	got := make(map[uint][]byte, len(pcrs))
	for len(got) < len(pcrs) {
		var want []uint
		for _, i := range pcrs {
			if _, ok := got[i]; !ok {
				want = append(want, i)
			}
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: sha256Selection(want)}.Execute(tt)
		if err != nil {
			return nil, fmt.Errorf("tpm: reading PCRs: %w", err)
		}
		var read []uint
		for _, sel := range rsp.PCRSelectionOut.PCRSelections {
			if sel.Hash != tpm2.TPMAlgSHA256 {
				continue
			}
			for b, bits := range sel.PCRSelect {
				for j := range 8 {
					if bits&(1<<j) != 0 {
						read = append(read, uint(8*b+j))
					}
				}
			}
		}
		if len(read) == 0 || len(read) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("tpm: reading PCRs %v: the TPM returned %d digests for %v (is the SHA-256 bank active?)", want, len(rsp.PCRValues.Digests), read)
		}
		for k, i := range read { // selection bits are in ascending order, as are the digests
			if !slices.Contains(want, i) || len(rsp.PCRValues.Digests[k].Buffer) != sha256.Size {
				return nil, fmt.Errorf("tpm: reading PCRs: unexpected PCR %d in the answer", i)
			}
			got[i] = clone(rsp.PCRValues.Digests[k].Buffer)
		}
	}
	out := make([]api.PCRValue, len(pcrs))
	for k, i := range pcrs {
		out[k] = api.PCRValue{Index: int(i), Digest: got[i]}
	}
	return out, nil
}

// ReadPCRs reads PCRs of the SHA-256 bank, in ascending index order.
func (t *TPM) ReadPCRs(pcrs []int) ([]api.PCRValue, error) {
	idx, err := pcrIndices(pcrs)
	if err != nil {
		return nil, fmt.Errorf("tpm: reading PCRs: %w", err)
	}
	r, err := t.exec(func(tt transport.TPM) (any, error) { return readPCRs(tt, idx) })
	if err != nil {
		return nil, err
	}
	return r.([]api.PCRValue), nil
}

// ExtendPCR extends PCR index of the SHA-256 bank with a SHA-256 digest
// (TPM2_PCR_Extend: new = SHA-256(old || digest)); other banks are left
// alone. It is for tests and for emulating measured boot. PCRs 0..15 can
// be reset only by a reboot.
func (t *TPM) ExtendPCR(index int, digest []byte) error {
	if index < 0 || index > api.MaxPCRIndex {
		return fmt.Errorf("tpm: extending PCR %d: out of range 0..%d", index, api.MaxPCRIndex)
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("tpm: extending PCR %d: digest is %d bytes, want %d", index, len(digest), sha256.Size)
	}
	_, err := t.exec(func(tt transport.TPM) (any, error) {
		return tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(index), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest}}},
		}.Execute(tt)
	})
	if err != nil {
		return fmt.Errorf("tpm: extending PCR %d: %w", index, err)
	}
	return nil
}

// quoteAttempts bounds the retries when a PCR changes between reading the
// PCRs and quoting them (IMA extends PCR 10 at any time).
const quoteAttempts = 5

// Quote has the AK sign the SHA-256 bank's pcrs with nonce as qualifying
// data (TPM2_Quote; go-attestation's Quote) and returns the quote, its
// signature and the PCR values it covers. The PCR values are read before
// quoting and checked against the quote's PCR digest; if a PCR changed in
// between, both are made again. The caller adds the logs to the Evidence.
func (a *AK) Quote(nonce []byte, pcrs []int) (*api.Evidence, error) {
	idx, err := pcrIndices(pcrs)
	if err != nil {
		return nil, fmt.Errorf("tpm: quoting: %w", err)
	}
	for range quoteAttempts {
		r, err := a.do(func(tt transport.TPM) (any, error) {
			vals, err := readPCRs(tt, idx)
			if err != nil {
				return nil, err
			}
			q, err := tpm2.Quote{
				SignHandle:     a.authHandle(),
				QualifyingData: tpm2.TPM2BData{Buffer: nonce},
				InScheme:       akScheme,
				PCRSelect:      sha256Selection(idx),
			}.Execute(tt)
			if err != nil {
				return nil, fmt.Errorf("tpm: quoting: %w", err)
			}
			return &api.Evidence{
				Nonce:     clone(nonce),
				Quote:     clone(q.Quoted.Bytes()),
				Signature: tpm2.Marshal(q.Signature),
				PCRs:      vals,
			}, nil
		})
		if err != nil {
			return nil, err
		}
		ev := r.(*api.Evidence)
		same, err := quoteMatches(ev)
		if err != nil {
			return nil, fmt.Errorf("tpm: quoting: %w", err)
		}
		if same {
			return ev, nil
		}
	}
	return nil, fmt.Errorf("tpm: quoting: the PCRs changed during each of %d attempts", quoteAttempts)
}

// quoteMatches reports whether the quote's PCR digest is that of the PCR
// values (SHA-256 of their concatenation in ascending index order).
func quoteMatches(ev *api.Evidence) (bool, error) {
	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](ev.Quote)
	if err != nil {
		return false, err
	}
	info, err := att.Attested.Quote()
	if err != nil {
		return false, err
	}
	h := sha256.New()
	for _, p := range ev.PCRs {
		h.Write(p.Digest)
	}
	return bytes.Equal(h.Sum(nil), info.PCRDigest.Buffer), nil
}
