package tpm_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/tpm"
	"github.com/bulwark-iot/bulwark/internal/tpm/tpmsim"
)

// openSim opens a fresh simulator for one test and closes it at the end.
func openSim(t *testing.T) *tpm.TPM {
	t.Helper()
	tp, err := tpmsim.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func newKey(t *testing.T, tp *tpm.TPM) *tpm.Key {
	t.Helper()
	k, err := tp.CreateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func signVerify(t *testing.T, k *tpm.Key, msg string) {
	t.Helper()
	sum := sha256.Sum256([]byte(msg))
	sig, err := k.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key = %T", k.Public())
	}
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		t.Fatal("TPM signature does not verify")
	}
	sum[0] ^= 1
	if ecdsa.VerifyASN1(pub, sum[:], sig) {
		t.Fatal("signature verifies for another digest")
	}
}

func TestSignVerify(t *testing.T) {
	tp := openSim(t)
	k := newKey(t, tp)
	signVerify(t, k, "hello")
	// SHA-384 (TLS 1.2 peers may ask for it) works too; bad sizes are refused.
	sum := make([]byte, 48)
	if sig, err := k.Sign(nil, sum, crypto.SHA384); err != nil || !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), sum, sig) {
		t.Errorf("SHA-384 sign: %v", err)
	}
	if _, err := k.Sign(nil, make([]byte, 20), crypto.SHA256); err == nil {
		t.Error("short digest accepted")
	}
	if _, err := k.Sign(nil, make([]byte, 64), crypto.SHA512); err == nil {
		t.Error("SHA-512 accepted")
	}
}

func TestPersistReload(t *testing.T) {
	tp := openSim(t)
	k := newKey(t, tp)
	pub, priv := k.PublicBlob(), k.PrivateBlob()
	if len(priv) == 0 || len(pub) == 0 {
		t.Fatal("empty blobs")
	}
	want := k.Public().(*ecdsa.PublicKey)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Sign(nil, make([]byte, 32), crypto.SHA256); err == nil {
		t.Error("closed key signed")
	}
	k2, err := tp.LoadDeviceKey(pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	if !k2.Public().(*ecdsa.PublicKey).Equal(want) {
		t.Error("reloaded key has another public key")
	}
	if !bytes.Equal(k2.PublicBlob(), pub) || !bytes.Equal(k2.PrivateBlob(), priv) {
		t.Error("reloaded blobs differ")
	}
	signVerify(t, k2, "again")

	// Corrupt blobs are refused by the TPM (integrity check of the wrapping).
	bad := append([]byte(nil), priv...)
	bad[len(bad)-1] ^= 1
	if k3, err := tp.LoadDeviceKey(pub, bad); err == nil {
		k3.Close()
		t.Error("tampered private blob loaded")
	}
	if _, err := tp.LoadDeviceKey([]byte("junk"), priv); err == nil {
		t.Error("junk public blob loaded")
	}
}

func TestAttributes(t *testing.T) {
	tp := openSim(t)
	k := newKey(t, tp)
	area, err := k.PublicArea()
	if err != nil {
		t.Fatal(err)
	}
	a := area.ObjectAttributes
	if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.UserWithAuth || !a.SignEncrypt {
		t.Errorf("attributes = %+v", a)
	}
	if a.Decrypt || a.Restricted {
		t.Errorf("attributes = %+v: decrypt/restricted set", a)
	}
	ecc, err := area.Parameters.ECCDetail()
	if err != nil || ecc.CurveID != 0x0003 { // TPM_ECC_NIST_P256
		t.Errorf("curve = %+v, %v", ecc, err)
	}
}

func TestCSR(t *testing.T) {
	tp := openSim(t)
	k := newKey(t, tp)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
	if !csr.PublicKey.(*ecdsa.PublicKey).Equal(k.Public()) {
		t.Error("CSR is for another key")
	}
}

func TestTLSClientCertificate(t *testing.T) {
	tp := openSim(t)
	k := newKey(t, tp)

	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, pub any, eku x509.ExtKeyUsage, ip bool) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku}}
		if ip {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srvCfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{issue("server", &srvKey.PublicKey, x509.ExtKeyUsageServerAuth, true)}, PrivateKey: srvKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- "handshake: " + err.Error()
			return
		}
		st := tc.ConnectionState()
		got <- st.PeerCertificates[0].Subject.CommonName
		io.WriteString(c, "ok")
	}()

	clientCert := tls.Certificate{Certificate: [][]byte{issue("dev-1", k.Public(), x509.ExtKeyUsageClientAuth, false)}, PrivateKey: k}
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{clientCert},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading: %v (server: %s)", err, <-got)
	}
	if cn := <-got; cn != "dev-1" {
		t.Fatalf("server saw %q", cn)
	}
	if c.ConnectionState().Version != tls.VersionTLS13 {
		t.Error("not TLS 1.3")
	}
}

// TestBlobFromAnotherTPM: each tpmsim.Open manufactures a fresh simulator
// with new random seeds, so a key wrapped by the first instance's storage
// root key must not load in the second (the simulator is one instance per
// process, so the two are used one after the other).
func TestBlobFromAnotherTPM(t *testing.T) {
	tp1, err := tpmsim.Open()
	if err != nil {
		t.Fatal(err)
	}
	k, err := tp1.CreateDeviceKey()
	if err != nil {
		tp1.Close()
		t.Fatal(err)
	}
	pub, priv := k.PublicBlob(), k.PrivateBlob()
	k.Close()
	tp1.Close()

	tp2 := openSim(t)
	k2, err := tp2.LoadDeviceKey(pub, priv)
	if err == nil {
		k2.Close()
		t.Fatal("a key blob from another TPM loaded")
	}
	t.Logf("loading in another TPM: %v", err)
}

func TestOpenSpecs(t *testing.T) {
	for _, spec := range []string{"", "tpm0", "swtpm:nohostport"} {
		if tp, err := tpm.Open(spec); err == nil {
			tp.Close()
			t.Errorf("Open(%q) succeeded", spec)
		}
	}
	if _, err := tpm.Open("/nonexistent/tpmrm0"); err == nil {
		t.Error("Open of a missing device succeeded")
	}
	// Nothing listens on this port.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := tpm.Open("swtpm:" + addr); err == nil || !strings.Contains(err.Error(), "swtpm") {
		t.Errorf("Open(swtpm:%s) = %v", addr, err)
	}
}

func TestClosedTPM(t *testing.T) {
	tp, err := tpmsim.Open()
	if err != nil {
		t.Fatal(err)
	}
	tp.Close()
	if _, err := tp.CreateDeviceKey(); err == nil {
		t.Error("CreateDeviceKey on a closed TPM succeeded")
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcurrentSign: commands from many goroutines are serialized.
func TestConcurrentSign(t *testing.T) {
	tp := openSim(t)
	k1, k2 := newKey(t, tp), newKey(t, tp)
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			k := k1
			if i%2 == 1 {
				k = k2
			}
			sum := sha256.Sum256([]byte{byte(i)})
			sig, err := k.Sign(nil, sum[:], crypto.SHA256)
			if err == nil && !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), sum[:], sig) {
				err = io.ErrUnexpectedEOF
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
