package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	base := runtime.NumGoroutine()
	f := newFakeServer(t, nil)
	var progress bytes.Buffer
	// 20 devices, 300 ms apart each, for 1.5 s: rounds 0-4 of the
	// schedule, 100 check-ins.
	res, err := Run(context.Background(), f.config(20, 300*time.Millisecond, 1500*time.Millisecond), &progress)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if res.Enrolled != 20 || res.EnrollErrors != 0 || res.EnrollRate <= 0 {
		t.Errorf("enrolled %d, enroll errors %d, rate %.1f; want 20, 0, > 0", res.Enrolled, res.EnrollErrors, res.EnrollRate)
	}
	if res.Checkins != 100 || res.Errors != 0 || res.Overruns != 0 {
		t.Errorf("checkins %d errors %d overruns %d, want 100 0 0 (samples %v)", res.Checkins, res.Errors, res.Overruns, res.ErrorSamples)
	}
	if res.Duration < 1400*time.Millisecond || res.Duration > 5*time.Second {
		t.Errorf("Duration = %v, want about 1.5 s", res.Duration)
	}
	if want := float64(res.Checkins) / res.Duration.Seconds(); res.Rate != want {
		t.Errorf("Rate = %v, want %v", res.Rate, want)
	}
	if !(0 < res.P50 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("latencies p50=%v p90=%v p99=%v max=%v are not ordered and positive", res.P50, res.P90, res.P99, res.Max)
	}
	// The server saw the enrolment check-ins and the measured ones, and
	// the acknowledgements of the commands it queued.
	if got := f.checkins.Load(); got != 120 {
		t.Errorf("server answered %d check-ins, want 120", got)
	}
	if f.acks.Load() < 20 {
		t.Errorf("server matched %d command acknowledgements, want at least 20", f.acks.Load())
	}
	// Connections are kept alive: one for the admin API, and per device
	// one for enrolment and one with its certificate.
	if got := f.conns.Load(); got > 41 {
		t.Errorf("server accepted %d connections, want at most 41 (connections are not reused)", got)
	}

	out := progress.String()
	for _, want := range []string{"enrolling 20/20 ", "running 20 devices", "running elapsed=", "checkins=100 "} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") {
		t.Errorf("progress to a non-terminal holds carriage returns:\n%q", out)
	}

	// Everything Run started has stopped.
	f.ts.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Run, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

func TestRunAllCheckinsFail(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) { f.failAfter = 1 })
	res, err := Run(context.Background(), f.config(5, 200*time.Millisecond, 600*time.Millisecond), nil)
	if !errors.Is(err, ErrAllCheckinsFailed) {
		t.Fatalf("Run error = %v, want ErrAllCheckinsFailed", err)
	}
	if !strings.Contains(err.Error(), "503 unavailable") {
		t.Errorf("error %q does not name the first failure", err)
	}
	if res.Enrolled != 5 || res.Checkins != 0 || res.Errors != 15 {
		t.Errorf("enrolled %d checkins %d errors %d, want 5 0 15", res.Enrolled, res.Checkins, res.Errors)
	}
	if len(res.ErrorSamples) != 1 || res.ErrorSamples[0].Count != 15 || res.ErrorSamples[0].Phase != "checkin" ||
		!strings.Contains(res.ErrorSamples[0].Message, "server is in maintenance") {
		t.Errorf("ErrorSamples = %+v, want the one 503 error counted 15 times", res.ErrorSamples)
	}
}

func TestRunSomeCheckinsFail(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) { f.failAfter = 2 })
	res, err := Run(context.Background(), f.config(4, 200*time.Millisecond, 600*time.Millisecond), nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Each device: one measured check-in succeeds, then two fail.
	if res.Checkins != 4 || res.Errors != 8 {
		t.Errorf("checkins %d errors %d, want 4 8", res.Checkins, res.Errors)
	}
}

