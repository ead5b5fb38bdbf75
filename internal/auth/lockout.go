package auth

import "time"

// Lockout policy; see [LockoutUntil].
const (
	lockoutThreshold = 5
	lockoutBase      = time.Minute
	lockoutMax       = time.Hour
)

// LockoutUntil returns the time until which an account must refuse logins
// after consecutiveFailures failed attempts in a row (counting the latest),
// the last of them at now. The policy:
//
//   - fewer than 5 failures: no lockout (the zero time);
//   - 5 failures: locked for 1 minute;
//   - each further failure doubles the lockout (2, 4, 8, 16, 32 minutes …);
//   - the lockout never exceeds 1 hour (reached at 11 failures).
//
// The counter should reset on a successful login. Lockout slows guessing
// against one account; combine it with a per-client [Limiter] to slow one
// client guessing across many accounts.
func LockoutUntil(consecutiveFailures int, now time.Time) time.Time {
	if consecutiveFailures < lockoutThreshold {
		return time.Time{}
	}
	d := lockoutMax
	if n := consecutiveFailures - lockoutThreshold; n < 6 { // 1m<<6 > 1h
		d = min(lockoutBase<<n, lockoutMax)
	}
	return now.Add(d)
}
