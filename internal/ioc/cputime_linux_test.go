package ioc

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cpuMeter measures the CPU time of the benchmark's own OS thread, so that
// figures stay meaningful on a machine shared with other work (wall-clock
// ns/op then includes time spent waiting for a CPU).
type cpuMeter struct{ start time.Duration }

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuMeter {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	return &cpuMeter{start: threadCPU()}
}

func (m *cpuMeter) report(b *testing.B, ops int) {
	if ops > 0 {
		b.ReportMetric(float64(threadCPU()-m.start)/float64(ops), "cpu-ns/op")
	}
}
