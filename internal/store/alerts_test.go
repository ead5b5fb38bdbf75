package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

func newAlert(id, rule, dev, key string, at time.Time, seq uint64) *store.Alert {
	return &store.Alert{ID: id, Rule: rule, SeverityID: 3, DeviceID: dev, DedupKey: key, Summary: "summary " + id,
		FirstSeen: at, LastSeen: at, Refs: []store.AlertRef{{EventID: int64(seq), DeviceID: dev, Seq: seq, Type: "auth.login"}}}
}

func raise(t *testing.T, s *store.Store, a *store.Alert, sinks ...string) bool {
	t.Helper()
	created, err := s.RaiseAlert(context.Background(), a, sinks)
	if err != nil {
		t.Fatal(err)
	}
	return created
}

func TestAlertDedupAckResolve(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if !raise(t, s, newAlert("a1", "ioc.match", "d1", "198.51.100.66", t0, 1)) {
			t.Fatal("first firing did not create an alert")
		}
		// The same rule, device and key while open: counted, not created.
		again := newAlert("a2", "ioc.match", "d1", "198.51.100.66", t0.Add(time.Minute), 2)
		again.SeverityID = 4
		again.Summary = "newer"
		if raise(t, s, again) {
			t.Fatal("a repeat created a second alert")
		}
		if again.ID != "a1" || again.Count != 2 || !again.FirstSeen.Equal(t0) || !again.LastSeen.Equal(t0.Add(time.Minute)) ||
			again.SeverityID != 4 || again.Summary != "newer" || len(again.Refs) != 2 || again.Refs[1].Seq != 2 || again.Status != store.AlertOpen {
			t.Fatalf("after a repeat: %+v", again)
		}
		// An older repeat does not move last_seen back; a resent event is
		// referenced once.
		old := newAlert("a3", "ioc.match", "d1", "198.51.100.66", t0.Add(-time.Hour), 2)
		raise(t, s, old)
		if old.Count != 3 || !old.LastSeen.Equal(t0.Add(time.Minute)) || len(old.Refs) != 2 {
			t.Fatalf("after an older repeat: %+v", old)
		}
		// Another key, device or rule is another alert.
		for _, a := range []*store.Alert{
			newAlert("b1", "ioc.match", "d1", "203.0.113.9", t0, 3),
			newAlert("b2", "ioc.match", "d2", "198.51.100.66", t0, 1),
			newAlert("b3", "clock.skew", "d1", "198.51.100.66", t0, 4),
		} {
			if !raise(t, s, a) {
				t.Fatalf("%s counted on another alert", a.ID)
			}
		}

		// Acknowledge: recorded; acknowledging again changes nothing.
		a, changed, err := s.AckAlert(ctx, "a1", "user:alice", t0.Add(2*time.Minute))
		if err != nil || !changed || a.Status != store.AlertAcknowledged || a.AckedBy != "user:alice" || !a.AckedAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("ack: %+v, %v, %v", a, changed, err)
		}
		if a, changed, err = s.AckAlert(ctx, "a1", "user:bob", t0.Add(3*time.Minute)); err != nil || changed || a.AckedBy != "user:alice" {
			t.Fatalf("second ack: %+v, %v, %v", a, changed, err)
		}
		if _, _, err := s.AckAlert(ctx, "nope", "user:alice", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ack of an unknown alert: %v", err)
		}
		// Once acknowledged, a new firing opens a new alert.
		next := newAlert("a4", "ioc.match", "d1", "198.51.100.66", t0.Add(4*time.Minute), 5)
		if !raise(t, s, next) || next.ID != "a4" || next.Count != 1 {
			t.Fatalf("firing after the ack: %+v", next)
		}

		// Resolve: both the acknowledged and the open alert of the rule
		// for d1, nothing else.
		n, err := s.ResolveAlerts(ctx, "ioc.match", "d1", t0.Add(5*time.Minute))
		if err != nil || n != 3 { // a1 (acknowledged), b1 and a4 (open)
			t.Fatalf("resolve: %d, %v", n, err)
		}
		got, err := s.GetAlert(ctx, "a4")
		if err != nil || got.Status != store.AlertResolved || !got.ResolvedAt.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("resolved alert: %+v, %v", got, err)
		}
		if _, _, err := s.AckAlert(ctx, "a4", "user:alice", t0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("ack of a resolved alert: %v", err)
		}
		if got, _ := s.GetAlert(ctx, "b2"); got.Status != store.AlertOpen {
			t.Fatalf("another device's alert was resolved: %+v", got)
		}
		if _, err := s.GetAlert(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get unknown: %v", err)
		}
	})
}

