package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

func TestDisclosureReports(t *testing.T) {
	for _, d := range storetest.Backends {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			s, err := store.Open(ctx, storetest.DSN(t, d))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := &store.DisclosureReport{ID: "VR-AAAAAAAAAA", KeyHash: []byte("h"), State: "received", Summary: "s", Product: "p",
				Details: "d", AcknowledgeAs: "Ada", ReceivedAt: t0, UpdatedAt: t0}
			if err := s.CreateDisclosure(ctx, r, &store.DisclosureEvent{Time: t0, Actor: "reporter", To: "received"}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateDisclosure(ctx, r, &store.DisclosureEvent{Time: t0, Actor: "reporter", To: "received"}); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("second create: %v, want ErrConflict", err)
			}
			t1 := t0.Add(time.Hour)
			if err := s.TransitionDisclosure(ctx, r.ID, &store.DisclosureEvent{Time: t1, Actor: "user:a", From: "received", To: "triaged", Note: "n"}, ""); err != nil {
				t.Fatal(err)
			}
			// A stale view of the state is refused and changes nothing.
			if err := s.TransitionDisclosure(ctx, r.ID, &store.DisclosureEvent{Time: t1, Actor: "user:a", From: "received", To: "rejected"}, ""); !errors.Is(err, store.ErrStateChanged) {
				t.Fatalf("stale transition: %v, want ErrStateChanged", err)
			}
			if err := s.TransitionDisclosure(ctx, "VR-NOPE", &store.DisclosureEvent{Time: t1, From: "received", To: "triaged"}, ""); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("missing report: %v, want ErrNotFound", err)
			}
			if err := s.TransitionDisclosure(ctx, r.ID, &store.DisclosureEvent{Time: t1, Actor: "user:a", From: "triaged", To: "published", Advisory: "BWK-1"}, "BWK-1"); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetDisclosure(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != "published" || got.Advisory != "BWK-1" || !got.UpdatedAt.Equal(t1) || string(got.KeyHash) != "h" {
				t.Errorf("report = %+v", got)
			}
			if err := s.AddDisclosureEvent(ctx, r.ID, &store.DisclosureEvent{Time: t1, Actor: "reporter", To: "published", Note: "thanks"}); err != nil {
				t.Fatal(err)
			}
			if err := s.AddDisclosureEvent(ctx, "VR-NOPE", &store.DisclosureEvent{Time: t1, Actor: "reporter", To: "x"}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("message to a missing report: %v, want ErrNotFound", err)
			}
			tl, err := s.DisclosureTimeline(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(tl) != 4 || tl[3].Note != "thanks" || tl[3].Seq != 4 || tl[3].Actor != "reporter" {
				t.Errorf("timeline after a message = %+v", tl)
			}
			if len(tl) < 3 || tl[0].To != "received" || tl[1].From != "received" || tl[1].Note != "n" || tl[2].Seq != 3 {
				t.Errorf("timeline = %+v", tl)
			}
			list, total, err := s.ListDisclosures(ctx, "published", 10, 0)
			if err != nil || total != 1 || len(list) != 1 {
				t.Fatalf("list = %v, %d, %v", list, total, err)
			}
			if _, total, _ := s.ListDisclosures(ctx, "received", 10, 0); total != 0 {
				t.Errorf("received total = %d", total)
			}
			acks, err := s.ListAcknowledgments(ctx, "published", 10)
			if err != nil || len(acks) != 1 || acks[0].Name != "Ada" || acks[0].Advisory != "BWK-1" {
				t.Errorf("acks = %+v, %v", acks, err)
			}
		})
	}
}

func TestProducts(t *testing.T) {
	for _, d := range storetest.Backends {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			s, err := store.Open(ctx, storetest.DSN(t, d))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			p := &store.Product{Name: "cam", SupportUntil: "2031-12-31", UpdateCadence: "monthly", CriticalFixTarget: "14 days", UpdatedAt: t0}
			if created, err := s.PutProduct(ctx, p); err != nil || !created {
				t.Fatalf("create: %v %v", created, err)
			}
			p.SupportUntil, p.UpdatedAt = "2032-01-31", t0.Add(time.Hour)
			if created, err := s.PutProduct(ctx, p); err != nil || created {
				t.Fatalf("update: %v %v", created, err)
			}
			ps, err := s.ListProducts(ctx)
			if err != nil || len(ps) != 1 || ps[0].SupportUntil != "2032-01-31" || !ps[0].CreatedAt.Equal(t0) {
				t.Fatalf("products = %+v, %v", ps, err)
			}
		})
	}
}
