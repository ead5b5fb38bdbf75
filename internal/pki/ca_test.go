package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is a fixed time for tests; certificates are issued relative to it.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestCA(t testing.TB, cn string) *CA {
	t.Helper()
	ca, err := NewCA(cn, t0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issueTestDevice issues a device certificate for a new P-256 key.
func issueTestDevice(t testing.TB, ca *CA, id string, lifetime time.Duration, now time.Time) *x509.Certificate {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(newCSR(t, key, "ignored"))
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.IssueDevice(csr, id, lifetime, now)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestNewCA(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Bulwark Device CA")
	c := ca.Cert
	checks := []struct {
		name string
		ok   bool
	}{
		{"common name", c.Subject.CommonName == "Bulwark Device CA"},
		{"self-signed", c.CheckSignatureFrom(c) == nil},
		{"P-256 key", c.PublicKeyAlgorithm == x509.ECDSA && c.PublicKey.(*ecdsa.PublicKey).Curve == elliptic.P256()},
		{"CA", c.BasicConstraintsValid && c.IsCA},
		{"MaxPathLen 0", c.MaxPathLen == 0 && c.MaxPathLenZero},
		{"key usage", c.KeyUsage == x509.KeyUsageCertSign|x509.KeyUsageCRLSign},
		{"10 years", c.NotAfter.Equal(t0.AddDate(10, 0, 0))},
		{"backdated", c.NotBefore.Equal(t0.Add(-5 * time.Minute))},
		{"serial", c.SerialNumber.Sign() > 0 && c.SerialNumber.BitLen() <= 128 && c.SerialNumber.BitLen() > 64},
		{"PEM", bytes.Equal(ca.CertPEM, EncodeCertPEM(c.Raw))},
		{"pool", ca.Pool().Equal(ca.Pool()) && ca.Pool() != ca.Pool()},
	}
	for _, check := range checks {
		if !check.ok {
			t.Errorf("%s: wrong", check.name)
		}
	}
	if _, err := NewCA("", t0); err == nil {
		t.Error("NewCA with an empty name succeeded")
	}
}

func TestLoadCA(t *testing.T) {
	t.Parallel()
	k, otherKEK := mustKEK(t), mustKEK(t)
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	sealed, err := ca.SealKey(k)
	if err != nil {
		t.Fatal(err)
	}
	otherSealed, err := other.SealKey(k)
	if err != nil {
		t.Fatal(err)
	}
	leaf := issueTestDevice(t, ca, NewDeviceID(), time.Hour, t0)

	loaded, err := LoadCA(ca.CertPEM, sealed, k)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !bytes.Equal(loaded.CertPEM, ca.CertPEM) {
		t.Error("loaded CA has a different certificate")
	}
	// The loaded CA signs with the same key: its certificates verify
	// against the original, and the original's against it.
	if _, err := ca.VerifyDevice(issueTestDevice(t, loaded, NewDeviceID(), time.Hour, t0), t0); err != nil {
		t.Errorf("certificate from loaded CA: %v", err)
	}
	if _, err := loaded.VerifyDevice(leaf, t0); err != nil {
		t.Errorf("certificate from original CA: %v", err)
	}

	tests := []struct {
		name    string
		certPEM []byte
		sealed  []byte
		kek     KEK
		wantErr string
	}{
		{"wrong KEK", ca.CertPEM, sealed, otherKEK, "authentication failed"},
		{"tampered key", ca.CertPEM, append(bytes.Clone(sealed[:len(sealed)-1]), sealed[len(sealed)-1]^1), k, "authentication failed"},
		{"key of another CA", ca.CertPEM, otherSealed, k, "private key does not match the CA certificate"},
		{"not a CA certificate", EncodeCertPEM(leaf.Raw), sealed, k, "not a CA certificate"},
		{"bad PEM", []byte("junk"), sealed, k, "parse certificate"},
		{"no key", ca.CertPEM, nil, k, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(tt.certPEM, tt.sealed, tt.kek)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadCA error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestIssueDevice(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "ca")
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := GenerateKey()
	keys := []struct {
		name string
		key  crypto.Signer
	}{
		{"P-256", p256}, {"P-384", p384}, {"Ed25519", ed}, {"RSA 2048", rsa2048},
	}
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			csr, err := ParseCSR(pemCSR(newCSR(t, k.key, "asked-for-name")))
			if err != nil {
				t.Fatal(err)
			}
			id := NewDeviceID()
			now := t0.Add(24 * time.Hour)
			cert, der, err := ca.IssueDevice(csr, id, 90*24*time.Hour, now)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cert.Raw, der) {
				t.Error("returned DER is not the returned certificate")
			}
			checks := []struct {
				name string
				ok   bool
			}{
				{"CN", cert.Subject.CommonName == id && len(cert.Subject.Names) == 1},
				{"URI SAN", len(cert.URIs) == 1 && cert.URIs[0].String() == "urn:bulwark:device:"+id},
				{"requested SANs ignored", len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) == 0},
				{"EKU", len(cert.ExtKeyUsage) == 1 && cert.ExtKeyUsage[0] == x509.ExtKeyUsageClientAuth && len(cert.UnknownExtKeyUsage) == 0},
				{"key usage", cert.KeyUsage == x509.KeyUsageDigitalSignature},
				{"not a CA", cert.BasicConstraintsValid && !cert.IsCA},
				{"NotBefore", cert.NotBefore.Equal(now.Add(-5 * time.Minute))},
				{"NotAfter", cert.NotAfter.Equal(now.Add(90 * 24 * time.Hour))},
				{"serial", cert.SerialNumber.Sign() > 0 && cert.SerialNumber.BitLen() <= 128 && cert.SerialNumber.Cmp(ca.Cert.SerialNumber) != 0},
				{"key", cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.key.Public())},
				{"issuer", bytes.Equal(cert.RawIssuer, ca.Cert.RawSubject) && bytes.Equal(cert.AuthorityKeyId, ca.Cert.SubjectKeyId)},
			}
			for _, c := range checks {
				if !c.ok {
					t.Errorf("%s: wrong", c.name)
				}
			}
			got, err := ca.VerifyDevice(cert, now)
			if err != nil {
				t.Fatal(err)
			}
			if got != id {
				t.Errorf("VerifyDevice = %q, want %q", got, id)
			}
		})
	}
}

