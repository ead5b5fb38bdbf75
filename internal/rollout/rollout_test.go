package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/rollout"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) // a Thursday

type fixture struct {
	st    *store.Store
	e     *rollout.Engine
	mu    sync.Mutex
	clock time.Time
	n     int
}

func setup(t *testing.T, s *store.Store, devices int) *fixture {
	ctx := context.Background()
	f := &fixture{st: s, clock: t0}
	f.e = &rollout.Engine{Store: s, Now: func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.clock }}
	if err := s.CreateEnrollToken(ctx, &store.EnrollToken{ID: "tok", SecretHash: []byte("h"), MaxUses: 100000, ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: "t"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < devices; i++ {
		f.enrol(t, "lab")
	}
	err := s.CreateRelease(ctx, &store.Release{ID: "r1", Product: "cam", Version: "1.0.0", Target: "cam/1.0.0/a", Length: 1, SHA256: "a", SHA512: "b",
		Installer: "app", CreatedAt: t0, CreatedBy: "t"}, func([]string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) enrol(t *testing.T, group string) string {
	f.n++
	id := fmt.Sprintf("dev%04d", f.n)
	err := f.st.EnrollDevice(context.Background(), "tok", []byte("h"), &store.Device{ID: id, Status: "active", Group: group, CertSerial: id,
		CertNotBefore: t0, CertNotAfter: t0.Add(time.Hour), CertPEM: "x", EnrolledAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func statuses(t *testing.T, s *store.Store, id string) map[string][]string {
	devs, err := s.DeploymentDevices(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, d := range devs {
		out[d.Status] = append(out[d.Status], d.DeviceID)
	}
	return out
}

func finish(t *testing.T, f *fixture, depID string, ids []string, status string) {
	for _, id := range ids {
		if err := f.e.Report(context.Background(), depID, id, "downloading", ""); err != nil {
			t.Fatal(err)
		}
		if err := f.e.Report(context.Background(), depID, id, status, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStagesAdvanceAndComplete(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := setup(t, s, 20)
		d, err := f.e.Create(ctx, rollout.Request{ID: "dep1", Product: "cam", Version: "1.0.0", Group: "lab", Stages: []int{5, 25, 100}, HaltFailurePct: 10, CreatedBy: "t"})
		if err != nil {
			t.Fatal(err)
		}
		st := statuses(t, s, d.ID)
		if len(st["pending"]) != 1 || len(st["waiting"]) != 19 {
			t.Fatalf("stage 1 of 5%% of 20 devices: %v", st)
		}
		// An assignment is given to a pending device only.
		if a, _ := f.e.Assignment(ctx, st["pending"][0], "lab"); a == nil || a.ID != "dep1" {
			t.Fatalf("pending device has no assignment")
		}
		if a, _ := f.e.Assignment(ctx, st["waiting"][0], "lab"); a != nil {
			t.Fatalf("waiting device got an assignment")
		}
		finish(t, f, d.ID, st["pending"], "success")
		st = statuses(t, s, d.ID)
		if len(st["pending"]) != 4 || len(st["success"]) != 1 {
			t.Fatalf("stage 2 (25%% = 5 devices): %v", st)
		}
		// One failure in five (20%) is above a 10% threshold: halt.
		finish(t, f, d.ID, st["pending"][:1], "rolled-back")
		finish(t, f, d.ID, st["pending"][1:], "success")
		got, _ := s.GetDeployment(ctx, d.ID)
		if got.State != store.DeployHalted || !strings.Contains(got.Reason, "1 of 5 devices failed (20%)") {
			t.Fatalf("after a bad stage: %s %q", got.State, got.Reason)
		}
		if a, _ := f.e.Assignment(ctx, statuses(t, s, d.ID)["waiting"][0], "lab"); a != nil {
			t.Fatal("a halted deployment still assigns")
		}
		// An admin resumes: the next stage opens; then all succeed. A
		// group deployment stays running to catch devices joining later.
		if err := f.e.Resume(ctx, d.ID, "investigated"); err != nil {
			t.Fatal(err)
		}
		st = statuses(t, s, d.ID)
		if len(st["pending"]) != 15 {
			t.Fatalf("final stage: %v", st)
		}
		finish(t, f, d.ID, st["pending"], "success")
		late := f.enrol(t, "lab")
		running, _ := s.ListDeployments(ctx, store.DeployRunning)
		if err := f.e.JoinGroup(ctx, late, "lab", running); err != nil {
			t.Fatal(err)
		}
		if a, _ := f.e.Assignment(ctx, late, "lab"); a == nil {
			t.Fatal("a device that joined the group later got no assignment")
		}
		ev, _ := s.DeploymentEvents(ctx, d.ID, st["pending"][0], 100)
		if len(ev) != 2 || ev[0].Status != "downloading" || ev[1].Status != "success" {
			t.Fatalf("device history %+v", ev)
		}
	})
}

func TestDeviceListCompletesAndControls(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := setup(t, s, 3)
		d, err := f.e.Create(ctx, rollout.Request{ID: "dep2", Product: "cam", Version: "1.0.0", Devices: []string{"dev0001", "dev0002"}, HaltFailurePct: 50})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.e.Pause(ctx, d.ID, "hold"); err != nil {
			t.Fatal(err)
		}
		if err := f.e.Pause(ctx, d.ID, "again"); !errors.Is(err, rollout.ErrWrongState) {
			t.Fatalf("pausing twice: %v", err)
		}
		if a, _ := f.e.Assignment(ctx, "dev0001", "lab"); a != nil {
			t.Fatal("a paused deployment assigns")
		}
		f.e.Resume(ctx, d.ID, "go")
		finish(t, f, d.ID, []string{"dev0001", "dev0002"}, "success")
		if got, _ := s.GetDeployment(ctx, d.ID); got.State != store.DeployCompleted {
			t.Fatalf("state %s", got.State)
		}
		if err := f.e.Report(ctx, d.ID, "dev0001", "failed", "late"); !errors.Is(err, rollout.ErrWrongState) {
			t.Fatalf("report after a final status: %v", err)
		}
		if err := f.e.Report(ctx, d.ID, "dev0003", "success", ""); !errors.Is(err, rollout.ErrUnknownPair) {
			t.Fatalf("report for a device outside: %v", err)
		}
		if err := f.e.Abort(ctx, d.ID, "x"); !errors.Is(err, rollout.ErrWrongState) {
			t.Fatalf("abort a completed deployment: %v", err)
		}
		for _, req := range []rollout.Request{
			{ID: "x1", Product: "cam", Version: "9.9.9", Group: "lab"},
			{ID: "x2", Product: "cam", Version: "1.0.0"},
			{ID: "x3", Product: "cam", Version: "1.0.0", Devices: []string{"nope"}},
			{ID: "x4", Product: "cam", Version: "1.0.0", Group: "lab", HaltFailurePct: 101},
		} {
			if _, err := f.e.Create(ctx, req); err == nil {
				t.Errorf("bad request %+v accepted", req)
			}
		}
	})
}

func TestMaintenanceWindowsAndExpedited(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := setup(t, s, 1)
		// Thursday 12:00 UTC is outside a Mon-Fri 01:00-04:00 window.
		if err := s.SetMaintenanceWindows(ctx, "lab", `[{"days":["mon","tue","wed","thu","fri"],"start":"01:00","end":"04:00"}]`); err != nil {
			t.Fatal(err)
		}
		f.e.Create(ctx, rollout.Request{ID: "slow", Product: "cam", Version: "1.0.0", Group: "lab"})
		if a, _ := f.e.Assignment(ctx, "dev0001", "lab"); a != nil {
			t.Fatal("assigned outside the maintenance window")
		}
		f.e.Create(ctx, rollout.Request{ID: "fast", Product: "cam", Version: "1.0.0", Group: "lab", Expedited: true})
		if a, _ := f.e.Assignment(ctx, "dev0001", "lab"); a == nil || a.ID != "fast" {
			t.Fatalf("expedited deployment did not bypass the window: %+v", a)
		}
		f.mu.Lock()
		f.clock = time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC) // Friday 02:30
		f.mu.Unlock()
		if a, _ := f.e.Assignment(ctx, "dev0001", "lab"); a == nil || a.ID != "fast" {
			t.Fatalf("in the window, expedited first: %+v", a)
		}
	})
}

func TestParseStagesAndWindows(t *testing.T) {
	for _, tc := range []struct {
		in  string
		ok  bool
		out string
	}{
		{"5,25,100", true, "[5 25 100]"}, {"100", true, "[100]"}, {"", true, "[100]"}, {"10%,100%", true, "[10 100]"},
		{"5,25", false, ""}, {"25,5,100", false, ""}, {"0,100", false, ""}, {"x,100", false, ""}, {"5,5,100", false, ""},
	} {
		got, err := rollout.ParseStages(tc.in)
		if (err == nil) != tc.ok || tc.ok && fmt.Sprint(got) != tc.out {
			t.Errorf("ParseStages(%q) = %v, %v", tc.in, got, err)
		}
	}
	night := []rollout.Window{{Days: []string{"sat"}, Start: "22:00", End: "02:00"}}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), true},   // Saturday 23:00
		{time.Date(2026, 11, 29, 1, 59, 0, 0, time.UTC), true},   // Sunday 01:59
		{time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), false},   // Sunday 02:00
		{time.Date(2026, 11, 28, 21, 59, 0, 0, time.UTC), false}, // Saturday 21:59
	} {
		if got := rollout.InWindow(night, tc.at); got != tc.want {
			t.Errorf("InWindow(%v) = %v", tc.at, got)
		}
	}
	if (rollout.Window{Days: []string{"funday"}, Start: "01:00", End: "02:00"}).Validate() == nil {
		t.Error("bad day accepted")
	}
}
