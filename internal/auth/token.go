package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// Token prefixes. A prefix says what a token is for, so that one kind of
// token is never accepted as another and leaked tokens are easy to spot.
const (
	PrefixAPIToken       = "bwk" // admin API tokens
	PrefixEnrolmentToken = "bwe" // device enrolment tokens
	PrefixSession        = "bws" // console session IDs
)

const (
	tokenIDBytes     = 8  // 64 bits, 16 hex characters
	tokenSecretBytes = 32 // 256 bits, 43 base64url characters
	tokenIDLen       = 2 * tokenIDBytes
	tokenSecretLen   = 43 // base64.RawURLEncoding.EncodedLen(tokenSecretBytes)
	maxPrefixLen     = 16
)

// ErrMalformedToken is returned (possibly wrapped) by [ParseSecretToken]
// for any string that is not a well-formed token with the expected prefix.
// Its text never includes the token.
var ErrMalformedToken = errors.New("token: malformed")

var (
	errWrongPrefix   = fmt.Errorf("%w: wrong prefix", ErrMalformedToken)
	errInvalidPrefix = errors.New("token: invalid prefix (want 1-16 lowercase letters or digits)")
)

// tokenSecretEncoding rejects non-canonical encodings (non-zero trailing
// bits), so each secret has exactly one string form.
var tokenSecretEncoding = base64.RawURLEncoding.Strict()

// SecretToken is a newly minted token.
type SecretToken struct {
	// Plain is the full token, <prefix>_<id>_<secret>, to be shown once to
	// its holder and never stored.
	Plain string
	// ID is the 16 lowercase hex characters identifying the token: the
	// database key.
	ID string
	// Hash is SHA-256 of the 32 secret bytes (the base64url-decoded secret
	// part of Plain): the only form of the secret to store.
	Hash []byte
}

// NewSecretToken returns a fresh token <prefix>_<id>_<secret>, where id is
// 64 random bits as 16 lowercase hex characters and secret is 256 random
// bits as 43 base64url characters (no padding). The prefix must be 1 to 16
// lowercase ASCII letters or digits; use the Prefix constants.
func NewSecretToken(prefix string) (t SecretToken, err error) {
	if !validPrefix(prefix) {
		return SecretToken{}, errInvalidPrefix
	}
	var buf [tokenIDBytes + tokenSecretBytes]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return SecretToken{}, fmt.Errorf("token: reading random bytes: %w", err)
	}
	id := hex.EncodeToString(buf[:tokenIDBytes])
	secret := buf[tokenIDBytes:]
	sum := sha256.Sum256(secret)
	return SecretToken{
		Plain: prefix + "_" + id + "_" + tokenSecretEncoding.EncodeToString(secret),
		ID:    id,
		Hash:  sum[:],
	}, nil
}

// ParseSecretToken parses a token made by [NewSecretToken] with the given
// prefix and returns its id and the SHA-256 hash of its secret, to be
// looked up by id and compared with [HashesEqual]. Parsing is strict: the
// prefix must match exactly, the id must be 16 lowercase hex characters and
// the secret 43 canonical base64url characters. Any other s yields an
// error wrapping [ErrMalformedToken] that does not echo s. An invalid
// prefix (see [NewSecretToken]) is a programming error and yields a
// different error.
func ParseSecretToken(prefix, s string) (id string, hash []byte, err error) {
	if !validPrefix(prefix) {
		return "", nil, errInvalidPrefix
	}
	// The secret alphabet includes '_', so split by position, not by '_'.
	rest, ok := cutPrefixUnderscore(s, prefix)
	if !ok {
		return "", nil, errWrongPrefix
	}
	if len(rest) != tokenIDLen+1+tokenSecretLen || rest[tokenIDLen] != '_' {
		return "", nil, ErrMalformedToken
	}
	id, secret := rest[:tokenIDLen], rest[tokenIDLen+1:]
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", nil, ErrMalformedToken
		}
	}
	raw, err := tokenSecretEncoding.DecodeString(secret)
	if err != nil || len(raw) != tokenSecretBytes {
		return "", nil, ErrMalformedToken
	}
	sum := sha256.Sum256(raw)
	return id, sum[:], nil
}

// cutPrefixUnderscore returns s without its leading prefix and '_'.
func cutPrefixUnderscore(s, prefix string) (string, bool) {
	if len(s) <= len(prefix) || s[:len(prefix)] != prefix || s[len(prefix)] != '_' {
		return "", false
	}
	return s[len(prefix)+1:], true
}

func validPrefix(p string) bool {
	if p == "" || len(p) > maxPrefixLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// HashesEqual reports, in constant time for equal lengths, whether a and b
// are equal. Empty inputs never match, so a missing stored hash cannot
// match anything.
func HashesEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(a, b) == 1
}
