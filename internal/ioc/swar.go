package ioc

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// Byte-parallel ("SWAR") helpers for the lookup paths: they handle eight
// bytes of a digest or domain name per step instead of one. Each has a
// byte-at-a-time twin in the tests that it is checked against.

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// load64 returns the 8 bytes of s at i, little-endian (byte i lowest).
func load64(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
}

// decodeHex8 decodes the hex digits, either case, of s (len(s) ==
// 2*len(dst), a multiple of 8) into dst eight digits at a time and reports
// whether all were hex digits.
func decodeHex8(dst []byte, s string) bool {
	for i := 0; i+8 <= len(s); i += 8 {
		x := load64(s, i)
		// A byte c (< 0x80) is in [lo, hi] iff c+0x80-lo has its high
		// bit set and c+0x7f-hi has not; no sum carries into the next byte.
		digit := (x + (0x80-'0')*ones) &^ (x + (0x7f-'9')*ones)
		l := x | 0x20*ones // folds 'A'-'F' onto 'a'-'f' and nothing else onto them
		letter := (l + (0x80-'a')*ones) &^ (l + (0x7f-'f')*ones)
		if x&highs != 0 || (digit|letter)&highs != highs {
			return false
		}
		// Digits are 0x30-0x39, letters 0x41-0x46 or 0x61-0x66: the
		// value is the low nibble, plus 9 for letters (bit 6 set).
		n := x&(0x0f*ones) + (x>>6&ones)*9
		// Pair nibbles: byte 2k becomes digit 2k<<4 | digit 2k+1.
		n = (n&0x000f000f000f000f)<<4 | n>>8&0x000f000f000f000f
		n = (n | n>>8) & 0x0000ffff0000ffff
		n = (n | n>>16) & 0xffffffff
		binary.LittleEndian.PutUint32(dst[i/2:], uint32(n))
	}
	return true
}

// lower8 returns x with the bytes 'A'-'Z' made lower case.
func lower8(x uint64) uint64 {
	t := x &^ highs // so that no sum below carries; bytes >= 0x80 are excluded by &^ x
	upper := (t + (0x80-'A')*ones) &^ (t + (0x7f-'Z')*ones) &^ x & highs
	return x | upper>>2
}

// zeroBytes returns a mask with the high bit set in each byte of x that is
// zero, and no other bit.
func zeroBytes(x uint64) uint64 {
	return ^((x&^highs + ^uint64(highs)) | x | ^uint64(highs))
}

// dots8 returns a mask with the high bit set in each byte of x that is '.'.
func dots8(x uint64) uint64 { return zeroBytes(x ^ '.'*ones) }

// lowerDomainInto writes name in lower case to b (len(b) == len(name),
// at most 253) and the offsets of its dots, in order, to dots, and returns
// how many dots there are.
func lowerDomainInto(b []byte, dots *[253]uint8, name string) int {
	n := 0
	i := 0
	for ; i+8 <= len(name); i += 8 {
		x := load64(name, i)
		binary.LittleEndian.PutUint64(b[i:], lower8(x))
		for d := dots8(x); d != 0; d &= d - 1 {
			dots[n] = uint8(i + bits.TrailingZeros64(d)/8)
			n++
		}
	}
	for ; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '.' {
			dots[n] = uint8(i)
			n++
		}
		b[i] = c
	}
	return n
}
