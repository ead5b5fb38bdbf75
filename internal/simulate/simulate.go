// Package simulate is Bulwark's fleet simulator (`bulwark simulate`): it
// enrols many software devices with a server and has each check in on its
// own schedule, measuring check-in throughput and latency. It is the load
// tool for the server and the engine of its benchmarks.
//
// Each simulated device has its own P-256 key, its own certificate and its
// own deviceclient.Client, so its own long-lived mutual-TLS HTTP/2
// connection, as a real agent does; the simulator therefore costs the
// server what the same number of agents would. One host can hold about
// 28,000 connections to one server address (the Linux ephemeral port
// range); larger fleets need several simulator hosts. With Config.Attest
// each device also has a software TPM, enrols with a hardware-backed
// identity and attests, so the simulator measures the server's attestation
// verification as well. Run may be called from several goroutines at
// once; nothing in the package is shared between calls.
package simulate

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
)

// Defaults for the zero values of Config.
const (
	DefaultDevices           = 100
	DefaultInterval          = 60 * time.Second
	DefaultDuration          = time.Minute
	DefaultEnrollConcurrency = 32
	DefaultTimeout           = 30 * time.Second
)

// Config describes one simulation. The zero value of each optional field
// means the default documented beside it.
type Config struct {
	// Server is the server's base URL, e.g. https://bulwark.example:8443.
	// Required.
	Server string
	// Token is an admin API token allowed to create enrolment tokens.
	// Required.
	Token string
	// Roots verifies the server's certificate on the admin and device
	// APIs; nil means the system's roots.
	Roots *x509.CertPool
	// Group is the device group the devices join; empty means none.
	Group string

	// Devices is the number of simulated devices; zero means 100.
	Devices int
	// Interval is the time between two check-ins of a device; zero means
	// 60 s. The devices' first measured check-ins are spread evenly over
	// the first interval.
	Interval time.Duration
	// Duration is how long the measured check-in phase lasts, after
	// enrolment; zero means one minute.
	Duration time.Duration
	// EnrollConcurrency is how many devices enrol at once; zero means 32.
	EnrollConcurrency int
	// Timeout bounds each request; zero means 30 s.
	Timeout time.Duration

	// Rollout makes the run a staged rollout: the devices enrol into
	// Group (created through the admin API; empty means a fresh group
	// named sim-<time>), a small release of a product named sim-<time> is
	// published and deployed to the group with Stages, and the check-in
	// phase ends early once the deployment is completed or halted.
	Rollout bool
	// Stages are the deployment's cumulative percentages, e.g. "5,25,100";
	// empty means "5,25,100".
	Stages string
	// UpdateFailureRate is the probability, 0 to 1, that a simulated
	// update fails (reported as failed or as rolled-back, half each).
	UpdateFailureRate float64
	// UpdateDelay is the pause before each update report after the
	// first (downloading); zero means none.
	UpdateDelay time.Duration

	// Attest gives each device a software TPM (internal/attest/softtpm,
	// booted with Secure Boot and 30 to 80 boot events): the device
	// enrols over the TPM flow with credential activation (a
	// hardware-backed identity), answers the enrolment challenge's nonce
	// with a quote, and answers every attestation nonce of a check-in
	// answer with a fresh quote of PCRs 0-7 and the boot event log, which
	// the server verifies in full.
	Attest bool
	// AttestEvery, with Attest, also has every device ask for a nonce
	// (POST /device/v1/attest/nonce) and attest once per AttestEvery,
	// spread evenly like the check-ins, to drive a chosen verification
	// rate (devices/AttestEvery per second) whatever the server's
	// attestation interval; zero means devices attest only when a
	// check-in answer asks.
	AttestEvery time.Duration
	// AttestTPMs, with Attest, is how many distinct software TPMs the
	// devices share: device i uses TPM i mod AttestTPMs, its EK and AK,
	// with its own device key (certified by that AK), certificate and
	// connection. Each TPM costs an RSA-2048 EK generation (0.1-0.3 s of
	// CPU); the server's work per attestation does not depend on
	// whether AKs are shared. Zero means one TPM per device.
	AttestTPMs int
}

