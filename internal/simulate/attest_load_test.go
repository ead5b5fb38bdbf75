package simulate_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/simulate"
)

// BenchmarkAttestLoad is a measurement: each iteration runs
// BULWARK_SIM_ATTEST_LOAD attesting devices (default 500; one
// self-requested attestation per device per second, 64 shared software
// TPMs) for 20 s against an in-process server, so that
// `go test -run '^$' -bench AttestLoad -benchtime 1x -cpuprofile cpu.out`
// profiles the server's attestation path (with the simulator beside it;
// focus on handleAttest). See docs/benchmarks.md.
func BenchmarkAttestLoad(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("BULWARK_SIM_ATTEST_LOAD"))
	if n <= 0 {
		n = 500
	}
	for range b.N {
		attestLoad(b, n)
	}
}

func attestLoad(t testing.TB, n int) {
	srv := servertest.Start(t, servertest.Options{})
	res, err := simulate.Run(context.Background(), simulate.Config{
		Server:      srv.URL,
		Token:       srv.AdminToken,
		Roots:       srv.Roots,
		Devices:     n,
		Interval:    time.Minute,
		Duration:    20 * time.Second,
		Attest:      true,
		AttestEvery: time.Second,
		AttestTPMs:  64,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("%s\n%s", simulate.FormatResult(res), simulate.FormatAttest(*res.Attest))
	if a := res.Attest; a.Errors != 0 || a.Contraindicated != 0 {
		t.Errorf("attestation errors %d contraindicated %d (%s; samples %v)", a.Errors, a.Contraindicated, a.Problem, res.ErrorSamples)
	}
}
