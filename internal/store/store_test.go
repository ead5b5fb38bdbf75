package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func newToken(t *testing.T, s *store.Store, id string, uses int) {
	t.Helper()
	err := s.CreateEnrollToken(context.Background(), &store.EnrollToken{
		ID: id, SecretHash: []byte("hash-" + id), MaxUses: uses, Group: "lab",
		ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: "admin",
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newDevice(id string) *store.Device {
	return &store.Device{ID: id, Status: api.DeviceActive, Group: "lab", Hostname: "h-" + id, KeyAssurance: "software",
		CertSerial: "s-" + id, CertNotBefore: t0, CertNotAfter: t0.Add(24 * time.Hour), CertPEM: "pem", EnrolledAt: t0}
}

func TestMigrationsIdempotent(t *testing.T) {
	for _, d := range storetest.Backends {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			dsn := storetest.DSN(t, d)
			for i := 0; i < 2; i++ {
				s, err := store.Open(ctx, dsn)
				if err != nil {
					t.Fatalf("open %d: %v", i, err)
				}
				v, err := s.SchemaVersion(ctx)
				if err != nil || v < 1 {
					t.Fatalf("schema version = %d, %v", v, err)
				}
				s.Close()
			}
		})
	}
}

func TestEnrollTokenLifecycle(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		newToken(t, s, "tok1", 2)
		for _, tc := range []struct {
			name string
			hash string
			at   time.Time
			want error
		}{
			{"wrong secret", "nope", t0, store.ErrTokenInvalid},
			{"expired", "hash-tok1", t0.Add(2 * time.Hour), store.ErrTokenExpired},
		} {
			if _, err := s.CheckEnrollToken(ctx, "tok1", []byte(tc.hash), tc.at); !errors.Is(err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
		}
		if _, err := s.CheckEnrollToken(ctx, "missing", []byte("x"), t0); !errors.Is(err, store.ErrTokenInvalid) {
			t.Errorf("missing token: %v", err)
		}
		for _, id := range []string{"d1", "d2"} {
			if err := s.EnrollDevice(ctx, "tok1", []byte("hash-tok1"), newDevice(id)); err != nil {
				t.Fatalf("enroll %s: %v", id, err)
			}
		}
		err := s.EnrollDevice(ctx, "tok1", []byte("hash-tok1"), newDevice("d3"))
		if !errors.Is(err, store.ErrTokenUsedUp) {
			t.Fatalf("third use: %v", err)
		}
		if _, err := s.GetDevice(ctx, "d3"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refused enrolment left a device behind: %v", err)
		}
		// A duplicate device ID rolls back the token use too.
		newToken(t, s, "tok2", 5)
		if err := s.EnrollDevice(ctx, "tok2", []byte("hash-tok2"), newDevice("d1")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate device: %v", err)
		}
		tk, _ := s.GetEnrollToken(ctx, "tok2")
		if tk.Used != 0 {
			t.Fatalf("failed enrolment spent a token use: used=%d", tk.Used)
		}
		if err := s.RevokeEnrollToken(ctx, "tok2"); err != nil {
			t.Fatal(err)
		}
		if err := s.EnrollDevice(ctx, "tok2", []byte("hash-tok2"), newDevice("d9")); !errors.Is(err, store.ErrTokenRevoked) {
			t.Fatalf("revoked token: %v", err)
		}
	})
}

func TestConcurrentTokenUse(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		newToken(t, s, "tok", 3)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				err := s.EnrollDevice(ctx, "tok", []byte("hash-tok"), newDevice(string(rune('a'+i))))
				if err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrTokenUsedUp) {
					t.Errorf("enroll: %v", err)
				}
			}(i)
		}
		wg.Wait()
		if ok != 3 {
			t.Fatalf("%d enrolments succeeded with a 3-use token", ok)
		}
	})
}

