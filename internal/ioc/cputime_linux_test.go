package ioc

import (
	"os"
	"runtime"
	"strconv"
	"strings"
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

func init() {
	// IOC_NO_HUGE_PAGES=1 measures the matcher without huge-page advice.
	if os.Getenv("IOC_NO_HUGE_PAGES") == "1" {
		hugePages = false
	}
}

// anonHugeMiB returns how much of the process's anonymous memory is in
// transparent huge pages.
func anonHugeMiB() float64 {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "AnonHugePages:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
