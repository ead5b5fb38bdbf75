package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// deviceURNPrefix precedes the device ID in a device certificate's URI SAN.
const deviceURNPrefix = "bulwark:device:" // after the "urn:" scheme

// deviceURI returns the URI SAN that a device certificate carries,
// urn:bulwark:device:<deviceID>.
func deviceURI(deviceID string) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: deviceURNPrefix + deviceID}
}

// IssueDevice issues a client certificate for the device deviceID to the
// public key of csr, which should come from ParseCSR; IssueDevice checks
// the key type and signature again. Only the key is taken from the
// request: the subject is CN=deviceID, the only SAN is the URI
// urn:bulwark:device:<deviceID>, and the certificate is good for TLS
// client authentication only.
//
// The certificate is valid from now less five minutes (clock skew) until
// now+lifetime, cut short to the CA's own expiry. It returns the parsed
// certificate and its DER encoding.
func (ca *CA) IssueDevice(csr *x509.CertificateRequest, deviceID string, lifetime time.Duration, now time.Time) (*x509.Certificate, []byte, error) {
	if csr == nil {
		return nil, nil, errors.New("pki: issue device certificate: no certificate request")
	}
	if !ValidDeviceID(deviceID) {
		return nil, nil, fmt.Errorf("pki: issue device certificate: invalid device ID %.64q", deviceID)
	}
	if err := checkCSR(csr); err != nil {
		return nil, nil, fmt.Errorf("pki: issue device certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: deviceID},
		URIs:        []*url.URL{deviceURI(deviceID)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cert, der, err := ca.issue(tmpl, csr.PublicKey, lifetime, now)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue device certificate: %w", err)
	}
	return cert, der, nil
}

// IssueServer issues a TLS server certificate for pub, naming hosts: each
// host is an IP address (IP SAN) or a DNS name, optionally a wildcard such
// as *.example.com (DNS SAN). The common name is hosts[0]. Validity is as
// for IssueDevice.
func (ca *CA) IssueServer(pub crypto.PublicKey, hosts []string, lifetime time.Duration, now time.Time) (*x509.Certificate, []byte, error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("pki: issue server certificate: no hosts")
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, nil, fmt.Errorf("pki: issue server certificate: %s", strings.TrimPrefix(err.Error(), "csr: "))
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			if ip.Zone() != "" {
				return nil, nil, fmt.Errorf("pki: issue server certificate: IP address %q has a zone", h)
			}
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
			continue
		}
		if !validDNSName(h) {
			return nil, nil, fmt.Errorf("pki: issue server certificate: %.64q is neither an IP address nor a valid DNS name", h)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	cert, der, err := ca.issue(tmpl, pub, lifetime, now)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue server certificate: %w", err)
	}
	return cert, der, nil
}

// issue fills in the fields common to end-entity certificates and signs.
func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, lifetime time.Duration, now time.Time) (*x509.Certificate, []byte, error) {
	if lifetime <= 0 {
		return nil, nil, fmt.Errorf("lifetime %v is not positive", lifetime)
	}
	if now.Before(ca.Cert.NotBefore) || now.After(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("CA certificate is not valid at %s (valid %s to %s)",
			now.UTC().Format(time.RFC3339), ca.Cert.NotBefore.UTC().Format(time.RFC3339), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	if tmpl.NotBefore.Before(ca.Cert.NotBefore) {
		tmpl.NotBefore = ca.Cert.NotBefore
	}
	tmpl.NotAfter = now.Add(lifetime)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, der, nil
}

// validDNSName reports whether s is a plausible DNS name for a SAN: LDH
// labels (underscores allowed), at most 253 bytes, optionally with a
// leading "*." wildcard label, no trailing dot.
func validDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Errors from VerifyDevice. Every error VerifyDevice returns matches
// exactly one of them with errors.Is; its text is safe to show to the
// client and, where there is one, the x509 error behind it can be reached
// with errors.As for logging.
var (
	// ErrForeignCert means the certificate was not issued by this CA.
	ErrForeignCert = errors.New("certificate was not issued by this CA")
	// ErrCertExpired means the certificate was issued by this CA but has
	// expired.
	ErrCertExpired = errors.New("certificate has expired")
	// ErrCertInvalid is any other reason a certificate is not a valid
	// device certificate of this CA.
	ErrCertInvalid = errors.New("certificate is not a valid device certificate")
)

// verifyError is a client-safe message, the sentinel it matches, and the
// underlying cause (which may hold detail not meant for the client).
type verifyError struct {
	msg   string
	kind  error
	cause error
}

func (e *verifyError) Error() string { return e.msg }

func (e *verifyError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func rejectCert(kind, cause error, msg string) error {
	return &verifyError{msg: "pki: device certificate rejected: " + msg, kind: kind, cause: cause}
}

// VerifyDevice checks that cert is a device certificate issued by this CA,
// valid at now, whose extended key usages include TLS client
// authentication, and whose URI SAN and common name name the same valid
// device ID, which it returns. Errors
// match ErrForeignCert, ErrCertExpired or ErrCertInvalid.
//
// VerifyDevice does not consult revocation: the caller checks the returned
// device ID against its store.
func (ca *CA) VerifyDevice(cert *x509.Certificate, now time.Time) (deviceID string, err error) {
	if cert == nil {
		return "", rejectCert(ErrCertInvalid, nil, "no certificate")
	}
	if !bytes.Equal(cert.RawIssuer, ca.Cert.RawSubject) {
		return "", rejectCert(ErrForeignCert, nil, "not issued by this CA")
	}
	_, err = cert.Verify(x509.VerifyOptions{
		Roots:       ca.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "", ca.classifyVerifyError(cert, now, err)
	}
	if cert.IsCA {
		return "", rejectCert(ErrCertInvalid, nil, "a CA certificate is not a device certificate")
	}
	// x509 accepts a certificate without extended key usages for any
	// usage; a device certificate must say client authentication.
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "", rejectCert(ErrCertInvalid, nil, "certificate is not valid for client authentication")
	}
	if len(cert.URIs) != 1 {
		return "", rejectCert(ErrCertInvalid, nil, "want exactly one URI SAN naming the device")
	}
	u := cert.URIs[0]
	id, ok := strings.CutPrefix(u.Opaque, deviceURNPrefix)
	if u.Scheme != "urn" || !ok || !ValidDeviceID(id) {
		return "", rejectCert(ErrCertInvalid, nil, "URI SAN is not a Bulwark device URN")
	}
	if cert.Subject.CommonName != id {
		return "", rejectCert(ErrCertInvalid, nil, "common name does not match the device URN")
	}
	return id, nil
}

// classifyVerifyError turns an x509 verification failure into a
// client-safe error.
func (ca *CA) classifyVerifyError(cert *x509.Certificate, now time.Time, err error) error {
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return rejectCert(ErrForeignCert, err, "not issued by this CA")
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.Expired:
			// x509 checks the leaf's dates before its issuer, so make sure
			// the certificate is ours before saying anything about it.
			if cert.CheckSignatureFrom(ca.Cert) != nil {
				return rejectCert(ErrForeignCert, err, "not issued by this CA")
			}
			switch {
			case now.After(cert.NotAfter):
				return rejectCert(ErrCertExpired, err, "certificate has expired")
			case now.Before(cert.NotBefore):
				return rejectCert(ErrCertInvalid, err, "certificate is not valid yet")
			default:
				return rejectCert(ErrCertInvalid, err, "CA certificate is not valid at this time")
			}
		case x509.IncompatibleUsage:
			return rejectCert(ErrCertInvalid, err, "certificate is not valid for client authentication")
		}
	}
	return rejectCert(ErrCertInvalid, err, "certificate does not verify")
}
