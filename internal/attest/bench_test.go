package attest_test

import (
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
)

// BenchmarkVerify verifies realistic evidence: about 80 boot events, 300
// IMA entries, a quote over PCRs 0-7 and 10, each answering its own fresh
// nonce, against a reference and a released-software list.
func BenchmarkVerify(b *testing.B) {
	d := newDevice(b, 80, 300)
	pol := d.policy(b)
	const n = 128
	type item struct {
		ev    *api.Evidence
		nonce []byte
	}
	items := make([]item, n)
	for i := range items {
		nonce := newNonce(b)
		items[i] = item{d.quote(b, nonce), nonce}
	}
	if got := len(d.tpm.EventLog().Events); got < 75 || got > 85 {
		b.Fatalf("%d boot events", got)
	}
	r := attest.Verify(d.tpm.AKPublic(), items[0].ev, items[0].nonce, pol)
	if r.Status != api.AttestAffirming || r.IMAEntries != 300 {
		b.Fatalf("status %s, %d IMA entries: %q", r.Status, r.IMAEntries, r.Problems)
	}
	ak := d.tpm.AKPublic()
	var next atomic.Uint64
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			it := items[next.Add(1)%n]
			if r := attest.Verify(ak, it.ev, it.nonce, pol); r.Status != api.AttestAffirming {
				b.Errorf("status %s: %q", r.Status, r.Problems)
				return
			}
		}
	})
	b.StopTimer()
	// CPU time per verification, which unlike ns/op does not grow when
	// other processes share the machine: 2 cores verify 2e9/cpu-ns per
	// second.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
