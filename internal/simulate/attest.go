package simulate

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
)

// AttestResult is the outcome of the attestations of a simulation, with
// Config.Attest.
type AttestResult struct {
	// TPMs is the number of distinct software TPMs the devices used.
	TPMs int `json:"tpms"`
	// HardwareKeys counts devices the server enrolled with key assurance
	// "hardware".
	HardwareKeys int `json:"hardware_keys"`
	// Enrolment counts the attestations answering the nonce of the
	// enrolment challenge (and any nonce in the first check-in's answer)
	// that the server appraised; a failed one fails the device's
	// enrolment.
	Enrolment int `json:"enrolment"`

	// Attestations counts the attestations of the measured phase that the
	// server appraised, whatever the outcome; FromCheckins are those
	// answering a nonce from a check-in answer, the others answer a nonce
	// the device asked for (Config.AttestEvery). Errors counts failed
	// exchanges (nonce request or evidence: an answer other than 2xx, or
	// a transport error). Overruns counts attestations not started
	// because the device's previous one was still in flight.
	Attestations int `json:"attestations"`
	FromCheckins int `json:"from_checkins"`
	Errors       int `json:"errors"`
	Overruns     int `json:"overruns"`
	// Rate is Attestations per second of the measured phase
	// (Result.Duration): the server's verification rate.
	Rate float64 `json:"rate"`
	// Latencies are of the evidence POST (the server's full appraisal and
	// its store write) of the measured phase's attestations.
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`

	// Affirming, Warning and Contraindicated count the results of every
	// attestation, enrolment ones included, by status. Without an
	// approved reference the server answers "warning".
	Affirming       int `json:"affirming"`
	Warning         int `json:"warning"`
	Contraindicated int `json:"contraindicated"`
	// Problem is the first problem of a contraindicated result, if any.
	Problem string `json:"problem,omitempty"`
}

// attestPCRs are the PCRs the simulated devices quote: the boot PCRs.
var attestPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7}

// tpmPool hands out the devices' software TPMs. Each TPM costs an RSA-2048
// key generation (the EK, 0.1-0.3 s of CPU), so TPMs are made lazily, by
// the enrolment workers, concurrently; with a pool smaller than the fleet,
// device i uses TPM i mod size. Safe for concurrent use.
type tpmPool struct {
	slots []tpmSlot
	made  atomic.Int64
}

type tpmSlot struct {
	mu  sync.Mutex
	tpm *softtpm.TPM
}

func newTPMPool(size int) *tpmPool { return &tpmPool{slots: make([]tpmSlot, size)} }

// bootConfigs are the boot configurations of the simulated fleet: a few
// firmware and kernel releases, with 30 to 80 boot events. A fleet boots
// a few configurations, not one per device.
var bootConfigs = []softtpm.BootConfig{
	{SecureBoot: true, Events: 30, Firmware: "1.0", Kernel: "/boot/vmlinuz-6.1.0"},
	{SecureBoot: true, Events: 45, Firmware: "1.2", Kernel: "/boot/vmlinuz-6.1.0"},
	{SecureBoot: true, Events: 60, Firmware: "2.0", Kernel: "/boot/vmlinuz-6.6.50"},
	{SecureBoot: true, Events: 80, Firmware: "2.1", Kernel: "/boot/vmlinuz-6.6.50"},
}

// get returns the TPM of device i, making and booting it on first use.
func (p *tpmPool) get(i int) (*softtpm.TPM, error) {
	k := i % len(p.slots)
	s := &p.slots[k]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tpm != nil {
		return s.tpm, nil
	}
	tp, err := softtpm.New(softtpm.Options{EKCertificate: true})
	if err != nil {
		return nil, fmt.Errorf("making a software TPM: %w", err)
	}
	if err := tp.Boot(bootConfigs[k%len(bootConfigs)]); err != nil {
		return nil, fmt.Errorf("booting a software TPM: %w", err)
	}
	s.tpm = tp
	p.made.Add(1)
	return tp, nil
}

// attestStats gathers the attestation figures of a run. Safe for
// concurrent use.
type attestStats struct {
	hist                                *histogram // measured phase
	hardware, enrolment                 atomic.Int64
	fromCheckins, errors, overruns      atomic.Int64
	affirming, warning, contraindicated atomic.Int64
	problemOnce                         sync.Once
	problem                             atomic.Pointer[string]
}

func (a *attestStats) fill(res *AttestResult, d time.Duration) {
	res.HardwareKeys = int(a.hardware.Load())
	res.Enrolment = int(a.enrolment.Load())
	res.Attestations = int(a.hist.Count())
	res.FromCheckins = int(a.fromCheckins.Load())
	res.Errors = int(a.errors.Load())
	res.Overruns = int(a.overruns.Load())
	if d > 0 {
		res.Rate = float64(res.Attestations) / d.Seconds()
	}
	res.P50 = a.hist.Quantile(0.50)
	res.P90 = a.hist.Quantile(0.90)
	res.P99 = a.hist.Quantile(0.99)
	res.Max = a.hist.Max()
	res.Affirming = int(a.affirming.Load())
	res.Warning = int(a.warning.Load())
	res.Contraindicated = int(a.contraindicated.Load())
	if p := a.problem.Load(); p != nil {
		res.Problem = *p
	}
}

// count records the status of an attestation result.
func (a *attestStats) count(r *api.AttestationResult) {
	switch r.Status {
	case api.AttestAffirming:
		a.affirming.Add(1)
	case api.AttestWarning:
		a.warning.Add(1)
	default:
		a.contraindicated.Add(1)
		a.problemOnce.Do(func() {
			p := fmt.Sprintf("%s: %q", r.Status, r.Problems)
			a.problem.Store(&p)
		})
	}
}

// enrollTPM enrols device d over the TPM flow: the TPM certifies key (the
// device key, made outside the TPM because a pooled TPM serves several
// devices), the server answers with a credential-activation challenge, the
// TPM activates the credential, and the server issues the certificate. It
// returns the enrolment answer and the nonce the enrolment attestation
// must answer.
func enrollTPM(ctx context.Context, c *deviceclient.Client, tp *softtpm.TPM, key *ecdsa.PrivateKey, csr, token string, inv *api.Inventory) (*api.EnrollResponse, []byte, error) {
	cp, err := tp.Certify(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	enr := &api.TPMEnrollment{EKPublic: tp.EKPublicDER(), EKCertificate: tp.EKCertificate(), AK: tp.AKParameters(), DeviceKey: cp}
	resp, err := c.Enroll(ctx, api.EnrollRequest{Token: token, CSR: csr, TPM: enr, Inventory: inv})
	if err != nil {
		return nil, nil, err
	}
	ch := resp.Activation
	if ch == nil {
		return nil, nil, errors.New("enroll: the server answered a TPM enrolment without an activation challenge")
	}
	secret, err := tp.ActivateCredential(ch.Credential, ch.Secret)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: %w", err)
	}
	fin, err := c.Enroll(ctx, api.EnrollRequest{CSR: csr, Activation: &api.ActivationAnswer{Session: ch.Session, Secret: secret}})
	if err != nil {
		return nil, nil, fmt.Errorf("activation %w", err)
	}
	return fin, ch.Nonce, nil
}

// attest quotes PCRs 0-7 with nonce and sends the evidence, with its boot
// event log, for appraisal. It returns the result and how long the
// server took to answer.
func (d *device) attest(ctx context.Context, nonce []byte, reason string) (*api.AttestationResult, time.Duration, error) {
	ev, err := d.tpm.Quote(nonce, attestPCRs)
	if err != nil {
		return nil, 0, err
	}
	ev.Reason = reason
	t0 := time.Now()
	r, err := d.client.Attest(ctx, ev)
	return r, time.Since(t0), err
}

// attestEnrolment answers a nonce during enrolment.
func (s *sim) attestEnrolment(ctx context.Context, d *device, nonce []byte, reason string) error {
	r, _, err := d.attest(ctx, nonce, reason)
	if err != nil {
		return fmt.Errorf("%s %w", reason, err)
	}
	s.att.enrolment.Add(1)
	s.att.count(r)
	return nil
}

// attestMeasured answers a nonce in the measured phase; nonce nil means
// the device asks for one first.
func (s *sim) attestMeasured(ctx context.Context, d *device, nonce []byte) {
	reason := "periodic"
	if nonce == nil {
		reason = "requested"
		var err error
		if nonce, err = d.client.AttestNonce(ctx); err != nil {
			s.att.errors.Add(1)
			s.errs.add("attest", err)
			return
		}
	}
	r, took, err := d.attest(ctx, nonce, reason)
	if err != nil {
		s.att.errors.Add(1)
		s.errs.add("attest", err)
		return
	}
	s.att.hist.Record(took)
	if reason == "periodic" {
		s.att.fromCheckins.Add(1)
	}
	s.att.count(r)
}

// FormatAttest is the attestation result line of `bulwark simulate
// --attest`:
//
//	verifications/s=1012.3 p50=3.1ms p99=41.0ms attestations=30369 affirming=0 warning=32369 contraindicated=0 errors=0 hardware_keys=2000 tpms=64
//
// verifications/s is the rate of the measured phase's attestations; the
// status counts include the enrolment attestations.
func FormatAttest(r AttestResult) string {
	return fmt.Sprintf("verifications/s=%.1f p50=%.1fms p99=%.1fms attestations=%d affirming=%d warning=%d contraindicated=%d errors=%d hardware_keys=%d tpms=%d",
		r.Rate, ms(r.P50), ms(r.P99), r.Attestations, r.Affirming, r.Warning, r.Contraindicated, r.Errors, r.HardwareKeys, r.TPMs)
}
