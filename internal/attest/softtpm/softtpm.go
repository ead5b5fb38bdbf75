// Package softtpm is an in-memory software TPM for simulations and fast
// server tests of the attestation verifier (internal/attest). It needs no
// cgo and no TPM: an RSA-2048 endorsement key (optionally with an EK
// certificate chain carrying the TPM's critical subjectAltName), an ECC
// P-256 attestation key and device key, a SHA-256 PCR bank, a measured-boot
// event log and an IMA list, all producing the same TPM 2.0 encodings a
// real TPM produces and github.com/google/go-attestation reads.
//
// It is a test double, not a security boundary: its keys are in process
// memory, and it has knobs to misbehave (Extend without logging, altered
// events) so that tests can prove the verifier notices.
//
// A *TPM is safe for concurrent use. EventLog and IMAList are the writers
// it uses; they are exported for tests that drive a real TPM.
package softtpm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Options configure New. The zero value makes a TPM without an EK
// certificate, keys from crypto/rand.
type Options struct {
	// EKCertificate makes an EK certificate signed by a fresh "EK root"
	// CA (see EKRoots), with the TPM subjectAltName (manufacturer
	// "id:53465450", model "softtpm", version "id:00010000") marked
	// critical, as TPM vendors issue them.
	EKCertificate bool
	// Rand is the source of keys; nil means crypto/rand.
	Rand io.Reader
}

// TPM is a software TPM.
type TPM struct {
	ek      *rsa.PrivateKey
	ekCert  []byte
	ekRoot  *x509.Certificate
	ak      *ecdsa.PrivateKey
	akPub   []byte // TPMT_PUBLIC
	akName  tpm2.TPM2BName
	akParam api.AKParameters
	dev     *ecdsa.PrivateKey
	rand    io.Reader

	mu     sync.Mutex
	pcrs   [24][32]byte
	log    EventLog
	ima    IMAList
	clock  uint64
	resets uint32
}

// Manufacturer is the TPM manufacturer ID in softtpm EK certificates.
const Manufacturer = "id:53465450"

// New makes a TPM with fresh keys and PCRs at zero.
func New(opts Options) (*TPM, error) {
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	t := &TPM{rand: rnd}
	var err error
	if t.ek, err = rsa.GenerateKey(rnd, 2048); err != nil {
		return nil, fmt.Errorf("softtpm: EK: %w", err)
	}
	if t.ak, err = ecdsa.GenerateKey(elliptic.P256(), rnd); err != nil {
		return nil, fmt.Errorf("softtpm: AK: %w", err)
	}
	if t.dev, err = ecdsa.GenerateKey(elliptic.P256(), rnd); err != nil {
		return nil, fmt.Errorf("softtpm: device key: %w", err)
	}
	akPub, err := eccPublic(&t.ak.PublicKey, true)
	if err != nil {
		return nil, err
	}
	t.akPub = tpm2.Marshal(akPub)
	name, err := tpm2.ObjectName(akPub)
	if err != nil {
		return nil, fmt.Errorf("softtpm: AK name: %w", err)
	}
	t.akName = *name
	if t.akParam, err = t.makeAKParameters(); err != nil {
		return nil, err
	}
	if opts.EKCertificate {
		if err := t.makeEKCertificate(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// eccPublic is the TPMT_PUBLIC of a P-256 signing key created in the TPM:
// an AK (restricted) or a device key.
func eccPublic(k *ecdsa.PublicKey, restricted bool) (*tpm2.TPMTPublic, error) {
	pt, err := k.Bytes() // 0x04 || X || Y
	if err != nil || k.Curve != elliptic.P256() {
		return nil, errors.New("softtpm: not a P-256 public key")
	}
	x, y := pt[1:33], pt[33:]
	return &tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			Restricted:          restricted,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: x},
			Y: tpm2.TPM2BECCParameter{Buffer: y},
		}),
	}, nil
}

// sign is TPM2_Sign-like: ECDSA with SHA-256 by the AK, as a TPMT_SIGNATURE.
func (t *TPM) sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(t.rand, t.ak, d[:])
	if err != nil {
		return nil, fmt.Errorf("softtpm: sign: %w", err)
	}
	rb, sb := make([]byte, 32), make([]byte, 32)
	r.FillBytes(rb)
	s.FillBytes(sb)
	sig := tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: rb},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: sb},
		}),
	}
	return tpm2.Marshal(&sig), nil
}

func (t *TPM) attest(typ tpm2.TPMST, extra []byte, info tpm2.TPMUAttest) []byte {
	t.mu.Lock()
	t.clock += 1000
	clock := t.clock
	t.mu.Unlock()
	a := tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            typ,
		QualifiedSigner: t.akName,
		ExtraData:       tpm2.TPM2BData{Buffer: extra},
		ClockInfo:       tpm2.TPMSClockInfo{Clock: clock, ResetCount: t.resets, Safe: true},
		FirmwareVersion: 0x0001000000000000,
		Attested:        info,
	}
	return tpm2.Marshal(&a)
}

