package auth

import (
	"math"
	"testing"
	"time"
)

func TestLockoutUntil(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		failures int
		want     time.Duration // 0: no lockout
	}{
		{-1, 0},
		{0, 0},
		{1, 0},
		{4, 0},
		{5, time.Minute},
		{6, 2 * time.Minute},
		{7, 4 * time.Minute},
		{8, 8 * time.Minute},
		{9, 16 * time.Minute},
		{10, 32 * time.Minute},
		{11, time.Hour},
		{12, time.Hour},
		{70, time.Hour},
		{math.MaxInt, time.Hour},
	} {
		got := LockoutUntil(tt.failures, now)
		if tt.want == 0 {
			if !got.IsZero() {
				t.Errorf("LockoutUntil(%d) = %v, want zero time", tt.failures, got)
			}
			continue
		}
		if d := got.Sub(now); d != tt.want {
			t.Errorf("LockoutUntil(%d) = now+%v, want now+%v", tt.failures, d, tt.want)
		}
	}
}
