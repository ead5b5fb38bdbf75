package ioc

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// decodeHexBytewise is decodeHex one byte at a time.
func decodeHexBytewise(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	bad := byte(0)
	for i := range dst {
		hi, lo := hexVal[s[2*i]], hexVal[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
	}
	return bad&0xf0 == 0
}

// randomText returns n bytes mostly from alphabet, sometimes any byte.
func randomText(r *rand.Rand, n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		if r.IntN(50) == 0 {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
	}
	return string(b)
}

func TestDecodeHexSWAR(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const hexAlpha = "0123456789abcdefABCDEF"
	// Every byte value in every position of an 8-digit group.
	for pos := range 8 {
		for c := range 256 {
			b := []byte("0123abCD")
			b[pos] = byte(c)
			var got, want [4]byte
			okGot, okWant := decodeHex(got[:], string(b)), decodeHexBytewise(want[:], string(b))
			if okGot != okWant || okGot && got != want {
				t.Fatalf("decodeHex(%q) = %x %v, want %x %v", b, got, okGot, want, okWant)
			}
		}
	}
	for range 100_000 {
		s := randomText(r, 2*r.IntN(34), hexAlpha)
		got, want := make([]byte, len(s)/2), make([]byte, len(s)/2)
		okGot, okWant := decodeHex(got, s), decodeHexBytewise(want, s)
		if okGot != okWant || okGot && string(got) != string(want) {
			t.Fatalf("decodeHex(%q) = %x %v, want %x %v", s, got, okGot, want, okWant)
		}
	}
}

func TestLowerDomainSWAR(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	check := func(name string) {
		t.Helper()
		b := make([]byte, len(name))
		var dots [253]uint8
		n := lowerDomainInto(b, &dots, name)
		var wantDots []uint8
		for i := range len(name) {
			if name[i] == '.' {
				wantDots = append(wantDots, uint8(i))
			}
		}
		wb := []byte(name)
		for i, c := range wb {
			if 'A' <= c && c <= 'Z' {
				wb[i] = c + 'a' - 'A'
			}
		}
		if string(b) != string(wb) || n != len(wantDots) || string(dots[:n]) != string(wantDots) {
			t.Fatalf("lowerDomainInto(%q) = %q, dots %v; want %q, %v", name, b, dots[:n], wb, wantDots)
		}
	}
	for c := range 256 {
		for pos := range 9 {
			b := []byte("aZ.Q-9.zx")
			b[pos] = byte(c)
			check(string(b))
		}
	}
	for range 100_000 {
		check(randomText(r, r.IntN(254), "abcxyzABCXYZ09-._@[`{"))
	}
	check(strings.Repeat(".", 253))
}
