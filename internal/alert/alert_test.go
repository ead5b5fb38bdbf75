package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

var t0 = time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)

// eventSignal builds a signal the way the server does: from the stored
// envelope.
func eventSignal(t *testing.T, id int64, typ string, details any, at time.Time) *Signal {
	t.Helper()
	ev, err := events.New(typ, "dev-1", events.SeverityMedium, at, details)
	if err != nil {
		t.Fatal(err)
	}
	ev.Seq = uint64(id)
	data, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromEvent(id, data, at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func state(typ string, fields map[string]string) *Signal {
	return &Signal{Type: typ, DeviceID: "dev-1", Time: t0, Fields: fields}
}

func newEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRules(t *testing.T) {
	iocEvent := []byte(`{"schema_version":"1","type":"ioc.match","class_uid":9906008,"class_name":"Bulwark IoC Match","severity_id":4,"severity":"High","device_id":"dev-1","seq":9,"device_time":"2026-11-26T21:00:00Z","details":{"indicator":"198.51.100.66","indicator_type":"ipv4-addr","source":"misp"}}`)
	iocSig, err := FromEvent(77, iocEvent, t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		sig      *Signal
		rule     string // "" when nothing may fire
		severity int
		key      string
		summary  string // substring
	}{
		{"enrolled", state(SignalEnrolled, map[string]string{"group": "lab", "action": "enroll"}), RuleDeviceEnrolled, events.SeverityInformational, "", "Device enrolled (enroll) in group lab"},
		{"revoked", state(SignalRevoked, map[string]string{"actor": "user:alice", "reason": "stolen"}), RuleDeviceRevoked, events.SeverityMedium, "", "revoked by user:alice: stolen"},
		{"attestation failed", state(SignalAttestationFailed, map[string]string{"action": "quarantine", "problems": "PCR 4 does not replay"}), RuleAttestationFailed, events.SeverityHigh, "", "action quarantine: PCR 4 does not replay"},
		{"attestation passed", state(SignalAttestationPassed, nil), "", 0, "", ""},
		{"integrity fail", eventSignal(t, 1, events.TypeIntegrityResult, events.IntegrityResult{Check: "agent-binary", Outcome: "fail", Path: "/usr/bin/bulwark-agent", Expected: "sha256:ab", Actual: "sha256:cd"}, t0),
			RuleIntegrityFailed, events.SeverityHigh, "agent-binary", "Integrity check agent-binary failed on /usr/bin/bulwark-agent: expected sha256:ab, found sha256:cd"},
		{"integrity pass", eventSignal(t, 2, events.TypeIntegrityResult, events.IntegrityResult{Check: "agent-binary", Outcome: "pass"}, t0), "", 0, "", ""},
		{"unhealthy", state(SignalHealthChanged, map[string]string{"status": "unhealthy", "previous": "degraded"}), RuleHealthUnhealthy, events.SeverityMedium, "", "became unhealthy (was degraded)"},
		{"degraded", state(SignalHealthChanged, map[string]string{"status": "degraded", "previous": "healthy"}), "", 0, "", ""},
		{"update status failed", state(SignalUpdateStatus, map[string]string{"status": "failed", "deployment_id": "dep-1", "detail": "no space"}), RuleUpdateFailed, events.SeverityMedium, "", "Update failed (dep-1): no space"},
		{"update status rolled back", state(SignalUpdateStatus, map[string]string{"status": "rolled-back", "deployment_id": "dep-1"}), RuleUpdateFailed, events.SeverityMedium, "", "Update rolled-back (dep-1): -"},
		{"update status success", state(SignalUpdateStatus, map[string]string{"status": "success", "deployment_id": "dep-1"}), "", 0, "", ""},
		{"update step failure", eventSignal(t, 3, events.TypeUpdateStep, events.UpdateStep{Step: "verify", Outcome: "failure", Version: "1.4.2", Error: "sha256 mismatch"}, t0),
			RuleUpdateFailed, events.SeverityMedium, "", "Update verify (1.4.2): sha256 mismatch"},
		{"update rollback step", eventSignal(t, 4, events.TypeUpdateStep, events.UpdateStep{Step: "rollback", Outcome: "success", Version: "1.4.2"}, t0), RuleUpdateFailed, events.SeverityMedium, "", "Update rollback (1.4.2)"},
		{"update step ok", eventSignal(t, 5, events.TypeUpdateStep, events.UpdateStep{Step: "install", Outcome: "success", Version: "1.4.2"}, t0), "", 0, "", ""},
		{"ioc match event", iocSig, RuleIoCMatch, events.SeverityHigh, "198.51.100.66", "matched: 198.51.100.66"},
		{"ioc block", eventSignal(t, 6, events.TypePolicyDenial, events.PolicyDenial{Policy: "ioc-block", Action: "connect", Target: "198.51.100.66:443", Reason: "indicator"}, t0),
			RuleIoCMatch, events.SeverityHigh, "198.51.100.66:443", "matched: 198.51.100.66:443"},
		{"other policy denial", eventSignal(t, 7, events.TypePolicyDenial, events.PolicyDenial{Policy: "usb", Action: "mount", Reason: "policy"}, t0), "", 0, "", ""},
		{"clock skew", eventSignal(t, 8, events.TypeClockOffset, events.ClockOffset{OffsetMS: -93000, ThresholdMS: 5000, Reference: "server"}, t0),
			RuleClockSkew, events.SeverityLow, "server", "Clock off by -93000 ms from server (threshold 5000 ms)"},
		{"journal gap", eventSignal(t, 9, events.TypeJournalGap, events.JournalGap{FromSeq: 10, ToSeq: 20, Reason: "missing"}, t0),
			RuleJournalGap, events.SeverityMedium, "missing", "events 10 to 20 lost (missing)"},
		{"chain broken", eventSignal(t, 10, events.TypeJournalChainBroken, events.JournalChainBroken{Seq: 21, Reason: "prev_hash_mismatch"}, t0),
			RuleJournalTamper, events.SeverityHigh, "", "chain broken at seq 21 (prev_hash_mismatch)"},
		{"auth success", eventSignal(t, 11, events.TypeAuthLogin, events.AuthLogin{Activity: "logon", Outcome: "success", Service: "ssh", User: "root"}, t0), "", 0, "", ""},
		{"one auth failure", eventSignal(t, 12, events.TypeAuthLogin, events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: "root"}, t0), "", 0, "", ""},
		{"local config change", eventSignal(t, 14, events.TypeConfigChange, events.ConfigChange{Setting: "collectors.net", Old: "on", New: "off", Source: "local"}, t0),
			RuleConfigDrift, events.SeverityMedium, "collectors.net", "Setting collectors.net changed on the device from on to off"},
		{"server config change", eventSignal(t, 15, events.TypeConfigChange, events.ConfigChange{Setting: "ioc_action", Old: "flag", New: "block", Source: "server"}, t0), "", 0, "", ""},
		{"ioc block failed", eventSignal(t, 17, events.TypeConfigChange, events.ConfigChange{Setting: "ioc_block", New: "failed: nft is not available", Source: "server"}, t0),
			RuleIoCBlockFailed, events.SeverityMedium, "", "IoC blocking is not enforced on the device: failed: nft is not available"},
		{"ioc block installed", eventSignal(t, 18, events.TypeConfigChange, events.ConfigChange{Setting: "ioc_block", Old: "failed", New: "installed", Source: "server"}, t0), "", 0, "", ""},
		{"other server change starting like it", eventSignal(t, 19, events.TypeConfigChange, events.ConfigChange{Setting: "ioc_action", Old: "flag", New: "failed: x", Source: "server"}, t0), "", 0, "", ""},
		{"wipe", eventSignal(t, 16, events.TypeDeviceCommand, events.DeviceCommand{Action: "wipe", Outcome: "success", CommandID: "cmd-1"}, t0),
			RuleDeviceCommand, events.SeverityMedium, "wipe", "Device wipe: success (command cmd-1)"},
		{"net connection", eventSignal(t, 13, events.TypeNetConnection, events.NetConnection{Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.1", SrcPort: 1, DstIP: "192.0.2.2", DstPort: 2, CommunityID: "1:x"}, t0), "", 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := newEngine(t).Evaluate(tt.sig)
			if tt.rule == "" {
				if len(res.Fired) != 0 {
					t.Fatalf("fired %+v, want nothing", res.Fired)
				}
				return
			}
			if len(res.Fired) != 1 {
				t.Fatalf("fired %d rules (%+v), want %s", len(res.Fired), res.Fired, tt.rule)
			}
			f := res.Fired[0]
			if f.Rule != tt.rule || f.Severity != tt.severity || f.Key != tt.key || f.DeviceID != "dev-1" || !f.Time.Equal(t0) {
				t.Errorf("fired %+v, want rule %s severity %d key %q", f, tt.rule, tt.severity, tt.key)
			}
			if !strings.Contains(f.Summary, tt.summary) {
				t.Errorf("summary %q does not contain %q", f.Summary, tt.summary)
			}
			if tt.sig.Ref != nil && (len(f.Refs) != 1 || f.Refs[0] != *tt.sig.Ref) {
				t.Errorf("refs = %+v, want the event", f.Refs)
			}
		})
	}
}

func TestClears(t *testing.T) {
	e := newEngine(t)
	res := e.Evaluate(state(SignalHealthChanged, map[string]string{"status": "healthy", "previous": "unhealthy"}))
	if len(res.Fired) != 0 || len(res.Cleared) != 1 || res.Cleared[0].Rule != RuleHealthUnhealthy || res.Cleared[0].DeviceID != "dev-1" {
		t.Fatalf("healthy again: %+v", res)
	}
	res = e.Evaluate(state(SignalAttestationPassed, nil))
	if len(res.Cleared) != 1 || res.Cleared[0].Rule != RuleAttestationFailed {
		t.Fatalf("attestation passed: %+v", res)
	}
	res = e.Evaluate(eventSignal(t, 1, events.TypeConfigChange, events.ConfigChange{Setting: "ioc_block", Old: "failed", New: "installed", Source: "server"}, t0))
	if len(res.Fired) != 0 || len(res.Cleared) != 1 || res.Cleared[0].Rule != RuleIoCBlockFailed {
		t.Fatalf("ioc block installed: %+v", res)
	}
}

func TestAuthFailureThreshold(t *testing.T) {
	e := newEngine(t)
	fail := func(id int64, at time.Time) Result {
		return e.Evaluate(eventSignal(t, id, events.TypeAuthLogin, events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: "root", SrcIP: "203.0.113.7"}, at))
	}
	// Four failures, then a fifth after the first has left the window:
	// still four within it.
	for i := range 4 {
		if res := fail(int64(i+1), t0.Add(time.Duration(i)*time.Minute)); len(res.Fired) != 0 {
			t.Fatalf("failure %d fired %+v", i+1, res.Fired)
		}
	}
	if res := fail(5, t0.Add(5*time.Minute+time.Second)); len(res.Fired) != 0 {
		t.Fatalf("a failure outside the window of the first counted: %+v", res.Fired)
	}
	res := fail(6, t0.Add(5*time.Minute+2*time.Second))
	if len(res.Fired) != 1 {
		t.Fatalf("fifth failure within the window did not fire")
	}
	f := res.Fired[0]
	if f.Rule != RuleAuthBruteForce || len(f.Refs) != 5 || f.Refs[0].EventID != 2 || f.Refs[4].EventID != 6 {
		t.Fatalf("fired %+v", f)
	}
	if want := "5 failed logins within 5m0s; the last for user root via ssh from 203.0.113.7"; f.Summary != want {
		t.Errorf("summary %q, want %q", f.Summary, want)
	}
	// The window starts afresh.
	if res := fail(7, t0.Add(6*time.Minute)); len(res.Fired) != 0 {
		t.Fatalf("fired again at once: %+v", res.Fired)
	}
	// Other devices have their own windows.
	other := eventSignal(t, 8, events.TypeAuthLogin, events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: "root"}, t0)
	other.DeviceID = "dev-2"
	if res := e.Evaluate(other); len(res.Fired) != 0 {
		t.Fatal("a failure on another device counted")
	}
}

