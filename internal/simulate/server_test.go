package simulate_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/server"
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

// TestAttestAgainstServer runs a small fleet with software TPMs against
// the real server: every device enrols over the TPM flow with a
// hardware-backed identity, attests at enrolment, answers the
// attestation nonces of check-in answers and asks for its own, and the
// server verifies every quote without a failure.
func TestAttestAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server and makes 20 RSA-2048 keys; skipped with -short")
	}
	t.Parallel()
	// The server asks for an attestation 300 ms after the last one, so
	// check-in answers carry nonces during the run.
	srv := servertest.Start(t, servertest.Options{Config: server.Config{Attestation: server.AttestConfig{Interval: 300 * time.Millisecond}}})
	const n = 20
	res, err := simulate.Run(context.Background(), simulate.Config{
		Server:      srv.URL,
		Token:       srv.AdminToken,
		Roots:       srv.Roots,
		Devices:     n,
		Interval:    250 * time.Millisecond,
		Duration:    3 * time.Second,
		Attest:      true,
		AttestEvery: 500 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	a := res.Attest
	if a == nil {
		t.Fatal("no attestation result")
	}
	if res.Enrolled != n || res.EnrollErrors != 0 || res.Errors != 0 || res.Checkins == 0 {
		t.Errorf("enrolled %d enroll errors %d checkins %d errors %d (samples %v); want %d, 0, > 0, 0",
			res.Enrolled, res.EnrollErrors, res.Checkins, res.Errors, res.ErrorSamples, n)
	}
	if a.TPMs != n || a.HardwareKeys != n || a.Enrolment < n {
		t.Errorf("tpms %d hardware keys %d enrolment attestations %d; want %d, %d, >= %d", a.TPMs, a.HardwareKeys, a.Enrolment, n, n, n)
	}
	// 3 s at one self-requested attestation per device per 500 ms: about
	// 120, and some more answering check-in nonces.
	if a.Errors != 0 || a.Contraindicated != 0 || a.FromCheckins == 0 || a.Attestations-a.FromCheckins < 2*n {
		t.Errorf("attestations %d (from check-ins %d) errors %d contraindicated %d (%s; samples %v); want > %d with some from check-ins, 0 errors, 0 contraindicated",
			a.Attestations, a.FromCheckins, a.Errors, a.Contraindicated, a.Problem, res.ErrorSamples, 2*n)
	}
	if a.Affirming+a.Warning != a.Enrolment+a.Attestations {
		t.Errorf("affirming %d + warning %d != enrolment %d + measured %d attestations", a.Affirming, a.Warning, a.Enrolment, a.Attestations)
	}
	if !(0 < a.P50 && a.P50 <= a.P99 && a.P99 <= a.Max) || a.Rate <= 0 {
		t.Errorf("rate %.1f p50 %v p99 %v max %v", a.Rate, a.P50, a.P99, a.Max)
	}
	// The server agrees: every device has a hardware-backed key, and its
	// latest recorded attestation did not fail.
	var list api.DeviceList
	if code := srv.Do(t, "GET", "/api/v1/devices?limit=100", srv.AdminToken, nil, &list); code != 200 {
		t.Fatalf("listing devices: %d", code)
	}
	if len(list.Devices) != n {
		t.Fatalf("server lists %d devices, want %d", len(list.Devices), n)
	}
	for _, d := range list.Devices {
		if d.KeyAssurance != api.AssuranceHardware {
			t.Errorf("device %s: key assurance %q, want hardware", d.Hostname, d.KeyAssurance)
		}
		var one api.Device
		if code := srv.Do(t, "GET", "/api/v1/devices/"+d.ID, srv.AdminToken, nil, &one); code != 200 {
			t.Fatalf("reading device %s: %d", d.ID, code)
		}
		if at := one.Attestation; at == nil || (at.Status != api.AttestAffirming && at.Status != api.AttestWarning) || at.SecureBoot != "enabled" {
			t.Errorf("device %s: latest attestation %+v, want affirming or warning with Secure Boot enabled", d.Hostname, at)
		}
	}
	t.Logf("%s\n%s", simulate.FormatResult(res), simulate.FormatAttest(*a))
}

// TestAttestSharedTPMsAgainstServer has 10 devices share 2 software TPMs
// (Config.AttestTPMs): each still enrols with its own device key and
// attests without a failure.
func TestAttestSharedTPMsAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server; skipped with -short")
	}
	t.Parallel()
	srv := servertest.Start(t, servertest.Options{})
	res, err := simulate.Run(context.Background(), simulate.Config{
		Server:      srv.URL,
		Token:       srv.AdminToken,
		Roots:       srv.Roots,
		Devices:     10,
		Interval:    time.Second,
		Duration:    1500 * time.Millisecond,
		Attest:      true,
		AttestEvery: 300 * time.Millisecond,
		AttestTPMs:  2,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	a := res.Attest
	if res.Enrolled != 10 || a.TPMs != 2 || a.HardwareKeys != 10 || a.Enrolment != 10 || a.Attestations < 20 ||
		a.Errors != 0 || a.Contraindicated != 0 || a.Affirming+a.Warning != a.Enrolment+a.Attestations {
		t.Errorf("enrolled %d, %s (enrolment %d; samples %v); want 10 devices on 2 TPMs, >= 20 attestations, no errors",
			res.Enrolled, simulate.FormatAttest(*a), a.Enrolment, res.ErrorSamples)
	}
}
