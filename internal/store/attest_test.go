package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

func TestTPMEnrolmentAndAttestations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		newToken(t, s, "tok1", 1)
		tpm := func(id, ek string) *store.DeviceTPM {
			return &store.DeviceTPM{DeviceID: id, EKHash: ek, EKPublic: "ekpub", AKPublic: "akpub"}
		}
		d1 := newDevice("d1")
		d1.KeyAssurance = "hardware"
		if err := s.EnrollTPMDevice(ctx, "tok1", []byte("hash-tok1"), d1, tpm("d1", "ek1")); err != nil {
			t.Fatal(err)
		}
		// Zero-touch without a registration is refused, and writes nothing.
		if err := s.EnrollTPMDevice(ctx, "", nil, newDevice("d2"), tpm("d2", "ek2")); !errors.Is(err, store.ErrEKUnregistered) {
			t.Fatalf("unregistered EK enrolled: %v", err)
		}
		if _, err := s.GetDevice(ctx, "d2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refused device stored: %v", err)
		}
		if err := s.AddEKRegistrations(ctx, []*store.EKRegistration{{EKHash: "ek2", Group: "lab", CreatedAt: t0, CreatedBy: "admin"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddEKRegistrations(ctx, []*store.EKRegistration{{EKHash: "ek3", Group: "lab", CreatedAt: t0, CreatedBy: "admin"}, {EKHash: "ek2", Group: "lab", CreatedAt: t0, CreatedBy: "admin"}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate registration: %v", err)
		}
		if _, err := s.GetEKRegistration(ctx, "ek3"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("half-applied registration batch: %v", err)
		}
		if err := s.EnrollTPMDevice(ctx, "", nil, newDevice("d2"), tpm("d2", "ek2")); err != nil {
			t.Fatal(err)
		}
		// A registration is used once.
		if err := s.EnrollTPMDevice(ctx, "", nil, newDevice("d3"), tpm("d3", "ek2")); !errors.Is(err, store.ErrEKUnregistered) {
			t.Fatalf("registration reused: %v", err)
		}
		if r, _ := s.GetEKRegistration(ctx, "ek2"); r == nil || r.DeviceID != "d2" {
			t.Fatalf("registration = %+v", r)
		}
		ids, err := s.FindDevicesByEK(ctx, "ek1")
		if err != nil || len(ids) != 1 || ids[0] != "d1" {
			t.Fatalf("by EK = %v, %v", ids, err)
		}

		got, err := s.GetDeviceTPM(ctx, "d1")
		if err != nil || got.AKPublic != "akpub" || got.EKHash != "ek1" {
			t.Fatalf("tpm = %+v, %v", got, err)
		}
		if _, err := s.GetDeviceTPM(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		if err := s.RequestAttestation(ctx, "d1", t0); err != nil {
			t.Fatal(err)
		}
		for i, st := range []string{"affirming", "contraindicated"} {
			rec := &store.AttestationRecord{ID: "a" + st, DeviceID: "d1", At: t0.Add(time.Duration(i+1) * time.Minute), Status: st, Result: "{}"}
			trust := ""
			if st == "contraindicated" {
				trust = "quarantined"
			}
			if err := s.RecordAttestation(ctx, rec, "qd"+st, trust); err != nil {
				t.Fatal(err)
			}
		}
		got, _ = s.GetDeviceTPM(ctx, "d1")
		if got.LastQuoteDigest != "qdcontraindicated" || !got.AttestRequestedAt.IsZero() || !got.LastAttestedAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("tpm after attest = %+v", got)
		}
		if d, _ := s.GetDevice(ctx, "d1"); d.Trust != "quarantined" {
			t.Fatalf("trust = %q", d.Trust)
		}
		if a, _ := s.GetDeviceAuth(ctx, "d1"); a.Trust != "quarantined" {
			t.Fatalf("auth trust = %q", a.Trust)
		}
		list, err := s.ListAttestations(ctx, "d1", 0)
		if err != nil || len(list) != 2 || list[0].Status != "contraindicated" {
			t.Fatalf("list = %v, %v", list, err)
		}
		if err := s.SetTrust(ctx, "d1", "trusted"); err != nil {
			t.Fatal(err)
		}

		ref := &store.AttestReference{DeviceID: "d1", Source: "baseline", Reference: `{"a":1}`, CapturedAt: t0}
		if err := s.PutAttestReferenceIfAbsent(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if err := s.PutAttestReferenceIfAbsent(ctx, &store.AttestReference{DeviceID: "d1", Source: "baseline", Reference: `{"b":2}`, CapturedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if r, _ := s.GetAttestReference(ctx, "d1"); r.Reference != `{"a":1}` || !r.ApprovedAt.IsZero() {
			t.Fatalf("reference = %+v", r)
		}
		if err := s.ApproveAttestReference(ctx, "d1", "admin", t0); err != nil {
			t.Fatal(err)
		}
		if r, _ := s.GetAttestReference(ctx, "d1"); r.ApprovedBy != "admin" {
			t.Fatalf("approved = %+v", r)
		}
		if err := s.ApproveAttestReference(ctx, "d2", "admin", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}

		for i := 0; i < 3; i++ {
			if err := s.AddHealthReport(ctx, &store.HealthReportRecord{DeviceID: "d1", At: t0.Add(time.Duration(i) * time.Second), Status: "healthy", Report: "r", Signature: "s"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddHealthReport(ctx, &store.HealthReportRecord{DeviceID: "d1", At: t0, Status: "healthy", Report: "r", Signature: "s"}); err != nil {
			t.Fatalf("duplicate report: %v", err)
		}
		hr, err := s.ListHealthReports(ctx, "d1", 2)
		if err != nil || len(hr) != 2 || !hr[0].At.Equal(t0.Add(2*time.Second)) {
			t.Fatalf("health = %v, %v", hr, err)
		}
	})
}
