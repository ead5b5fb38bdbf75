package agent

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bulwark-iot/bulwark/internal/agent/hardening"
	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/agent/integrity"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/healthdef"
)

// Health states (api.HealthStates).
const (
	healthOK        = api.HealthHealthy
	healthDegraded  = api.HealthDegraded
	healthFailing   = api.HealthUnhealthy
	healthUnknown   = api.HealthUnknown
	hardeningMaxAge = 5 * time.Minute  // how long a hardening report is reused
	integrityEvery  = 15 * time.Minute // how often the integrity monitor runs
)

// integrityStateFile keeps the integrity monitor's previous run.
const integrityStateFile = "integrity.json"

// Health implements localapi.Provider. It evaluates the definition of
// device health in internal/healthdef (Code of Practice 5.1), available
// locally (5.2) through bulwark-agent health and remotely (5.3) in every
// check-in. Every check of the definition is reported, in its order; one
// without data is unknown. The summary is api.SummarizeHealth.
//
// The integrity monitor runs from here at most every integrityEvery, so
// its cost falls on the check-in loop that calls Health each interval; a
// caller that finds a run in progress uses the previous result.
func (d *daemon) Health() api.Health {
	now := time.Now()
	d.mu.Lock()
	id, revoked := d.id, d.revoked
	checkin := d.checkinCheckLocked()
	d.mu.Unlock()
	checks := []api.HealthCheck{
		identityCheck(id, revoked, now),
		checkin,
		diskCheck(d.dir),
		d.health.clockCheck(),
		attestationCheck(d.health.attestation(), now),
		d.integrityCheck(now),
		hardeningCheck(d.hardening(now)),
		d.updateCheck(),
	}
	for i := range checks {
		checks[i].Detail = cleanDetail(checks[i].Detail)
	}
	return api.SummarizeHealth(checks)
}

// cleanDetail makes a detail acceptable to the server (api.Health.Validate):
// valid UTF-8 without control characters, at most api.MaxStringLen bytes.
// Details quote file names and server messages, which may hold anything;
// one bad byte must not make every check-in fail.
func cleanDetail(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) <= api.MaxStringLen {
		return s
	}
	cut := api.MaxStringLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// healthReport is the health report the device signs (api.HealthReport),
// without the quote digest, which the attestation flow adds.
func (d *daemon) healthReport(now time.Time) api.HealthReport {
	h := d.Health()
	d.mu.Lock()
	id := d.st.DeviceID
	d.mu.Unlock()
	return api.HealthReport{DeviceID: id, Time: now.UTC(), Health: h, Hardening: d.hardening(now), Files: d.integrityFiles()}
}

// integrityFiles are the integrity monitor's latest measurements, for
// attestation evidence where the kernel has no IMA (api.Evidence.Files);
// nil before the monitor has run or when no paths are configured.
func (d *daemon) integrityFiles() []api.FileMeasurement {
	if r := d.health.lastIntegrity(); r != nil {
		return r.Files
	}
	return nil
}

// recordAttestation keeps the server's latest appraisal of the device's
// evidence for the attestation check. The attestation flow calls it with
// each result it receives.
func (d *daemon) recordAttestation(r api.AttestationResult) {
	d.health.mu.Lock()
	defer d.health.mu.Unlock()
	d.health.attest = &r
}

// healthState holds what the checks need besides the daemon's own fields.
// The zero value is ready to use.
type healthState struct {
	mu          sync.Mutex
	clockAt     time.Time // zero until a check-in succeeded
	clockOffset time.Duration
	clockRTT    time.Duration
	attest      *api.AttestationResult
	hard        *api.HardeningReport
	hardAt      time.Time
	integ       *integrity.Report
	integErr    error
	integAt     time.Time
	monitor     *integrity.Monitor

	// scan serialises integrity runs; callers that find one in progress
	// use the previous result.
	scan sync.Mutex
}

// recordClock measures the clock offset at a successful check-in: the
// server's time minus the midpoint of the request.
func (h *healthState) recordClock(start, end, server time.Time) {
	if server.IsZero() {
		return
	}
	rtt := end.Sub(start)
	mid := start.Add(rtt / 2)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clockAt, h.clockOffset, h.clockRTT = end, server.Sub(mid.Round(0)), rtt
}

func (h *healthState) clockCheck() api.HealthCheck {
	h.mu.Lock()
	defer h.mu.Unlock()
	return clockCheck(h.clockAt, h.clockOffset, h.clockRTT)
}

func (h *healthState) attestation() *api.AttestationResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attest
}

func (h *healthState) lastIntegrity() *integrity.Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.integ
}

