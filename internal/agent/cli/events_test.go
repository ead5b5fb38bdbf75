package cli

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEventsJournalToServer runs the real agent against a real server
// whose clock is two minutes ahead: the agent journals its enrolment and
// the clock offset, forwards both, and bulwark-agent events shows them.
func TestEventsJournalToServer(t *testing.T) {
	ahead := func() time.Time { return time.Now().Add(2 * time.Minute) }
	ts := servertest.Start(t, servertest.Options{Config: server.Config{Now: ahead}})
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "state")
	ca := filepath.Join(tmp, "ca.pem")
	os.WriteFile(ca, ts.CAPEM, 0o644)
	code, stdout, stderr := run(t, "enroll", "--server", ts.URL, "--token", ts.EnrollToken(t, 1, ""), "--ca-cert", ca, "--state", dir)
	if code != 0 {
		t.Fatalf("enroll: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(stdout)

	if code, _, stderr := run(t, "events", "--state", dir); code != 1 || !strings.Contains(stderr, "not running") {
		t.Errorf("events without a daemon: exit %d %q", code, stderr)
	}
	if code, _, _ := run(t, "run", "--state", dir, "--event-rate", "-1"); code != 2 {
		t.Errorf("negative --event-rate: exit %d", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var daemonErr bytes.Buffer
	wg.Go(func() { Run(ctx, []string{"run", "--state", dir, "--interval", "1h"}, &bytes.Buffer{}, &daemonErr) })
	defer func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", daemonErr.String())
		}
	}()

	// Both events reach the server (the check-in at start measures the
	// offset).
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]bool
	for {
		list, err := ts.Store().ListEvents(context.Background(), store.EventFilter{DeviceID: id})
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]bool{}
		for _, e := range list {
			got[e.Type] = true
			if e.Type == events.TypeClockOffset {
				ev, err := events.Decode(e.Data)
				if err != nil {
					t.Fatal(err)
				}
				if off := ev.Details.(*events.ClockOffset).OffsetMS; off > -110000 || off < -130000 {
					t.Errorf("clock.offset offset_ms = %d, want about -120000 (device behind)", off)
				}
			}
		}
		if got[events.TypeEnrolment] && got[events.TypeClockOffset] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events on the server: %v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}

	code, stdout, stderr = run(t, "events", "--state", dir)
	if code != 0 || !strings.Contains(stdout, "device.enrolment") || !strings.Contains(stdout, "clock.offset") || !strings.Contains(stdout, "acknowledged by the server up to") {
		t.Errorf("events: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "events", "--json", "--limit", "1", "--state", dir)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 1 {
		t.Fatalf("events --json --limit 1: exit %d %q", code, stdout)
	}
	if ev, err := events.Decode([]byte(lines[0])); err != nil || ev.DeviceID != id {
		t.Errorf("events --json line: %v %+v", err, ev)
	}

	// --follow prints what is already there, then new events, until
	// interrupted.
	fctx, fcancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer fcancel()
	var out syncBuffer
	if code := Run(fctx, []string{"events", "--follow", "--json", "--state", dir}, &out, &bytes.Buffer{}); code != 0 {
		t.Errorf("events --follow: exit %d", code)
	}
	n := 0
	for sc := bufio.NewScanner(strings.NewReader(out.String())); sc.Scan(); n++ {
		if _, err := events.Decode(sc.Bytes()); err != nil {
			t.Errorf("--follow line: %v", err)
		}
	}
	if n < 2 {
		t.Errorf("--follow printed %d events", n)
	}
}