func (t *TPM) makeAKParameters() (api.AKParameters, error) {
	parent := sha256.Sum256([]byte("softtpm storage root key"))
	parentName := append([]byte{0x00, 0x0b}, parent[:]...)
	cd := tpm2.TPMSCreationData{
		PCRSelect:           tpm2.TPMLPCRSelection{},
		PCRDigest:           tpm2.TPM2BDigest{Buffer: sha256.New().Sum(nil)},
		Locality:            tpm2.TPMALocality{TPMLocZero: true},
		ParentNameAlg:       tpm2.TPMAlgSHA256,
		ParentName:          tpm2.TPM2BName{Buffer: parentName},
		ParentQualifiedName: tpm2.TPM2BName{Buffer: parentName},
		OutsideInfo:         tpm2.TPM2BData{},
	}
	createData := tpm2.Marshal(&cd)
	ch := sha256.Sum256(createData)
	att := t.attest(tpm2.TPMSTAttestCreation, nil, tpm2.NewTPMUAttest(tpm2.TPMSTAttestCreation, &tpm2.TPMSCreationInfo{
		ObjectName:   t.akName,
		CreationHash: tpm2.TPM2BDigest{Buffer: ch[:]},
	}))
	sig, err := t.sign(att)
	if err != nil {
		return api.AKParameters{}, err
	}
	return api.AKParameters{Public: t.akPub, CreateData: createData, CreateAttestation: att, CreateSignature: sig}, nil
}

// EKPublic returns the endorsement key's public key.
func (t *TPM) EKPublic() crypto.PublicKey { return &t.ek.PublicKey }

// EKPublicDER returns the EK public key, PKIX DER.
func (t *TPM) EKPublicDER() []byte {
	der, err := x509.MarshalPKIXPublicKey(&t.ek.PublicKey)
	if err != nil {
		panic(err) // an RSA public key always marshals
	}
	return der
}

// EKCertificate returns the EK certificate (DER), or nil without one.
func (t *TPM) EKCertificate() []byte { return t.ekCert }

// EKRoots returns a pool with the CA that issued the EK certificate, or
// nil without one.
func (t *TPM) EKRoots() *x509.CertPool {
	if t.ekRoot == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(t.ekRoot)
	return p
}

// AKPublic returns the AK's TPMT_PUBLIC.
func (t *TPM) AKPublic() []byte { return t.akPub }

// AKParameters returns the AK with its creation data, creation
// attestation and self-signature.
func (t *TPM) AKParameters() api.AKParameters { return t.akParam }

// DeviceKey returns the device key, a signer for the CSR.
func (t *TPM) DeviceKey() crypto.Signer { return t.dev }

// CertifyDeviceKey certifies the device key with the AK (TPM2_Certify).
func (t *TPM) CertifyDeviceKey() (api.CertifyParameters, error) {
	return t.Certify(&t.dev.PublicKey)
}

// Certify certifies a P-256 key as if the TPM had created it (fixedTPM,
// fixedParent, sensitiveDataOrigin), signed by the AK.
func (t *TPM) Certify(pub *ecdsa.PublicKey) (api.CertifyParameters, error) {
	p, err := eccPublic(pub, false)
	if err != nil {
		return api.CertifyParameters{}, err
	}
	return t.CertifyPublic(p)
}

// CertifyPublic certifies an arbitrary TPMT_PUBLIC, for tests of keys
// with the wrong attributes.
func (t *TPM) CertifyPublic(p *tpm2.TPMTPublic) (api.CertifyParameters, error) {
	name, err := tpm2.ObjectName(p)
	if err != nil {
		return api.CertifyParameters{}, fmt.Errorf("softtpm: certify: %w", err)
	}
	att := t.attest(tpm2.TPMSTAttestCertify, nil, tpm2.NewTPMUAttest(tpm2.TPMSTAttestCertify, &tpm2.TPMSCertifyInfo{
		Name:          *name,
		QualifiedName: *name,
	}))
	sig, err := t.sign(att)
	if err != nil {
		return api.CertifyParameters{}, err
	}
	return api.CertifyParameters{Public: tpm2.Marshal(p), Attestation: att, Signature: sig}, nil
}

// DevicePublic returns the TPMT_PUBLIC of pub as a TPM-created device key,
// for tests that alter it before CertifyPublic.
func DevicePublic(pub *ecdsa.PublicKey) (*tpm2.TPMTPublic, error) { return eccPublic(pub, false) }