func TestRunEnrolmentFails(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) { f.rejectEnroll = true })
	res, err := Run(context.Background(), f.config(6, time.Second, time.Second), nil)
	if !errors.Is(err, ErrEnrollFailed) || !strings.Contains(err.Error(), "enrolment is closed") {
		t.Fatalf("Run error = %v, want ErrEnrollFailed naming the refusal", err)
	}
	if res.Enrolled != 0 || res.EnrollErrors != 6 || res.Checkins != 0 {
		t.Errorf("enrolled %d enroll errors %d checkins %d, want 0 6 0", res.Enrolled, res.EnrollErrors, res.Checkins)
	}
}

func TestRunBadAdminToken(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, nil)
	cfg := f.config(2, time.Second, time.Second)
	cfg.Token = "wrong"
	_, err := Run(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "creating the enrolment token: server refused (401 unauthorized)") {
		t.Fatalf("Run error = %v, want a 401 creating the enrolment token", err)
	}
}

func TestRunUnknownCA(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, nil)
	cfg := f.config(2, time.Second, time.Second)
	cfg.Roots = nil // system roots do not know the test server
	_, err := Run(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Run error = %v, want a certificate verification error", err)
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, func(f *fakeServer) { f.checkinDelay = 150 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := f.config(10, 200*time.Millisecond, time.Hour)
	go func() {
		// Cancel once the check-in phase is under way.
		for f.checkins.Load() < 15 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	res, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("Run took %v after cancel", time.Since(start))
	}
	if res.Checkins == 0 || res.Errors != 0 {
		t.Errorf("checkins %d errors %d, want > 0 and 0: in-flight check-ins must complete", res.Checkins, res.Errors)
	}
	if n := f.inflight.Load(); n != 0 {
		t.Errorf("%d check-ins still in flight when Run returned", n)
	}
	if res.P50 < 150*time.Millisecond {
		t.Errorf("p50 = %v, want at least the server's 150 ms delay", res.P50)
	}
}

func TestRunCancelDuringEnrolment(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for f.checkins.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	cfg := f.config(2000, time.Second, time.Second)
	cfg.EnrollConcurrency = 2
	res, err := Run(ctx, cfg, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted during enrolment") {
		t.Fatalf("Run error = %v, want interrupted during enrolment", err)
	}
	if res.Enrolled == 0 || res.Enrolled == 2000 || res.Checkins != 0 {
		t.Errorf("enrolled %d checkins %d: want a partial enrolment and no check-ins", res.Enrolled, res.Checkins)
	}
}

func TestMainCommand(t *testing.T) {
	f := newFakeServer(t, nil)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BULWARK_TOKEN", f.adminToken)
	t.Setenv("BULWARK_ADDR", f.ts.URL)
	t.Setenv("BULWARK_CACERT", ca)
	args := []string{"--devices", "5", "--interval", "200ms", "--duration", "600ms", "--group", "lab"}

	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("Main: %v\nstderr:\n%s", err, stderr.String())
	}
	line := regexp.MustCompile(`^checkins/s=\d+\.\d p50=\d+\.\dms p99=\d+\.\dms errors=0\n$`)
	if !line.MatchString(stdout.String()) {
		t.Errorf("stdout = %q, want one result line", stdout.String())
	}
	if !strings.Contains(stderr.String(), "enrolling 5/5") {
		t.Errorf("stderr lacks progress:\n%s", stderr.String())
	}

	stdout.Reset()
	if err := Main(context.Background(), append(args, "--json"), &stdout, &stderr); err != nil {
		t.Fatalf("Main --json: %v", err)
	}
	var res Result
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("--json output %q: %v", stdout.String(), err)
	}
	if res.Checkins != 15 || res.Enrolled != 5 || res.P99 <= 0 || dec.More() {
		t.Errorf("--json result %+v, want 15 check-ins of 5 devices and nothing more", res)
	}
}
