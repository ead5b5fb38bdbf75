package simulate

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var fullEnv = env(map[string]string{"BULWARK_ADDR": "https://bulwark.test:8443", "BULWARK_TOKEN": "bwk_secret"})

func TestParseArgsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		env  func(string) string
		want string // in the error
	}{
		{[]string{"--devices", "ten"}, fullEnv, `invalid value "ten" for flag -devices`},
		{[]string{"--devices", "0"}, fullEnv, "--devices 0: must be at least 1"},
		{[]string{"--devices", "-5"}, fullEnv, "--devices -5: must be at least 1"},
		{[]string{"--interval", "60"}, fullEnv, `invalid value "60" for flag -interval`},
		{[]string{"--interval", "0s"}, fullEnv, "--interval 0s: must be positive"},
		{[]string{"--duration", "-1m"}, fullEnv, "--duration -1m0s: must be positive"},
		{[]string{"--enroll-concurrency", "0"}, fullEnv, "--enroll-concurrency 0: must be at least 1"},
		{[]string{"--nope"}, fullEnv, "flag provided but not defined: -nope"},
		{[]string{"--update-failure-rate", "1.5"}, fullEnv, "--update-failure-rate 1.5: must be from 0 to 1"},
		{[]string{"--update-failure-rate", "-0.1"}, fullEnv, "--update-failure-rate -0.1: must be from 0 to 1"},
		{[]string{"--update-delay", "-1s"}, fullEnv, "--update-delay -1s: must not be negative"},
		{[]string{"--rollout", "--stages", " "}, fullEnv, "--stages: give cumulative percentages"},
		{[]string{"--attest", "--attest-every", "-1s"}, fullEnv, "--attest-every -1s: must not be negative"},
		{[]string{"--attest", "--attest-tpms", "-1"}, fullEnv, "--attest-tpms -1: must not be negative"},
		{[]string{"--attest-every", "1s"}, fullEnv, "--attest-every and --attest-tpms need --attest"},
		{[]string{"--attest-tpms", "8"}, fullEnv, "--attest-every and --attest-tpms need --attest"},
		{[]string{"extra"}, fullEnv, `unexpected argument "extra"`},
		{nil, env(map[string]string{"BULWARK_TOKEN": "t"}), "no server: use --server URL or set BULWARK_ADDR"},
		{[]string{"--server", "http://bulwark.test"}, fullEnv, `--server "http://bulwark.test": must be an https:// URL`},
		{[]string{"--server", "https://"}, fullEnv, "must be an https:// URL"},
		{nil, env(map[string]string{"BULWARK_ADDR": "https://b.test"}), "BULWARK_TOKEN is not set"},
	}
	for _, tt := range tests {
		_, err := parseArgs(tt.args, tt.env)
		if err == nil {
			t.Errorf("parseArgs(%q) succeeded, want error containing %q", tt.args, tt.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "simulate: ") || strings.Contains(msg, "\n") {
			t.Errorf("parseArgs(%q) = %q, want one line starting simulate: and containing %q", tt.args, msg, tt.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	o, err := parseArgs(nil, env(map[string]string{
		"BULWARK_ADDR": "https://b.test", "BULWARK_TOKEN": "tok", "BULWARK_CACERT": "/etc/bulwark/ca.pem",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Server: "https://b.test", Token: "tok", Devices: 100, Interval: time.Minute, Duration: time.Minute, EnrollConcurrency: 32, Stages: "5,25,100"}
	if o.cfg != want || o.cacert != "/etc/bulwark/ca.pem" || o.json {
		t.Errorf("defaults: got %+v cacert=%q json=%v, want %+v", o.cfg, o.cacert, o.json, want)
	}

	o, err = parseArgs([]string{"--server", "https://other.test:8443", "--devices", "5000", "--interval", "10s",
		"--duration", "2m", "--enroll-concurrency", "64", "--cacert", "ca.pem", "--group", "lab", "--json",
		"--rollout", "--stages", "10,50,100", "--update-failure-rate", "0.02", "--update-delay", "500ms",
		"--attest", "--attest-every", "1s", "--attest-tpms", "64"}, fullEnv)
	if err != nil {
		t.Fatal(err)
	}
	want = Config{Server: "https://other.test:8443", Token: "bwk_secret", Group: "lab", Devices: 5000,
		Interval: 10 * time.Second, Duration: 2 * time.Minute, EnrollConcurrency: 64,
		Rollout: true, Stages: "10,50,100", UpdateFailureRate: 0.02, UpdateDelay: 500 * time.Millisecond,
		Attest: true, AttestEvery: time.Second, AttestTPMs: 64}
	if o.cfg != want || o.cacert != "ca.pem" || !o.json {
		t.Errorf("flags: got %+v cacert=%q json=%v, want %+v", o.cfg, o.cacert, o.json, want)
	}
}

func TestMainHelpAndBadCACert(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"-h"}, &stdout, &stderr); err != nil {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(stderr.String(), "usage: bulwark simulate") || !strings.Contains(stderr.String(), "-enroll-concurrency") ||
		!strings.Contains(stderr.String(), "-attest-every") {
		t.Errorf("-h printed %q", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("-h printed %q to stdout", stdout.String())
	}

	t.Setenv("BULWARK_TOKEN", "tok")
	err := Main(context.Background(), []string{"--server", "https://b.test", "--cacert", "testdata-missing.pem"}, &stdout, &stderr)
	if err == nil || !strings.HasPrefix(err.Error(), "simulate: --cacert") {
		t.Errorf("missing --cacert file: err = %v", err)
	}
}

func TestFormatResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    Result
		want string
	}{
		{Result{}, "checkins/s=0.0 p50=0.0ms p99=0.0ms errors=0"},
		{Result{Rate: 1987.34, P50: 3100 * time.Microsecond, P99: 41 * time.Millisecond},
			"checkins/s=1987.3 p50=3.1ms p99=41.0ms errors=0"},
		{Result{Rate: 16.666, P50: 449 * time.Microsecond, P99: 2*time.Second + 50*time.Millisecond, Errors: 12},
			"checkins/s=16.7 p50=0.4ms p99=2050.0ms errors=12"},
		{Result{Rate: 100000, P50: 1, P99: 1234567, Errors: 1},
			"checkins/s=100000.0 p50=0.0ms p99=1.2ms errors=1"},
	}
	for _, tt := range tests {
		if got := FormatResult(tt.r); got != tt.want {
			t.Errorf("FormatResult(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestFormatAttest(t *testing.T) {
	t.Parallel()
	r := AttestResult{Rate: 1012.34, P50: 3100 * time.Microsecond, P99: 41 * time.Millisecond, Attestations: 30369,
		Warning: 32369, HardwareKeys: 2000, TPMs: 64}
	want := "verifications/s=1012.3 p50=3.1ms p99=41.0ms attestations=30369 affirming=0 warning=32369 contraindicated=0 errors=0 hardware_keys=2000 tpms=64"
	if got := FormatAttest(r); got != want {
		t.Errorf("FormatAttest = %q, want %q", got, want)
	}
}
