package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=65536,t=3,p=2\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	const pw = "correct horse battery staple"
	encoded, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if !phcPattern.MatchString(encoded) {
		t.Fatalf("HashPassword = %q, not in the expected PHC form", encoded)
	}
	if strings.Contains(encoded, pw) {
		t.Fatal("hash contains the password")
	}
	for _, tt := range []struct {
		pw   string
		want bool
	}{
		{pw, true},
		{"correct horse battery stapler", false},
	} {
		ok, err := VerifyPassword(encoded, tt.pw)
		if err != nil || ok != tt.want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v, nil", tt.pw, ok, err, tt.want)
		}
	}
}

// cheapHash builds a valid PHC string with small parameters, so tests can
// verify many hashes quickly and check that stored parameters are used.
func cheapHash(pw string, m, t uint32, p uint8) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, t, m, p, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p, phc.EncodeToString(salt), phc.EncodeToString(key))
}

func TestVerifyPasswordUsesStoredParams(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		m, t uint32
		p    uint8
	}{
		{8, 1, 1},
		{64, 2, 1},
		{128, 1, 4},
	} {
		encoded := cheapHash("hunter2hunter2", tt.m, tt.t, tt.p)
		if ok, err := VerifyPassword(encoded, "hunter2hunter2"); !ok || err != nil {
			t.Errorf("VerifyPassword(%q, right) = %v, %v; want true, nil", encoded, ok, err)
		}
		if ok, err := VerifyPassword(encoded, "hunter3hunter3"); ok || err != nil {
			t.Errorf("VerifyPassword(%q, wrong) = %v, %v; want false, nil", encoded, ok, err)
		}
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	t.Parallel()
	const salt = "MDEyMzQ1Njc4OWFiY2RlZg"                     // 16 bytes
	const key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 32 bytes
	hash := func(params string) string {
		return "$argon2id$v=19$" + params + "$" + salt + "$" + key
	}
	for _, tt := range []struct {
		name, encoded string
	}{
		{"empty", ""},
		{"garbage", "not a hash"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=65536,t=3,p=2$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=65536,t=3,p=2$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=65536,t=3,p=2$" + salt + "$" + key},
		{"no version", "$argon2id$m=65536,t=3,p=2$" + salt + "$" + key},
		{"no leading $", "argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + key},
		{"extra field", hash("m=65536,t=3,p=2") + "$x"},
		{"trailing $", hash("m=65536,t=3,p=2") + "$"},
		{"memory too high", hash("m=1048577,t=3,p=2")},
		{"memory huge", hash("m=4294967296,t=3,p=2")},
		{"time too high", hash("m=65536,t=11,p=2")},
		{"threads too high", hash("m=65536,t=3,p=17")},
		{"time zero", hash("m=65536,t=0,p=2")},
		{"threads zero", hash("m=65536,t=3,p=0")},
		{"memory below 8p", hash("m=15,t=1,p=2")},
		{"leading zero", hash("m=065536,t=3,p=2")},
		{"plus sign", hash("m=+65536,t=3,p=2")},
		{"negative", hash("m=-1,t=3,p=2")},
		{"empty value", hash("m=,t=3,p=2")},
		{"params reordered", hash("t=3,m=65536,p=2")},
		{"param missing", hash("m=65536,t=3")},
		{"param extra", hash("m=65536,t=3,p=2,k=1")},
		{"spaces", hash("m=65536, t=3, p=2")},
		{"salt bad base64", "$argon2id$v=19$m=65536,t=3,p=2$!!!!$" + key},
		{"salt padded", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "==$" + key},
		{"salt too short", "$argon2id$v=19$m=65536,t=3,p=2$MDEyMzQ1Ng$" + key},
		{"salt empty", "$argon2id$v=19$m=65536,t=3,p=2$$" + key},
		{"salt non-canonical", "$argon2id$v=19$m=65536,t=3,p=2$MDEyMzQ1Njc4OWFiY2RlZh$" + key},
		{"hash empty", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$"},
		{"hash too short", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$AAAAAAAAAAAAAAAAAAAA"},
		{"hash too long", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + strings.Repeat("A", 100)},
		{"hash urlsafe alphabet", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + "-" + key[1:]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.encoded, "password")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("VerifyPassword(%q) = %v, %v; want false, ErrMalformedHash", tt.encoded, ok, err)
			}
		})
	}
}

func TestDummyHashMatchesDefaults(t *testing.T) {
	t.Parallel()
	p, err := parseHash(dummyHash)
	if err != nil {
		t.Fatal(err)
	}
	if p.memory != argonMemory || p.time != argonTime || p.threads != argonThreads ||
		len(p.salt) != argonSaltLen || len(p.key) != argonKeyLen {
		t.Fatalf("dummyHash parameters %+v differ from the defaults; regenerate it with HashPassword", p)
	}
}

func TestHasherWaitsForSlot(t *testing.T) {
	t.Parallel()
	h := NewHasher(0) // means 1
	if cap(h.sem) != 1 {
		t.Fatalf("NewHasher(0) has %d slots, want 1", cap(h.sem))
	}
	h.sem <- struct{}{} // occupy the only slot

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "password"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hash with no free slot: err = %v, want DeadlineExceeded", err)
	}
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	encoded := cheapHash("password", 8, 1, 1)
	if ok, err := h.Verify(canceled, encoded, "password"); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with no free slot: %v, %v; want false, Canceled", ok, err)
	}
	if err := h.DummyVerify(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("DummyVerify with no free slot: err = %v, want Canceled", err)
	}

	// Free the slot while a caller waits: it must proceed.
	done := make(chan error, 1)
	go func() {
		ok, err := h.Verify(context.Background(), encoded, "password")
		if err == nil && !ok {
			err = errors.New("password did not verify")
		}
		done <- err
	}()
	<-h.sem
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(h.sem) != 0 {
		t.Fatal("Verify did not release its slot")
	}
}

