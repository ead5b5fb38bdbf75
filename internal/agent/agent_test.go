package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/agenttest"
	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/agent/localapi"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/healthdef"
)

func newServer(t *testing.T) *agenttest.Server {
	t.Helper()
	s := agenttest.New()
	t.Cleanup(s.Close)
	return s
}

func enroll(t *testing.T, srv *agenttest.Server, dir string, force bool) *state.State {
	t.Helper()
	st, err := Enroll(context.Background(), EnrollOptions{StateDir: dir, Server: srv.URL, Token: srv.Token, CAPEM: srv.CAPEM, Force: force})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	return st
}

func testConfig(dir string) Config {
	return Config{
		StateDir:     dir,
		Interval:     time.Hour, // check-ins happen at start and on demand
		RetryMin:     20 * time.Millisecond,
		RetryMax:     200 * time.Millisecond,
		RevokedRetry: time.Hour,
	}
}

// start runs the agent until the returned stop is called (or the test ends).
func start(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	// The JSON handler serialises its writes.
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- Run(ctx, cfg, logger) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancellation")
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	}
	t.Cleanup(stop)
	// Wait for the local API so that tests can query it at once.
	c := localapi.NewClient(filepath.Join(cfg.StateDir, state.SocketFile))
	eventually(t, "local API up", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		_, err := c.Status(context.Background())
		return err == nil
	})
	return stop
}

// eventually polls cond (for state that only the agent holds) until it
// holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitDevice(t *testing.T, srv *agenttest.Server, id, what string, cond func(*agenttest.Device) bool) *agenttest.Device {
	t.Helper()
	d, ok := srv.Wait(id, 10*time.Second, func(d *agenttest.Device) bool { return d != nil && cond(d) })
	if !ok {
		t.Fatalf("timed out waiting for the server to see %s", what)
	}
	return d
}

func status(t *testing.T, dir string) *localapi.Status {
	t.Helper()
	st, err := localapi.NewClient(filepath.Join(dir, state.SocketFile)).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ackCount(d *agenttest.Device, id string) int {
	n := 0
	for _, c := range d.Checkins {
		for _, a := range c.Acks {
			if a.ID == id {
				n++
			}
		}
	}
	return n
}

func TestEnrollCheckinCommands(t *testing.T) {
	srv := newServer(t)
	dir := filepath.Join(t.TempDir(), "state")
	st := enroll(t, srv, dir, false)

	// State directory layout and modes.
	for name, mode := range map[string]os.FileMode{
		".": 0o700, state.KeyFile: 0o600, state.CertFile: 0o644, state.CAFile: 0o644, state.StateFile: 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %04o, want %04o", name, fi.Mode().Perm(), mode)
		}
	}
	if ca, _ := os.ReadFile(filepath.Join(dir, state.CAFile)); !bytes.Equal(ca, srv.CAPEM) {
		t.Error("ca.pem is not the trust anchor given")
	}
	loaded, err := state.Load(dir)
	if err != nil || loaded.DeviceID != st.DeviceID || loaded.Server != srv.URL || loaded.EnrolledAt.IsZero() {
		t.Fatalf("state.json = %+v, %v", loaded, err)
	}
	enr := srv.Device(st.DeviceID).Enrolls[0]
	if enr.Inventory == nil || enr.Inventory.Hostname == "" || enr.KeyAssurance != "software" || enr.PreviousDeviceID != "" {
		t.Errorf("enrol request = %+v", enr)
	}
	if _, err := Enroll(context.Background(), EnrollOptions{StateDir: dir, Server: srv.URL, Token: srv.Token, CAPEM: srv.CAPEM}); !errors.Is(err, ErrAlreadyEnrolled) {
		t.Errorf("second Enroll without Force: %v, want ErrAlreadyEnrolled", err)
	}

	start(t, testConfig(dir))
	d := waitDevice(t, srv, st.DeviceID, "a check-in", func(d *agenttest.Device) bool { return len(d.Checkins) > 0 })
	ci := d.Checkins[0]
	if ci.Inventory.Hostname == "" || ci.Inventory.Kernel == "" || ci.Inventory.AgentVersion == "" {
		t.Errorf("check-in inventory = %+v", ci.Inventory)
	}
	if d.Proto != "HTTP/2.0" {
		t.Errorf("device API spoken over %s, want HTTP/2.0", d.Proto)
	}
	if ci.Health.Status == "" || len(ci.Health.Checks) != len(healthdef.CheckNames()) {
		t.Errorf("check-in health = %+v", ci.Health)
	}

	// Commands arrive by long poll (the check-in interval is an hour) and
	// their acks by the check-in they trigger.
	waitDevice(t, srv, st.DeviceID, "a long poll", func(d *agenttest.Device) bool { return d.Polls > 0 })
	n := len(srv.Device(st.DeviceID).Checkins)
	srv.Queue(st.DeviceID, api.Command{ID: "c-ping", Kind: "ping"})
	srv.Queue(st.DeviceID, api.Command{ID: "c-checkin", Kind: "checkin"})
	srv.Queue(st.DeviceID, api.Command{ID: "c-wipe", Kind: "self-destruct"})
	d = waitDevice(t, srv, st.DeviceID, "three acks", func(d *agenttest.Device) bool { return len(d.Acks) == 3 })
	want := map[string]api.CommandAck{
		"c-ping":    {ID: "c-ping", Status: "done", Detail: "pong"},
		"c-checkin": {ID: "c-checkin", Status: "done", Detail: "check-in triggered"},
		"c-wipe":    {ID: "c-wipe", Status: "failed", Detail: "unsupported command kind"},
	}
	for id, a := range want {
		if d.Acks[id] != a {
			t.Errorf("ack %s = %+v, want %+v", id, d.Acks[id], a)
		}
	}
	if len(d.Checkins) <= n {
		t.Error("commands did not trigger a check-in")
	}

	s := status(t, dir)
	if !s.DaemonRunning || !s.Enrolled || s.DeviceID != st.DeviceID || s.Server != srv.URL || s.LastCheckinResult != "ok" ||
		s.LastCheckin == nil || s.KeyAssurance != "software" || s.Revoked || s.CertificateNotAfter == nil || s.Health == nil {
		t.Errorf("status = %+v", s)
	}
	// Delivered acks leave the pending list and its file.
	eventually(t, "pending acks cleared", func() bool { return status(t, dir).PendingAcks == 0 })
	if _, err := os.Stat(filepath.Join(dir, state.AcksFile)); err == nil {
		t.Error("acks.json left after delivery")
	}
	for id := range want {
		if c := ackCount(srv.Device(st.DeviceID), id); c != 1 {
			t.Errorf("command %s acknowledged %d times", id, c)
		}
	}
}

