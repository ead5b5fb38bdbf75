package softtpm

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
)

// IMAEntry is one entry of a Linux IMA measurement list with the ima-ng
// template (or "ima" for the legacy template).
type IMAEntry struct {
	PCR      int
	Template string // "ima-ng" (default when empty) or "ima"
	// FileHash is the file's digest: SHA-256 for ima-ng, the first 20
	// bytes (SHA-1) for "ima".
	FileHash [32]byte
	Path     string
	// Violation marks an entry the kernel recorded as a measurement
	// violation: its template digest is zero and it extends all-ones.
	Violation bool
}

// IMAList writes the binary_runtime_measurements list as the kernel
// exports it (native little-endian). The zero IMAList is empty; Entries is
// exported so that tests can alter the list after the fact.
type IMAList struct {
	Entries []IMAEntry
}

// Add appends an ima-ng entry for path with SHA-256 fileHash into PCR 10
// and returns the SHA-256 template digest the kernel extends into PCR 10
// of the SHA-256 bank.
func (l *IMAList) Add(path string, fileHash [32]byte) [32]byte {
	e := IMAEntry{PCR: 10, Template: "ima-ng", FileHash: fileHash, Path: path}
	l.Entries = append(l.Entries, e)
	return e.ExtendDigest()
}

// TemplateData is the entry's template data as it appears in the list.
func (e *IMAEntry) TemplateData() []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	if e.Template == "ima" {
		b.Write(e.FileHash[:20])
		binary.Write(&b, le, uint32(len(e.Path)))
		b.WriteString(e.Path)
		return b.Bytes()
	}
	d := append([]byte("sha256:\x00"), e.FileHash[:]...)
	binary.Write(&b, le, uint32(len(d)))
	b.Write(d)
	binary.Write(&b, le, uint32(len(e.Path)+1))
	b.WriteString(e.Path)
	b.WriteByte(0)
	return b.Bytes()
}

// hashInput is what the kernel hashes for the template digest.
func (e *IMAEntry) hashInput() []byte {
	if e.Template == "ima" {
		var name [256]byte
		copy(name[:], e.Path)
		return append(append([]byte(nil), e.FileHash[:20]...), name[:]...)
	}
	return e.TemplateData()
}

// ExtendDigest is the SHA-256 digest the kernel extends into the SHA-256
// bank for this entry: SHA-256 of the template data, or all ones for a
// violation.
func (e *IMAEntry) ExtendDigest() [32]byte {
	if e.Violation {
		var ff [32]byte
		for i := range ff {
			ff[i] = 0xff
		}
		return ff
	}
	return sha256.Sum256(e.hashInput())
}

// Bytes encodes the list.
func (l *IMAList) Bytes() []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	for i := range l.Entries {
		e := &l.Entries[i]
		tmpl := e.Template
		if tmpl == "" {
			tmpl = "ima-ng"
		}
		binary.Write(&b, le, uint32(e.PCR))
		if e.Violation {
			b.Write(make([]byte, 20))
		} else {
			d := sha1.Sum(e.hashInput())
			b.Write(d[:])
		}
		binary.Write(&b, le, uint32(len(tmpl)))
		b.WriteString(tmpl)
		data := e.TemplateData()
		if tmpl != "ima" {
			binary.Write(&b, le, uint32(len(data)))
		}
		b.Write(data)
	}
	return b.Bytes()
}