// DefaultStages are the rollout stages when Config.Stages is empty.
const DefaultStages = "5,25,100"

func (c Config) normalize() (Config, error) {
	u, err := url.Parse(c.Server)
	if c.Server == "" {
		return c, errors.New("no server URL")
	}
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return c, fmt.Errorf("server %q is not an https:// URL", c.Server)
	}
	if c.Token == "" {
		return c, errors.New("no admin API token")
	}
	if c.Devices < 0 || c.Interval < 0 || c.Duration < 0 || c.EnrollConcurrency < 0 || c.Timeout < 0 || c.UpdateDelay < 0 ||
		c.AttestEvery < 0 || c.AttestTPMs < 0 {
		return c, errors.New("negative devices, interval, duration, enrolment concurrency, timeout, update delay, attestation period or TPM count")
	}
	if !(c.UpdateFailureRate >= 0 && c.UpdateFailureRate <= 1) {
		return c, fmt.Errorf("update failure rate %v is not from 0 to 1", c.UpdateFailureRate)
	}
	if c.Rollout {
		c.Stages = trimStages(cmp.Or(c.Stages, DefaultStages))
	}
	c.Devices = cmp.Or(c.Devices, DefaultDevices)
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.EnrollConcurrency = cmp.Or(c.EnrollConcurrency, DefaultEnrollConcurrency)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	if c.Attest {
		c.AttestTPMs = min(cmp.Or(c.AttestTPMs, c.Devices), c.Devices)
	}
	if c.Roots == nil {
		if c.Roots, err = x509.SystemCertPool(); err != nil {
			return c, fmt.Errorf("loading the system's CA certificates: %w", err)
		}
	}
	return c, nil
}

// Result is the outcome of a simulation. Latencies are those of the
// successful check-ins of the measured phase; the first check-in each
// device makes right after enrolment is part of enrolment.
type Result struct {
	// Checkins counts successful check-ins; Errors failed ones (an
	// answer other than 2xx, or a transport error).
	Checkins int `json:"checkins"`
	Errors   int `json:"errors"`
	// Overruns counts check-ins not made because the device's previous
	// one was still in flight when the next was due.
	Overruns int `json:"overruns"`
	// Duration is how long the check-in phase lasted: the configured
	// duration, or until the context ended, or until the last check-in
	// in flight completed if that was later.
	Duration time.Duration `json:"duration_ns"`
	// Rate is Checkins per second of Duration.
	Rate float64       `json:"rate"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`

	// Enrolled counts devices that enrolled and made their first
	// check-in; EnrollErrors those that did not, and took no part in the
	// check-in phase.
	Enrolled       int           `json:"enrolled"`
	EnrollErrors   int           `json:"enroll_errors"`
	EnrollDuration time.Duration `json:"enroll_duration_ns"`
	// EnrollRate is Enrolled per second of EnrollDuration.
	EnrollRate float64 `json:"enroll_rate"`

	// UpdatesStarted counts update assignments the devices took up;
	// UpdatesSucceeded and UpdatesFailed those they finished (failed
	// includes rolled back). UpdatesInterrupted were cut short by the end
	// of the check-in phase.
	UpdatesStarted     int `json:"updates_started"`
	UpdatesSucceeded   int `json:"updates_succeeded"`
	UpdatesFailed      int `json:"updates_failed"`
	UpdatesInterrupted int `json:"updates_interrupted"`
	// UpdateReports counts successful update status reports and
	// UpdateErrors failed ones; the latencies are of the successful ones.
	UpdateReports int           `json:"update_reports"`
	UpdateErrors  int           `json:"update_errors"`
	UpdateP50     time.Duration `json:"update_p50_ns"`
	UpdateP99     time.Duration `json:"update_p99_ns"`
	UpdateMax     time.Duration `json:"update_max_ns"`

	// Rollout is the outcome of the staged rollout, with Config.Rollout.
	Rollout *RolloutResult `json:"rollout,omitempty"`
	// Attest is the outcome of the attestations, with Config.Attest.
	Attest *AttestResult `json:"attest,omitempty"`

	// ErrorSamples are the first few distinct errors, in order of first
	// occurrence, each with how often it occurred.
	ErrorSamples []ErrorSample `json:"error_samples,omitempty"`
}