func TestHasherCanceledContextWithFreeSlot(t *testing.T) {
	t.Parallel()
	h := NewHasher(4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "password"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with canceled ctx: err = %v, want Canceled", err)
	}
}

func TestCheckPasswordPolicy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		pw      string
		wantErr string // substring; "" means accepted
	}{
		{"empty", "", "at least 12 characters"},
		{"11 chars", "abcdefghijk", "at least 12 characters"},
		{"12 chars", "abcdefghijkl", ""},
		{"passphrase", "correct horse battery staple", ""},
		{"12 multibyte chars", "пароль-пароль", ""},
		{"11 multibyte chars is short", "ключключклю", "at least 12 characters"},
		{"all one char", "aaaaaaaaaaaaaaaa", "single character"},
		{"all one multibyte char", strings.Repeat("é", 20), "single character"},
		{"almost all one char", "aaaaaaaaaaab", ""},
		{"256 bytes", strings.Repeat("ab", 128), ""},
		{"257 bytes", strings.Repeat("ab", 128) + "c", "at most 256 bytes"},
		{"invalid UTF-8", "abcdefghijkl\xff", "UTF-8"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPasswordPolicy(tt.pw)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckPasswordPolicy(%q) = %v, want nil", tt.pw, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CheckPasswordPolicy(%q) = %v, want error containing %q", tt.pw, err, tt.wantErr)
			case err != nil && tt.pw != "" && strings.Contains(err.Error(), tt.pw):
				t.Fatalf("error %q contains the password", err)
			}
		})
	}
}

func TestGeneratePassword(t *testing.T) {
	t.Parallel()
	if bits := generatedPasswordLen * math.Log2(float64(len(passwordAlphabet))); bits < 128 {
		t.Fatalf("generated passwords carry %.1f bits, want ≥ 128", bits)
	}
	for _, c := range "0O1lI" {
		if strings.ContainsRune(passwordAlphabet, c) {
			t.Errorf("alphabet contains ambiguous %q", c)
		}
	}
	seen := make(map[string]bool)
	for range 100 {
		pw, err := GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 24 {
			t.Fatalf("GeneratePassword() = %q, want 24 characters", pw)
		}
		if strings.Trim(pw, passwordAlphabet) != "" {
			t.Fatalf("GeneratePassword() = %q, has characters outside the alphabet", pw)
		}
		if err := CheckPasswordPolicy(pw); err != nil {
			t.Fatalf("GeneratePassword() = %q fails policy: %v", pw, err)
		}
		if seen[pw] {
			t.Fatalf("GeneratePassword() repeated %q", pw)
		}
		seen[pw] = true
	}
}