func TestNewRefusesBadRules(t *testing.T) {
	good := Rule{ID: "r", Severity: events.SeverityLow, Match: []Match{{Type: "x"}}, Summary: "s"}
	for name, mod := range map[string]func(*Rule){
		"no id":        func(r *Rule) { r.ID = "" },
		"bad severity": func(r *Rule) { r.Severity = 9 },
		"unknown":      func(r *Rule) { r.Severity = events.SeverityUnknown },
		"no match":     func(r *Rule) { r.Match = nil },
		"no window":    func(r *Rule) { r.Threshold = 3 },
		"no summary":   func(r *Rule) { r.Summary = "" },
	} {
		r := good
		mod(&r)
		if _, err := New([]Rule{r}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New([]Rule{good, good}); err == nil {
		t.Error("duplicate rule ids accepted")
	}
	if _, err := New([]Rule{good}); err != nil {
		t.Errorf("good rule refused: %v", err)
	}
}

func TestSummaryIsOneLine(t *testing.T) {
	s := state(SignalRevoked, map[string]string{"actor": "user:a\nb", "reason": strings.Repeat("é", 900)})
	f := newEngine(t).Evaluate(s).Fired[0]
	if strings.ContainsAny(f.Summary, "\r\n") || len(f.Summary) > 1000 {
		t.Fatalf("summary %q", f.Summary)
	}
}

func TestFromEventRefusesGarbage(t *testing.T) {
	for _, in := range []string{`nope`, `{"type":"x"}`, `{"device_id":"d"}`, `{"type":"x","device_id":"d","details":[1}`} {
		if _, err := FromEvent(1, []byte(in), t0); err == nil {
			t.Errorf("FromEvent(%s) accepted", in)
		}
	}
}