// ErrorSample is one distinct error seen during a simulation.
type ErrorSample struct {
	Phase   string `json:"phase"` // "enroll", "checkin", "update", "rollout" or "attest"
	Message string `json:"message"`
	Count   int    `json:"count"`
}

// Errors Run returns, wrapped with detail.
var (
	// ErrEnrollFailed means no device could enrol.
	ErrEnrollFailed = errors.New("enrolment failed for every device")
	// ErrAllCheckinsFailed means check-ins were made and all failed.
	ErrAllCheckinsFailed = errors.New("every check-in failed")
)

// maxErrorSamples bounds Result.ErrorSamples.
const maxErrorSamples = 5

// errorLog keeps the first few distinct errors. Safe for concurrent use.
type errorLog struct {
	mu      sync.Mutex
	samples []ErrorSample
}

func (l *errorLog) add(phase string, err error) {
	msg := err.Error()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.samples {
		if s := &l.samples[i]; s.Phase == phase && s.Message == msg {
			s.Count++
			return
		}
	}
	if len(l.samples) < maxErrorSamples {
		l.samples = append(l.samples, ErrorSample{Phase: phase, Message: msg, Count: 1})
	}
}

func (l *errorLog) first(phase string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.samples {
		if s.Phase == phase {
			return s.Message
		}
	}
	return "none recorded"
}

func (l *errorLog) all() []ErrorSample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ErrorSample(nil), l.samples...)
}

// sim is the state of one Run.
type sim struct {
	cfg  Config
	out  io.Writer
	tty  bool
	errs errorLog
	upd  updates
	tpms *tpmPool     // with Config.Attest
	att  *attestStats // with Config.Attest
}