func TestAlertRefsBounded(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		var a *store.Alert
		for i := range store.MaxAlertRefs + 20 {
			a = newAlert(fmt.Sprint("x", i), "auth.repeated_failures", "d1", "", t0.Add(time.Duration(i)*time.Second), uint64(i+1))
			raise(t, s, a)
		}
		if a.Count != store.MaxAlertRefs+20 || len(a.Refs) != store.MaxAlertRefs || a.Refs[0].Seq != 21 || a.Refs[len(a.Refs)-1].Seq != store.MaxAlertRefs+20 {
			t.Fatalf("count %d, %d refs from seq %d", a.Count, len(a.Refs), a.Refs[0].Seq)
		}
	})
}

func TestAlertConcurrentRaise(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		const n = 12
		var wg sync.WaitGroup
		var mu sync.Mutex
		created := 0
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.RaiseAlert(context.Background(), newAlert(fmt.Sprint("c", i), "journal.tamper", "d1", "", t0, uint64(i+1)), []string{"webhook"})
				if err != nil {
					errs <- err
					return
				}
				if c {
					mu.Lock()
					created++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		list, err := s.ListAlerts(context.Background(), store.AlertFilter{DeviceID: "d1"})
		if err != nil {
			t.Fatal(err)
		}
		if created != 1 || len(list) != 1 || list[0].Count != n || len(list[0].Refs) != n {
			t.Fatalf("%d created, %d stored (%+v)", created, len(list), list)
		}
		ds, err := s.AlertDeliveries(context.Background(), list[0].ID)
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries: %+v, %v", ds, err)
		}
	})
}

func TestAlertListFilters(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		newToken(t, s, "tok", 10)
		for _, d := range []struct{ id, grp string }{{"da", "lab"}, {"db", "plant"}} {
			dev := newDevice(d.id)
			dev.Group = d.grp
			if err := s.EnrollDevice(ctx, "tok", []byte("hash-tok"), dev); err != nil {
				t.Fatal(err)
			}
		}
		raise(t, s, newAlert("1", "device.enrolled", "da", "", t0, 0))
		raise(t, s, newAlert("2", "device.enrolled", "db", "", t0.Add(time.Minute), 0))
		raise(t, s, newAlert("3", "device.revoked", "da", "", t0.Add(2*time.Minute), 0))
		if _, _, err := s.AckAlert(ctx, "1", "user:a", t0); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			f    store.AlertFilter
			want string
		}{
			{"all", store.AlertFilter{}, "[3 2 1]"},
			{"open", store.AlertFilter{Status: store.AlertOpen}, "[3 2]"},
			{"acknowledged", store.AlertFilter{Status: store.AlertAcknowledged}, "[1]"},
			{"device", store.AlertFilter{DeviceID: "da"}, "[3 1]"},
			{"scope lab", store.AlertFilter{Scope: []string{"lab"}}, "[3 1]"},
			{"scope both", store.AlertFilter{Scope: []string{"lab", "plant"}}, "[3 2 1]"},
			{"scope none", store.AlertFilter{Scope: []string{}}, "[]"},
			{"limit", store.AlertFilter{Limit: 1}, "[3]"},
		} {
			list, err := s.ListAlerts(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, a := range list {
				ids = append(ids, a.ID)
			}
			if got := fmt.Sprint(ids); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
			}
		}
	})
}