func TestIssueDeviceRejects(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "ca")
	key, _ := GenerateKey()
	csr, err := ParseCSR(newCSR(t, key, "x"))
	if err != nil {
		t.Fatal(err)
	}
	forged := *csr
	forged.PublicKey = ca.Cert.PublicKey // someone else's key, signature from key
	tests := []struct {
		name     string
		csr      *x509.CertificateRequest
		id       string
		lifetime time.Duration
		now      time.Time
		wantErr  string
	}{
		{"nil request", nil, NewDeviceID(), time.Hour, t0, "no certificate request"},
		{"bad device ID", csr, "dev_../../x", time.Hour, t0, "invalid device ID"},
		{"empty device ID", csr, "", time.Hour, t0, "invalid device ID"},
		{"zero lifetime", csr, NewDeviceID(), 0, t0, "not positive"},
		{"CA expired", csr, NewDeviceID(), time.Hour, t0.AddDate(11, 0, 0), "CA certificate is not valid"},
		{"CA not yet valid", csr, NewDeviceID(), time.Hour, t0.Add(-time.Hour), "CA certificate is not valid"},
		{"unverified request", &forged, NewDeviceID(), time.Hour, t0, "csr: signature does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ca.IssueDevice(tt.csr, tt.id, tt.lifetime, tt.now)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}

	// A lifetime past the CA's expiry is cut short to it.
	cert, _, err := ca.IssueDevice(csr, NewDeviceID(), 20*365*24*time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestVerifyDeviceRejects(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Bulwark Device CA")
	foreign := newTestCA(t, "Some Other CA")
	sameName := newTestCA(t, "Bulwark Device CA") // same subject, other key

	id := NewDeviceID()
	good := issueTestDevice(t, ca, id, time.Hour, t0)
	serverKey, _ := GenerateKey()
	server, _, err := ca.IssueServer(serverKey.Public(), []string{"bulwark.example.com"}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Certificates our CA signed that are not device certificates.
	custom := func(mod func(*x509.Certificate)) *x509.Certificate {
		t.Helper()
		u, _ := url.Parse("urn:bulwark:device:" + id)
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: id},
			URIs:        []*url.URL{u},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		mod(tmpl)
		cert, _, err := ca.issue(tmpl, serverKey.Public(), time.Hour, t0)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	other := NewDeviceID()

	tests := []struct {
		name    string
		cert    *x509.Certificate
		now     time.Time
		want    error
		wantMsg string
	}{
		{"foreign CA", issueTestDevice(t, foreign, id, time.Hour, t0), t0, ErrForeignCert, "not issued by this CA"},
		{"foreign CA with our name", issueTestDevice(t, sameName, id, time.Hour, t0), t0, ErrForeignCert, "not issued by this CA"},
		{"expired foreign", issueTestDevice(t, sameName, id, time.Hour, t0), t0.Add(2 * time.Hour), ErrForeignCert, "not issued by this CA"},
		{"expired", good, t0.Add(time.Hour + time.Second), ErrCertExpired, "certificate has expired"},
		{"not yet valid", good, t0.Add(-time.Hour), ErrCertInvalid, "not valid yet"},
		{"server certificate", server, t0, ErrCertInvalid, "not valid for client authentication"},
		{"the CA itself", ca.Cert, t0, ErrCertInvalid, "CA certificate is not a device certificate"},
		{"nil", nil, t0, ErrCertInvalid, "no certificate"},
		{"CN mismatch", custom(func(c *x509.Certificate) { c.Subject.CommonName = other }), t0, ErrCertInvalid, "common name does not match"},
		{"no URI", custom(func(c *x509.Certificate) { c.URIs = nil }), t0, ErrCertInvalid, "exactly one URI SAN"},
		{"two URIs", custom(func(c *x509.Certificate) { c.URIs = append(c.URIs, c.URIs[0]) }), t0, ErrCertInvalid, "exactly one URI SAN"},
		{"wrong URN", custom(func(c *x509.Certificate) { c.URIs[0], _ = url.Parse("urn:bulwark:user:" + id) }), t0, ErrCertInvalid, "not a Bulwark device URN"},
		{"bad ID", custom(func(c *x509.Certificate) {
			c.Subject.CommonName = "dev_x"
			c.URIs[0], _ = url.Parse("urn:bulwark:device:dev_x")
		}), t0, ErrCertInvalid, "not a Bulwark device URN"},
		{"no EKU", custom(func(c *x509.Certificate) { c.ExtKeyUsage = nil }), t0, ErrCertInvalid, "not valid for client authentication"}, // x509 alone treats no EKU as any
		{"extra EKU", custom(func(c *x509.Certificate) { c.ExtKeyUsage = append(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) }), t0, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ca.VerifyDevice(tt.cert, tt.now)
			if tt.want == nil {
				if err != nil || got != id {
					t.Errorf("VerifyDevice = %q, %v; want %q", got, err, id)
				}
				return
			}
			if err == nil {
				t.Fatalf("VerifyDevice succeeded with %q", got)
			}
			if got != "" {
				t.Errorf("VerifyDevice returned ID %q with an error", got)
			}
			for _, sentinel := range []error{ErrForeignCert, ErrCertExpired, ErrCertInvalid} {
				if is := errors.Is(err, sentinel); is != (sentinel == tt.want) {
					t.Errorf("errors.Is(%q, %q) = %v", err, sentinel, is)
				}
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "pki: device certificate rejected: ") || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error = %q, want one containing %q", msg, tt.wantMsg)
			}
			if strings.Contains(msg, "x509") || strings.Contains(msg, "Bulwark Device CA") {
				t.Errorf("error %q leaks verification detail", msg)
			}
		})
	}
}

func TestIssueServer(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "ca")
	key, _ := GenerateKey()
	hosts := []string{"bulwark.example.com", "*.devices.example.com", "10.0.0.1", "::1", "localhost"}
	cert, _, err := ca.IssueServer(key.Public(), hosts, 30*24*time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != hosts[0] {
		t.Errorf("CN = %q, want %q", cert.Subject.CommonName, hosts[0])
	}
	if len(cert.DNSNames) != 3 || len(cert.IPAddresses) != 2 {
		t.Errorf("DNSNames = %q, IPAddresses = %v", cert.DNSNames, cert.IPAddresses)
	}
	if cert.IsCA || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Error("not a server-only end-entity certificate")
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"bulwark.example.com", true},
		{"BULWARK.example.com", true},
		{"a.devices.example.com", true},
		{"10.0.0.1", true},
		{"::1", true},
		{"localhost", true},
		{"example.com", false},
		{"a.b.devices.example.com", false},
		{"10.0.0.2", false},
		{"127.0.0.1", false},
	}
	for _, tt := range tests {
		_, err := cert.Verify(x509.VerifyOptions{
			DNSName:     tt.name,
			Roots:       ca.Pool(),
			CurrentTime: t0,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if (err == nil) != tt.ok {
			t.Errorf("Verify(%q) error = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate verifies for client authentication")
	}
	if !cert.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses[1] = %v, want ::1", cert.IPAddresses[1])
	}

	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name    string
		pub     crypto.PublicKey
		hosts   []string
		wantErr string
	}{
		{"no hosts", key.Public(), nil, "no hosts"},
		{"empty host", key.Public(), []string{""}, "neither an IP address nor a valid DNS name"},
		{"URL", key.Public(), []string{"https://example.com"}, "neither"},
		{"space", key.Public(), []string{"a b"}, "neither"},
		{"trailing dot", key.Public(), []string{"example.com."}, "neither"},
		{"IP zone", key.Public(), []string{"fe80::1%eth0"}, "has a zone"},
		{"small RSA", rsa1024.Public(), []string{"example.com"}, "RSA key of 1024 bits is too small"},
		{"no key", nil, []string{"example.com"}, "not supported"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ca.IssueServer(tt.pub, tt.hosts, time.Hour, t0)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDeviceID(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for range 1000 {
		id := NewDeviceID()
		if len(id) != 30 || !strings.HasPrefix(id, "dev_") || !ValidDeviceID(id) {
			t.Fatalf("NewDeviceID() = %q, not valid", id)
		}
		if seen[id] {
			t.Fatalf("NewDeviceID() repeated %q", id)
		}
		seen[id] = true
	}
	tests := []struct {
		in   string
		want bool
	}{
		{"dev_aaaaaaaaaaaaaaaaaaaaaaaaaa", true},
		{"dev_7777777777777777777777777q", true},
		{"dev_77777777777777777777777777", false}, // nonzero padding bits
		{"dev_aaaaaaaaaaaaaaaaaaaaaaaaab", false},
		{"dev_AAAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{"dev_aaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"dev_aaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"dev_aaaaaaaaaaaaaaaaaaaaaaaa1a", false},
		{"dev_aaaaaaaaaaaaaaaaaaaaaaaa=a", false},
		{"usr_aaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidDeviceID(tt.in); got != tt.want {
			t.Errorf("ValidDeviceID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestKeyAndCertPEM(t *testing.T) {
	t.Parallel()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("key PEM starts %q", keyPEM[:30])
	}
	got, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(got) {
		t.Error("parsed key differs")
	}
	sec1, _ := x509.MarshalECPrivateKey(key)
	if got, err := ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})); err != nil || !key.Equal(got) {
		t.Errorf("SEC 1 key: %v", err)
	}

	ca := newTestCA(t, "ca")
	cert, err := ParseCertPEM(ca.CertPEM)
	if err != nil || !cert.Equal(ca.Cert) {
		t.Errorf("ParseCertPEM: %v", err)
	}

	bad := []struct {
		name    string
		parse   func([]byte) error
		in      []byte
		wantErr string
	}{
		{"key: empty", parseKey, nil, "does not start with a PEM block"},
		{"key: certificate", parseKey, ca.CertPEM, `type "CERTIFICATE"`},
		{"key: trailing data", parseKey, append(bytes.Clone(keyPEM), "x"...), "unexpected data after the PEM block"},
		{"key: leading data", parseKey, append([]byte("x\n"), keyPEM...), "does not start with a PEM block"},
		{"key: bad DER", parseKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), "pki: parse private key"},
		{"cert: key", parseCert, keyPEM, `type "PRIVATE KEY"`},
		{"cert: chain", parseCert, append(bytes.Clone(ca.CertPEM), ca.CertPEM...), "unexpected data after the PEM block"},
		{"cert: bad DER", parseCert, EncodeCertPEM([]byte("junk")), "pki: parse certificate"},
		{"cert: truncated", parseCert, ca.CertPEM[:len(ca.CertPEM)/2], "malformed"},
	}
	for _, tt := range bad {
		if err := tt.parse(tt.in); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func parseKey(b []byte) error  { _, err := ParsePrivateKeyPEM(b); return err }
func parseCert(b []byte) error { _, err := ParseCertPEM(b); return err }

func TestCAConcurrent(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "ca")
	key, _ := GenerateKey()
	req := newCSR(t, key, "x")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			csr, err := ParseCSR(req)
			if err != nil {
				t.Error(err)
				return
			}
			id := NewDeviceID()
			cert, _, err := ca.IssueDevice(csr, id, time.Hour, t0)
			if err != nil {
				t.Error(err)
				return
			}
			if got, err := ca.VerifyDevice(cert, t0); err != nil || got != id {
				t.Errorf("VerifyDevice = %q, %v", got, err)
			}
			ca.Pool().AddCert(cert) // must not affect the CA
		})
	}
	wg.Wait()
	if _, err := ca.VerifyDevice(ca.Cert, t0); !errors.Is(err, ErrCertInvalid) {
		t.Errorf("VerifyDevice(CA) = %v", err)
	}
}