// Run creates an enrolment token for cfg.Devices devices through the admin
// API, enrols the devices, cfg.EnrollConcurrency at a time, each followed
// by its first check-in, and then has every device check in once per
// cfg.Interval for cfg.Duration. It prints a progress line every second to
// progress (which may be nil).
//
// When ctx ends during the check-in phase Run stops scheduling check-ins,
// waits for those in flight and returns the result so far with a nil
// error. It returns an error if the token cannot be created, if ctx ends
// during enrolment, if no device enrols (ErrEnrollFailed) or if check-ins
// were made and all failed (ErrAllCheckinsFailed); the Result is filled in
// as far as the run went.
func Run(ctx context.Context, cfg Config, progress io.Writer) (res Result, err error) {
	cfg, err = cfg.normalize()
	if err != nil {
		return Result{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	s := &sim{cfg: cfg, out: progress, tty: isTerminal(progress)}
	s.upd.hist = newHistogram()
	s.upd.ctx, s.upd.cancel = context.WithCancel(ctx)
	defer s.upd.cancel()
	adm := newAdmin(cfg)
	defer adm.close()

	if cfg.Attest {
		s.tpms = newTPMPool(cfg.AttestTPMs)
		s.att = &attestStats{hist: newHistogram()}
		res.Attest = &AttestResult{}
		defer func() {
			res.Attest.TPMs = int(s.tpms.made.Load())
			s.att.fill(res.Attest, res.Duration)
		}()
	}
	if cfg.Rollout {
		if s.cfg.Group == "" {
			s.cfg.Group = "sim-" + time.Now().UTC().Format("20060102T150405Z")
		}
		if err := s.createGroup(ctx, adm, s.cfg.Group); err != nil {
			return res, err
		}
	}
	token, err := s.createEnrollToken(ctx, adm)
	if err != nil {
		return res, err
	}
	devs, err := s.enroll(ctx, token, &res)
	defer func() {
		for _, d := range devs {
			d.client.Close()
		}
	}()
	if err != nil {
		s.finishUpdates(&res)
		res.ErrorSamples = s.errs.all()
		return res, err
	}
	var ro *rollout
	if cfg.Rollout {
		if ro, err = s.startRollout(ctx, adm); err != nil {
			s.finishUpdates(&res)
			res.ErrorSamples = s.errs.all()
			return res, err
		}
	}
	s.run(ctx, devs, &res, ro)
	s.finishUpdates(&res)
	if ro != nil {
		rr := ro.finish(context.WithoutCancel(ctx))
		res.Rollout = &rr
	}
	res.ErrorSamples = s.errs.all()
	if res.Checkins == 0 && res.Errors > 0 {
		return res, fmt.Errorf("%w (%d errors); first: %s", ErrAllCheckinsFailed, res.Errors, s.errs.first("checkin"))
	}
	return res, nil
}

// finishUpdates stops the simulated updates, waits for them and fills in
// their figures.
func (s *sim) finishUpdates(res *Result) {
	s.upd.cancel()
	s.upd.wg.Wait()
	res.UpdatesStarted = int(s.upd.started.Load())
	res.UpdatesSucceeded = int(s.upd.succeeded.Load())
	res.UpdatesFailed = int(s.upd.failed.Load())
	res.UpdatesInterrupted = int(s.upd.interrupted.Load())
	res.UpdateReports = int(s.upd.hist.Count())
	res.UpdateErrors = int(s.upd.errors.Load())
	res.UpdateP50 = s.upd.hist.Quantile(0.50)
	res.UpdateP99 = s.upd.hist.Quantile(0.99)
	res.UpdateMax = s.upd.hist.Max()
}

// enroll enrols the devices and returns those that enrolled.
func (s *sim) enroll(ctx context.Context, token string, res *Result) ([]*device, error) {
	n := s.cfg.Devices
	slots := make([]*device, n)
	var next, done, failed atomic.Int64
	var meter rateMeter
	start := time.Now()
	p := startProgress(s.out, s.tty, func(el time.Duration, final bool) string {
		d := done.Load()
		return fmt.Sprintf("enrolling %d/%d elapsed=%s rate=%.1f/s errors=%d",
			d, n, roundDur(el), meter.rate(d, el, final), failed.Load())
	})
	var wg sync.WaitGroup
	for range min(s.cfg.EnrollConcurrency, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d, err := s.enrollOne(ctx, token, i)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						s.errs.add("enroll", err)
					}
					continue
				}
				slots[i] = d
				done.Add(1)
			}
		})
	}
	wg.Wait()
	p.Stop()

	devs := make([]*device, 0, done.Load())
	for _, d := range slots {
		if d != nil {
			devs = append(devs, d)
		}
	}
	res.Enrolled = len(devs)
	res.EnrollErrors = int(failed.Load())
	res.EnrollDuration = time.Since(start)
	res.EnrollRate = float64(res.Enrolled) / res.EnrollDuration.Seconds()
	if ctx.Err() != nil {
		return devs, fmt.Errorf("interrupted during enrolment (%d of %d devices enrolled): %w", len(devs), n, context.Cause(ctx))
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("%w (%d devices); first error: %s", ErrEnrollFailed, n, s.errs.first("enroll"))
	}
	if res.EnrollErrors > 0 {
		fmt.Fprintf(s.out, "warning: %d of %d devices failed to enrol; going on with %d\n", res.EnrollErrors, n, len(devs))
	}
	return devs, nil
}

