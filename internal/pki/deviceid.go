package pki

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

const (
	deviceIDPrefix = "dev_"
	// deviceIDChars is the length of 128 bits in unpadded base32.
	deviceIDChars = 26
)

var deviceIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewDeviceID returns a new random device ID: "dev_" followed by 128
// random bits as 26 lowercase, unpadded base32 characters.
func NewDeviceID() string {
	var b [16]byte
	rand.Read(b[:])
	return deviceIDPrefix + deviceIDEncoding.EncodeToString(b[:])
}

// ValidDeviceID reports whether s has the form NewDeviceID returns: the
// prefix, 26 characters of a-z and 2-7, and a final character whose two
// unused low bits are zero (so each ID has exactly one spelling).
func ValidDeviceID(s string) bool {
	rest, ok := strings.CutPrefix(s, deviceIDPrefix)
	if !ok || len(rest) != deviceIDChars {
		return false
	}
	var v byte
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case 'a' <= c && c <= 'z':
			v = c - 'a'
		case '2' <= c && c <= '7':
			v = c - '2' + 26
		default:
			return false
		}
	}
	return v&0b11 == 0
}
