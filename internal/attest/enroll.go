package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/go-attestation/attest"
	"github.com/google/go-tpm/legacy/tpm2"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Enrollment is a TPM enrolment whose AK and device key VerifyEnrollment
// has checked. The AK is not yet proven to share a TPM with the EK: that
// takes the credential activation of Challenge.
type Enrollment struct {
	// EKPublic is the endorsement key (*rsa.PublicKey or *ecdsa.PublicKey).
	EKPublic crypto.PublicKey
	// EKHash is EKHash of the EK, for pre-registration lists.
	EKHash string
	// EKCertificate is the parsed EK certificate, nil when the TPM sent
	// none.
	EKCertificate *x509.Certificate
	// EKCertificateVerified is true when the EK certificate chains to the
	// roots given to VerifyEnrollment. Without roots, or without a
	// certificate, it is false and the EK is only as trusted as a
	// pre-registered EKHash makes it.
	EKCertificateVerified bool
	// TPMManufacturer, TPMModel and TPMVersion come from the EK
	// certificate's TPM subjectAltName (such as "id:49465800" for
	// Infineon); empty without a certificate.
	TPMManufacturer, TPMModel, TPMVersion string
	// AKPublic is the AK's TPMT_PUBLIC: store it and pass it to Verify.
	AKPublic []byte

	ak attest.AttestationParameters
}

// Errors of VerifyEnrollment, wrapped with detail.
var (
	ErrEKCertificate = errors.New("attest: EK certificate rejected")
	ErrAK            = errors.New("attest: attestation key rejected")
	ErrDeviceKey     = errors.New("attest: device key certification rejected")
)

// EKHash returns the hex SHA-256 of the PKIX DER encoding of ekPub, the
// identifier of a TPM in zero-touch pre-registration lists. It returns ""
// for a key that does not marshal.
func EKHash(ekPub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(ekPub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// VerifyEnrollment checks the TPM part of an enrolment request:
//
//   - the EK public key parses, and is RSA of at least 2048 bits or ECC
//     P-256 or larger;
//   - the EK certificate, when present, is for that key; when roots is not
//     nil it must chain to roots (TPM EK certificates' critical TPM
//     subjectAltName is parsed here, so that x509 verification accepts
//     it);
//   - the AK is a restricted signing key created by a TPM (fixedTPM,
//     fixedParent, sensitiveDataOrigin), its creation attested and signed
//     by itself (go-attestation's CheckAKParameters);
//   - the device key is certified by the AK (TPM2_Certify), is csrKey,
//     and was created inside the TPM and cannot leave it (fixedTPM,
//     fixedParent, sensitiveDataOrigin).
//
// The caller must then prove that the AK lives in the TPM of the EK with
// Challenge.
func VerifyEnrollment(e *api.TPMEnrollment, csrKey crypto.PublicKey, roots *x509.CertPool) (*Enrollment, error) {
	if e == nil {
		return nil, errors.New("attest: no TPM enrolment")
	}
	if len(e.EKPublic) > api.MaxTPMStructure || len(e.EKCertificate) > 4*api.MaxTPMStructure ||
		len(e.AK.Public) > api.MaxTPMStructure || len(e.AK.CreateData) > api.MaxTPMStructure ||
		len(e.AK.CreateAttestation) > api.MaxTPMStructure || len(e.AK.CreateSignature) > api.MaxTPMStructure ||
		len(e.DeviceKey.Public) > api.MaxTPMStructure || len(e.DeviceKey.Attestation) > api.MaxTPMStructure ||
		len(e.DeviceKey.Signature) > api.MaxTPMStructure {
		return nil, errors.New("attest: TPM enrolment structure too large")
	}
	ek, err := x509.ParsePKIXPublicKey(e.EKPublic)
	if err != nil {
		return nil, fmt.Errorf("attest: EK public key: %w", err)
	}
	switch k := ek.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("attest: EK is RSA-%d; at least 2048 bits required", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return nil, fmt.Errorf("attest: EK curve %s is too small", k.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("attest: EK type %T not supported", ek)
	}
	out := &Enrollment{EKPublic: ek, EKHash: EKHash(ek)}

	if len(e.EKCertificate) > 0 {
		cert, tpmID, err := ParseEKCertificate(e.EKCertificate)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEKCertificate, err)
		}
		certKey, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
		if err != nil || !bytes.Equal(certKey, e.EKPublic) {
			// Compare keys, not encodings, in case of a non-canonical DER.
			if k, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(ek) {
				return nil, fmt.Errorf("%w: it certifies another key than the EK", ErrEKCertificate)
			}
		}
		out.EKCertificate = cert
		out.TPMManufacturer, out.TPMModel, out.TPMVersion = tpmID.Manufacturer, tpmID.Model, tpmID.Version
		if roots != nil {
			_, err := cert.Verify(x509.VerifyOptions{
				Roots:     roots,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
			})
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrEKCertificate, err)
			}
			out.EKCertificateVerified = true
		}
	}

	ap := attest.ActivationParameters{
		EK: ek,
		AK: attest.AttestationParameters{
			Public:            e.AK.Public,
			CreateData:        e.AK.CreateData,
			CreateAttestation: e.AK.CreateAttestation,
			CreateSignature:   e.AK.CreateSignature,
		},
	}
	if err := ap.CheckAKParameters(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAK, err)
	}
	akPub, err := attest.ParseAKPublic(e.AK.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAK, err)
	}
	out.AKPublic = append([]byte(nil), e.AK.Public...)
	out.ak = ap.AK

	if err := verifyDeviceKey(&e.DeviceKey, akPub, csrKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDeviceKey, err)
	}
	return out, nil
}