// enrollOne gives device i a key, a certificate and its own connection,
// then makes its first check-in as an agent does right after enrolment.
// That check-in opens the device's mutual-TLS connection, which every later
// check-in reuses.
//
// With Config.Attest the device enrols over the TPM flow, then answers the
// enrolment nonce (and any nonce of its first check-in's answer).
func (s *sim) enrollOne(ctx context.Context, token string, i int) (*device, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a device key: %w", err)
	}
	csr, err := deviceclient.NewCSR(key)
	if err != nil {
		return nil, err
	}
	d := newDevice(i, time.Now())
	if s.cfg.Attest {
		// Made before the connection: the RSA key generation takes a
		// while and the server would see an idle connection.
		if d.tpm, err = s.tpms.get(i); err != nil {
			return nil, err
		}
	}
	c, err := deviceclient.New(deviceclient.Config{Server: s.cfg.Server, Roots: s.cfg.Roots, Timeout: s.cfg.Timeout})
	if err != nil {
		return nil, err
	}
	d.client = c
	inv := d.inventory(time.Now())
	var resp *api.EnrollResponse
	var enrolNonce []byte
	if d.tpm != nil {
		resp, enrolNonce, err = enrollTPM(ctx, c, d.tpm, key, csr, token, &inv)
	} else {
		resp, err = c.Enroll(ctx, api.EnrollRequest{Token: token, CSR: csr, KeyAssurance: "software", Inventory: &inv})
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	cert, err := tlsCertificate(resp.Certificate, key)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetCertificate(cert)
	if d.tpm != nil {
		if resp.KeyAssurance == api.AssuranceHardware {
			s.att.hardware.Add(1)
		}
		if err := s.attestEnrolment(ctx, d, enrolNonce, "enrolment"); err != nil {
			c.Close()
			return nil, err
		}
	}
	u, nonce, err := d.checkin(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("first %w", err)
	}
	if nonce != nil && d.tpm != nil {
		if err := s.attestEnrolment(ctx, d, nonce, "periodic"); err != nil {
			c.Close()
			return nil, err
		}
	}
	s.startUpdate(d, u)
	return d, nil
}

