package agent

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bulwark-iot/bulwark/internal/agent/agenttest"
	"github.com/bulwark-iot/bulwark/internal/agent/hardening"
	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/agent/integrity"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/healthdef"
)

// TestHealthOfRunningAgent runs the daemon with an integrity monitor whose
// tree changed while the agent was down and a kernel with weak settings,
// and checks that local health reports every check of the definition, in
// order, with the states those inputs call for, and that the server
// receives the same.
func TestHealthOfRunningAgent(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	st := enroll(t, srv, dir, false)

	tree := t.TempDir()
	conf := filepath.Join(tree, "app.conf")
	if err := os.WriteFile(conf, []byte("a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := integrity.NewMonitor(integrity.Config{Paths: []string{tree}}, filepath.Join(dir, integrityStateFile))
	if _, err := base.Run(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("a=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(dir)
	cfg.IntegrityPaths = []string{tree}
	cfg.hardeningRoot = "hardening/testdata/weak"
	start(t, cfg)
	d := waitDevice(t, srv, st.DeviceID, "a check-in", func(d *agenttest.Device) bool { return len(d.Checkins) > 0 })
	// The agent has read the answer once its status shows the success.
	eventually(t, "the check-in's answer", func() bool { return status(t, dir).LastCheckinSuccess != nil })

	h := status(t, dir).Health
	want := map[string]string{
		healthdef.CheckIdentity:    api.HealthHealthy,
		healthdef.CheckCheckin:     api.HealthHealthy,
		healthdef.CheckDisk:        "", // depends on the machine
		healthdef.CheckClock:       api.HealthHealthy,
		healthdef.CheckAttestation: api.HealthUnknown,
		healthdef.CheckIntegrity:   api.HealthDegraded,
		healthdef.CheckHardening:   api.HealthDegraded,
		healthdef.CheckUpdate:      api.HealthHealthy,
	}
	var names []string
	for _, c := range h.Checks {
		names = append(names, c.Name)
		if w := want[c.Name]; w != "" && c.Status != w {
			t.Errorf("check %s = %s (%s), want %s", c.Name, c.Status, c.Detail, want[c.Name])
		}
	}
	if !slices.Equal(names, healthdef.CheckNames()) {
		t.Fatalf("checks %v, the definition has %v", names, healthdef.CheckNames())
	}
	if h.Status != api.HealthDegraded {
		t.Errorf("health = %s, want degraded", h.Status)
	}
	for _, c := range h.Checks {
		switch c.Name {
		case healthdef.CheckIntegrity:
			if !strings.Contains(c.Detail, "changed "+conf) {
				t.Errorf("integrity detail %q does not name the changed file", c.Detail)
			}
		case healthdef.CheckHardening:
			if !strings.Contains(c.Detail, "aslr") || !strings.Contains(c.Detail, "protected_hardlinks") {
				t.Errorf("hardening detail %q does not name the mitigations that are off", c.Detail)
			}
		}
	}
	var sent []string
	for _, c := range d.Checkins[0].Health.Checks {
		sent = append(sent, c.Name)
	}
	if !slices.Equal(sent, healthdef.CheckNames()) {
		t.Errorf("check-in carried checks %v", sent)
	}
}

func TestClockCheck(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at     time.Time
		offset time.Duration
		want   string
	}{
		{time.Time{}, 0, api.HealthUnknown},
		{at, 0, api.HealthHealthy},
		{at, healthdef.ClockOffsetDegraded, api.HealthHealthy},
		{at, -healthdef.ClockOffsetDegraded, api.HealthHealthy},
		{at, healthdef.ClockOffsetDegraded + time.Second, api.HealthDegraded},
		{at, -healthdef.ClockOffsetDegraded - time.Second, api.HealthDegraded},
		{at, healthdef.ClockOffsetUnhealthy, api.HealthDegraded},
		{at, healthdef.ClockOffsetUnhealthy + time.Second, api.HealthUnhealthy},
		{at, -time.Hour, api.HealthUnhealthy},
	} {
		if c := clockCheck(tc.at, tc.offset, 0); c.Status != tc.want || c.Name != healthdef.CheckClock {
			t.Errorf("clockCheck(offset %s) = %+v, want %s", tc.offset, c, tc.want)
		}
	}
}

func TestRecordClock(t *testing.T) {
	var h healthState
	if c := h.clockCheck(); c.Status != api.HealthUnknown {
		t.Fatalf("before any check-in: %+v", c)
	}
	start := time.Now()
	end := start.Add(2 * time.Second)
	// The server stamped its answer 2 minutes after the request's
	// midpoint: the device clock is 2 minutes behind.
	h.recordClock(start, end, start.Add(time.Second+2*time.Minute))
	if h.clockOffset != 2*time.Minute || h.clockRTT != 2*time.Second {
		t.Errorf("offset %s rtt %s, want 2m and 2s", h.clockOffset, h.clockRTT)
	}
	if c := h.clockCheck(); c.Status != api.HealthDegraded || !strings.Contains(c.Detail, "2m0s behind") {
		t.Errorf("clock check = %+v", c)
	}
	h.recordClock(start, end, time.Time{}) // no server time: kept
	if h.clockOffset != 2*time.Minute {
		t.Errorf("a response without server time changed the offset to %s", h.clockOffset)
	}
}

func TestAttestationCheck(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	res := func(status string, age time.Duration) *api.AttestationResult {
		return &api.AttestationResult{Status: status, Time: now.Add(-age), Problems: []string{"pcr 7 differs"}}
	}
	for _, tc := range []struct {
		name string
		r    *api.AttestationResult
		want string
	}{
		{"none yet", nil, api.HealthUnknown},
		{"affirming", res(api.AttestAffirming, time.Hour), api.HealthHealthy},
		{"warning", res(api.AttestWarning, time.Hour), api.HealthDegraded},
		{"contraindicated", res(api.AttestContraindicated, time.Hour), api.HealthUnhealthy},
		{"status none", res(api.AttestNone, time.Hour), api.HealthUnknown},
		{"stale contraindicated", res(api.AttestContraindicated, healthdef.AttestationMaxAge+time.Second), api.HealthUnknown},
		{"at max age", res(api.AttestContraindicated, healthdef.AttestationMaxAge), api.HealthUnhealthy},
	} {
		c := attestationCheck(tc.r, now)
		if c.Status != tc.want || c.Name != healthdef.CheckAttestation || c.Detail == "" {
			t.Errorf("%s: %+v, want %s", tc.name, c, tc.want)
		}
	}
	if c := attestationCheck(res(api.AttestWarning, 0), now); !strings.Contains(c.Detail, "pcr 7 differs") {
		t.Errorf("warning detail %q lacks the problems", c.Detail)
	}
}

func TestIntegrityCheck(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	files := []api.FileMeasurement{{Path: "/etc/app.conf", SHA256: "ab"}}
	changes := []integrity.Change{{Path: "/etc/app.conf", Kind: integrity.Changed, Old: "aa", New: "ab"}}
	for _, tc := range []struct {
		name string
		r    *integrity.Report
		want string
	}{
		{"not run", nil, api.HealthUnknown},
		{"baseline", &integrity.Report{Result: integrity.Result{Files: files}, Baseline: true}, api.HealthHealthy},
		{"unchanged", &integrity.Report{Result: integrity.Result{Files: files}}, api.HealthHealthy},
		{"changed now", &integrity.Report{Result: integrity.Result{Files: files}, Changes: changes, LastChange: now, LastChanges: changes}, api.HealthDegraded},
		{"changed earlier, within the window", &integrity.Report{Result: integrity.Result{Files: files},
			LastChange: now.Add(-healthdef.IntegrityWindow + time.Minute), LastChanges: changes}, api.HealthDegraded},
		{"changed before the window", &integrity.Report{Result: integrity.Result{Files: files},
			LastChange: now.Add(-healthdef.IntegrityWindow), LastChanges: changes}, api.HealthHealthy},
	} {
		c := integrityCheck(tc.r, nil, now)
		if c.Status != tc.want || c.Name != healthdef.CheckIntegrity {
			t.Errorf("%s: %+v, want %s", tc.name, c, tc.want)
		}
		if tc.want == api.HealthDegraded && !strings.Contains(c.Detail, "changed /etc/app.conf") {
			t.Errorf("%s: detail %q does not name the change", tc.name, c.Detail)
		}
	}
}

func TestHardeningCheck(t *testing.T) {
	fact := func(name, status string) api.HardeningFact { return api.HardeningFact{Name: name, Status: status} }
	for _, tc := range []struct {
		name   string
		facts  []api.HardeningFact
		want   string
		detail string
	}{
		{"all on", []api.HardeningFact{fact("aslr", hardening.On), fact("kptr_restrict", hardening.On)}, api.HealthHealthy, "2 mitigations on"},
		{"unknown is not degraded", []api.HardeningFact{fact("aslr", hardening.On), fact("secure_boot", hardening.Unknown)}, api.HealthHealthy, "unknown: secure_boot"},
		{"off names the facts", []api.HardeningFact{fact("aslr", hardening.Off), fact("secure_boot", hardening.Unknown), fact("kexec_load_disabled", hardening.Off)},
			api.HealthDegraded, "mitigations off: aslr, kexec_load_disabled"},
		{"nothing readable", []api.HardeningFact{fact("aslr", hardening.Unknown)}, api.HealthUnknown, "no mitigation could be read"},
	} {
		c := hardeningCheck(&api.HardeningReport{Facts: tc.facts})
		if c.Status != tc.want || !strings.Contains(c.Detail, tc.detail) || c.Name != healthdef.CheckHardening {
			t.Errorf("%s: %+v, want %s with %q", tc.name, c, tc.want, tc.detail)
		}
	}
	// The real fake trees: a weak kernel is degraded, a container that
	// hides everything is unknown.
	if c := hardeningCheck(ptr(hardening.Collect(hardening.Options{Root: "hardening/testdata/weak", NoSelf: true}))); c.Status != api.HealthDegraded {
		t.Errorf("weak kernel: %+v", c)
	}
	if c := hardeningCheck(ptr(hardening.Collect(hardening.Options{Root: t.TempDir(), NoSelf: true}))); c.Status != api.HealthUnknown {
		t.Errorf("nothing readable: %+v", c)
	}
}

func ptr[T any](v T) *T { return &v }

func TestUpdateCheck(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		u    *updateOutcome
		want string
	}{
		{nil, api.HealthHealthy},
		{&updateOutcome{Version: "1.2", Status: "success", At: at}, api.HealthHealthy},
		{&updateOutcome{Version: "1.2", Status: "failed", Detail: "hash mismatch", At: at}, api.HealthDegraded},
		{&updateOutcome{Version: "1.2", Status: "rolled-back", At: at}, api.HealthDegraded},
	} {
		if c := updateCheck(tc.u); c.Status != tc.want || c.Name != healthdef.CheckUpdate {
			t.Errorf("updateCheck(%+v) = %+v, want %s", tc.u, c, tc.want)
		}
	}
}

// TestRenewalThresholdMatchesDefinition: identity.RenewalDue, which the
// identity check uses, applies the definition's threshold.
func TestRenewalThresholdMatchesDefinition(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	life := 300 * time.Hour
	leaf := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(life)}
	left := time.Duration(float64(life) * healthdef.IdentityRenewalShare)
	if identity.RenewalDue(leaf, leaf.NotAfter.Add(-left-time.Minute)) {
		t.Error("renewal due with more than the threshold's share of the lifetime left")
	}
	if !identity.RenewalDue(leaf, leaf.NotAfter.Add(-left+time.Minute)) {
		t.Error("renewal not due with less than the threshold's share of the lifetime left")
	}
}

// TestDetailsPassValidation: details quote file names and server messages;
// whatever they hold, the health the agent sends passes the server's
// validation, or every check-in would fail.
func TestDetailsPassValidation(t *testing.T) {
	now := time.Now()
	evil := "/etc/app/\x1b[31mred\nnewline\x00\xff" + strings.Repeat("é", api.MaxStringLen)
	changes := []integrity.Change{{Path: evil, Kind: integrity.Changed}}
	checks := []api.HealthCheck{
		integrityCheck(&integrity.Report{LastChange: now, LastChanges: changes}, nil, now),
		attestationCheck(&api.AttestationResult{Status: api.AttestWarning, Time: now, Problems: []string{evil}}, now),
		updateCheck(&updateOutcome{Status: "failed", Detail: evil}),
	}
	for i := range checks {
		checks[i].Detail = cleanDetail(checks[i].Detail)
		if !utf8.ValidString(checks[i].Detail) || len(checks[i].Detail) > api.MaxStringLen || len(checks[i].Detail) < api.MaxStringLen-2 {
			t.Errorf("detail %q", checks[i].Detail)
		}
	}
	h := api.SummarizeHealth(checks)
	if err := h.Validate(); err != nil {
		t.Fatalf("health with hostile details: %v", err)
	}
	if got := cleanDetail("a\tb\nc"); got != "a\tb?c" {
		t.Errorf("cleanDetail kept or lost the wrong characters: %q", got)
	}
}
