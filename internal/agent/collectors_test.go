package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/communityid"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// TestCollectorsToServer runs the agent against a real server with the
// network collector on and the authentication collector reading a log
// file; it opens a TCP connection and writes an sshd line, and finds both
// as events in the server's event store through the admin API.
func TestCollectorsToServer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("network connections are logged on Linux only")
	}
	ts := servertest.Start(t, servertest.Options{})
	dir := filepath.Join(t.TempDir(), "state")
	st, err := Enroll(context.Background(), EnrollOptions{StateDir: dir, Server: ts.URL, Token: ts.EnrollToken(t, 1, ""), CAPEM: ts.CAPEM, TPM: "none"})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	authLog := filepath.Join(t.TempDir(), "auth.log")
	if err := os.WriteFile(authLog, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	cfg.Collectors = CollectorsConfig{NetInterval: 100 * time.Millisecond, AuthLog: authLog}
	start(t, cfg)

	// A connection from this process to a listener of its own: the agent
	// sees its outbound side (and the accepted, inbound side).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1)) // until the client closes
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	src := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	dst := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	wantID, err := communityid.ID(0, communityid.Tuple{Proto: 6, SrcIP: src.Addr().Unmap(), DstIP: dst.Addr().Unmap(), SrcPort: src.Port(), DstPort: dst.Port()})
	if err != nil {
		t.Fatal(err)
	}

	f, err := os.OpenFile(authLog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "Nov 26 21:09:47 gw sshd[4242]: Failed password for invalid user admin from 2001:db8::7 port 51024 ssh2\n")
	f.Close()

	exe, _ := os.Executable()
	var out, in *events.NetConnection
	var login *events.AuthLogin
	deadline := time.Now().Add(30 * time.Second)
	for out == nil || in == nil || login == nil {
		if time.Now().After(deadline) {
			t.Fatalf("events on the server: outbound %+v, inbound %+v, auth.login %+v", out, in, login)
		}
		time.Sleep(100 * time.Millisecond)
		for _, typ := range []string{events.TypeNetConnection, events.TypeAuthLogin} {
			var page api.EventPage
			if code := ts.Do(t, "GET", "/api/v1/events?limit=500&type="+typ+"&device="+st.DeviceID, "", nil, &page); code != http.StatusOK {
				t.Fatalf("GET /api/v1/events: status %d", code)
			}
			for _, se := range page.Events {
				ev, err := events.Decode(se.Event)
				if err != nil {
					t.Fatalf("stored event: %v", err)
				}
				if ev.Type != typ || ev.DeviceID != st.DeviceID {
					t.Fatalf("asked for %s events of %s, got %s of %s", typ, st.DeviceID, ev.Type, ev.DeviceID)
				}
				switch d := ev.Details.(type) {
				case *events.NetConnection:
					switch {
					case d.Direction == "outbound" && d.SrcPort == int(src.Port()) && d.DstPort == int(dst.Port()):
						out = d
					case d.Direction == "inbound" && d.SrcPort == int(src.Port()) && d.DstPort == int(dst.Port()):
						in = d
					}
				case *events.AuthLogin:
					login = d
				}
			}
		}
	}
	for _, c := range []*events.NetConnection{out, in} {
		if c.Protocol != "tcp" || c.SrcIP != "127.0.0.1" || c.DstIP != "127.0.0.1" || c.CommunityID != wantID {
			t.Errorf("%s connection %+v, want tcp 127.0.0.1:%d -> 127.0.0.1:%d with community_id %s", c.Direction, c, src.Port(), dst.Port(), wantID)
		}
		// The test runs the agent in its own process: a root test sees
		// that process own the socket (without root, attribution may fail).
		if os.Geteuid() == 0 && (c.Process == nil || c.Process.PID != os.Getpid() || c.Process.Path != exe || len(c.Process.SHA256) != 64) {
			t.Errorf("%s connection process %+v, want pid %d %s", c.Direction, c.Process, os.Getpid(), exe)
		}
	}
	if login.Outcome != "failure" || login.Service != "ssh" || login.User != "admin" || login.SrcIP != "2001:db8::7" || login.SrcPort != 51024 {
		t.Errorf("auth.login %+v", login)
	}
}
