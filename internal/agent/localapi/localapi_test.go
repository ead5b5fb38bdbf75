package localapi

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
)

type fakeProvider struct{}

func (fakeProvider) Status() Status {
	return Status{DaemonRunning: true, DeviceID: "dev-9", Enrolled: true, Revoked: true}
}

func (fakeProvider) Health() api.Health {
	return api.Health{Status: "degraded", Checks: []api.HealthCheck{{Name: "disk", Status: "degraded"}}}
}

func serve(t *testing.T, s *Server) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	os.WriteFile(sock, []byte("stale"), 0o600) // a stale file is replaced
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Error("socket left behind after shutdown")
		}
	})
	return sock
}

func TestStatusOverSocket(t *testing.T) {
	s := NewServer(fakeProvider{}, slog.New(slog.DiscardHandler))
	sock := serve(t, s)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a 0600 socket", fi.Mode())
	}
	c := NewClient(sock)
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.DaemonRunning || st.DeviceID != "dev-9" || !st.Revoked {
		t.Errorf("status = %+v", st)
	}
	h, err := c.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != "degraded" || len(h.Checks) != 1 {
		t.Errorf("health = %+v", h)
	}
}

func TestPeerRefused(t *testing.T) {
	s := NewServer(fakeProvider{}, slog.New(slog.DiscardHandler))
	var seen Peer
	s.allow = func(p Peer) bool { seen = p; return false }
	sock := serve(t, s)
	_, err := NewClient(sock).Status(context.Background())
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("Status from a refused peer: %v, want ErrForbidden", err)
	}
	if !seen.Known || seen.UID != uint32(os.Getuid()) || seen.PID != int32(os.Getpid()) {
		t.Errorf("peer credentials = %+v, want this process", seen)
	}
}

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		peer Peer
		self uint32
		want bool
	}{
		{Peer{Known: true, UID: 0}, 1000, true},
		{Peer{Known: true, UID: 1000}, 1000, true},
		{Peer{Known: true, UID: 1001}, 1000, false},
		{Peer{Known: true, UID: 1001}, 0, false},
		{Peer{Known: false, UID: 0}, 0, false},
	} {
		if got := Allowed(tc.peer, tc.self); got != tc.want {
			t.Errorf("Allowed(%+v, self %d) = %v, want %v", tc.peer, tc.self, got, tc.want)
		}
	}
}

func TestClientNotRunning(t *testing.T) {
	dir := t.TempDir()
	_, err := NewClient(filepath.Join(dir, "agent.sock")).Status(context.Background())
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("no socket: %v, want ErrNotRunning", err)
	}
	// A stale socket file with nobody listening.
	ln, err := Listen(filepath.Join(dir, "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close()
	_, err = NewClient(filepath.Join(dir, "agent.sock")).Health(context.Background())
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("stale socket: %v, want ErrNotRunning", err)
	}
}
