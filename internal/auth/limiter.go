package auth

import (
	"container/list"
	"crypto/sha256"
	"fmt"
	"math"
	"sync"
	"time"
)

// maxLimiterKeyLen bounds the memory one key can hold: longer keys are
// replaced by their SHA-256 hash.
const maxLimiterKeyLen = 64

// Limiter is an in-memory token-bucket rate limiter keyed by string (a
// client IP, a username). Each key's bucket holds up to burst tokens and
// refills at rate tokens per second; each allowed event takes one token.
//
// Memory is bounded: at most maxKeys buckets are kept, and when a new key
// arrives at the limit the least recently used bucket is dropped (that key
// starts again with a full bucket). Buckets that have refilled completely
// are dropped early, since forgetting them changes nothing.
//
// A Limiter is safe for concurrent use by multiple goroutines.
type Limiter struct {
	rate    float64
	burst   float64
	maxKeys int

	mu    sync.Mutex
	keys  map[string]*list.Element // values are *bucket
	order list.List                // front: most recently used
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// NewLimiter returns a Limiter that allows burst events at once per key and
// rate events per second after that, tracking at most maxKeys keys. It
// panics if rate is not a finite positive number or burst or maxKeys is
// less than 1.
func NewLimiter(rate float64, burst int, maxKeys int) *Limiter {
	if !(rate > 0) || math.IsInf(rate, 0) {
		panic(fmt.Sprintf("auth: NewLimiter: rate %v is not a finite positive number", rate))
	}
	if burst < 1 || maxKeys < 1 {
		panic(fmt.Sprintf("auth: NewLimiter: burst %d and maxKeys %d must be at least 1", burst, maxKeys))
	}
	return &Limiter{
		rate:    rate,
		burst:   float64(burst),
		maxKeys: maxKeys,
		keys:    make(map[string]*list.Element),
	}
}

// Allow reports whether an event for key may happen at now, and if so
// takes a token from key's bucket. Times earlier than a key's last event
// (clock steps, goroutines racing) neither refill nor drain the bucket.
func (l *Limiter) Allow(key string, now time.Time) bool {
	if len(key) > maxLimiterKeyLen {
		sum := sha256.Sum256([]byte(key))
		key = string(sum[:])
	}
	l.mu.Lock()
	defer l.mu.Unlock()

	if e, ok := l.keys[key]; ok {
		b := e.Value.(*bucket)
		l.refill(b, now)
		l.order.MoveToFront(e)
		l.dropFull(now)
		if b.tokens < 1 {
			return false
		}
		b.tokens--
		return true
	}

	l.dropFull(now)
	for len(l.keys) >= l.maxKeys {
		l.remove(l.order.Back())
	}
	b := &bucket{key: key, tokens: l.burst - 1, last: now}
	l.keys[key] = l.order.PushFront(b)
	return true
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
}

// dropFull removes least recently used buckets that would be full at now,
// stopping at the first that would not. It does a bounded amount of work.
func (l *Limiter) dropFull(now time.Time) {
	for range 2 {
		e := l.order.Back()
		if e == nil || e == l.order.Front() {
			return
		}
		b := e.Value.(*bucket)
		if b.tokens+now.Sub(b.last).Seconds()*l.rate < l.burst {
			return
		}
		l.remove(e)
	}
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.keys, e.Value.(*bucket).key)
	l.order.Remove(e)
}
