package auth

import (
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238 defaults, as understood by every authenticator
// app).
const (
	totpPeriod     = 30 // seconds
	totpDigits     = otp.DigitsSix
	totpSkew       = 1  // steps either side of now
	totpSecretSize = 20 // bytes (160 bits, as RFC 4226 recommends)
	minTOTPSecret  = 16 // bytes (128 bits, the RFC 4226 minimum)
)

var (
	// ErrTOTPInvalid means the code is not 6 digits or does not match.
	ErrTOTPInvalid = errors.New("totp: invalid code")
	// ErrTOTPReplay means the code matches a time step that was already
	// used (step ≤ lastStep).
	ErrTOTPReplay = errors.New("totp: code already used")
)

var totpSecretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTP generates a 160-bit TOTP secret (SHA-1, 6 digits, 30 s) for
// account at issuer. It returns the secret in unpadded base32, to be stored
// (encrypted at rest) for [ValidateTOTP], and the otpauth:// URL to show as a
// QR code. Neither issuer nor account may be empty or contain ':'.
func NewTOTP(issuer, account string) (secret, otpauthURL string, err error) {
	if issuer == "" || account == "" {
		return "", "", errors.New("totp: issuer and account must not be empty")
	}
	if strings.Contains(issuer, ":") || strings.Contains(account, ":") {
		return "", "", errors.New("totp: issuer and account must not contain ':'")
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      totpPeriod,
		SecretSize:  totpSecretSize,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", "", fmt.Errorf("totp: generating key: %w", err)
	}
	return key.Secret(), key.URL(), nil
}

// ValidateTOTP checks a 6-digit code against secret (base32, as returned by
// [NewTOTP]) at time now, accepting the current 30-second step and one step
// either side for clock skew. It returns the matched time step, which the
// caller must store and pass as lastStep next time: a code whose step is
// ≤ lastStep is refused with [ErrTOTPReplay], so each code works once. A
// code that is not exactly 6 ASCII digits, or matches no step, yields an
// error wrapping [ErrTOTPInvalid]. Any other error means secret is
// malformed.
func ValidateTOTP(secret, code string, now time.Time, lastStep int64) (step int64, err error) {
	raw, err := totpSecretEncoding.DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	if err != nil || len(raw) < minTOTPSecret {
		return 0, errors.New("totp: malformed secret")
	}
	if !isSixDigits(code) {
		return 0, fmt.Errorf("%w: must be %d digits", ErrTOTPInvalid, totpDigits.Length())
	}
	cur := floorDiv(now.Unix(), totpPeriod)
	opts := hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}
	matched, replayed := int64(-1), false
	// Check every candidate step, without stopping early, and accept the
	// earliest unused one.
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		if s < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(s), opts)
		if err != nil {
			return 0, errors.New("totp: malformed secret")
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
			continue
		}
		switch {
		case s <= lastStep:
			replayed = true
		case matched < 0:
			matched = s
		}
	}
	switch {
	case matched >= 0:
		return matched, nil
	case replayed:
		return 0, ErrTOTPReplay
	default:
		return 0, ErrTOTPInvalid
	}
}

func isSixDigits(code string) bool {
	if len(code) != totpDigits.Length() {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// TOTPURL is the otpauth:// URL (the QR code's content) for an existing
// secret, with the same parameters as [NewTOTP].
func TOTPURL(issuer, account, secret string) string {
	v := url.Values{"secret": {secret}, "issuer": {issuer}, "algorithm": {"SHA1"},
		"digits": {strconv.Itoa(totpDigits.Length())}, "period": {strconv.Itoa(int(totpPeriod))}}
	return (&url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: v.Encode()}).String()
}
