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
// range); larger fleets need several simulator hosts. Run may be called from
// several goroutines at once; nothing in the package is shared between
// calls.
package simulate

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
}

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
	if c.Devices < 0 || c.Interval < 0 || c.Duration < 0 || c.EnrollConcurrency < 0 || c.Timeout < 0 {
		return c, errors.New("negative devices, interval, duration, enrolment concurrency or timeout")
	}
	c.Devices = cmp.Or(c.Devices, DefaultDevices)
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.EnrollConcurrency = cmp.Or(c.EnrollConcurrency, DefaultEnrollConcurrency)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
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

	// ErrorSamples are the first few distinct errors, in order of first
	// occurrence, each with how often it occurred.
	ErrorSamples []ErrorSample `json:"error_samples,omitempty"`
}

// ErrorSample is one distinct error seen during a simulation.
type ErrorSample struct {
	Phase   string `json:"phase"` // "enroll" or "checkin"
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
func Run(ctx context.Context, cfg Config, progress io.Writer) (Result, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return Result{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	s := &sim{cfg: cfg, out: progress, tty: isTerminal(progress)}

	var res Result
	token, err := s.createEnrollToken(ctx)
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
		res.ErrorSamples = s.errs.all()
		return res, err
	}
	s.run(ctx, devs, &res)
	res.ErrorSamples = s.errs.all()
	if res.Checkins == 0 && res.Errors > 0 {
		return res, fmt.Errorf("%w (%d errors); first: %s", ErrAllCheckinsFailed, res.Errors, s.errs.first("checkin"))
	}
	return res, nil
}

// createEnrollToken asks the admin API for a token good for every device.
func (s *sim) createEnrollToken(ctx context.Context) (string, error) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: s.cfg.Roots},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: s.cfg.Timeout}

	body, err := json.Marshal(api.EnrollTokenCreate{
		Name:  "simulate-" + time.Now().UTC().Format("20060102T150405Z"),
		Uses:  s.cfg.Devices,
		TTL:   "1h",
		Group: s.cfg.Group,
	})
	if err != nil {
		return "", err
	}
	u, err := url.JoinPath(s.cfg.Server, "/api/v1/enroll-tokens")
	if err != nil {
		return "", fmt.Errorf("creating the enrolment token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("creating the enrolment token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("creating the enrolment token: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("creating the enrolment token: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var ae api.Error
		_ = json.Unmarshal(data, &ae)
		msg := fmt.Sprintf("server answered %s", resp.Status)
		if ae.Code != "" || ae.Message != "" {
			msg = fmt.Sprintf("server refused (%d %s): %s", resp.StatusCode, ae.Code, ae.Message)
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg += " (the admin API token must be valid and allowed to create enrolment tokens)"
		}
		return "", fmt.Errorf("creating the enrolment token: %s", msg)
	}
	var tok api.EnrollToken
	if err := json.Unmarshal(data, &tok); err != nil {
		return "", fmt.Errorf("creating the enrolment token: decoding the answer: %w", err)
	}
	if tok.Token == "" {
		return "", errors.New("creating the enrolment token: the answer holds no token")
	}
	return tok.Token, nil
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
func (s *sim) enrollOne(ctx context.Context, token string, i int) (*device, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a device key: %w", err)
	}
	csr, err := deviceclient.NewCSR(key)
	if err != nil {
		return nil, err
	}
	c, err := deviceclient.New(deviceclient.Config{Server: s.cfg.Server, Roots: s.cfg.Roots, Timeout: s.cfg.Timeout})
	if err != nil {
		return nil, err
	}
	d := newDevice(i, time.Now())
	d.client = c
	inv := d.inventory(time.Now())
	resp, err := c.Enroll(ctx, api.EnrollRequest{Token: token, CSR: csr, KeyAssurance: "software", Inventory: &inv})
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
	if err := d.checkin(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("first %w", err)
	}
	return d, nil
}

// run is the measured check-in phase. Check-in k of the whole fleet goes
// to device k mod n at k·interval/n: every device checks in once per
// interval, and the fleet's check-ins are evenly spread. Each check-in runs
// in its own goroutine, so there are as many goroutines as check-ins in
// flight, at most one per device.
func (s *sim) run(ctx context.Context, devs []*device, res *Result) {
	n := len(devs)
	interval, duration := s.cfg.Interval, s.cfg.Duration
	hist := newHistogram()
	var failed, overruns, inflight atomic.Int64
	var wg sync.WaitGroup
	// In-flight check-ins complete when ctx ends: their own timeout
	// bounds them.
	reqCtx := context.WithoutCancel(ctx)

	fmt.Fprintf(s.out, "running %d devices, each checking in every %s (%.1f checkins/s expected) for %s\n",
		n, interval, float64(n)/interval.Seconds(), duration)
	var meter rateMeter
	p := startProgress(s.out, s.tty, func(el time.Duration, final bool) string {
		c := hist.Count()
		line := fmt.Sprintf("running elapsed=%s checkins=%d rate=%.1f/s errors=%d inflight=%d p99=%.1fms",
			roundDur(el), c, meter.rate(c, el, final), failed.Load(), inflight.Load(), ms(hist.Quantile(0.99)))
		if o := overruns.Load(); o > 0 {
			line += fmt.Sprintf(" overruns=%d", o)
		}
		return line
	})

	start := time.Now()
	end := duration // of the schedule: duration, or when ctx ended
	timer := time.NewTimer(time.Hour)
	timer.Stop()
schedule:
	for k := 0; ; k++ {
		round, idx := k/n, k%n
		at := time.Duration(round)*interval + time.Duration(int64(idx)*int64(interval)/int64(n))
		if at >= duration {
			break
		}
		if wait := at - time.Since(start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				end = time.Since(start)
				break schedule
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			end = time.Since(start)
			break
		}
		d := devs[idx]
		if !d.busy.CompareAndSwap(false, true) {
			overruns.Add(1)
			continue
		}
		inflight.Add(1)
		wg.Go(func() {
			defer d.busy.Store(false)
			defer inflight.Add(-1)
			t0 := time.Now()
			if err := d.checkin(reqCtx); err != nil {
				failed.Add(1)
				s.errs.add("checkin", err)
				return
			}
			hist.Record(time.Since(t0))
		})
	}
	wg.Wait()
	res.Duration = max(end, time.Since(start))
	p.Stop()

	res.Checkins = int(hist.Count())
	res.Errors = int(failed.Load())
	res.Overruns = int(overruns.Load())
	res.Rate = float64(res.Checkins) / res.Duration.Seconds()
	res.P50 = hist.Quantile(0.50)
	res.P90 = hist.Quantile(0.90)
	res.P99 = hist.Quantile(0.99)
	res.Max = hist.Max()
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
