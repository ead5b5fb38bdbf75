package pki

import (
	"testing"
	"time"
)

// BenchmarkIssueDevice measures enrolment's CA work: parse and check a
// P-256 PEM request, then issue the device certificate.
func BenchmarkIssueDevice(b *testing.B) {
	ca := newTestCA(b, "ca")
	key, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	req := pemCSR(newCSR(b, key, "x"))
	id := NewDeviceID()
	b.ReportAllocs()
	for b.Loop() {
		csr, err := ParseCSR(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ca.IssueDevice(csr, id, 90*24*time.Hour, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDevice measures checking a presented device certificate.
func BenchmarkVerifyDevice(b *testing.B) {
	ca := newTestCA(b, "ca")
	id := NewDeviceID()
	cert := issueTestDevice(b, ca, id, 90*24*time.Hour, t0)
	b.ReportAllocs()
	for b.Loop() {
		got, err := ca.VerifyDevice(cert, t0)
		if err != nil || got != id {
			b.Fatal(got, err)
		}
	}
}