func TestAlertDeliveries(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		raise(t, s, newAlert("a1", "attestation.failed", "d1", "", t0, 0), "webhook", "syslog")
		raise(t, s, newAlert("a2", "device.revoked", "d1", "", t0.Add(time.Second), 0), "webhook", "syslog")
		// A repeat queues nothing more.
		raise(t, s, newAlert("a3", "attestation.failed", "d1", "", t0.Add(2*time.Second), 0), "webhook", "syslog")

		claim := func(sink string, at time.Time) []string {
			t.Helper()
			ds, err := s.ClaimAlertDeliveries(ctx, sink, at, time.Minute, 10)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range ds {
				ids = append(ids, fmt.Sprintf("%s/%d", d.Alert.ID, d.Attempts))
				if d.Sink != sink || d.Alert.Rule == "" {
					t.Errorf("claimed %+v", d)
				}
			}
			return ids
		}
		if got := fmt.Sprint(claim("webhook", t0.Add(time.Second))); got != "[a1/0 a2/0]" {
			t.Fatalf("first claim: %s", got)
		}
		// Leased: not due again within the lease; the other sink's rows
		// are its own.
		if got := claim("webhook", t0.Add(30*time.Second)); len(got) != 0 {
			t.Fatalf("leased deliveries claimed again: %v", got)
		}
		if got := fmt.Sprint(claim("syslog", t0.Add(time.Second))); got != "[a1/0 a2/0]" {
			t.Fatalf("syslog claim: %s", got)
		}
		if err := s.AlertDelivered(ctx, "a1", "webhook", t0.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.AlertDeliveryFailed(ctx, "a2", "webhook", t0.Add(10*time.Minute), "siem: webhook delivery failed: HTTP 500"); err != nil {
			t.Fatal(err)
		}
		if got := claim("webhook", t0.Add(5*time.Minute)); len(got) != 0 {
			t.Fatalf("claimed before the retry time: %v", got)
		}
		if got := fmt.Sprint(claim("webhook", t0.Add(10*time.Minute))); got != "[a2/1]" {
			t.Fatalf("retry claim: %s", got)
		}
		// A sender that died holding the lease: due again after it.
		if got := fmt.Sprint(claim("syslog", t0.Add(2*time.Minute))); got != "[a1/0 a2/0]" {
			t.Fatalf("claim after an expired lease: %s", got)
		}
		ds, err := s.AlertDeliveries(ctx, "a2")
		if err != nil || len(ds) != 2 || ds[1].Sink != "webhook" || ds[1].Attempts != 1 || ds[1].LastError == "" || !ds[1].DeliveredAt.IsZero() {
			t.Fatalf("delivery state: %+v, %v", ds, err)
		}
		ds, _ = s.AlertDeliveries(ctx, "a1")
		if ds[1].DeliveredAt.IsZero() || ds[1].LastError != "" {
			t.Fatalf("delivered state: %+v", ds)
		}

		// Pruning: only resolved alerts past the cutoff, and only once
		// every delivery is done.
		raise(t, s, newAlert("a4", "clock.skew", "d1", "", t0, 0))
		for _, r := range []string{"attestation.failed", "device.revoked", "clock.skew"} {
			if _, err := s.ResolveAlerts(ctx, r, "d1", t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.PruneAlerts(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("pruned %d at the resolution time, %v", n, err)
		}
		if n, err := s.PruneAlerts(ctx, t0.Add(2*time.Hour)); err != nil || n != 1 { // a4: no sinks
			t.Fatalf("pruned %d, want 1 (%v)", n, err)
		}
		for _, sink := range []string{"webhook", "syslog"} {
			for _, id := range []string{"a1", "a2"} {
				if err := s.AlertDelivered(ctx, id, sink, t0); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n, err := s.PruneAlerts(ctx, t0.Add(2*time.Hour)); err != nil || n != 2 {
			t.Fatalf("pruned %d once delivered, want 2 (%v)", n, err)
		}
		if _, err := s.GetAlert(ctx, "a1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("pruned alert still there: %v", err)
		}
		if ds, _ := s.AlertDeliveries(ctx, "a1"); len(ds) != 0 {
			t.Fatalf("deliveries of a pruned alert: %+v", ds)
		}
	})
}

func TestAlertCursors(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if c, err := s.AlertCursor(ctx, "d1"); err != nil || c != 0 {
			t.Fatalf("cursor before any: %d, %v", c, err)
		}
		if devs, err := s.DevicesWithUnreadEvents(ctx, 10); err != nil || len(devs) != 0 {
			t.Fatalf("unread before any event: %v, %v", devs, err)
		}
		ingest(t, s, "d1", []store.Event{ev("d1", 1, "auth.login", 3, t0), ev("d1", 2, "auth.login", 3, t0)})
		ingest(t, s, "d2", []store.Event{ev("d2", 1, "auth.login", 3, t0)})
		devs, err := s.DevicesWithUnreadEvents(ctx, 10)
		if err != nil || fmt.Sprint(devs) != "[d1 d2]" {
			t.Fatalf("unread: %v, %v", devs, err)
		}
		evs, err := s.ListEvents(ctx, store.EventFilter{DeviceID: "d1", Ascending: true})
		if err != nil || len(evs) != 2 {
			t.Fatal(err)
		}
		if err := s.SetAlertCursor(ctx, "d1", evs[1].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAlertCursor(ctx, "d1", evs[0].ID); err != nil { // never back
			t.Fatal(err)
		}
		if c, _ := s.AlertCursor(ctx, "d1"); c != evs[1].ID {
			t.Fatalf("cursor = %d, want %d", c, evs[1].ID)
		}
		if devs, _ := s.DevicesWithUnreadEvents(ctx, 10); fmt.Sprint(devs) != "[d2]" {
			t.Fatalf("unread after reading d1: %v", devs)
		}
	})
}