func TestRenewalWhenDue(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	// The first certificate has 10 of its 60 minutes left: renewal is due.
	srv.SetCertificates(time.Hour, 50*time.Minute)
	st := enroll(t, srv, dir, false)
	srv.SetCertificates(24*time.Hour, 0)
	oldKey, _ := os.ReadFile(filepath.Join(dir, state.KeyFile))

	start(t, testConfig(dir))
	d := waitDevice(t, srv, st.DeviceID, "a renewal and a check-in", func(d *agenttest.Device) bool {
		return d.Renewals == 1 && len(d.Checkins) > 0
	})
	id, err := identity.LoadSoftware(dir)
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := os.ReadFile(filepath.Join(dir, state.KeyFile))
	if bytes.Equal(oldKey, newKey) {
		t.Error("renewal kept the old key")
	}
	if fi, _ := os.Stat(filepath.Join(dir, state.KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("renewed key mode = %04o", fi.Mode().Perm())
	}
	leaf := id.Certificate().Leaf
	if time.Until(leaf.NotAfter) < 23*time.Hour {
		t.Errorf("renewed certificate expires %v", leaf.NotAfter)
	}
	// The check-in after the renewal used the new certificate, and so
	// does the long poll that follows (on a fresh connection).
	if d.Serial != leaf.SerialNumber.Int64() {
		t.Errorf("check-in used certificate %d, want the renewed %d", d.Serial, leaf.SerialNumber.Int64())
	}
	waitDevice(t, srv, st.DeviceID, "a long poll with the new certificate", func(d *agenttest.Device) bool {
		return d.PollSerial == leaf.SerialNumber.Int64()
	})
	s := status(t, dir)
	if s.LastRenewal == nil || !s.CertificateNotAfter.Equal(leaf.NotAfter) {
		t.Errorf("status after renewal = %+v", s)
	}
	for _, c := range s.Health.Checks {
		if c.Name == "identity" && c.Status != api.HealthHealthy {
			t.Errorf("identity check after renewal = %+v", c)
		}
	}
}

func TestRenewalOnServerRequest(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	st := enroll(t, srv, dir, false)
	srv.AskRenewal(st.DeviceID)
	start(t, testConfig(dir))
	waitDevice(t, srv, st.DeviceID, "a renewal", func(d *agenttest.Device) bool { return d.Renewals == 1 })
}

func TestRenewalFailureKeepsIdentity(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	srv.SetCertificates(time.Hour, 50*time.Minute)
	st := enroll(t, srv, dir, false)
	srv.FailRenew(&api.Error{Code: "bad_request", Message: "csr rejected"})
	key, _ := os.ReadFile(filepath.Join(dir, state.KeyFile))
	crt, _ := os.ReadFile(filepath.Join(dir, state.CertFile))

	start(t, testConfig(dir))
	waitDevice(t, srv, st.DeviceID, "a check-in", func(d *agenttest.Device) bool { return len(d.Checkins) > 0 })
	key2, _ := os.ReadFile(filepath.Join(dir, state.KeyFile))
	crt2, _ := os.ReadFile(filepath.Join(dir, state.CertFile))
	if !bytes.Equal(key, key2) || !bytes.Equal(crt, crt2) {
		t.Error("a failed renewal changed the identity files")
	}
	if _, err := identity.LoadSoftware(dir); err != nil {
		t.Errorf("identity after failed renewal: %v", err)
	}
	s := status(t, dir)
	if !strings.Contains(s.LastError, "csr rejected") {
		t.Errorf("last error = %q", s.LastError)
	}
	if s.Health.Status != api.HealthDegraded {
		t.Errorf("health with renewal overdue = %+v", s.Health)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*.next")); len(ents) != 0 {
		t.Errorf("staged files left: %v", ents)
	}
}

func TestRevocation(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	st := enroll(t, srv, dir, false)
	cfg := testConfig(dir)
	cfg.Interval = 50 * time.Millisecond
	start(t, cfg)
	waitDevice(t, srv, st.DeviceID, "check-ins", func(d *agenttest.Device) bool { return len(d.Checkins) >= 2 })

	srv.Revoke(st.DeviceID)
	eventually(t, "revoked status", func() bool { return status(t, dir).Revoked })
	d := waitDevice(t, srv, st.DeviceID, "a refused check-in", func(d *agenttest.Device) bool { return d.Refused >= 1 })
	refused, checkins := d.Refused, len(d.Checkins)
	// With a 50 ms interval, 400 ms would be eight check-ins; a revoked
	// device makes at most the one already in flight.
	time.Sleep(400 * time.Millisecond)
	d = srv.Device(st.DeviceID)
	if d.Refused > refused+1 || len(d.Checkins) != checkins {
		t.Errorf("revoked device kept calling: refused %d -> %d, check-ins %d -> %d", refused, d.Refused, checkins, len(d.Checkins))
	}
	s := status(t, dir) // the socket stays up
	if !s.Revoked || s.Health.Status != api.HealthUnhealthy {
		t.Errorf("status = %+v", s)
	}
}

func TestAcksSurviveRestart(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	st := enroll(t, srv, dir, false)
	srv.FailCheckin(&api.Error{Code: "internal", Message: "database down"})

	stop := start(t, testConfig(dir))
	waitDevice(t, srv, st.DeviceID, "a long poll", func(d *agenttest.Device) bool { return d.Polls > 0 })
	srv.Queue(st.DeviceID, api.Command{ID: "c-1", Kind: "ping"})
	eventually(t, "the ack persisted", func() bool {
		acks, _ := state.LoadAcks(dir)
		return len(acks) == 1 && acks[0].ID == "c-1"
	})
	if s := status(t, dir); s.PendingAcks != 1 || s.LastCheckinResult != "failed" {
		t.Errorf("status with check-ins failing = %+v", s)
	}
	stop()
	noDaemonGoroutines(t)

	srv.FailCheckin(nil)
	start(t, testConfig(dir))
	d := waitDevice(t, srv, st.DeviceID, "the ack after restart", func(d *agenttest.Device) bool { return len(d.Acks) == 1 })
	if d.Acks["c-1"].Status != "done" {
		t.Errorf("ack = %+v", d.Acks["c-1"])
	}
	eventually(t, "acks.json removed", func() bool {
		_, err := os.Stat(filepath.Join(dir, state.AcksFile))
		return errors.Is(err, os.ErrNotExist)
	})
}

// noDaemonGoroutines fails if goroutines of a stopped agent remain.
func noDaemonGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for i := 0; ; i++ {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "agent.(*daemon)") && !strings.Contains(stacks, "localapi.(*Server)") {
			return
		}
		if i == 100 {
			t.Fatalf("agent goroutines left after Run returned:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReenrollKeepsIdentity(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	st := enroll(t, srv, dir, false)
	oldKey, _ := os.ReadFile(filepath.Join(dir, state.KeyFile))
	st2 := enroll(t, srv, dir, true)
	if st2.DeviceID != st.DeviceID {
		t.Errorf("re-enrolment changed the device ID: %s -> %s", st.DeviceID, st2.DeviceID)
	}
	d := srv.Device(st.DeviceID)
	if len(d.Enrolls) != 2 || d.Enrolls[1].PreviousDeviceID != st.DeviceID || d.Enrolls[1].PreviousProof == "" {
		t.Errorf("re-enrol request = %+v", d.Enrolls)
	}
	newKey, _ := os.ReadFile(filepath.Join(dir, state.KeyFile))
	if bytes.Equal(oldKey, newKey) {
		t.Error("re-enrolment kept the old key")
	}
	if _, err := identity.LoadSoftware(dir); err != nil {
		t.Error(err)
	}
}

func TestReenrollWhileRunning(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	st := enroll(t, srv, dir, false)
	start(t, testConfig(dir))
	waitDevice(t, srv, st.DeviceID, "a check-in", func(d *agenttest.Device) bool { return len(d.Checkins) > 0 })

	enroll(t, srv, dir, true)
	id, err := identity.LoadSoftware(dir)
	if err != nil {
		t.Fatal(err)
	}
	serial := id.Certificate().Leaf.SerialNumber.Int64()
	// The next check-in picks up the new identity from disk.
	srv.Queue(st.DeviceID, api.Command{ID: "c-1", Kind: "checkin"})
	waitDevice(t, srv, st.DeviceID, "a check-in with the new certificate", func(d *agenttest.Device) bool {
		return len(d.Acks) == 1 && d.Serial == serial
	})
	eventually(t, "the status to show the new certificate", func() bool {
		return status(t, dir).CertificateSerial == id.Certificate().Leaf.SerialNumber.Text(16)
	})
}

func TestEnrollFailureLeavesNothing(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	_, err := Enroll(context.Background(), EnrollOptions{StateDir: dir, Server: srv.URL, Token: "wrong", CAPEM: srv.CAPEM})
	if err == nil || !strings.Contains(err.Error(), "invalid_token") {
		t.Fatalf("Enroll with a bad token: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed enrolment left %d files", len(ents))
	}
}

func TestRunRefusals(t *testing.T) {
	srv := newServer(t)
	if err := Run(context.Background(), Config{StateDir: t.TempDir()}, nil); err == nil || !strings.Contains(err.Error(), "not enrolled") {
		t.Errorf("Run without enrolment: %v", err)
	}

	// Two agents with different state directories run side by side; a
	// second one on the same directory is refused.
	dirA, dirB := t.TempDir(), t.TempDir()
	a, b := enroll(t, srv, dirA, false), enroll(t, srv, dirB, false)
	start(t, testConfig(dirA))
	start(t, testConfig(dirB))
	if status(t, dirA).DeviceID != a.DeviceID || status(t, dirB).DeviceID != b.DeviceID {
		t.Error("agents answer for the wrong device")
	}
	err := Run(context.Background(), testConfig(dirA), nil)
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second agent on one state dir: %v", err)
	}
	if status(t, dirA).DeviceID != a.DeviceID {
		t.Error("the refused agent broke the running one's socket")
	}
}

func TestHandleDeduplicates(t *testing.T) {
	d := &daemon{
		log:        slog.New(slog.DiscardHandler),
		seen:       newIDSet(2),
		checkinNow: make(chan struct{}, 1),
		acks:       &ackQueue{dir: t.TempDir(), log: slog.New(slog.DiscardHandler)},
	}
	if !d.handle(api.Command{ID: "a", Kind: "ping"}, "poll") {
		t.Error("new command not handled")
	}
	if d.handle(api.Command{ID: "a", Kind: "ping"}, "checkin") {
		t.Error("duplicate command handled")
	}
	if d.handle(api.Command{ID: "", Kind: "ping"}, "poll") || d.handle(api.Command{ID: strings.Repeat("x", 65), Kind: "ping"}, "poll") {
		t.Error("command with an unacknowledgeable id handled")
	}
	if d.acks.len() != 1 {
		t.Errorf("%d acks, want 1", d.acks.len())
	}
	// The set is bounded: old IDs fall out.
	d.handle(api.Command{ID: "b", Kind: "ping"}, "poll")
	d.handle(api.Command{ID: "c", Kind: "ping"}, "poll")
	if !d.seen.add("a") {
		t.Error("oldest id not evicted")
	}
}

func TestBackoffAndJitter(t *testing.T) {
	d := &daemon{cfg: Config{RetryMin: time.Second, RetryMax: 5 * time.Minute}}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 9: 256 * time.Second, 10: 5 * time.Minute, 100: 5 * time.Minute} {
		for range 20 {
			got := d.backoff(n)
			if got < want/2 || got > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, got, want/2, want)
			}
		}
	}
	for range 100 {
		if j := jitter(time.Minute); j < 54*time.Second || j > 66*time.Second {
			t.Fatalf("jitter(1m) = %v", j)
		}
	}
}
