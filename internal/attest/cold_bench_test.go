package attest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"syscall"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
)

// resetCaches empties every cache Verify keeps.
func resetCaches() {
	akCache.Lock()
	akCache.m = nil
	akCache.Unlock()
	sbCache.Lock()
	sbCache.m = nil
	sbCache.Unlock()
	elCache.Lock()
	elCache.m, elCache.bytes = nil, 0
	elCache.Unlock()
	replayCache.Lock()
	replayCache.m, replayCache.bytes = nil, 0
	replayCache.Unlock()
	imaCache.Lock()
	imaCache.m, imaCache.bytes = nil, 0
	imaCache.Unlock()
}

// BenchmarkVerifyCold is BenchmarkVerify's evidence seen for the first
// time: every cache is emptied before each verification (serially, so
// that one goroutine's reset does not spoil another's measurement).
func BenchmarkVerifyCold(b *testing.B) {
	tpm, err := softtpm.New(softtpm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := tpm.Boot(softtpm.BootConfig{SecureBoot: true, Events: 80}); err != nil {
		b.Fatal(err)
	}
	allowed := map[string]bool{}
	tpm.MeasureIMA(softtpm.IMAEntry{PCR: 10, Path: "boot_aggregate"})
	for i := 1; i < 300; i++ {
		h := sha256.Sum256(fmt.Appendf(nil, "file %d", i))
		allowed[hex.EncodeToString(h[:])] = true
		tpm.MeasureFile(fmt.Sprintf("/usr/lib/bulwark/lib%03d.so", i), h)
	}
	ref := &Reference{ID: "bench", PCRs: map[int][]byte{}}
	for i := 0; i < 8; i++ {
		v := tpm.PCR(i)
		ref.PCRs[i] = v[:]
	}
	pol := &Policy{Reference: ref, AllowedFiles: allowed}
	const n = 64
	evs, nonces := make([]*api.Evidence, n), make([][]byte, n)
	for i := range evs {
		nonces[i] = make([]byte, api.NonceSize)
		rand.Read(nonces[i])
		if evs[i], err = tpm.Quote(nonces[i], []int{0, 1, 2, 3, 4, 5, 6, 7, 10}); err != nil {
			b.Fatal(err)
		}
	}
	if r := Verify(tpm.AKPublic(), evs[0], nonces[0], pol); r.Status != api.AttestAffirming {
		b.Fatalf("status %s: %q", r.Status, r.Problems)
	}
	b.ReportAllocs()
	var cpu int64
	for i := 0; i < b.N; i++ {
		resetCaches()
		c0 := cpuTime()
		if r := Verify(tpm.AKPublic(), evs[i%n], nonces[i%n], pol); r.Status != api.AttestAffirming {
			b.Fatalf("status %s", r.Status)
		}
		cpu += cpuTime() - c0
	}
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
