package server_test

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/siem"
)

// TestEventsForwardedToSIEM: every stored event — the device's journal
// records and the events the server raises about it — reaches a signed
// webhook exactly once, in order, with its server time, after a refused
// delivery is retried.
func TestEventsForwardedToSIEM(t *testing.T) {
	secret := []byte(hex.EncodeToString(siem.NewWebhookSecret()))
	var mu sync.Mutex
	var got []events.Event
	var bad []string
	requests := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		requests++
		if requests == 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable) // the sink retries
			return
		}
		if err := siem.VerifyWebhook(secret, r.Header.Get(siem.SignatureHeader), body, time.Now(), 0); err != nil {
			bad = append(bad, err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var e events.Event
		if err := json.Unmarshal(body, &e); err != nil {
			bad = append(bad, err.Error())
		}
		got = append(got, e)
	}))
	defer hook.Close()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := servertest.Start(t, servertest.Options{Config: server.Config{Forward: server.ForwardConfig{
		WebhookURL: hook.URL, WebhookSecretFile: secretFile, Lag: time.Millisecond, Poll: 20 * time.Millisecond}}})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "fwd")
	_, recs := deviceJournal(t, d, 30)
	send(t, d, recs[:10])
	send(t, d, recs[20:]) // a gap: the server raises journal.gap

	want := 21 // 20 records and the gap event
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // nothing more may come
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("receiver problems: %v", bad)
	}
	if len(got) != want {
		t.Fatalf("forwarded %d events, want %d exactly once", len(got), want)
	}
	seen := map[uint64]int{}
	gaps := 0
	for _, e := range got {
		if e.DeviceID != d.id || e.ServerTime == nil || e.ServerTime.IsZero() {
			t.Fatalf("forwarded event without device or server time: %+v", e)
		}
		if e.Type == events.TypeJournalGap {
			gaps++
			continue
		}
		seen[e.Seq]++
	}
	for seq := uint64(1); seq <= 30; seq++ {
		if seq == 11 {
			seq = 21 // 11-20 were never sent
		}
		if seen[seq] != 1 {
			t.Fatalf("record %d forwarded %d times", seq, seen[seq])
		}
	}
	if gaps != 1 {
		t.Fatalf("journal.gap forwarded %d times", gaps)
	}
	// Arrival order: the first ten records come first.
	for i := 0; i < 10; i++ {
		if got[i].Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: not in arrival order", i, got[i].Seq)
		}
	}
}

func TestForwardConfigRefused(t *testing.T) {
	for name, cfg := range map[string]server.ForwardConfig{
		"webhook without secret": {WebhookURL: "https://siem.example/hook"},
		"secret without webhook": {WebhookSecretFile: "/nonexistent"},
		"CA without syslog":      {SyslogCAFile: "/nonexistent"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := server.New(t.Context(), server.Config{DataDir: t.TempDir(), Forward: cfg})
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
