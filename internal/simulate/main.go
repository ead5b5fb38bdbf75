package simulate

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

const usage = `usage: bulwark simulate [flags]

Enrols a fleet of simulated devices with a Bulwark server, has each check in
once per interval, and prints one result line:

  checkins/s=1987.3 p50=3.1ms p99=41.0ms errors=0

Devices act on the update assignments of check-in answers: each reports
downloading, installing and then success (or, with --update-failure-rate,
failed or rolled-back) to the server, and then reports the new version.

With --rollout the devices enrol into a new group (or --group), a small
release of a product named sim-<time> is published and deployed to the
group in --stages, and the check-ins run until the deployment is completed
or halted, or --duration ends. Progress shows the deployment's stage and
counts, and a second result line follows:

  rollout=completed stages=3/3 success=10000 failed=0 took=1m2s

With --attest each device has a software TPM (in memory, booted with Secure
Boot and 30 to 80 boot events) and enrols with it over the TPM flow: the TPM
certifies the device key, the device activates the server's credential
challenge and is enrolled with a hardware-backed identity, then answers the
enrolment nonce with a quote. Every attestation nonce in a check-in answer
(see bulwark server --attest-interval, at least 1m) is answered with a fresh
quote of PCRs 0-7 and the boot event log, which the server verifies in full
(quote signature, nonce, PCR digest, event-log replay) and records. For
load tests --attest-every also has each device ask for a nonce and attest
once per period, so the server verifies devices/period quotes per second.
Each TPM costs an RSA-2048 EK generation (0.1-0.3 s of CPU); --attest-tpms N
shares N TPMs (their EK and AK) among the devices, each device keeping its
own device key, certificate and connection: EK and AK uniqueness is not
what the server's verification cost depends on. A second result line
follows:

  verifications/s=1012.3 p50=3.1ms p99=41.0ms attestations=30369 affirming=0 warning=32369 contraindicated=0 errors=0 hardware_keys=2000 tpms=64

Results are "warning" until an admin approves each device's captured
baseline (the measurements are then compared with it).

Progress goes to stderr every second. The admin API token (allowed to create
enrolment tokens) is read from BULWARK_TOKEN. Ctrl-C stops the check-ins,
waits for those in flight and prints the result so far.

flags:
`

// options are the parsed command line.
type options struct {
	cfg    Config
	cacert string
	json   bool
}

// flagSet declares the flags into o, taking defaults from getenv.
func flagSet(o *options, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.cfg.Server, "server", getenv("BULWARK_ADDR"), "server base `URL`, e.g. https://bulwark.example:8443 (default $BULWARK_ADDR)")
	fs.IntVar(&o.cfg.Devices, "devices", DefaultDevices, "number of simulated devices")
	fs.DurationVar(&o.cfg.Interval, "interval", DefaultInterval, "time between two check-ins of one device; first check-ins are spread evenly over the first interval")
	fs.DurationVar(&o.cfg.Duration, "duration", DefaultDuration, "length of the measured check-in phase, after enrolment")
	fs.IntVar(&o.cfg.EnrollConcurrency, "enroll-concurrency", DefaultEnrollConcurrency, "devices enrolling at once")
	fs.StringVar(&o.cacert, "cacert", getenv("BULWARK_CACERT"), "PEM `file` of the CA that issued the server certificate (default $BULWARK_CACERT; empty: the system's roots)")
	fs.StringVar(&o.cfg.Group, "group", "", "device `group` the simulated devices join (empty: none)")
	fs.BoolVar(&o.cfg.Rollout, "rollout", false, "publish a release and roll it out to the simulated devices in stages (needs a global admin token)")
	fs.StringVar(&o.cfg.Stages, "stages", DefaultStages, "with --rollout: the deployment's cumulative stage `percentages`")
	fs.Float64Var(&o.cfg.UpdateFailureRate, "update-failure-rate", 0, "probability (0 to 1) that a simulated update fails or rolls back")
	fs.DurationVar(&o.cfg.UpdateDelay, "update-delay", 0, "pause before each simulated update report after the first")
	fs.BoolVar(&o.cfg.Attest, "attest", false, "give each device a software TPM: enrol with credential activation, answer attestation nonces with quotes")
	fs.DurationVar(&o.cfg.AttestEvery, "attest-every", 0, "with --attest: each device also asks for a nonce and attests once per `period` (0: only when a check-in answer asks)")
	fs.IntVar(&o.cfg.AttestTPMs, "attest-tpms", 0, "with --attest: number of software TPMs the devices share, to save RSA-2048 EK generations (0: one per device)")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object instead of the result line")
	return fs
}