// hardening returns the hardening report, collected again when older than
// hardeningMaxAge.
func (d *daemon) hardening(now time.Time) *api.HardeningReport {
	h := &d.health
	h.mu.Lock()
	if h.hard != nil && now.Sub(h.hardAt) < hardeningMaxAge {
		r := h.hard
		h.mu.Unlock()
		return r
	}
	h.mu.Unlock()
	rep := hardening.Collect(hardening.Options{Root: d.cfg.hardeningRoot, Binaries: d.cfg.ManagedBinaries})
	h.mu.Lock()
	h.hard, h.hardAt = &rep, now
	h.mu.Unlock()
	return &rep
}

// integrityCheck runs the integrity monitor when due and evaluates its
// latest report.
func (d *daemon) integrityCheck(now time.Time) api.HealthCheck {
	if len(d.cfg.IntegrityPaths) == 0 {
		return api.HealthCheck{Name: healthdef.CheckIntegrity, Status: healthUnknown, Detail: "no paths configured for the integrity monitor"}
	}
	h := &d.health
	if h.scan.TryLock() {
		h.mu.Lock()
		due := h.integ == nil || now.Sub(h.integAt) >= integrityEvery
		if h.monitor == nil {
			h.monitor = integrity.NewMonitor(integrity.Config{Paths: d.cfg.IntegrityPaths}, filepath.Join(d.dir, integrityStateFile))
		}
		m := h.monitor
		h.mu.Unlock()
		if due {
			rep, err := m.Run(now)
			if err != nil {
				d.log.Warn("integrity monitor state", "err", err)
			}
			h.mu.Lock()
			h.integ, h.integErr, h.integAt = &rep, err, now
			h.mu.Unlock()
		}
		h.scan.Unlock()
	}
	h.mu.Lock()
	rep, err := h.integ, h.integErr
	h.mu.Unlock()
	return integrityCheck(rep, err, now)
}

func (d *daemon) updateCheck() api.HealthCheck {
	if d.updates == nil {
		return updateCheck(nil)
	}
	r := d.updates.lastReport()
	if r == nil {
		return updateCheck(nil)
	}
	return updateCheck(&updateOutcome{Version: r.Version, Status: r.Status, Detail: r.Detail, At: r.At})
}

func identityCheck(id identity.Identity, revoked bool, now time.Time) api.HealthCheck {
	c := api.HealthCheck{Name: healthdef.CheckIdentity}
	leaf := id.Certificate().Leaf
	exp := leaf.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case revoked:
		c.Status, c.Detail = healthFailing, "device revoked by the server"
	case now.After(leaf.NotAfter):
		c.Status, c.Detail = healthFailing, "certificate expired at "+exp
	case now.Before(leaf.NotBefore):
		c.Status, c.Detail = healthFailing, "certificate not valid before "+leaf.NotBefore.UTC().Format(time.RFC3339)
	case identity.RenewalDue(leaf, now):
		c.Status, c.Detail = healthDegraded, "certificate expires soon ("+exp+"); renewal due"
	default:
		c.Status, c.Detail = healthOK, fmt.Sprintf("certificate valid until %s (%s key)", exp, id.KeyAssurance())
	}
	return c
}

func (d *daemon) checkinCheckLocked() api.HealthCheck {
	c := api.HealthCheck{Name: healthdef.CheckCheckin, Status: healthOK}
	switch {
	case d.revoked:
		c.Status, c.Detail = healthFailing, "device revoked by the server"
	case d.lastResult == "":
		c.Status, c.Detail = healthUnknown, "no check-in yet"
	case d.lastResult == "failed":
		c.Status = healthDegraded
		c.Detail = "last check-in failed at " + d.lastAttempt.UTC().Format(time.RFC3339)
		if !d.lastSuccess.IsZero() {
			c.Detail += "; last success " + d.lastSuccess.UTC().Format(time.RFC3339)
		}
	default:
		c.Detail = "last check-in " + d.lastSuccess.UTC().Format(time.RFC3339)
	}
	return c
}

func diskCheck(dir string) api.HealthCheck {
	c := api.HealthCheck{Name: healthdef.CheckDisk}
	free, err := freeShare(dir)
	switch {
	case err != nil:
		c.Status, c.Detail = healthDegraded, "cannot measure free space: "+err.Error()
	case free < healthdef.DiskMinFree:
		c.Status, c.Detail = healthDegraded, fmt.Sprintf("%.1f%% free on the state filesystem", free*100)
	default:
		c.Status, c.Detail = healthOK, fmt.Sprintf("%.1f%% free on the state filesystem", free*100)
	}
	return c
}