// Enrollment returns the TPM part of an enrolment request for the device
// key.
func (t *TPM) Enrollment() (*api.TPMEnrollment, error) {
	cp, err := t.CertifyDeviceKey()
	if err != nil {
		return nil, err
	}
	return &api.TPMEnrollment{
		EKPublic:      t.EKPublicDER(),
		EKCertificate: t.ekCert,
		AK:            t.akParam,
		DeviceKey:     cp,
	}, nil
}

// ActivateCredential is TPM2_ActivateCredential with the EK and the AK:
// it recovers the secret from a credential and encrypted seed as
// go-attestation's ActivationParameters.Generate (TPM2_MakeCredential)
// produces them, each with its 2-byte TPM2B size prefix. It fails unless
// the seed was encrypted to this TPM's EK and the credential bound to this
// TPM's AK name.
func (t *TPM) ActivateCredential(credential, encSecret []byte) ([]byte, error) {
	encSeed, err := tpm2b(encSecret)
	if err != nil {
		return nil, fmt.Errorf("softtpm: activate: secret: %w", err)
	}
	seed, err := rsa.DecryptOAEP(sha256.New(), nil, t.ek, encSeed, []byte("IDENTITY\x00"))
	if err != nil {
		return nil, errors.New("softtpm: activate: the seed is not encrypted to this EK")
	}
	id, err := tpm2b(credential)
	if err != nil {
		return nil, fmt.Errorf("softtpm: activate: credential: %w", err)
	}
	integrity, err := tpm2b(id)
	if err != nil {
		return nil, fmt.Errorf("softtpm: activate: credential: %w", err)
	}
	encIdentity := id[2+len(integrity):]
	name := t.akName.Buffer
	macKey := tpm2.KDFa(crypto.SHA256, seed, "INTEGRITY", nil, nil, 256)
	mac := hmac.New(sha256.New, macKey)
	mac.Write(encIdentity)
	mac.Write(name)
	if !hmac.Equal(mac.Sum(nil), integrity) {
		return nil, errors.New("softtpm: activate: integrity check failed (credential for another AK or EK)")
	}
	symKey := tpm2.KDFa(crypto.SHA256, seed, "STORAGE", name, nil, 128)
	c, err := aes.NewCipher(symKey)
	if err != nil {
		return nil, fmt.Errorf("softtpm: activate: %w", err)
	}
	cv := make([]byte, len(encIdentity))
	cipher.NewCFBDecrypter(c, make([]byte, aes.BlockSize)).XORKeyStream(cv, encIdentity)
	secret, err := tpm2b(cv)
	if err != nil {
		return nil, fmt.Errorf("softtpm: activate: credential value: %w", err)
	}
	return secret, nil
}

// tpm2b returns the contents of a TPM2B (2-byte big-endian size prefix).
func tpm2b(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, errors.New("short TPM2B")
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, errors.New("TPM2B size exceeds data")
	}
	return b[2 : 2+n], nil
}

// Extend extends a PCR of the SHA-256 bank without logging anything: a
// knob for tests of an event log that does not explain the PCRs.
func (t *TPM) Extend(pcr int, digest [32]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pcrs[pcr] = extend(t.pcrs[pcr], digest)
}

// Measure logs an event (digest SHA-256 of data) and extends its PCR.
func (t *TPM) Measure(pcr int, typ uint32, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.log.Add(pcr, typ, data)
	t.pcrs[pcr] = extend(t.pcrs[pcr], d)
}

// MeasureDigest logs an event with the given digest and extends its PCR.
func (t *TPM) MeasureDigest(pcr int, typ uint32, digest [32]byte, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.log.AddDigest(pcr, typ, digest, data)
	t.pcrs[pcr] = extend(t.pcrs[pcr], digest)
}

// MeasureFile appends an ima-ng entry for path with SHA-256 fileHash to
// the IMA list and extends PCR 10, as the kernel does.
func (t *TPM) MeasureFile(path string, fileHash [32]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.ima.Add(path, fileHash)
	t.pcrs[10] = extend(t.pcrs[10], d)
}

// MeasureIMA appends an arbitrary IMA entry (a violation, a legacy "ima"
// template) and extends its PCR.
func (t *TPM) MeasureIMA(e IMAEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ima.Entries = append(t.ima.Entries, e)
	t.pcrs[e.PCR] = extend(t.pcrs[e.PCR], e.ExtendDigest())
}

// EventLog returns a copy of the measured-boot log's events, for tests to
// alter and re-encode.
func (t *TPM) EventLog() *EventLog {
	t.mu.Lock()
	defer t.mu.Unlock()
	return &EventLog{Events: append([]Event(nil), t.log.Events...)}
}

