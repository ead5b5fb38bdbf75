package simulate

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	t.Parallel()
	// Every bucket's bounds map back to it, and buckets tile the range.
	var next uint64
	for i := range numBuckets {
		lo, hi := bucketBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but bucketOf gives %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		next = hi + 1
	}
	if next != 1<<63 {
		t.Fatalf("buckets end at %d, want 2^63", next)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(n int, f func(i int) time.Duration) []time.Duration {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = f(i)
		}
		return s
	}
	tests := []struct {
		name    string
		samples []time.Duration
	}{
		{"one sample", []time.Duration{3 * time.Millisecond}},
		{"constant", gen(1000, func(int) time.Duration { return 5 * time.Millisecond })},
		{"small exact values", gen(128, func(i int) time.Duration { return time.Duration(i) })},
		{"zero and negative", gen(100, func(i int) time.Duration { return time.Duration(-i) })},
		{"uniform 1-100ms", gen(100_000, func(int) time.Duration {
			return time.Millisecond + time.Duration(rng.Int64N(int64(99*time.Millisecond)))
		})},
		{"exponential mean 3ms", gen(100_000, func(int) time.Duration {
			return time.Duration(rng.ExpFloat64() * 3e6)
		})},
		{"log-normal around 2ms", gen(100_000, func(int) time.Duration {
			return time.Duration(2e6 * math.Exp(rng.NormFloat64()))
		})},
		{"bimodal 98% 2ms, 2% 400ms", gen(50_000, func(int) time.Duration {
			if rng.IntN(100) < 2 {
				return 400*time.Millisecond + time.Duration(rng.Int64N(int64(50*time.Millisecond)))
			}
			return 2*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
		})},
		{"spanning µs to minutes", gen(10_000, func(int) time.Duration {
			return time.Duration(math.Pow(10, 3+rng.Float64()*8))
		})},
	}
	for _, tt := range tests {
		h := newHistogram()
		for _, d := range tt.samples {
			h.Record(d)
		}
		sorted := slices.Clone(tt.samples)
		for i := range sorted {
			sorted[i] = max(sorted[i], 0)
		}
		slices.Sort(sorted)
		if got := h.Count(); got != int64(len(sorted)) {
			t.Errorf("%s: Count = %d, want %d", tt.name, got, len(sorted))
		}
		if got, want := h.Max(), sorted[len(sorted)-1]; got != want {
			t.Errorf("%s: Max = %v, want %v", tt.name, got, want)
		}
		for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.97, 0.99, 0.999, 1} {
			rank := int(math.Ceil(q * float64(len(sorted))))
			want := sorted[max(rank, 1)-1]
			got := h.Quantile(q)
			// The histogram knows a value to within 1/128 of itself.
			if diff := math.Abs(float64(got - want)); diff > float64(want)/128 {
				t.Errorf("%s: Quantile(%v) = %v, want %v (±%.2f%%)", tt.name, q, got, want, 100.0/128)
			}
		}
	}
}

func TestHistogramEmpty(t *testing.T) {
	t.Parallel()
	h := newHistogram()
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Count() != 0 {
		t.Errorf("empty histogram: p50=%v max=%v count=%d, want zeros", h.Quantile(0.5), h.Max(), h.Count())
	}
}

func TestHistogramConcurrent(t *testing.T) {
	t.Parallel()
	h := newHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10_000 {
				h.Record(time.Duration(g*10_000+i) * time.Microsecond)
				if i%1000 == 0 {
					h.Quantile(0.99) // reading while recording must be safe
				}
			}
		})
	}
	wg.Wait()
	if h.Count() != 80_000 {
		t.Fatalf("Count = %d, want 80000", h.Count())
	}
	if got, want := h.Max(), 79_999*time.Microsecond; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
	if got, want := h.Quantile(0.5), 39_999*time.Microsecond; math.Abs(float64(got-want)) > float64(want)/128 {
		t.Errorf("p50 = %v, want %v", got, want)
	}
}