func verifyDeviceKey(c *api.CertifyParameters, ak *attest.AKPublic, csrKey crypto.PublicKey) error {
	cp := attest.CertificationParameters{
		Public:            c.Public,
		CreateAttestation: c.Attestation,
		CreateSignature:   c.Signature,
	}
	if err := cp.Verify(attest.VerifyOpts{Public: ak.Public, Hash: ak.Hash}); err != nil {
		return err
	}
	pub, err := tpm2.DecodePublic(c.Public)
	if err != nil {
		return fmt.Errorf("certified public area: %w", err)
	}
	const need = tpm2.FlagFixedTPM | tpm2.FlagFixedParent | tpm2.FlagSensitiveDataOrigin
	if pub.Attributes&need != need {
		return fmt.Errorf("certified key attributes %#x lack fixedTPM|fixedParent|sensitiveDataOrigin", uint32(pub.Attributes))
	}
	key, err := pub.Key()
	if err != nil {
		return fmt.Errorf("certified public key: %w", err)
	}
	k, ok := key.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || csrKey == nil || !k.Equal(csrKey) {
		return errors.New("the certified key is not the CSR's key")
	}
	return nil
}

// Challenge makes a credential activation challenge (TPM2_MakeCredential):
// a fresh 32-byte secret that only the TPM holding both the EK and the AK
// can recover with TPM2_ActivateCredential. credential and encSecret are
// go-attestation's EncryptedCredential.Credential and .Secret: a
// TPM2B_ID_OBJECT and a TPM2B_ENCRYPTED_SECRET, each with its 2-byte size
// prefix (go-attestation's AK.ActivateCredential strips those prefixes
// before calling the TPM). Compare the answer with subtle.ConstantTimeCompare.
func (e *Enrollment) Challenge() (secret, credential, encSecret []byte, err error) {
	ap := attest.ActivationParameters{EK: e.EKPublic, AK: e.ak}
	secret, ec, err := ap.Generate()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("attest: activation challenge: %w", err)
	}
	return secret, ec.Credential, ec.Secret, nil
}

// TPMIdentity is the TPM's identity from its EK certificate's
// subjectAltName.
type TPMIdentity struct {
	Manufacturer string // 2.23.133.2.1, such as "id:49465800"
	Model        string // 2.23.133.2.2
	Version      string // 2.23.133.2.3
}

var (
	oidSAN             = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidTPMManufacturer = asn1.ObjectIdentifier{2, 23, 133, 2, 1}
	oidTPMModel        = asn1.ObjectIdentifier{2, 23, 133, 2, 2}
	oidTPMVersion      = asn1.ObjectIdentifier{2, 23, 133, 2, 3}
)

// ParseEKCertificate parses a TPM EK certificate (DER). TPM EK
// certificates have an empty subject and a critical subjectAltName holding
// a directoryName with the TPM manufacturer, model and version, which Go's
// x509 leaves unhandled (and Verify then refuses); ParseEKCertificate
// parses that subjectAltName and removes it from
// UnhandledCriticalExtensions so that the certificate verifies.
func ParseEKCertificate(der []byte) (*x509.Certificate, TPMIdentity, error) {
	var id TPMIdentity
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, id, err
	}
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		if id, err = parseTPMSAN(ext.Value); err != nil {
			return nil, id, fmt.Errorf("TPM subjectAltName: %w", err)
		}
	}
	kept := cert.UnhandledCriticalExtensions[:0]
	for _, oid := range cert.UnhandledCriticalExtensions {
		if oid.Equal(oidSAN) && id.Manufacturer != "" {
			continue
		}
		kept = append(kept, oid)
	}
	cert.UnhandledCriticalExtensions = kept
	return cert, id, nil
}

func parseTPMSAN(b []byte) (TPMIdentity, error) {
	var id TPMIdentity
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(b, &seq)
	if err != nil || len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence {
		return id, errors.New("not a GeneralNames sequence")
	}
	names := seq.Bytes
	for len(names) > 0 {
		var gn asn1.RawValue
		if names, err = asn1.Unmarshal(names, &gn); err != nil {
			return id, err
		}
		if gn.Class != asn1.ClassContextSpecific || gn.Tag != 4 {
			continue
		}
		// directoryName is [4] EXPLICIT Name.
		var dn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(gn.Bytes, &dn); err != nil || len(rest) != 0 {
			return id, errors.New("malformed directoryName")
		}
		for _, set := range dn {
			for _, atv := range set {
				v, _ := atv.Value.(string)
				switch {
				case atv.Type.Equal(oidTPMManufacturer):
					id.Manufacturer = v
				case atv.Type.Equal(oidTPMModel):
					id.Model = v
				case atv.Type.Equal(oidTPMVersion):
					id.Version = v
				}
			}
		}
	}
	return id, nil
}