// SetEventLog replaces the measured-boot log that Quote returns without
// touching the PCRs: a knob for simulating a tampered or forged log.
func (t *TPM) SetEventLog(l *EventLog) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.log = EventLog{Events: append([]Event(nil), l.Events...)}
}

// SetIMAList replaces the IMA list that Quote returns without touching
// PCR 10.
func (t *TPM) SetIMAList(l *IMAList) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ima = IMAList{Entries: append([]IMAEntry(nil), l.Entries...)}
}

// IMAList returns a copy of the IMA list.
func (t *TPM) IMAList() *IMAList {
	t.mu.Lock()
	defer t.mu.Unlock()
	return &IMAList{Entries: append([]IMAEntry(nil), t.ima.Entries...)}
}

// PCR returns the value of a PCR of the SHA-256 bank.
func (t *TPM) PCR(i int) [32]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pcrs[i]
}

// Reset is a platform reset: PCRs to zero, logs emptied.
func (t *TPM) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pcrs = [24][32]byte{}
	t.log = EventLog{}
	t.ima = IMAList{}
	t.resets++
}

// Quote quotes the SHA-256 bank PCRs pcrs with the AK and nonce as
// qualifying data, and returns Evidence with the PCR values, the event log
// and the IMA list (empty when nothing was measured into it).
func (t *TPM) Quote(nonce []byte, pcrs []int) (*api.Evidence, error) {
	sel := make([]byte, 3)
	for _, p := range pcrs {
		if p < 0 || p > 23 {
			return nil, fmt.Errorf("softtpm: quote: PCR %d out of range", p)
		}
		sel[p/8] |= 1 << (p % 8)
	}
	idx := append([]int(nil), pcrs...)
	sort.Ints(idx)
	t.mu.Lock()
	vals := t.pcrs
	logBytes := t.log.Bytes()
	var imaBytes []byte
	if len(t.ima.Entries) > 0 {
		imaBytes = t.ima.Bytes()
	}
	if len(t.log.Events) == 0 {
		logBytes = nil
	}
	t.mu.Unlock()
	h := sha256.New()
	ev := &api.Evidence{Nonce: append([]byte(nil), nonce...), EventLog: logBytes, IMALog: imaBytes, Reason: "periodic"}
	prev := -1
	for _, p := range idx {
		if p == prev {
			continue
		}
		prev = p
		h.Write(vals[p][:])
		ev.PCRs = append(ev.PCRs, api.PCRValue{Index: p, Digest: append([]byte(nil), vals[p][:]...)})
	}
	att := t.attest(tpm2.TPMSTAttestQuote, nonce, tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
		PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: sel}}},
		PCRDigest: tpm2.TPM2BDigest{Buffer: h.Sum(nil)},
	}))
	sig, err := t.sign(att)
	if err != nil {
		return nil, err
	}
	ev.Quote, ev.Signature = att, sig
	return ev, nil
}

func (t *TPM) makeEKCertificate() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), t.rand)
	if err != nil {
		return fmt.Errorf("softtpm: EK CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"softtpm"}, CommonName: "softtpm EK Root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(20 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(t.rand, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("softtpm: EK CA: %w", err)
	}
	if t.ekRoot, err = x509.ParseCertificate(caDER); err != nil {
		return fmt.Errorf("softtpm: EK CA: %w", err)
	}
	san, err := TPMSubjectAltName(Manufacturer, "softtpm", "id:00010000")
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(2),
		NotBefore:          now.Add(-time.Hour),
		NotAfter:           now.Add(20 * 365 * 24 * time.Hour),
		KeyUsage:           x509.KeyUsageKeyEncipherment,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{{2, 23, 133, 8, 1}},
		ExtraExtensions:    []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: san}},
	}
	if t.ekCert, err = x509.CreateCertificate(t.rand, tmpl, t.ekRoot, &t.ek.PublicKey, caKey); err != nil {
		return fmt.Errorf("softtpm: EK certificate: %w", err)
	}
	return nil
}

// TPMSubjectAltName encodes the subjectAltName extension value of a TPM EK
// certificate: a directoryName with the TCG attributes TPM manufacturer
// (2.23.133.2.1), model (2.23.133.2.2) and version (2.23.133.2.3).
func TPMSubjectAltName(manufacturer, model, version string) ([]byte, error) {
	rdn := pkix.RDNSequence{{
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 1}, Value: manufacturer},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 2}, Value: model},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 3}, Value: version},
	}}
	name, err := asn1.Marshal(rdn)
	if err != nil {
		return nil, fmt.Errorf("softtpm: TPM SAN: %w", err)
	}
	dn, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name})
	if err != nil {
		return nil, fmt.Errorf("softtpm: TPM SAN: %w", err)
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: dn})
}
