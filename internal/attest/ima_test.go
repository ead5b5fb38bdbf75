package attest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
)

// Entries from real kernels' ascii_runtime_measurements: the template
// hash (SHA-1 of the ima-ng template data) pins the binary encoding that
// the SHA-256 bank's template digest is computed over.
var kernelIMA = []struct{ templateSHA1, fileSHA256, path string }{
	{"50b5a68bea0776a84eef6725f17ce474756e51c0", "15e1efee080fe54f5d7404af7e913de01671e745ce55215d89f3d6521d3884f0", "/root/cat"},
	{"bb24b135e1c911c97aad8f1c1863efc08cd44c11", "d41dd4adacf5a35df426461dd8a92d7bdd5ba29bb61a1c3531bec0ada386f8dd", "/usr/lib/x86_64-linux-gnu/libresolv.so.2"},
}

func TestParseIMALogKernelVectors(t *testing.T) {
	t.Parallel()
	var list softtpm.IMAList
	for _, k := range kernelIMA {
		var h [32]byte
		hex.Decode(h[:], []byte(k.fileSHA256))
		list.Add(k.path, h)
	}
	b := list.Bytes()
	// The SHA-1 template digests softtpm writes are the kernel's.
	off := 0
	for i, k := range kernelIMA {
		got := hex.EncodeToString(b[off+4 : off+24])
		if got != k.templateSHA1 {
			t.Fatalf("entry %d: template SHA-1 %s, kernel %s", i, got, k.templateSHA1)
		}
		nameLen := int(binary.LittleEndian.Uint32(b[off+24:]))
		dataLen := int(binary.LittleEndian.Uint32(b[off+28+nameLen:]))
		off += 28 + nameLen + 4 + dataLen
	}
	entries, err := attest.ParseIMALog(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(kernelIMA) {
		t.Fatalf("%d entries", len(entries))
	}
	for i, k := range kernelIMA {
		e := entries[i]
		// The SHA-256 bank extends SHA-256 over the same template data.
		var td bytes.Buffer
		d := append([]byte("sha256:\x00"), mustHex(t, k.fileSHA256)...)
		binary.Write(&td, binary.LittleEndian, uint32(len(d)))
		td.Write(d)
		binary.Write(&td, binary.LittleEndian, uint32(len(k.path)+1))
		td.WriteString(k.path + "\x00")
		if e.Extend != sha256.Sum256(td.Bytes()) {
			t.Errorf("entry %d: SHA-256 template digest %x", i, e.Extend)
		}
		if e.PCR != 10 || e.Template != "ima-ng" || e.FileAlg != "sha256" || hex.EncodeToString(e.FileDigest) != k.fileSHA256 || e.Path != k.path || e.Violation {
			t.Errorf("entry %d = %+v", i, e)
		}
	}
}

func TestParseIMALogViolationAndLegacy(t *testing.T) {
	t.Parallel()
	list := softtpm.IMAList{Entries: []softtpm.IMAEntry{
		{PCR: 10, Template: "ima-ng", Path: "/var/log/x", Violation: true},
		{PCR: 10, Template: "ima", Path: "/bin/sh", FileHash: sha256.Sum256([]byte("sh"))},
	}}
	entries, err := attest.ParseIMALog(list.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !entries[0].Violation || entries[0].Extend != [32]byte(bytes.Repeat([]byte{0xff}, 32)) {
		t.Errorf("violation = %+v", entries[0])
	}
	// Legacy "ima": SHA-256 over the 20-byte digest and the name padded
	// to 256 bytes.
	var want [20 + 256]byte
	h := sha256.Sum256([]byte("sh"))
	copy(want[:], h[:20])
	copy(want[20:], "/bin/sh")
	if e := entries[1]; e.Template != "ima" || e.Path != "/bin/sh" || e.FileAlg != "sha1" || e.Extend != sha256.Sum256(want[:]) {
		t.Errorf("legacy = %+v", e)
	}
	for _, bad := range [][]byte{
		{10, 0, 0, 0},
		append(list.Bytes(), 1),
		bytes.Replace(list.Bytes(), []byte("ima-ng"), []byte("ima-xx"), 1),
	} {
		if _, err := attest.ParseIMALog(bad); err == nil {
			t.Errorf("parsed %x", bad)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
