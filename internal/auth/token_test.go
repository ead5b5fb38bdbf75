package auth

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"regexp"
	"strings"
	"testing"
)

var idPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestSecretTokenRoundTrip(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{PrefixAPIToken, PrefixEnrolmentToken, PrefixSession, "x", "abcdefghij012345"} {
		tok, err := NewSecretToken(prefix)
		if err != nil {
			t.Fatal(err)
		}
		pattern := regexp.MustCompile(`^` + prefix + `_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$`)
		if !pattern.MatchString(tok.Plain) {
			t.Fatalf("NewSecretToken(%q).Plain = %q, not in the expected form", prefix, tok.Plain)
		}
		if !idPattern.MatchString(tok.ID) || !strings.HasPrefix(tok.Plain, prefix+"_"+tok.ID+"_") {
			t.Fatalf("ID %q does not match Plain %q", tok.ID, tok.Plain)
		}
		secret, _ := tokenSecretEncoding.DecodeString(tok.Plain[len(tok.Plain)-43:])
		if sum := sha256.Sum256(secret); !bytes.Equal(tok.Hash, sum[:]) {
			t.Fatalf("Hash is not SHA-256 of the secret bytes")
		}

		id, hash, err := ParseSecretToken(prefix, tok.Plain)
		if err != nil {
			t.Fatalf("ParseSecretToken(%q): %v", tok.Plain, err)
		}
		if id != tok.ID || !HashesEqual(hash, tok.Hash) {
			t.Fatalf("ParseSecretToken(%q) = %q, %x; want %q, %x", tok.Plain, id, hash, tok.ID, tok.Hash)
		}
	}
}

func TestNewSecretTokenUnique(t *testing.T) {
	t.Parallel()
	a, err := NewSecretToken(PrefixSession)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecretToken(PrefixSession)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID || a.Plain == b.Plain || HashesEqual(a.Hash, b.Hash) {
		t.Fatalf("two tokens share parts: %q, %q", a.Plain, b.Plain)
	}
}

func TestNewSecretTokenInvalidPrefix(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "BWK", "bw_k", "bw-k", "bwk ", "abcdefghij0123456", "bwé"} {
		if tok, err := NewSecretToken(prefix); err == nil {
			t.Errorf("NewSecretToken(%q) = %q, want error", prefix, tok.Plain)
		}
		if _, _, err := ParseSecretToken(prefix, prefix+"_0123456789abcdef_"+strings.Repeat("A", 43)); err == nil {
			t.Errorf("ParseSecretToken(%q, …) succeeded, want error", prefix)
		}
	}
}

// nonCanonical changes the last base64url character so that its unused low
// bits are set: it decodes (leniently) to the same bytes but is not the
// canonical encoding.
func nonCanonical(secret string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, secret[len(secret)-1])
	return secret[:len(secret)-1] + string(alphabet[i|1])
}

func TestParseSecretTokenMalformed(t *testing.T) {
	t.Parallel()
	const (
		id     = "0123456789abcdef"
		secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" // bytes 0..31
	)
	valid := "bwk_" + id + "_" + secret
	if _, _, err := ParseSecretToken("bwk", valid); err != nil {
		t.Fatalf("base case %q does not parse: %v", valid, err)
	}
	for _, tt := range []struct {
		name, s string
	}{
		{"empty", ""},
		{"prefix only", "bwk"},
		{"prefix and underscore", "bwk_"},
		{"other prefix", "bwe_" + id + "_" + secret},
		{"uppercase prefix", "BWK_" + id + "_" + secret},
		{"longer prefix", "bwkx_" + id + "_" + secret},
		{"no prefix", id + "_" + secret},
		{"dash after prefix", "bwk-" + id + "_" + secret},
		{"dash after id", "bwk_" + id + "-" + secret},
		{"no separator after id", "bwk_" + id + secret},
		{"uppercase id", "bwk_0123456789ABCDEF_" + secret},
		{"non-hex id", "bwk_0123456789abcdeg_" + secret},
		{"short id", "bwk_0123456789abcde_" + secret},
		{"long id", "bwk_0123456789abcdef0_" + secret},
		{"short secret", "bwk_" + id + "_" + secret[:42]},
		{"long secret", "bwk_" + id + "_" + secret + "A"},
		{"padded secret", "bwk_" + id + "_" + secret + "="},
		{"std base64 secret", "bwk_" + id + "_" + "+" + secret[1:]},
		{"slash in secret", "bwk_" + id + "_" + "/" + secret[1:]},
		{"space in secret", "bwk_" + id + "_" + " " + secret[1:]},
		{"non-canonical secret", "bwk_" + id + "_" + nonCanonical(secret)},
		{"empty secret", "bwk_" + id + "_"},
		{"leading space", " " + valid},
		{"trailing newline", valid + "\n"},
		{"bearer", "Bearer " + valid},
		{"non-ASCII", "bwk_" + id + "_" + secret[:41] + "é"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, hash, err := ParseSecretToken("bwk", tt.s)
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("ParseSecretToken(%q) = %q, %x, %v; want ErrMalformedToken", tt.s, id, hash, err)
			}
			if id != "" || hash != nil {
				t.Fatalf("ParseSecretToken(%q) returned id %q, hash %x with an error", tt.s, id, hash)
			}
			if strings.Contains(err.Error(), secret[:8]) {
				t.Fatalf("error %q echoes the secret", err)
			}
		})
	}
}

func TestParseSecretTokenSecretWithUnderscores(t *testing.T) {
	t.Parallel()
	s := "bws_ffffffffffffffff_" + "____________________________________________"[:42] + "w"
	id, hash, err := ParseSecretToken("bws", s)
	if err != nil || id != "ffffffffffffffff" || len(hash) != 32 {
		t.Fatalf("ParseSecretToken(%q) = %q, %x, %v", s, id, hash, err)
	}
}

func TestHashesEqual(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b []byte
		want bool
	}{
		{[]byte{1, 2, 3}, []byte{1, 2, 3}, true},
		{[]byte{1, 2, 3}, []byte{1, 2, 4}, false},
		{[]byte{1, 2, 3}, []byte{1, 2}, false},
		{nil, nil, false},
		{[]byte{}, []byte{}, false},
		{nil, []byte{1}, false},
	} {
		if got := HashesEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("HashesEqual(%x, %x) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
