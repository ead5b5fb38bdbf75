package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

func ev(dev string, seq uint64, typ string, sev int, at time.Time) store.Event {
	return store.Event{DeviceID: dev, Seq: seq, Source: store.EventFromDevice, Type: typ, SeverityID: sev,
		DeviceTime: at, ServerTime: at, PrevHash: fmt.Sprintf("p%d", seq), Hash: fmt.Sprintf("h%d", seq),
		Data: []byte(fmt.Sprintf(`{"seq":%d}`, seq))}
}

// ingest stores evs for dev, skipping those at or below the head, the way
// the server does, and returns the head and known hashes check saw.
func ingest(t *testing.T, s *store.Store, dev string, evs []store.Event) (store.EventHead, map[uint64]string) {
	t.Helper()
	var seen store.EventHead
	var known map[uint64]string
	lo, hi := evs[0].Seq, evs[len(evs)-1].Seq
	err := s.IngestEvents(context.Background(), dev, lo, hi, t0, func(h store.EventHead, k map[uint64]string) (store.EventIngest, error) {
		seen, known = h, k
		out := store.EventIngest{Head: h}
		for _, e := range evs {
			if e.Seq > out.Head.LastSeq {
				out.Insert = append(out.Insert, e)
				out.Head.LastSeq, out.Head.LastHash = e.Seq, e.Hash
			}
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen, known
}

func TestEventsIngestIdempotent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if _, err := s.GetEventHead(ctx, "d1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("head before any batch: %v", err)
		}
		var batch []store.Event
		for i := uint64(1); i <= 250; i++ { // more than two insert chunks
			batch = append(batch, ev("d1", i, "auth.login", 3, t0.Add(time.Duration(i)*time.Second)))
		}
		h, known := ingest(t, s, "d1", batch)
		if h.LastSeq != 0 || len(known) != 0 {
			t.Fatalf("first batch saw head %+v, known %v", h, known)
		}
		// Resend with overlap: nothing is duplicated and check sees the
		// stored hashes of the overlap.
		h, known = ingest(t, s, "d1", append(batch[200:], ev("d1", 251, "auth.login", 3, t0)))
		if h.LastSeq != 250 || h.LastHash != "h250" || len(known) != 50 || known[201] != "h201" {
			t.Fatalf("resend saw head %+v, %d known (201: %q)", h, len(known), known[201])
		}
		all, err := s.ListEvents(ctx, store.EventFilter{DeviceID: "d1", Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 251 || all[0].Seq != 251 || all[250].Seq != 1 {
			t.Fatalf("stored %d events, first seq %d", len(all), all[0].Seq)
		}
		e := all[250]
		if e.Type != "auth.login" || e.SeverityID != 3 || !e.DeviceTime.Equal(t0.Add(time.Second)) || e.PrevHash != "p1" || e.Hash != "h1" || string(e.Data) != `{"seq":1}` {
			t.Fatalf("stored event = %+v", e)
		}
		head, err := s.GetEventHead(ctx, "d1")
		if err != nil || head.LastSeq != 251 {
			t.Fatalf("head = %+v, %v", head, err)
		}
		// An error from check rolls back the whole batch.
		boom := errors.New("boom")
		err = s.IngestEvents(ctx, "d1", 252, 252, t0, func(h store.EventHead, _ map[uint64]string) (store.EventIngest, error) {
			return store.EventIngest{}, boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("check error: %v", err)
		}
		if head, _ := s.GetEventHead(ctx, "d1"); head.LastSeq != 251 {
			t.Fatalf("head after failed batch = %d", head.LastSeq)
		}
	})
}

func TestEventsFilterScopePrune(t *testing.T) {
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
		ingest(t, s, "da", []store.Event{ev("da", 1, "auth.login", 3, t0), ev("da", 2, "net.connection", 1, t0.Add(time.Hour))})
		ingest(t, s, "db", []store.Event{ev("db", 1, "auth.login", 4, t0.Add(2*time.Hour))})
		for _, tc := range []struct {
			name string
			f    store.EventFilter
			want []string // device:seq, newest first
		}{
			{"all", store.EventFilter{}, []string{"db:1", "da:2", "da:1"}},
			{"device", store.EventFilter{DeviceID: "da"}, []string{"da:2", "da:1"}},
			{"group", store.EventFilter{Group: "plant"}, []string{"db:1"}},
			{"scope", store.EventFilter{Scope: []string{"lab"}}, []string{"da:2", "da:1"}},
			{"empty scope", store.EventFilter{Scope: []string{}}, nil},
			{"type", store.EventFilter{Type: "auth.login"}, []string{"db:1", "da:1"}},
			{"severity", store.EventFilter{MinSeverity: 3}, []string{"db:1", "da:1"}},
			{"since", store.EventFilter{Since: t0.Add(time.Hour)}, []string{"db:1", "da:2"}},
			{"until", store.EventFilter{Until: t0.Add(time.Hour)}, []string{"da:1"}},
			{"limit", store.EventFilter{Limit: 1}, []string{"db:1"}},
			{"ascending", store.EventFilter{Ascending: true}, []string{"da:1", "da:2", "db:1"}},
		} {
			got, err := s.ListEvents(ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var ids []string
			for _, e := range got {
				ids = append(ids, fmt.Sprintf("%s:%d", e.DeviceID, e.Seq))
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, ids, tc.want)
			}
		}
		// Paging: Before the last ID of a page gives the next page.
		page, _ := s.ListEvents(ctx, store.EventFilter{Limit: 2})
		rest, _ := s.ListEvents(ctx, store.EventFilter{Limit: 2, Before: page[1].ID})
		if len(rest) != 1 || rest[0].DeviceID != "da" || rest[0].Seq != 1 {
			t.Fatalf("second page = %+v", rest)
		}
		asc, _ := s.ListEvents(ctx, store.EventFilter{Ascending: true, After: page[1].ID})
		if len(asc) != 1 || asc[0].DeviceID != "db" {
			t.Fatalf("after = %+v", asc)
		}

		n, err := s.PruneEvents(ctx, t0.Add(90*time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("prune = %d, %v", n, err)
		}
		left, _ := s.ListEvents(ctx, store.EventFilter{})
		if len(left) != 1 || left[0].DeviceID != "db" {
			t.Fatalf("after prune: %+v", left)
		}
		// The chain head survives pruning.
		if h, err := s.GetEventHead(ctx, "da"); err != nil || h.LastSeq != 2 {
			t.Fatalf("head after prune = %+v, %v", h, err)
		}
	})
}

// TestEventInsertsSerialised: while one transaction inserting events is
// open, another waits for it, so event ids become visible in increasing
// order. The alerter and the SIEM forwarders read new events by id cursor;
// on PostgreSQL, without the lock, a batch committing after one with
// higher ids would be passed over by them for good.
func TestEventInsertsSerialised(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		held, release := make(chan struct{}), make(chan struct{})
		aDone := make(chan error, 1)
		go func() {
			aDone <- s.IngestEvents(ctx, "dev-a", 1, 1, t0, func(h store.EventHead, _ map[uint64]string) (store.EventIngest, error) {
				close(held)
				<-release
				e := ev("dev-a", 1, "auth.login", 1, t0)
				return store.EventIngest{Head: store.EventHead{DeviceID: "dev-a", LastSeq: 1, LastHash: e.Hash}, Insert: []store.Event{e}}, nil
			})
		}()
		<-held
		bDone := make(chan error, 1)
		go func() { bDone <- s.AddServerEvents(ctx, []store.Event{ev("dev-b", 0, "ioc.match", 4, t0)}) }()
		select {
		case err := <-bDone:
			close(release)
			t.Fatalf("an event insert committed (err %v) while another transaction inserting events was open", err)
		case <-time.After(300 * time.Millisecond):
		}
		close(release)
		if err := <-aDone; err != nil {
			t.Fatal(err)
		}
		if err := <-bDone; err != nil {
			t.Fatal(err)
		}
		got, err := s.ListEvents(ctx, store.EventFilter{Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].DeviceID != "dev-a" || got[1].DeviceID != "dev-b" || got[0].ID >= got[1].ID {
			t.Fatalf("events in id order: %+v, want dev-a's before dev-b's", got)
		}
	})
}

// TestEventsTypesAndAtMost: the filters the alerter reads with.
func TestEventsTypesAndAtMost(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ingest(t, s, "dev-1", []store.Event{
			ev("dev-1", 1, "net.connection", 1, t0), ev("dev-1", 2, "auth.login", 1, t0),
			ev("dev-1", 3, "net.connection", 1, t0), ev("dev-1", 4, "journal.gap", 3, t0), ev("dev-1", 5, "auth.login", 1, t0),
		})
		all, err := s.ListEvents(ctx, store.EventFilter{Ascending: true})
		if err != nil || len(all) != 5 {
			t.Fatalf("all: %d, %v", len(all), err)
		}
		hi, err := s.MaxEventID(ctx)
		if err != nil || hi != all[4].ID {
			t.Fatalf("MaxEventID %d (%v), want %d", hi, err, all[4].ID)
		}
		got, err := s.ListEvents(ctx, store.EventFilter{DeviceID: "dev-1", Types: []string{"auth.login", "journal.gap"}, After: all[0].ID, AtMost: all[3].ID, Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, e := range got {
			seqs = append(seqs, e.Seq)
		}
		if fmt.Sprint(seqs) != "[2 4]" {
			t.Fatalf("seqs %v, want [2 4]", seqs)
		}
	})
}
