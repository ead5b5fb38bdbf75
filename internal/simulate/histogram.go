package simulate

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear, in the manner of HdrHistogram:
// values below subCount nanoseconds have a bucket each, and every power of
// two above is split into subCount equal buckets. A value is therefore
// known to within 1/subCount of itself (under 0.8 %), whatever its
// magnitude, in a fixed 57 KiB.
const (
	subBits    = 7
	subCount   = 1 << subBits
	numBuckets = subCount * (64 - subBits) // covers every non-negative int64
)

// histogram records durations. Record and the readers are safe for
// concurrent use; readers that run during recording see a consistent
// enough snapshot for progress reports, and exact answers once recording
// has stopped.
type histogram struct {
	count   atomic.Int64
	min     atomic.Int64 // valid when count > 0
	max     atomic.Int64
	buckets [numBuckets]atomic.Int64
}

func newHistogram() *histogram {
	h := new(histogram)
	h.min.Store(math.MaxInt64)
	return h
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBits
	return subCount + shift*subCount + int(v>>shift) - subCount
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := (i - subCount) / subCount
	sub := uint64((i-subCount)%subCount + subCount)
	return sub << shift, (sub+1)<<shift - 1
}

// Record adds one observation; negative durations count as zero.
func (h *histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.buckets[bucketOf(uint64(v))].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if v >= m || h.min.CompareAndSwap(m, v) {
			break
		}
	}
	h.count.Add(1)
}

// Count is the number of observations.
func (h *histogram) Count() int64 { return h.count.Load() }

// Max is the largest observation, exact.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the q-quantile (0 < q <= 1) by the nearest-rank
// method: the smallest recorded value with at least q of all observations
// at or below it, to within 1/128 of its value. It returns zero when
// nothing was recorded.
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	lo, hi := h.min.Load(), h.max.Load()
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			blo, bhi := bucketBounds(i)
			v := int64(blo + (bhi-blo)/2)
			return time.Duration(min(max(v, lo), hi))
		}
	}
	// Recording raced with this read; the rank lies in the highest bucket.
	return time.Duration(hi)
}
