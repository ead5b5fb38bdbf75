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
// in the list beyond telling violations apart.
func ParseIMALog(b []byte) ([]IMAEntry, error) {
	le := binary.LittleEndian
	var out []IMAEntry
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
		e.Template = string(b[:nameLen])
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
			fields, err := imaFields(data)
			if err != nil {
				return nil, fmt.Errorf("IMA list: entry %d: %w", n, err)
			}
			switch e.Template {
			case "ima-ng", "ima-sig", "ima-buf", "ima-modsig":
				if len(fields) < 2 {
					return nil, fmt.Errorf("IMA list: entry %d: %s has %d fields", n, e.Template, len(fields))
				}
				alg, digest, ok := bytes.Cut(fields[0], []byte{':', 0})
				if !ok {
					return nil, fmt.Errorf("IMA list: entry %d: d-ng field without an algorithm", n)
				}
				e.FileAlg, e.FileDigest = string(alg), digest
				e.Path = string(bytes.TrimSuffix(fields[1], []byte{0}))
			default:
				return nil, fmt.Errorf("IMA list: entry %d: template %q not supported", n, e.Template)
			}
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

// imaFields splits template data into its length-prefixed fields.
func imaFields(data []byte) ([][]byte, error) {
	var fields [][]byte
	for len(data) > 0 {
		if len(data) < 4 {
			return nil, errIMATruncated
		}
		l := binary.LittleEndian.Uint32(data)
		if uint32(len(data)-4) < l {
			return nil, errors.New("template field overruns the entry")
		}
		fields = append(fields, data[4:4+l])
		data = data[4+l:]
		if len(fields) > 8 {
			return nil, errors.New("too many template fields")
		}
	}
	return fields, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