func TestDevicesCheckinsAndCommands(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		newToken(t, s, "tok", 10)
		for _, id := range []string{"d1", "d2", "d3"} {
			if err := s.EnrollDevice(ctx, "tok", []byte("hash-tok"), newDevice(id)); err != nil {
				t.Fatal(err)
			}
		}
		cmd := &store.Command{ID: "c1", DeviceID: "d1", Kind: "ping", CreatedAt: t0, CreatedBy: "admin"}
		if err := s.CreateCommand(ctx, cmd); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateCommand(ctx, &store.Command{ID: "c2", DeviceID: "nope", Kind: "ping", CreatedAt: t0, CreatedBy: "admin"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("command for unknown device: %v", err)
		}
		open, err := s.OpenCommands(ctx, "d1", 10)
		if err != nil || len(open) != 1 || open[0].Kind != "ping" {
			t.Fatalf("open commands = %v, %v", open, err)
		}
		if err := s.MarkDelivered(ctx, []string{"c1"}, t0); err != nil {
			t.Fatal(err)
		}
		err = s.ApplyCheckins(ctx, []store.Checkin{
			{DeviceID: "d1", At: t0.Add(time.Minute), Hostname: "alpha", Inventory: `{"hostname":"alpha"}`, Health: `{"status":"ok"}`, HealthStatus: "ok",
				Acks: []store.Ack{{CommandID: "c1", Status: "done"}}},
			{DeviceID: "d2", At: t0.Add(time.Minute), Hostname: "beta", HealthStatus: "degraded",
				Acks: []store.Ack{{CommandID: "c1", Status: "failed"}}}, // not d2's command: ignored
		})
		if err != nil {
			t.Fatal(err)
		}
		cmds, _ := s.DeviceCommands(ctx, "d1", 10)
		if len(cmds) != 1 || cmds[0].Status != "done" || cmds[0].AckedAt.IsZero() {
			t.Fatalf("command after ack = %+v", cmds[0])
		}
		d, err := s.GetDevice(ctx, "d1")
		if err != nil || d.Hostname != "alpha" || !d.LastSeen.Equal(t0.Add(time.Minute)) {
			t.Fatalf("device after check-in = %+v, %v", d, err)
		}
		list, total, err := s.ListDevices(ctx, store.DeviceFilter{Query: "ALP"})
		if err != nil || total != 1 || list[0].ID != "d1" {
			t.Fatalf("search = %v %d %v", list, total, err)
		}
		if _, total, _ := s.ListDevices(ctx, store.DeviceFilter{Query: "%"}); total != 0 {
			t.Fatalf("LIKE wildcard not escaped: %d", total)
		}
		if _, total, _ := s.ListDevices(ctx, store.DeviceFilter{Scope: []string{"other"}}); total != 0 {
			t.Fatalf("scope not applied: %d", total)
		}
		if err := s.RevokeDevice(ctx, "d2", t0); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeDevice(ctx, "zz", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		a, _ := s.GetDeviceAuth(ctx, "d2")
		if a.Status != api.DeviceRevoked {
			t.Fatalf("status after revoke = %s", a.Status)
		}
		c, err := s.CountFleet(ctx, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		want := store.FleetCounts{Total: 3, Active: 2, Revoked: 1, Online: 1, Never: 1, Degraded: 0}
		if c != want {
			t.Fatalf("fleet = %+v, want %+v", c, want)
		}
		// Renewal replaces the certificate only from the current one.
		nd := newDevice("d1")
		nd.CertSerial = "s-new"
		if err := s.RenewDeviceCert(ctx, "s-wrong", nd); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("renew from stale serial: %v", err)
		}
		if err := s.RenewDeviceCert(ctx, "s-d1", nd); err != nil {
			t.Fatal(err)
		}
		if a, _ := s.GetDeviceAuth(ctx, "d1"); a.CertSerial != "s-new" {
			t.Fatalf("serial after renewal = %s", a.CertSerial)
		}
	})
}

func TestAuditChain(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.AppendAudit(ctx, &api.AuditEntry{Time: time.Now(), Actor: "user:admin", Action: "test", Outcome: "ok"}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		entries, err := s.ListAudit(ctx, 0, 100, "")
		if err != nil || len(entries) != 20 {
			t.Fatalf("entries = %d, %v", len(entries), err)
		}
		if _, _, err := api.VerifyAuditChain("", 0, entries); err != nil {
			t.Fatalf("fresh chain does not verify: %v", err)
		}
		entries[7].Detail = "changed"
		if _, _, err := api.VerifyAuditChain("", 0, entries); err == nil {
			t.Fatal("altered entry verified")
		}
	})
}

