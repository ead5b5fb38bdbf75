package simulate_test

import (
	"context"
	"io"
	"strings"
	"sync"
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

// TestRolloutAgainstServer rolls a release out to a small fleet in three
// stages against the real server.
func TestRolloutAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server; skipped with -short")
	}
	t.Parallel()
	srv := servertest.Start(t, servertest.Options{})
	var progress strings.Builder
	res, err := simulate.Run(context.Background(), simulate.Config{
		Server:   srv.URL,
		Token:    srv.AdminToken,
		Roots:    srv.Roots,
		Devices:  40,
		Interval: 200 * time.Millisecond,
		Duration: time.Minute,
		Rollout:  true,
		Stages:   "10,50,100",
	}, &syncWriter{w: &progress})
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	r := res.Rollout
	if r == nil {
		t.Fatal("no rollout result")
	}
	if r.State != "completed" || r.Success != 40 || r.Failed != 0 || r.Stage != 3 || len(r.Stages) != 3 || len(r.StageTimes) != 3 {
		t.Errorf("rollout %+v; want completed at stage 3/3 with 40 successes", *r)
	}
	if res.UpdatesStarted != 40 || res.UpdatesSucceeded != 40 || res.UpdateReports != 120 || res.UpdateErrors != 0 || res.Errors != 0 {
		t.Errorf("updates started %d succeeded %d reports %d errors %d, check-in errors %d (samples %v); want 40 40 120 0 0",
			res.UpdatesStarted, res.UpdatesSucceeded, res.UpdateReports, res.UpdateErrors, res.Errors, res.ErrorSamples)
	}
	if res.Duration > 30*time.Second {
		t.Errorf("the check-in phase lasted %v: it did not end with the rollout", res.Duration)
	}
	if !strings.Contains(progress.String(), "deployment=") {
		t.Errorf("progress lacks the deployment:\n%s", progress.String())
	}
	t.Logf("%s; %s", simulate.FormatRollout(*r), simulate.FormatUpdates(res))
}

// TestRolloutHaltsAgainstServer has every update fail: the first stage
// halts the deployment.
func TestRolloutHaltsAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server; skipped with -short")
	}
	t.Parallel()
	srv := servertest.Start(t, servertest.Options{})
	res, err := simulate.Run(context.Background(), simulate.Config{
		Server:            srv.URL,
		Token:             srv.AdminToken,
		Roots:             srv.Roots,
		Devices:           40,
		Interval:          200 * time.Millisecond,
		Duration:          time.Minute,
		Rollout:           true,
		Stages:            "10,50,100",
		UpdateFailureRate: 1,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	r := res.Rollout
	if r == nil {
		t.Fatal("no rollout result")
	}
	// Stage 1 is 10% of 40 devices: 4, all failing.
	if r.State != "halted" || r.Stage != 1 || r.Success != 0 || r.Failed != 4 || !strings.Contains(r.Reason, "stage 1") {
		t.Errorf("rollout %+v; want halted at stage 1 with 4 failures", *r)
	}
	if res.UpdatesFailed != 4 || res.UpdatesSucceeded != 0 || res.UpdateErrors != 0 {
		t.Errorf("updates failed %d succeeded %d errors %d (samples %v); want 4 0 0",
			res.UpdatesFailed, res.UpdatesSucceeded, res.UpdateErrors, res.ErrorSamples)
	}
	if got := simulate.FormatRollout(*r); !strings.HasPrefix(got, "rollout=halted stages=1/3 success=0 failed=4 took=") {
		t.Errorf("FormatRollout = %q", got)
	}
}

// syncWriter serialises writes from the progress goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
