package auth

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestLimiterBurstAndRefill(t *testing.T) {
	t.Parallel()
	type event struct {
		key   string
		after time.Duration // since t0
		want  bool
	}
	for _, tt := range []struct {
		name   string
		rate   float64
		burst  int
		events []event
	}{
		{"burst then refuse", 1, 3, []event{
			{"a", 0, true}, {"a", 0, true}, {"a", 0, true}, {"a", 0, false}, {"a", 0, false},
		}},
		{"refill one per second", 1, 3, []event{
			{"a", 0, true}, {"a", 0, true}, {"a", 0, true}, {"a", 0, false},
			{"a", 999 * time.Millisecond, false},
			{"a", time.Second, true},
			{"a", time.Second, false},
			{"a", 3 * time.Second, true},
			{"a", 3 * time.Second, true},
			{"a", 3 * time.Second, false},
		}},
		{"refill capped at burst", 1, 2, []event{
			{"a", 0, true}, {"a", 0, true},
			{"a", time.Hour, true}, {"a", time.Hour, true}, {"a", time.Hour, false},
		}},
		{"fractional rate", 0.5, 1, []event{
			{"a", 0, true}, {"a", time.Second, false}, {"a", 2 * time.Second, true},
		}},
		{"keys independent", 1, 1, []event{
			{"a", 0, true}, {"a", 0, false}, {"b", 0, true}, {"b", 0, false}, {"a", 0, false},
		}},
		{"time going backwards", 1, 1, []event{
			{"a", 10 * time.Second, true},
			{"a", 0, false},
			{"a", 5 * time.Second, false},
			{"a", 11 * time.Second, true},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLimiter(tt.rate, tt.burst, 100)
			for i, e := range tt.events {
				if got := l.Allow(e.key, t0.Add(e.after)); got != e.want {
					t.Fatalf("event %d: Allow(%q, t0+%v) = %v, want %v", i, e.key, e.after, got, e.want)
				}
			}
		})
	}
}

func TestLimiterEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1.0/3600, 1, 2) // effectively no refill during the test
	l.Allow("a", t0)
	l.Allow("b", t0.Add(time.Second))
	l.Allow("a", t0.Add(2*time.Second)) // refused, but a is now most recent
	l.Allow("c", t0.Add(3*time.Second)) // evicts b
	if n := len(l.keys); n != 2 || l.order.Len() != 2 {
		t.Fatalf("limiter tracks %d keys (list %d), want 2", n, l.order.Len())
	}
	if _, ok := l.keys["b"]; ok {
		t.Fatal("b was not evicted")
	}
	if l.Allow("a", t0.Add(4*time.Second)) {
		t.Fatal("a was evicted instead of b")
	}
	if !l.Allow("b", t0.Add(5*time.Second)) {
		t.Fatal("evicted key b did not start with a full bucket")
	}
}

func TestLimiterDropsFullBuckets(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1, 2, 100)
	for i := range 10 {
		l.Allow(fmt.Sprint(i), t0)
	}
	// Two seconds later all buckets are full again; each call may drop
	// idle full buckets, so the map shrinks without reaching maxKeys.
	for range 10 {
		l.Allow("z", t0.Add(2*time.Second))
	}
	if n := len(l.keys); n > 1 {
		t.Fatalf("limiter still tracks %d keys after they refilled, want 1", n)
	}
}

func TestLimiterBoundsMemory(t *testing.T) {
	t.Parallel()
	const maxKeys = 50
	l := NewLimiter(1, 5, maxKeys)
	for i := range 1000 {
		if !l.Allow(fmt.Sprint("client-", i), t0) {
			t.Fatalf("first event for a new key refused")
		}
		if len(l.keys) > maxKeys || l.order.Len() != len(l.keys) {
			t.Fatalf("after %d keys: map %d, list %d; want ≤ %d and equal", i+1, len(l.keys), l.order.Len(), maxKeys)
		}
	}
}

func TestLimiterLongKeys(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1, 1, 10)
	a, b := strings.Repeat("a", 10000), strings.Repeat("a", 9999)+"b"
	if !l.Allow(a, t0) || l.Allow(a, t0) {
		t.Fatal("long key not limited")
	}
	if !l.Allow(b, t0) {
		t.Fatal("distinct long keys share a bucket")
	}
	for k := range l.keys {
		if len(k) > maxLimiterKeyLen {
			t.Fatalf("stored key of %d bytes", len(k))
		}
	}
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	const burst = 20
	l := NewLimiter(1.0/3600, burst, 4)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if l.Allow("shared", t0) {
					allowed.Add(1)
				}
				l.Allow(fmt.Sprint(g, "-", i%8), t0)
			}
		})
	}
	wg.Wait()
	// "shared" may be evicted by the churn of other keys and start again,
	// so only the invariants are certain.
	if allowed.Load() < burst {
		t.Fatalf("allowed %d events for shared key, want at least %d", allowed.Load(), burst)
	}
	if len(l.keys) > 4 || l.order.Len() != len(l.keys) {
		t.Fatalf("map %d, list %d; want ≤ 4 and equal", len(l.keys), l.order.Len())
	}
}

func TestNewLimiterPanics(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rate           float64
		burst, maxKeys int
	}{
		{0, 1, 1}, {-1, 1, 1}, {math.NaN(), 1, 1}, {math.Inf(1), 1, 1},
		{1, 0, 1}, {1, 1, 0}, {1, -1, 1},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewLimiter(%v, %d, %d) did not panic", tt.rate, tt.burst, tt.maxKeys)
				}
			}()
			NewLimiter(tt.rate, tt.burst, tt.maxKeys)
		}()
	}
}