func TestUsersSessionsTokens(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		u := &store.User{ID: "u1", Username: "alice", PasswordHash: "h", CreatedAt: t0,
			Grants: []store.Grant{{Role: "operator", Group: "lab"}, {Role: "auditor"}}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, &store.User{ID: "u2", Username: "alice", PasswordHash: "h", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate username: %v", err)
		}
		got, err := s.GetUserByName(ctx, "alice")
		if err != nil || len(got.Grants) != 2 {
			t.Fatalf("user = %+v, %v", got, err)
		}
		lock := func(n int) time.Time {
			if n >= 2 {
				return t0.Add(time.Minute)
			}
			return time.Time{}
		}
		s.RecordLoginFailure(ctx, "u1", lock)
		n, _ := s.RecordLoginFailure(ctx, "u1", lock)
		got, _ = s.GetUser(ctx, "u1")
		if n != 2 || !got.LockedUntil.Equal(t0.Add(time.Minute)) {
			t.Fatalf("after 2 failures: n=%d locked=%v", n, got.LockedUntil)
		}
		s.RecordLoginSuccess(ctx, "u1", t0)
		got, _ = s.GetUser(ctx, "u1")
		if got.FailedLogins != 0 || !got.LockedUntil.IsZero() {
			t.Fatalf("success did not clear lockout: %+v", got)
		}
		if err := s.SetTOTPPending(ctx, "u1", "SECRET"); err != nil {
			t.Fatal(err)
		}
		if err := s.ActivateTOTP(ctx, "u1", 100); err != nil {
			t.Fatal(err)
		}
		if err := s.UseTOTPStep(ctx, "u1", 100); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("replayed TOTP step accepted: %v", err)
		}
		if err := s.UseTOTPStep(ctx, "u1", 101); err != nil {
			t.Fatal(err)
		}
		se := &store.Session{ID: "s1", SecretHash: []byte("x"), UserID: "u1", CSRF: "c", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := s.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
		if err := s.SetUserDisabled(ctx, "u1", true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSession(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("disabling a user kept its session: %v", err)
		}
		tok := &store.APIToken{ID: "t1", Name: "ci", SecretHash: []byte("h"), Role: "admin", CreatedAt: t0, CreatedBy: "setup"}
		if err := s.CreateAPIToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeAPIToken(ctx, "t1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetAPIToken(ctx, "t1"); !got.Revoked {
			t.Fatal("token not revoked")
		}
		if err := s.CreateGroup(ctx, &store.Group{Name: "lab", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.GroupExists(ctx, "lab"); !ok {
			t.Fatal("group missing")
		}
		if ok, err := s.PutStateIfAbsent(ctx, "k", []byte("v1")); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ok, _ := s.PutStateIfAbsent(ctx, "k", []byte("v2")); ok {
			t.Fatal("second PutStateIfAbsent stored")
		}
		if v, _ := s.GetState(ctx, "k"); string(v) != "v1" {
			t.Fatalf("state = %q", v)
		}
	})
}

func TestListDevicesRecentFirst(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		newToken(t, s, "tok", 10)
		for _, id := range []string{"a", "b", "c"} {
			if err := s.EnrollDevice(ctx, "tok", []byte("hash-tok"), newDevice(id)); err != nil {
				t.Fatal(err)
			}
		}
		s.ApplyCheckins(ctx, []store.Checkin{{DeviceID: "a", At: t0.Add(time.Minute), Hostname: "h-a"}, {DeviceID: "c", At: t0.Add(2 * time.Minute), Hostname: "h-c"}})
		list, _, err := s.ListDevices(ctx, store.DeviceFilter{RecentFirst: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range list {
			got = append(got, d.ID)
		}
		if want := "c,a,b"; strings.Join(got, ",") != want {
			t.Fatalf("recent-first order %v, want %s", got, want)
		}
	})
}