// run is the measured check-in phase. Check-in k of the whole fleet goes
// to device k mod n at k·interval/n: every device checks in once per
// interval, and the fleet's check-ins are evenly spread. Each check-in runs
// in its own goroutine, so there are as many goroutines as check-ins in
// flight, at most one per device.
//
// With a rollout, the deployment is read once a second, its stage and
// counts are part of the progress line, and the phase ends early once the
// deployment is over.
func (s *sim) run(ctx context.Context, devs []*device, res *Result, ro *rollout) {
	n := len(devs)
	interval, duration := s.cfg.Interval, s.cfg.Duration
	hist := newHistogram()
	var failed, overruns, inflight atomic.Int64
	var wg sync.WaitGroup
	// In-flight check-ins complete when ctx ends: their own timeout
	// bounds them.
	reqCtx := context.WithoutCancel(ctx)
	var pollDone chan struct{}
	stopPoll := func() {}
	if ro != nil {
		// The poll ends the schedule (ctx) once the deployment is over;
		// stopPoll ends the poll alone.
		var endSchedule context.CancelFunc
		ctx, endSchedule = context.WithCancel(ctx)
		defer endSchedule()
		pollCtx, cancelPoll := context.WithCancel(ctx)
		defer cancelPoll()
		stopPoll = cancelPoll
		pollDone = make(chan struct{})
		go func() {
			defer close(pollDone)
			ro.poll(pollCtx, endSchedule)
		}()
	}

	fmt.Fprintf(s.out, "running %d devices, each checking in every %s (%.1f checkins/s expected) for %s\n",
		n, interval, float64(n)/interval.Seconds(), duration)
	if every := s.cfg.AttestEvery; s.cfg.Attest && every > 0 {
		fmt.Fprintf(s.out, "each device also attests every %s (%.1f verifications/s expected)\n", every, float64(n)/every.Seconds())
	}
	var meter rateMeter
	p := startProgress(s.out, s.tty, func(el time.Duration, final bool) string {
		c := hist.Count()
		line := fmt.Sprintf("running elapsed=%s checkins=%d rate=%.1f/s errors=%d inflight=%d p99=%.1fms",
			roundDur(el), c, meter.rate(c, el, final), failed.Load(), inflight.Load(), ms(hist.Quantile(0.99)))
		if o := overruns.Load(); o > 0 {
			line += fmt.Sprintf(" overruns=%d", o)
		}
		if ro != nil {
			line += fmt.Sprintf(" updates=%d update_errors=%d %s", s.upd.hist.Count(), s.upd.errors.Load(), ro.status())
		}
		if s.att != nil {
			line += fmt.Sprintf(" attestations=%d attest_errors=%d attest_p99=%.1fms", s.att.hist.Count(), s.att.errors.Load(), ms(s.att.hist.Quantile(0.99)))
		}
		return line
	})

	start := time.Now()
	if every := s.cfg.AttestEvery; s.att != nil && every > 0 {
		wg.Go(func() {
			schedule(ctx, start, n, every, duration, func(idx int) {
				d := devs[idx]
				if !d.attBusy.CompareAndSwap(false, true) {
					s.att.overruns.Add(1)
					return
				}
				inflight.Add(1)
				wg.Go(func() {
					defer d.attBusy.Store(false)
					defer inflight.Add(-1)
					s.attestMeasured(reqCtx, d, nil)
				})
			})
		})
	}
	end := schedule(ctx, start, n, interval, duration, func(idx int) {
		d := devs[idx]
		if !d.busy.CompareAndSwap(false, true) {
			overruns.Add(1)
			return
		}
		inflight.Add(1)
		wg.Go(func() {
			defer d.busy.Store(false)
			defer inflight.Add(-1)
			t0 := time.Now()
			u, nonce, err := d.checkin(reqCtx)
			if err != nil {
				failed.Add(1)
				s.errs.add("checkin", err)
				return
			}
			hist.Record(time.Since(t0))
			s.startUpdate(d, u)
			if nonce != nil && d.tpm != nil {
				s.attestMeasured(reqCtx, d, nonce)
			}
		})
	})
	wg.Wait()
	if ro != nil {
		// Stop polling: the final reading is taken once the updates
		// in flight are done.
		s.upd.cancel()
		s.upd.wg.Wait()
	}
	res.Duration = max(end, time.Since(start))
	p.Stop()
	if pollDone != nil {
		// The schedule may have ended with the duration, not the
		// rollout: stop the poll.
		stopPoll()
		<-pollDone
	}

	res.Checkins = int(hist.Count())
	res.Errors = int(failed.Load())
	res.Overruns = int(overruns.Load())
	res.Rate = float64(res.Checkins) / res.Duration.Seconds()
	res.P50 = hist.Quantile(0.50)
	res.P90 = hist.Quantile(0.90)
	res.P99 = hist.Quantile(0.99)
	res.Max = hist.Max()
}

// schedule calls fire(k mod n) at start + round(k/n)·interval + (k mod
// n)·interval/n for k = 0, 1, ... while that is before start + duration,
// or until ctx ends: each of n items once per interval, evenly spread.
// It returns when the schedule ended (duration, or earlier with ctx)
// relative to start.
func schedule(ctx context.Context, start time.Time, n int, interval, duration time.Duration, fire func(idx int)) time.Duration {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for k := 0; ; k++ {
		round, idx := k/n, k%n
		at := time.Duration(round)*interval + time.Duration(int64(idx)*int64(interval)/int64(n))
		if at >= duration {
			return duration
		}
		if wait := at - time.Since(start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return time.Since(start)
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return time.Since(start)
		}
		fire(idx)
	}
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