// parseArgs parses the command line, taking defaults from getenv.
func parseArgs(args []string, getenv func(string) string) (options, error) {
	var o options
	fs := flagSet(&o, getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("simulate: %v (see bulwark simulate -h)", err)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("simulate: unexpected argument %q (see bulwark simulate -h)", fs.Arg(0))
	case o.cfg.Devices < 1:
		return o, fmt.Errorf("simulate: --devices %d: must be at least 1", o.cfg.Devices)
	case o.cfg.Interval <= 0:
		return o, fmt.Errorf("simulate: --interval %s: must be positive", o.cfg.Interval)
	case o.cfg.Duration <= 0:
		return o, fmt.Errorf("simulate: --duration %s: must be positive", o.cfg.Duration)
	case o.cfg.EnrollConcurrency < 1:
		return o, fmt.Errorf("simulate: --enroll-concurrency %d: must be at least 1", o.cfg.EnrollConcurrency)
	case !(o.cfg.UpdateFailureRate >= 0 && o.cfg.UpdateFailureRate <= 1):
		return o, fmt.Errorf("simulate: --update-failure-rate %v: must be from 0 to 1", o.cfg.UpdateFailureRate)
	case o.cfg.UpdateDelay < 0:
		return o, fmt.Errorf("simulate: --update-delay %s: must not be negative", o.cfg.UpdateDelay)
	case o.cfg.AttestEvery < 0:
		return o, fmt.Errorf("simulate: --attest-every %s: must not be negative", o.cfg.AttestEvery)
	case o.cfg.AttestTPMs < 0:
		return o, fmt.Errorf("simulate: --attest-tpms %d: must not be negative", o.cfg.AttestTPMs)
	case !o.cfg.Attest && (o.cfg.AttestEvery != 0 || o.cfg.AttestTPMs != 0):
		return o, errors.New("simulate: --attest-every and --attest-tpms need --attest")
	case o.cfg.Rollout && strings.TrimSpace(o.cfg.Stages) == "":
		return o, errors.New("simulate: --stages: give cumulative percentages such as 5,25,100")
	case o.cfg.Server == "":
		return o, errors.New("simulate: no server: use --server URL or set BULWARK_ADDR")
	case !strings.HasPrefix(o.cfg.Server, "https://") || len(o.cfg.Server) == len("https://"):
		return o, fmt.Errorf("simulate: --server %q: must be an https:// URL", o.cfg.Server)
	}
	o.cfg.Token = getenv("BULWARK_TOKEN")
	if o.cfg.Token == "" {
		return o, errors.New("simulate: BULWARK_TOKEN is not set: export an admin API token allowed to create enrolment tokens")
	}
	return o, nil
}

// loadRoots reads a PEM file of CA certificates.
func loadRoots(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("simulate: --cacert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("simulate: --cacert %s: no PEM certificate in the file", file)
	}
	return pool, nil
}

// Main is `bulwark simulate`: it parses args, runs the simulation with
// progress on stderr, and prints the result to stdout as one line (see
// FormatResult) or, with --json, as one JSON object. Its errors are one
// line each, starting with "simulate:". -h prints the usage to stderr and
// returns nil.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stderr)
		return nil
	}
	if err != nil {
		return err
	}
	if o.cacert != "" {
		if o.cfg.Roots, err = loadRoots(o.cacert); err != nil {
			return err
		}
	}

	res, err := Run(ctx, o.cfg, stderr)
	for _, s := range res.ErrorSamples {
		fmt.Fprintf(stderr, "%s error ×%d: %s\n", s.Phase, s.Count, s.Message)
	}
	if err != nil && !errors.Is(err, ErrAllCheckinsFailed) {
		return fmt.Errorf("simulate: %w", err)
	}
	if o.json {
		if jerr := json.NewEncoder(stdout).Encode(res); jerr != nil {
			return fmt.Errorf("simulate: writing the result: %w", jerr)
		}
	} else {
		fmt.Fprintln(stdout, FormatResult(res))
		if res.Rollout != nil {
			fmt.Fprintln(stdout, FormatRollout(*res.Rollout))
		}
		if res.Attest != nil {
			fmt.Fprintln(stdout, FormatAttest(*res.Attest))
		}
	}
	if a := res.Attest; a != nil && a.Problem != "" {
		fmt.Fprintf(stderr, "first contraindicated attestation: %s\n", a.Problem)
	}
	if res.UpdatesStarted > 0 || res.Rollout != nil {
		fmt.Fprintln(stderr, FormatUpdates(res))
	}
	if r := res.Rollout; r != nil {
		fmt.Fprintf(stderr, "deployment %s (%s %s, group %s): %s", r.DeploymentID, r.Product, r.Version, r.Group, r.State)
		if r.Reason != "" {
			fmt.Fprintf(stderr, " (%s)", r.Reason)
		}
		for i, d := range r.StageTimes {
			pct := 0
			if i < len(r.Stages) {
				pct = r.Stages[i]
			}
			fmt.Fprintf(stderr, "; stage %d (%d%%) %s", i+1, pct, d.Round(time.Second))
		}
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	return nil
}

func printUsage(w io.Writer) {
	var o options
	fs := flagSet(&o, func(string) string { return "" })
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// FormatResult is the result line of `bulwark simulate`:
//
//	checkins/s=1987.3 p50=3.1ms p99=41.0ms errors=0
//
// with the rate and latencies to one decimal.
func FormatResult(r Result) string {
	return fmt.Sprintf("checkins/s=%.1f p50=%.1fms p99=%.1fms errors=%d", r.Rate, ms(r.P50), ms(r.P99), r.Errors)
}

// FormatUpdates summarises the simulated updates of r:
//
//	updates started=100 succeeded=98 failed=2 interrupted=0 reports=300 p50=2.0ms p99=9.5ms errors=0
func FormatUpdates(r Result) string {
	return fmt.Sprintf("updates started=%d succeeded=%d failed=%d interrupted=%d reports=%d p50=%.1fms p99=%.1fms errors=%d",
		r.UpdatesStarted, r.UpdatesSucceeded, r.UpdatesFailed, r.UpdatesInterrupted, r.UpdateReports, ms(r.UpdateP50), ms(r.UpdateP99), r.UpdateErrors)
}
