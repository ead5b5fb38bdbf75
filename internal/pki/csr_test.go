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
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
)

// newCSR returns a DER certificate request for key asking for CN=cn.
func newCSR(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	u, _ := url.Parse("urn:bulwark:device:dev_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: cn},
		DNSNames: []string{"evil.example.com"},
		URIs:     []*url.URL{u},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemCSR(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// withPublicKey returns the request der with its public key replaced by
// pub (so its signature no longer verifies), to build requests with keys
// too costly to generate in a test.
func withPublicKey(t testing.TB, der []byte, pub crypto.PublicKey) []byte {
	t.Helper()
	var csr struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.BitString
	}
	var tbs struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes asn1.RawValue
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(der, &csr); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(csr.TBS.FullBytes, &tbs); err != nil {
		t.Fatal(err)
	}
	tbs.PublicKey = asn1.RawValue{FullBytes: spki}
	b, err := asn1.Marshal(tbs)
	if err != nil {
		t.Fatal(err)
	}
	csr.TBS = asn1.RawValue{FullBytes: b}
	if b, err = asn1.Marshal(csr); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCSR(t *testing.T) {
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	huge := new(big.Int).Lsh(big.NewInt(1), 4607) // a 4608-bit "modulus"
	huge.SetBit(huge, 0, 1)

	sha1CSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{SignatureAlgorithm: x509.SHA1WithRSA}, rsa2048)
	if err != nil {
		t.Fatal(err)
	}

	good := newCSR(t, p256, "device-1")
	goodPEM := pemCSR(good)

	badSig := bytes.Clone(good)
	i := bytes.Index(badSig, []byte("device-1"))
	badSig[i+len("device-")] = '2' // change the signed subject

	padded := append(bytes.Clone(goodPEM), bytes.Repeat([]byte("\n"), MaxCSRBytes-len(goodPEM))...)

	tests := []struct {
		name    string
		in      []byte
		wantErr string // "" means success
	}{
		{"P-256 PEM", goodPEM, ""},
		{"P-256 DER", good, ""},
		{"PEM with white space", append(append([]byte("\r\n  "), goodPEM...), "\n\n"...), ""},
		{"PEM at size limit", padded, ""},
		{"legacy PEM type", pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: good}), ""},
		{"P-384", pemCSR(newCSR(t, p384, "x")), ""},
		{"Ed25519", pemCSR(newCSR(t, ed, "x")), ""},
		{"RSA 2048", pemCSR(newCSR(t, rsa2048, "x")), ""},

		{"empty", nil, "csr: request is empty"},
		{"oversized", append(padded, '\n'), "csr: request of 16385 bytes is larger than the 16384-byte limit"},
		{"oversized junk", bytes.Repeat([]byte{0x30}, 1<<20), "csr: request of 1048576 bytes is larger than the 16384-byte limit"},
		{"garbage after PEM", append(bytes.Clone(goodPEM), "junk"...), "csr: unexpected data after the PEM block"},
		{"second PEM block", append(bytes.Clone(goodPEM), goodPEM...), "csr: unexpected data after the PEM block"},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good}), `csr: PEM block has type "CERTIFICATE", want "CERTIFICATE REQUEST"`},
		{"PEM headers", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: good}), "csr: PEM block has headers"},
		{"malformed PEM", []byte("-----BEGIN CERTIFICATE REQUEST-----\nMII\n"), "csr: PEM block is malformed"},
		{"junk", []byte("hello, world"), "csr: not a well-formed PKCS#10 certificate request"},
		{"truncated DER", good[:len(good)/2], "csr: not a well-formed PKCS#10 certificate request"},
		{"trailing DER", append(bytes.Clone(good), 0), "csr: not a well-formed PKCS#10 certificate request"},
		{"PEM of junk", pemCSR([]byte("junk")), "csr: not a well-formed PKCS#10 certificate request"},
		{"bad signature", pemCSR(badSig), "csr: signature does not verify"},
		{"small RSA", pemCSR(newCSR(t, rsa1024, "x")), "csr: RSA key of 1024 bits is too small (minimum 2048)"},
		{"large RSA", pemCSR(withPublicKey(t, good, &rsa.PublicKey{N: huge, E: 65537})), "csr: RSA key of 4608 bits is too large (maximum 4096)"},
		{"P-521", pemCSR(newCSR(t, p521, "x")), "csr: ECDSA curve P-521 is not supported (use P-256 or P-384)"},
		{"SHA-1 signature", pemCSR(sha1CSR), "csr: signature algorithm SHA1-RSA is not allowed (use SHA-256 or stronger)"},
		{"P-224", pemCSR(newCSR(t, p224, "x")), "csr: ECDSA curve P-224 is not supported (use P-256 or P-384)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := ParseCSR(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := csr.CheckSignature(); err != nil {
					t.Errorf("accepted request does not verify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ParseCSR succeeded")
			}
			if !errors.Is(err, ErrBadCSR) {
				t.Errorf("error %q does not match ErrBadCSR", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.wantErr) {
				t.Errorf("error = %q, want prefix %q", msg, tt.wantErr)
			}
			if strings.Contains(msg, "\n") || strings.Count(msg, "csr:") != 1 {
				t.Errorf("error %q is not one sentence", msg)
			}
		})
	}
}

func FuzzParseCSR(f *testing.F) {
	// The committed corpus in testdata/fuzz/FuzzParseCSR holds a valid PEM
	// request, its DER, junk and truncated input.
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if csr != nil {
				t.Fatal("ParseCSR returned a request and an error")
			}
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("error %q does not match ErrBadCSR", err)
			}
			if !strings.HasPrefix(err.Error(), "csr: ") {
				t.Fatalf("error %q does not start with \"csr: \"", err)
			}
			return
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("ParseCSR accepted a request whose signature does not verify: %v", err)
		}
		if err := checkPublicKey(csr.PublicKey); err != nil {
			t.Fatalf("ParseCSR accepted a request with a bad key: %v", err)
		}
	})
}
