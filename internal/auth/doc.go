// Package auth provides the credential primitives the Bulwark server uses
// for admin users, API tokens, enrolment tokens and console sessions:
//
//   - argon2id password hashing in PHC string form ([HashPassword],
//     [VerifyPassword]), a [Hasher] that caps how many hashes run at once,
//     a password policy ([CheckPasswordPolicy]) and generator
//     ([GeneratePassword]);
//   - random secret tokens of the form <prefix>_<id>_<secret>
//     ([NewSecretToken], [ParseSecretToken]) whose id is the database key and
//     whose secret is stored only as a SHA-256 hash;
//   - RFC 6238 TOTP with replay protection ([NewTOTP], [ValidateTOTP]);
//   - per-key throttling ([Limiter]) and account lockout ([LockoutUntil]);
//   - CSRF tokens ([NewCSRFToken], [CSRFValid]).
//
// All randomness comes from crypto/rand. Secret comparisons are constant
// time, and no error returned by this package contains a password, token
// secret or TOTP code.
//
// Concurrency: every function in this package is safe to call from multiple
// goroutines. [Hasher] and [Limiter] are safe for concurrent use by multiple
// goroutines. [SecretToken] is a plain value.
package auth
