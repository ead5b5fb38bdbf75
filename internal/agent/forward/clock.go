package forward

import (
	"sync"
	"time"
)

// DefaultClockThreshold is the clock offset past which a clock.offset
// event is recorded when Clock.Threshold is zero.
const DefaultClockThreshold = 5 * time.Second

// Clock keeps the device clock's offset from the server's, measured at
// each successful check-in (the answer carries server_time): offset =
// server_time − the midpoint of the request, so a positive offset means the
// device clock is behind. When |offset| passes Threshold, Record is called
// with it, at most once an hour unless the offset moved by more than the
// threshold since the last call. A Clock is safe for concurrent use; set
// its fields before the first Observe.
type Clock struct {
	// Threshold is the offset that triggers Record; zero means
	// DefaultClockThreshold.
	Threshold time.Duration
	// Record, when set, is called (outside the lock) with an offset past
	// the threshold and the threshold itself.
	Record func(offset, threshold time.Duration)

	mu        sync.Mutex
	offset    time.Duration
	rtt       time.Duration
	at        time.Time
	recorded  time.Time
	recOffset time.Duration
}

// Observe records a measurement: the request was sent at start (device
// clock), the answer received at end, and the server said server.
func (c *Clock) Observe(start, end, server time.Time) {
	if server.IsZero() || end.Before(start) {
		return
	}
	rtt := end.Sub(start)
	offset := server.Sub(start.Add(rtt / 2).Round(0))
	th := c.threshold()
	c.mu.Lock()
	c.offset, c.rtt, c.at = offset, rtt, end
	fire := abs(offset) > th && (c.recorded.IsZero() || end.Sub(c.recorded) >= time.Hour || abs(offset-c.recOffset) > th)
	if fire {
		c.recorded, c.recOffset = end, offset
	}
	c.mu.Unlock()
	if fire && c.Record != nil {
		c.Record(offset, th)
	}
}

// Offset returns the last measured offset (server time minus device
// time), the round trip it was measured over, and when; ok is false before
// the first measurement. The health check "clock" reads it.
func (c *Clock) Offset() (offset, rtt time.Duration, at time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset, c.rtt, c.at, !c.at.IsZero()
}

func (c *Clock) threshold() time.Duration {
	if c.Threshold > 0 {
		return c.Threshold
	}
	return DefaultClockThreshold
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