func clockCheck(at time.Time, offset, rtt time.Duration) api.HealthCheck {
	c := api.HealthCheck{Name: healthdef.CheckClock}
	if at.IsZero() {
		c.Status, c.Detail = healthUnknown, "no successful check-in yet to compare the clock with the server's"
		return c
	}
	abs, dir := offset, "behind"
	if offset < 0 {
		abs, dir = -offset, "ahead of"
	}
	c.Detail = fmt.Sprintf("device clock %s %s the server's (measured %s, round trip %s)",
		abs.Round(time.Millisecond), dir, at.UTC().Format(time.RFC3339), rtt.Round(time.Millisecond))
	switch {
	case abs > healthdef.ClockOffsetUnhealthy:
		c.Status = healthFailing
	case abs > healthdef.ClockOffsetDegraded:
		c.Status = healthDegraded
	default:
		c.Status = healthOK
	}
	return c
}

func attestationCheck(r *api.AttestationResult, now time.Time) api.HealthCheck {
	c := api.HealthCheck{Name: healthdef.CheckAttestation, Status: healthUnknown}
	if r == nil {
		c.Detail = "no attestation result (no TPM, or not attested yet)"
		return c
	}
	when := r.Time.UTC().Format(time.RFC3339)
	if now.Sub(r.Time) > healthdef.AttestationMaxAge {
		c.Detail = fmt.Sprintf("latest attestation result (%s, %s) is older than %s", r.Status, when, healthdef.AttestationMaxAge)
		return c
	}
	c.Detail = fmt.Sprintf("attestation %s at %s", r.Status, when)
	if len(r.Problems) > 0 {
		c.Detail += ": " + strings.Join(r.Problems, "; ")
	}
	switch r.Status {
	case api.AttestAffirming:
		c.Status = healthOK
	case api.AttestWarning:
		c.Status = healthDegraded
	case api.AttestContraindicated:
		c.Status = healthFailing
	}
	return c
}

func integrityCheck(r *integrity.Report, err error, now time.Time) api.HealthCheck {
	c := api.HealthCheck{Name: healthdef.CheckIntegrity}
	if r == nil {
		c.Status, c.Detail = healthUnknown, "the integrity monitor has not run yet"
		return c
	}
	var notes []string
	if r.Truncated {
		notes = append(notes, "scan cut short by a limit")
	}
	if len(r.Problems) > 0 {
		notes = append(notes, fmt.Sprintf("%d files not measured", len(r.Problems)))
	}
	if err != nil {
		notes = append(notes, err.Error())
	}
	switch {
	case !r.LastChange.IsZero() && now.Sub(r.LastChange) < healthdef.IntegrityWindow:
		c.Status = healthDegraded
		var names []string
		for _, ch := range r.LastChanges {
			names = append(names, ch.String())
		}
		c.Detail = fmt.Sprintf("%d changes found at %s: %s", len(r.LastChanges), r.LastChange.UTC().Format(time.RFC3339), strings.Join(names, ", "))
	case r.Baseline:
		c.Status = healthOK
		c.Detail = fmt.Sprintf("%d files measured (baseline)", len(r.Files))
	default:
		c.Status = healthOK
		c.Detail = fmt.Sprintf("%d files measured, unchanged", len(r.Files))
	}
	if len(notes) > 0 {
		c.Detail += "; " + strings.Join(notes, "; ")
	}
	return c
}

func hardeningCheck(r *api.HardeningReport) api.HealthCheck {
	c := api.HealthCheck{Name: healthdef.CheckHardening}
	var off, unknown []string
	for _, f := range r.Facts {
		switch f.Status {
		case hardening.Off:
			off = append(off, f.Name)
		case hardening.Unknown:
			unknown = append(unknown, f.Name)
		}
	}
	switch {
	case len(off) > 0:
		c.Status, c.Detail = healthDegraded, "mitigations off: "+strings.Join(off, ", ")
	case len(unknown) == len(r.Facts):
		c.Status, c.Detail = healthUnknown, "no mitigation could be read"
		return c
	default:
		c.Status, c.Detail = healthOK, fmt.Sprintf("%d mitigations on", len(r.Facts)-len(unknown))
	}
	if len(unknown) > 0 {
		c.Detail += "; unknown: " + strings.Join(unknown, ", ")
	}
	return c
}

// updateOutcome is how the last update ended (localapi.UpdateReport).
type updateOutcome struct {
	Version, Status, Detail string
	At                      time.Time
}

func updateCheck(u *updateOutcome) api.HealthCheck {
	c := api.HealthCheck{Name: healthdef.CheckUpdate, Status: healthOK}
	if u == nil {
		c.Detail = "no update since the agent started"
		return c
	}
	c.Detail = fmt.Sprintf("update to %s %s at %s", u.Version, u.Status, u.At.UTC().Format(time.RFC3339))
	if u.Status == "failed" || u.Status == "rolled-back" {
		c.Status = healthDegraded
		if u.Detail != "" {
			c.Detail += ": " + u.Detail
		}
	}
	return c
}
