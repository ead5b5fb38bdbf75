package server_test

import (
	"sync/atomic"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// BenchmarkCheckin measures the whole check-in path over real mutual TLS
// on kept-alive HTTP/2 connections: device authentication, validation,
// the group-committed SQLite write and the pending-command lookup. Each
// parallel worker is its own enrolled device.
func BenchmarkCheckin(b *testing.B) {
	ts := servertest.Start(b, servertest.Options{})
	const devices = 64
	tok := ts.EnrollToken(b, devices, "")
	devs := make([]*device, devices)
	for i := range devs {
		devs[i] = enroll(b, ts, tok, "bench")
		if _, err := checkin(devs[i], "bench"); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(16) // 32 concurrent devices on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := devs[int(next.Add(1)-1)%devices]
		for pb.Next() {
			if _, err := checkin(d, "bench"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkins/s")
}
