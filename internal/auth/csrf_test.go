package auth

import (
	"encoding/base64"
	"testing"
)

func TestNewCSRFToken(t *testing.T) {
	t.Parallel()
	a, err := NewCSRFToken()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCSRFToken()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 || len(a) != 43 {
		t.Fatalf("NewCSRFToken() = %q: want 43 base64url characters encoding 32 bytes (%v)", a, err)
	}
	if a == b {
		t.Fatal("two CSRF tokens are equal")
	}
	if !CSRFValid(a, a) || CSRFValid(a, b) {
		t.Fatal("CSRFValid disagrees with string equality")
	}
}

func TestCSRFValid(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		expected, got string
		want          bool
	}{
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"abc", "abcd", false},
		{"abc", "", false},
		{"", "abc", false},
		{"", "", false},
	} {
		if got := CSRFValid(tt.expected, tt.got); got != tt.want {
			t.Errorf("CSRFValid(%q, %q) = %v, want %v", tt.expected, tt.got, got, tt.want)
		}
	}
}
