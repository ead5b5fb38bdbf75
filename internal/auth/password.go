package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Parameters for new password hashes. Existing hashes are verified with the
// parameters recorded in them, so these can be raised without breaking
// stored hashes.
const (
	argonMemory  = 64 * 1024 // KiB (64 MiB)
	argonTime    = 3
	argonThreads = 2
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on parameters read from a stored hash, so that a tampered row
// cannot make verification arbitrarily expensive.
const (
	maxArgonMemory  = 1 << 20 // KiB (1 GiB)
	maxArgonTime    = 10
	maxArgonThreads = 16
	minSaltLen      = 8
	maxSaltLen      = 64
	minKeyLen       = 16
	maxKeyLen       = 64
)

// Password policy limits.
const (
	minPasswordChars = 12
	maxPasswordBytes = 256
)

// ErrMalformedHash is returned (wrapped) by [VerifyPassword] when the
// encoded hash cannot be parsed or its parameters are out of bounds.
var ErrMalformedHash = errors.New("password: malformed hash")

// phc is the base64 encoding used by the PHC string format.
var phc = base64.RawStdEncoding.Strict()

// dummyHash is a hash of a random, discarded password made with the
// default parameters; [DummyVerify] verifies against it. A test checks
// that its parameters match the constants above.
const dummyHash = "$argon2id$v=19$m=65536,t=3,p=2$ExBTZyoDtNBk2GyAO2/1AQ$KwM6J+G4xMg/98zfDssPgiOXrukpIG/66MAu5J6seHw"

// HashPassword hashes pw with argon2id (64 MiB, 3 passes, 2 lanes, 16-byte
// random salt, 32-byte key) and returns it in PHC string form:
//
//	$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>
//
// with salt and hash in unpadded standard base64. It does not apply
// [CheckPasswordPolicy]. Each call allocates 64 MiB; use a [Hasher] to
// bound how many run at once.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: reading random salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads,
		phc.EncodeToString(salt), phc.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw matches encoded, a hash produced by
// [HashPassword]. The argon2id parameters are taken from encoded but must
// be within bounds (m ≤ 1<<20 KiB, t ≤ 10, p ≤ 16). A wrong password yields
// (false, nil); an error, wrapping [ErrMalformedHash], is returned only when
// encoded is malformed. The final comparison is constant time.
func VerifyPassword(encoded, pw string) (bool, error) {
	p, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(pw), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// DummyVerify spends about as long as [VerifyPassword] does on a hash made
// by [HashPassword]. Call it when a login names a user that does not exist,
// so that response time does not reveal which usernames exist.
func DummyVerify() {
	_, _ = VerifyPassword(dummyHash, "bulwark-dummy-password")
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func malformedHash(why string) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, why)
}

// parseHash parses and bounds-checks a PHC argon2id string.
func parseHash(encoded string) (argonParams, error) {
	var p argonParams
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, hash
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, malformedHash("wrong number of fields")
	}
	if parts[1] != "argon2id" {
		return p, malformedHash("algorithm is not argon2id")
	}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, malformedHash("unsupported version")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return p, malformedHash("bad parameter list")
	}
	m, ok1 := parseParam(params[0], "m=", maxArgonMemory)
	t, ok2 := parseParam(params[1], "t=", maxArgonTime)
	l, ok3 := parseParam(params[2], "p=", maxArgonThreads)
	if !ok1 || !ok2 || !ok3 {
		return p, malformedHash("parameter missing or out of range")
	}
	if t < 1 || l < 1 || m < 8*l {
		return p, malformedHash("parameter out of range")
	}
	salt, err := phc.DecodeString(parts[4])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return p, malformedHash("bad salt")
	}
	key, err := phc.DecodeString(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return p, malformedHash("bad hash")
	}
	return argonParams{memory: m, time: t, threads: uint8(l), salt: salt, key: key}, nil
}

// parseParam parses "<name><decimal>" with no sign and no leading zeros,
// and reports whether it is present and at most max.
func parseParam(s, name string, max uint32) (uint32, bool) {
	digits, ok := strings.CutPrefix(s, name)
	if !ok || digits == "" || len(digits) > 10 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > uint64(max) {
		return 0, false
	}
	return uint32(v), true
}

// CheckPasswordPolicy reports whether pw is acceptable as a new password:
// valid UTF-8, at least 12 characters, at most 256 bytes, and not one
// character repeated. The error text is meant to be shown to the user and
// never contains the password.
func CheckPasswordPolicy(pw string) error {
	if !utf8.ValidString(pw) {
		return errors.New("password: must be valid UTF-8 text")
	}
	if len(pw) > maxPasswordBytes {
		return fmt.Errorf("password: must be at most %d bytes long", maxPasswordBytes)
	}
	if utf8.RuneCountInString(pw) < minPasswordChars {
		return fmt.Errorf("password: must be at least %d characters long", minPasswordChars)
	}
	first, _ := utf8.DecodeRuneInString(pw)
	if strings.Trim(pw, string(first)) == "" {
		return errors.New("password: must not be a single character repeated")
	}
	return nil
}

// passwordAlphabet has 56 symbols with no look-alikes (no I, O, l, o, 0, 1),
// so a 24-character password carries 24·log2(56) ≈ 139 bits of entropy.
const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"

const generatedPasswordLen = 24

// GeneratePassword returns a random 24-character password drawn uniformly
// from an alphabet of 56 unambiguous letters and digits (about 139 bits of
// entropy). The result satisfies [CheckPasswordPolicy].
func GeneratePassword() (string, error) {
	// Rejection sampling: accept bytes below the largest multiple of the
	// alphabet size so every symbol is equally likely.
	const limit = 256 - 256%len(passwordAlphabet)
	out := make([]byte, 0, generatedPasswordLen)
	buf := make([]byte, 2*generatedPasswordLen)
	for {
		out = out[:0]
		for len(out) < generatedPasswordLen {
			if _, err := rand.Read(buf); err != nil {
				return "", fmt.Errorf("password: reading random bytes: %w", err)
			}
			for _, b := range buf {
				if int(b) < limit && len(out) < generatedPasswordLen {
					out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
				}
			}
		}
		pw := string(out)
		if CheckPasswordPolicy(pw) == nil { // fails with probability 56^-23
			return pw, nil
		}
	}
}

// Hasher runs [HashPassword] and [VerifyPassword] with at most a fixed
// number in flight, so that a burst of logins cannot exhaust memory (each
// hash uses 64 MiB). Callers beyond the limit wait for a slot or for their
// context to end. A Hasher is safe for concurrent use by multiple
// goroutines.
type Hasher struct {
	sem chan struct{}
}

// NewHasher returns a Hasher that runs at most maxConcurrent hashes at
// once. A maxConcurrent below 1 means 1.
func NewHasher(maxConcurrent int) *Hasher {
	return &Hasher{sem: make(chan struct{}, max(maxConcurrent, 1))}
}

func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("password: waiting for hasher: %w", err)
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("password: waiting for hasher: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash is [HashPassword] run in a slot. It returns an error wrapping
// ctx.Err() if ctx ends before a slot is free.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return HashPassword(pw)
}

// Verify is [VerifyPassword] run in a slot. It returns an error wrapping
// ctx.Err() if ctx ends before a slot is free.
func (h *Hasher) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	return VerifyPassword(encoded, pw)
}

// DummyVerify is [DummyVerify] run in a slot, so that a login for an
// unknown user queues and costs the same as one for a known user. It
// returns an error wrapping ctx.Err() if ctx ends before a slot is free.
func (h *Hasher) DummyVerify(ctx context.Context) error {
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	DummyVerify()
	return nil
}
