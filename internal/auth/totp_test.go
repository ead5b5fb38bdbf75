package auth

import (
	"encoding/base32"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// rfcSecret is the SHA-1 seed from RFC 6238 appendix B, "12345678901234567890".
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{
		Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestValidateTOTPKnownAnswers(t *testing.T) {
	t.Parallel()
	// RFC 6238 appendix B, SHA-1, last 6 of the 8 digits.
	for _, tt := range []struct {
		unix int64
		code string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"},
	} {
		now := time.Unix(tt.unix, 0)
		step, err := ValidateTOTP(rfcSecret, tt.code, now, 0)
		if err != nil || step != tt.unix/30 {
			t.Errorf("ValidateTOTP(%s at %d) = %d, %v; want %d, nil", tt.code, tt.unix, step, err, tt.unix/30)
		}
	}
}

func TestValidateTOTP(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000015, 0) // 15 s into a step
	cur := now.Unix() / 30
	at := func(steps int64) string { return codeAt(t, rfcSecret, now.Add(time.Duration(steps)*30*time.Second)) }

	for _, tt := range []struct {
		name     string
		secret   string
		code     string
		lastStep int64
		wantStep int64
		wantErr  error
	}{
		{"current step", rfcSecret, at(0), 0, cur, nil},
		{"previous step (skew)", rfcSecret, at(-1), 0, cur - 1, nil},
		{"next step (skew)", rfcSecret, at(1), 0, cur + 1, nil},
		{"two steps back", rfcSecret, at(-2), 0, 0, ErrTOTPInvalid},
		{"two steps ahead", rfcSecret, at(2), 0, 0, ErrTOTPInvalid},
		{"lowercase secret", strings.ToLower(rfcSecret), at(0), 0, cur, nil},
		{"after last step", rfcSecret, at(0), cur - 1, cur, nil},
		{"replay of current step", rfcSecret, at(0), cur, 0, ErrTOTPReplay},
		{"replay of previous step", rfcSecret, at(-1), cur - 1, 0, ErrTOTPReplay},
		{"older step after newer used", rfcSecret, at(-1), cur, 0, ErrTOTPReplay},
		{"next step after current used", rfcSecret, at(1), cur, cur + 1, nil},
		{"5 digits", rfcSecret, at(0)[:5], 0, 0, ErrTOTPInvalid},
		{"7 digits", rfcSecret, at(0) + "0", 0, 0, ErrTOTPInvalid},
		{"empty", rfcSecret, "", 0, 0, ErrTOTPInvalid},
		{"spaces", rfcSecret, " " + at(0)[:5], 0, 0, ErrTOTPInvalid},
		{"trailing space", rfcSecret, at(0) + " ", 0, 0, ErrTOTPInvalid},
		{"letters", rfcSecret, "12345a", 0, 0, ErrTOTPInvalid},
		{"sign", rfcSecret, "+12345", 0, 0, ErrTOTPInvalid},
		{"full-width digits", rfcSecret, "１２３４５６", 0, 0, ErrTOTPInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			step, err := ValidateTOTP(tt.secret, tt.code, now, tt.lastStep)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ValidateTOTP(%q) = %d, %v; want %v", tt.code, step, err, tt.wantErr)
				}
				if tt.code != "" && strings.Contains(err.Error(), tt.code) {
					t.Fatalf("error %q echoes the code", err)
				}
				return
			}
			if err != nil || step != tt.wantStep {
				t.Fatalf("ValidateTOTP(%q) = %d, %v; want %d, nil", tt.code, step, err, tt.wantStep)
			}
		})
	}
}

func TestValidateTOTPWrongCode(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000015, 0)
	valid := map[string]bool{}
	for s := -1; s <= 1; s++ {
		valid[codeAt(t, rfcSecret, now.Add(time.Duration(s)*30*time.Second))] = true
	}
	for _, code := range []string{"000000", "123456", "999999"} {
		if valid[code] {
			continue
		}
		if _, err := ValidateTOTP(rfcSecret, code, now, 0); !errors.Is(err, ErrTOTPInvalid) {
			t.Errorf("ValidateTOTP(%q) err = %v, want ErrTOTPInvalid", code, err)
		}
	}
}

func TestValidateTOTPMalformedSecret(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000015, 0)
	for _, secret := range []string{
		"",
		"not base32!",
		"GEZDGNBVGY3TQOJQ", // 10 bytes: below the 128-bit minimum
		rfcSecret + "1",    // '1' is not in the base32 alphabet
	} {
		_, err := ValidateTOTP(secret, "123456", now, 0)
		if err == nil || errors.Is(err, ErrTOTPInvalid) || errors.Is(err, ErrTOTPReplay) {
			t.Errorf("ValidateTOTP(secret %q) err = %v, want a malformed-secret error", secret, err)
		}
	}
}

func TestNewTOTP(t *testing.T) {
	t.Parallel()
	secret, rawURL, err := NewTOTP("Bulwark", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil || len(raw) != 20 {
		t.Fatalf("secret %q: %d bytes, %v; want 20 bytes of unpadded base32", secret, len(raw), err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Bulwark:alice@example.com" ||
		q.Get("secret") != secret || q.Get("issuer") != "Bulwark" || q.Get("algorithm") != "SHA1" ||
		q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Fatalf("unexpected otpauth URL %q", rawURL)
	}

	now := time.Unix(1700000015, 0)
	if step, err := ValidateTOTP(secret, codeAt(t, secret, now), now, 0); err != nil || step != now.Unix()/30 {
		t.Fatalf("fresh secret: ValidateTOTP = %d, %v", step, err)
	}

	other, _, err := NewTOTP("Bulwark", "alice@example.com")
	if err != nil || other == secret {
		t.Fatalf("second secret %q, %v: want a different secret", other, err)
	}
}

func TestNewTOTPInvalid(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ issuer, account string }{
		{"", "alice"},
		{"Bulwark", ""},
		{"Bul:wark", "alice"},
		{"Bulwark", "al:ice"},
	} {
		if _, _, err := NewTOTP(tt.issuer, tt.account); err == nil {
			t.Errorf("NewTOTP(%q, %q) succeeded, want error", tt.issuer, tt.account)
		}
	}
}
