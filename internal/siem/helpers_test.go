package siem

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// testPKI is a throwaway CA with a server and a client certificate, written
// as PEM files for the real servers the tests start.
type testPKI struct {
	dir                    string
	caFile                 string
	serverCert, serverKey  string
	clientCert, clientKey  string
	pool                   *x509.CertPool
	client                 tls.Certificate
	serverName, clientName string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir, serverName: "collector.bulwark.test", clientName: "device-7.bulwark.test"}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Bulwark test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ips ...net.IP) (certFile, keyFile string, cert tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{name}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		certFile = writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		keyFile = writePEM(t, dir, name+".key", "PRIVATE KEY", keyDER)
		cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		return
	}
	p.serverCert, p.serverKey, _ = issue(p.serverName, 2, x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	p.clientCert, p.clientKey, p.client = issue(p.clientName, 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var testTime = time.Date(2026, 11, 26, 21, 4, 5, 123456789, time.UTC)

// testEvents returns n valid events of assorted types for one device, seq
// from firstSeq; pad adds that many bytes to a free-text field.
func testEvents(t testing.TB, device string, firstSeq uint64, n, pad int) []events.Event {
	t.Helper()
	out := make([]events.Event, 0, n)
	filler := make([]byte, pad)
	for i := range filler {
		filler[i] = 'a' + byte(i%26)
	}
	for i := 0; i < n; i++ {
		seq := firstSeq + uint64(i)
		var e *events.Event
		var err error
		when := testTime.Add(time.Duration(i) * time.Millisecond)
		switch i % 3 {
		case 0:
			e, err = events.New(events.TypeAuthLogin, device, events.SeverityMedium, when, events.AuthLogin{
				Activity: "logon", Outcome: "failure", Service: "ssh", User: "root", SrcIP: "203.0.113.7", SrcPort: 51022,
				Message: fmt.Sprintf("Failed password for root [seq %d] \"quoted\" \\ back ] %s", seq, filler)})
		case 1:
			e, err = events.New(events.TypePolicyDenial, device, events.SeverityHigh, when, events.PolicyDenial{
				Policy: "ioc-block", Action: "connect", Target: "198.51.100.66:443", Reason: "matches indicator é " + string(filler)})
		default:
			e, err = events.New(events.TypeIntegrityResult, device, events.SeverityInformational, when, events.IntegrityResult{
				Check: "agent-binary", Outcome: "pass", Path: "/usr/bin/bulwark-agent", Expected: string(filler)})
		}
		if err != nil {
			t.Fatal(err)
		}
		e.Seq = seq
		out = append(out, *e)
	}
	return out
}
