package simulate_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/simulate"
)

// TestSimulateAgainstServer runs a small fleet against the real server.
func TestSimulateAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server; skipped with -short")
	}
	t.Parallel()
	srv := servertest.Start(t, servertest.Options{})
	res, err := simulate.Run(context.Background(), simulate.Config{
		Server:   srv.URL,
		Token:    srv.AdminToken,
		Roots:    srv.Roots,
		Devices:  20,
		Interval: time.Second,
		Duration: 3 * time.Second,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	if res.Enrolled != 20 || res.Checkins == 0 || res.Errors != 0 {
		t.Errorf("enrolled %d checkins %d errors %d (samples %v); want 20, > 0, 0",
			res.Enrolled, res.Checkins, res.Errors, res.ErrorSamples)
	}
	t.Logf("%s (enrolled %d at %.1f/s)", simulate.FormatResult(res), res.Enrolled, res.EnrollRate)
}
