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

func iocValues(t *testing.T, s *store.Store, source string) []string {
	t.Helper()
	inds, err := s.IoCIndicators(context.Background(), source, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range inds {
		out = append(out, in.Type+":"+in.Value)
	}
	return out
}

func TestIoCImportReplaceDelete(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		src := &store.IoCSource{Name: "abuse", Kind: "stix", DefaultExpiry: 720 * time.Hour, CreatedAt: t0, CreatedBy: "user:admin", UpdatedAt: t0}
		first := []store.IoCIndicator{
			{Type: "ip", Value: "198.51.100.66", Ref: "indicator--1"},
			{Type: "cidr", Value: "203.0.113.0/24", Ref: "indicator--2", Expires: t0.Add(time.Hour)},
		}
		if err := s.ReplaceIoCIndicators(ctx, src, 3, first); err != nil {
			t.Fatal(err)
		}
		if src.Version != 1 || src.Indicators != 2 || src.Skipped != 3 || !src.CreatedAt.Equal(t0) || src.IsFeed() {
			t.Fatalf("after the first import: %+v", src)
		}
		got, err := s.GetIoCSource(ctx, "abuse")
		if err != nil || got.Version != 1 || got.Indicators != 2 || got.DefaultExpiry != 720*time.Hour || got.CreatedBy != "user:admin" || !got.UpdatedAt.Equal(t0) {
			t.Fatalf("stored source: %+v, %v", got, err)
		}
		inds, err := s.IoCIndicators(ctx, "abuse", 0)
		if err != nil || len(inds) != 2 || inds[0].Type != "cidr" || !inds[0].Expires.Equal(t0.Add(time.Hour)) || inds[0].Ref != "indicator--2" ||
			inds[1].Value != "198.51.100.66" || !inds[1].Expires.IsZero() || inds[1].Source != "abuse" {
			t.Fatalf("indicators: %+v, %v", inds, err)
		}

		// Another source is independent; a re-import replaces the whole set.
		other := &store.IoCSource{Name: "other", Kind: "list", CreatedAt: t0, UpdatedAt: t0}
		if err := s.ReplaceIoCIndicators(ctx, other, 0, []store.IoCIndicator{{Type: "domain", Value: "evil.example"}}); err != nil {
			t.Fatal(err)
		}
		again := &store.IoCSource{Name: "abuse", Kind: "misp", CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)}
		if err := s.ReplaceIoCIndicators(ctx, again, 0, []store.IoCIndicator{{Type: "sha256", Value: fmt.Sprintf("%064x", 7)}}); err != nil {
			t.Fatal(err)
		}
		if again.Version != 2 || again.Indicators != 1 || again.Kind != "misp" || !again.CreatedAt.Equal(t0) || !again.UpdatedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("after a re-import: %+v", again)
		}
		if v := fmt.Sprint(iocValues(t, s, "")); v != "[sha256:"+fmt.Sprintf("%064x", 7)+" domain:evil.example]" {
			t.Fatalf("all indicators: %s", v)
		}
		if inds, err := s.IoCIndicators(ctx, "", 1); err != nil || len(inds) != 1 {
			t.Fatalf("limit 1: %d, %v", len(inds), err)
		}

		// A large set goes in whole chunks and a remainder.
		var many []store.IoCIndicator
		for i := 0; i < 1203; i++ {
			many = append(many, store.IoCIndicator{Type: "ip", Value: fmt.Sprintf("10.%d.%d.1", i/256, i%256)})
		}
		if err := s.ReplaceIoCIndicators(ctx, &store.IoCSource{Name: "many", Kind: "list", CreatedAt: t0, UpdatedAt: t0}, 0, many); err != nil {
			t.Fatal(err)
		}
		if n := len(iocValues(t, s, "many")); n != 1203 {
			t.Fatalf("stored %d of 1203", n)
		}

		if err := s.DeleteIoCSource(ctx, "abuse"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteIoCSource(ctx, "abuse"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting twice: %v", err)
		}
		if _, err := s.GetIoCSource(ctx, "abuse"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted source still there: %v", err)
		}
		if v := iocValues(t, s, "abuse"); len(v) != 0 {
			t.Fatalf("indicators of a deleted source: %v", v)
		}
		srcs, err := s.IoCSources(ctx)
		if err != nil || len(srcs) != 2 || srcs[0].Name != "many" || srcs[1].Name != "other" {
			t.Fatalf("sources: %v", err)
		}
	})
}

