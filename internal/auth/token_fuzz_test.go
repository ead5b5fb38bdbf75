package auth

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

// FuzzParseSecretToken checks that ParseSecretToken accepts only the exact
// token form, returns an id and hash consistent with its input, and never
// puts any of its input into an error.
func FuzzParseSecretToken(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzParseSecretToken.
	f.Add("bwk", "bwk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	f.Fuzz(func(t *testing.T, prefix, s string) {
		id, hash, err := ParseSecretToken(prefix, s)
		if err != nil {
			switch msg := err.Error(); msg {
			case "token: malformed", "token: malformed: wrong prefix":
				if !errors.Is(err, ErrMalformedToken) {
					t.Fatalf("error %q does not wrap ErrMalformedToken", err)
				}
			case errInvalidPrefix.Error():
				if validPrefix(prefix) {
					t.Fatalf("valid prefix %q reported invalid", prefix)
				}
			default:
				t.Fatalf("unexpected error text %q", msg)
			}
			if id != "" || hash != nil {
				t.Fatalf("got id %q, hash %x with error %v", id, hash, err)
			}
			return
		}
		if !validPrefix(prefix) {
			t.Fatalf("accepted invalid prefix %q", prefix)
		}
		if !idPattern.MatchString(id) {
			t.Fatalf("id %q is not 16 lowercase hex characters", id)
		}
		head := prefix + "_" + id + "_"
		if !strings.HasPrefix(s, head) || len(s) != len(head)+43 {
			t.Fatalf("accepted %q: not %q followed by 43 characters", s, head)
		}
		secret := s[len(head):]
		raw, err := tokenSecretEncoding.DecodeString(secret)
		if err != nil || len(raw) != 32 {
			t.Fatalf("accepted undecodable secret %q", secret)
		}
		if tokenSecretEncoding.EncodeToString(raw) != secret {
			t.Fatalf("accepted non-canonical secret %q", secret)
		}
		if sum := sha256.Sum256(raw); !HashesEqual(hash, sum[:]) {
			t.Fatalf("hash %x is not SHA-256 of the secret", hash)
		}
	})
}
