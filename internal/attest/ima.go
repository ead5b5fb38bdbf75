package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// IMAEntry is one entry of a Linux IMA binary measurement list.
type IMAEntry struct {
	PCR      int
	Template string // "ima-ng", "ima-sig", "ima-buf" or "ima"
	// FileAlg names the file digest's algorithm ("sha256", "sha1", ...).
	FileAlg    string
	FileDigest []byte
	Path       string
	// Violation is true for an entry whose template digest is zero: the
	// kernel extended all ones (a measurement violation such as a file
	// opened for writing while measured).
	Violation bool
	// Extend is the digest the kernel extended into the SHA-256 bank:
	// SHA-256 of the template data, or all ones for a violation.
	Extend [32]byte
}

// Limits on an IMA list.
const (
	maxIMAEntries  = 1 << 16
	maxIMATemplate = 16
	maxIMAData     = 64 << 10
)

var errIMATruncated = errors.New("truncated entry")

// ParseIMALog parses a binary IMA measurement list
// (binary_runtime_measurements, little-endian as x86 and arm64 kernels
// write it) with the ima-ng, ima-sig, ima-buf or legacy ima templates, and
// computes each entry's SHA-256 template digest the way the kernel does
// for banks other than SHA-1. It does not trust the SHA-1 template digest
// in the list beyond telling violations apart. Entries' FileDigest point
// into b.
func ParseIMALog(b []byte) ([]IMAEntry, error) {
	le := binary.LittleEndian
	// An ima-ng entry for a short path is about 100 bytes.
	out := make([]IMAEntry, 0, min(len(b)/96+1, maxIMAEntries))
	for n := 0; len(b) > 0; n++ {
		if n >= maxIMAEntries {
			return nil, fmt.Errorf("IMA list: more than %d entries", maxIMAEntries)
		}
		if len(b) < 28 {
			return nil, fmt.Errorf("IMA list: entry %d: %w", n, errIMATruncated)
		}
		var e IMAEntry
		pcr := le.Uint32(b)
		if pcr > 23 {
			return nil, fmt.Errorf("IMA list: entry %d: PCR %d", n, pcr)
		}
		e.PCR = int(pcr)
		e.Violation = allZero(b[4:24])
		nameLen := le.Uint32(b[24:])
		b = b[28:]
		if nameLen == 0 || nameLen > maxIMATemplate || uint32(len(b)) < nameLen {
			return nil, fmt.Errorf("IMA list: entry %d: bad template name length %d", n, nameLen)
		}
		e.Template = templateName(b[:nameLen])
		b = b[nameLen:]
		var hashed []byte
		if e.Template == "ima" {
			// d: 20 bytes without a length; n: length and name without NUL.
			if len(b) < 24 {
				return nil, fmt.Errorf("IMA list: entry %d: %w", n, errIMATruncated)
			}
			e.FileAlg, e.FileDigest = "sha1", b[:20]
			l := le.Uint32(b[20:])
			if l > 255 || uint32(len(b)-24) < l {
				return nil, fmt.Errorf("IMA list: entry %d: bad name length %d", n, l)
			}
			e.Path = string(b[24 : 24+l])
			var buf [20 + 256]byte
			copy(buf[:], b[:20])
			copy(buf[20:], b[24:24+l])
			hashed = buf[:]
			b = b[24+l:]
		} else {
			if len(b) < 4 {
				return nil, fmt.Errorf("IMA list: entry %d: %w", n, errIMATruncated)
			}
			l := le.Uint32(b)
			if l > maxIMAData || uint32(len(b)-4) < l {
				return nil, fmt.Errorf("IMA list: entry %d: bad template data length %d", n, l)
			}
			data := b[4 : 4+l]
			b = b[4+l:]
			hashed = data
			switch e.Template {
			case "ima-ng", "ima-sig", "ima-buf", "ima-modsig":
			default:
				return nil, fmt.Errorf("IMA list: entry %d: template %q not supported", n, e.Template)
			}
			// The first two fields are d-ng and n-ng; any others (a
			// signature, a buffer) are only hashed.
			dng, rest, err := imaField(data)
			if err != nil {
				return nil, fmt.Errorf("IMA list: entry %d: %w", n, err)
			}
			nng, rest, err := imaField(rest)
			if err != nil {
				return nil, fmt.Errorf("IMA list: entry %d: %w", n, err)
			}
			for fields := 2; len(rest) > 0; fields++ {
				if fields == 8 {
					return nil, fmt.Errorf("IMA list: entry %d: too many template fields", n)
				}
				if _, rest, err = imaField(rest); err != nil {
					return nil, fmt.Errorf("IMA list: entry %d: %w", n, err)
				}
			}
			alg, digest, ok := bytes.Cut(dng, []byte{':', 0})
			if !ok {
				return nil, fmt.Errorf("IMA list: entry %d: d-ng field without an algorithm", n)
			}
			e.FileAlg, e.FileDigest = algName(alg), digest
			e.Path = string(bytes.TrimSuffix(nng, []byte{0}))
		}
		if e.Violation {
			for i := range e.Extend {
				e.Extend[i] = 0xff
			}
		} else {
			e.Extend = sha256.Sum256(hashed)
		}
		out = append(out, e)
	}
	return out, nil
}

// imaField splits the first length-prefixed field off template data.
func imaField(data []byte) (field, rest []byte, err error) {
	if len(data) < 4 {
		return nil, nil, errIMATruncated
	}
	l := binary.LittleEndian.Uint32(data)
	if uint32(len(data)-4) < l {
		return nil, nil, errors.New("template field overruns the entry")
	}
	return data[4 : 4+l], data[4+l:], nil
}

// templateName and algName avoid an allocation per entry for the usual
// names.
func templateName(b []byte) string {
	for _, s := range []string{"ima-ng", "ima-sig", "ima-buf", "ima", "ima-modsig"} {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

func algName(b []byte) string {
	for _, s := range []string{"sha256", "sha1", "sha384", "sha512", "sm3-256", "md5"} {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