func TestIoCFeedsPollAndPrune(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		feed := &store.IoCSource{Name: "taxii-1", Kind: "taxii", URL: "https://taxii.example/api1/", Collection: "c1", Interval: time.Hour,
			CreatedAt: t0, CreatedBy: "user:admin", NextPoll: t0}
		if err := s.CreateIoCFeed(ctx, feed); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateIoCFeed(ctx, feed); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a second feed of the same name: %v", err)
		}
		// A file import under a feed's name, or a poll of a file, conflicts
		// and changes nothing.
		if err := s.ReplaceIoCIndicators(ctx, &store.IoCSource{Name: "taxii-1", Kind: "list", CreatedAt: t0, UpdatedAt: t0}, 0,
			[]store.IoCIndicator{{Type: "ip", Value: "192.0.2.1"}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("importing over a feed: %v", err)
		}
		if err := s.ReplaceIoCIndicators(ctx, &store.IoCSource{Name: "gone", Kind: "taxii", Interval: time.Hour, UpdatedAt: t0}, 0, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("polling a missing feed: %v", err)
		}
		if v := iocValues(t, s, "taxii-1"); len(v) != 0 {
			t.Fatalf("a refused import left %v", v)
		}

		due, err := s.DueIoCFeeds(ctx, t0)
		if err != nil || len(due) != 1 || due[0].Name != "taxii-1" || due[0].Collection != "c1" || due[0].Interval != time.Hour {
			t.Fatalf("due feeds: %+v, %v", due, err)
		}
		// One claim wins.
		if ok, err := s.ClaimIoCPoll(ctx, "taxii-1", t0, t0.Add(15*time.Minute)); err != nil || !ok {
			t.Fatalf("first claim: %v, %v", ok, err)
		}
		if ok, err := s.ClaimIoCPoll(ctx, "taxii-1", t0, t0.Add(15*time.Minute)); err != nil || ok {
			t.Fatalf("second claim: %v, %v", ok, err)
		}
		if due, _ := s.DueIoCFeeds(ctx, t0); len(due) != 0 {
			t.Fatalf("a claimed feed is still due: %+v", due)
		}

		// A failure is counted and shown; the retry time is kept.
		if err := s.RecordIoCPollFailure(ctx, "taxii-1", t0, t0.Add(time.Minute), "TAXII server: 503 Service Unavailable"); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordIoCPollFailure(ctx, "taxii-1", t0.Add(time.Minute), t0.Add(3*time.Minute), "TAXII server: 503 Service Unavailable"); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetIoCSource(ctx, "taxii-1")
		if got.Failures != 2 || got.LastError != "TAXII server: 503 Service Unavailable" || !got.NextPoll.Equal(t0.Add(3*time.Minute)) || !got.LastPoll.Equal(t0.Add(time.Minute)) {
			t.Fatalf("after failures: %+v", got)
		}

		// A successful poll replaces the indicators and clears the failures.
		poll := &store.IoCSource{Name: "taxii-1", Kind: "taxii", Interval: time.Hour, UpdatedAt: t0.Add(4 * time.Minute), NextPoll: t0.Add(64 * time.Minute)}
		inds := []store.IoCIndicator{
			{Type: "ip", Value: "198.51.100.7", Expires: t0.Add(10 * time.Minute)},
			{Type: "ip", Value: "198.51.100.8", Expires: t0.Add(2 * time.Hour)},
			{Type: "domain", Value: "c2.example"},
		}
		if err := s.ReplaceIoCIndicators(ctx, poll, 1, inds); err != nil {
			t.Fatal(err)
		}
		if poll.Failures != 0 || poll.LastError != "" || poll.Version != 1 || poll.Indicators != 3 || !poll.LastPoll.Equal(t0.Add(4*time.Minute)) ||
			!poll.NextPoll.Equal(t0.Add(64*time.Minute)) || poll.URL != "https://taxii.example/api1/" || poll.Kind != "taxii" {
			t.Fatalf("after a poll: %+v", poll)
		}

		// Pruning deletes what expired and recounts, leaving the version.
		n, err := s.PruneExpiredIoC(ctx, t0.Add(30*time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("pruned %d, %v", n, err)
		}
		got, _ = s.GetIoCSource(ctx, "taxii-1")
		if got.Indicators != 2 || got.Version != 1 {
			t.Fatalf("after pruning: %+v", got)
		}
		if v := fmt.Sprint(iocValues(t, s, "taxii-1")); v != "[domain:c2.example ip:198.51.100.8]" {
			t.Fatalf("left after pruning: %s", v)
		}
		if n, err := s.PruneExpiredIoC(ctx, t0.Add(30*time.Minute)); err != nil || n != 0 {
			t.Fatalf("pruning again: %d, %v", n, err)
		}
	})
}
