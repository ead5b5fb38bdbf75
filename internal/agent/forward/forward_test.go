package forward_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/forward"
	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// testServer is a real server that the test can stop and start again on
// the same address and data directory.
type testServer struct {
	t      *testing.T
	dir    string
	addr   string
	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
}

func (ts *testServer) start() {
	ts.t.Helper()
	addr := ts.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old listener's port may take a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: ts.dir, Listen: ts.addr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		ln.Close()
		ts.t.Fatal(err)
	}
	ts.srv, ts.cancel, ts.done = srv, cancel, make(chan error, 1)
	go func() { ts.done <- srv.Serve(ctx, ln) }()
}

func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	select {
	case <-ts.done:
	case <-time.After(30 * time.Second):
		ts.t.Error("server did not stop")
	}
	ts.cancel = nil
}

// enrolDevice enrols a device and returns its client and key.
func (ts *testServer) enrolDevice() (*deviceclient.Client, *ecdsa.PrivateKey, string) {
	t := ts.t
	ctx := context.Background()
	admin, err := server.CreateAPITokenLocal(ctx, ts.srv.Store(), "local:test", api.APITokenCreate{Name: "fwd-test", Role: api.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ts.srv.CACertPEM())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}}}
	defer hc.CloseIdleConnections()
	body, _ := json.Marshal(api.EnrollTokenCreate{Uses: 1, TTL: "1h"})
	req, _ := http.NewRequest("POST", "https://"+ts.addr+"/api/v1/enroll-tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok api.EnrollToken
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := deviceclient.New(deviceclient.Config{Server: "https://" + ts.addr, Roots: roots, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := deviceclient.NewCSR(key)
	er, err := c.Enroll(ctx, api.EnrollRequest{Token: tok.Token, CSR: csr, Inventory: &api.Inventory{Hostname: "fwd", OS: "linux", Kernel: "6", Arch: "amd64", AgentVersion: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode([]byte(er.Certificate))
	leaf, _ := x509.ParseCertificate(b.Bytes)
	c.SetCertificate(&tls.Certificate{Certificate: [][]byte{b.Bytes}, PrivateKey: key, Leaf: leaf})
	t.Cleanup(c.Close)
	return c, key, er.DeviceID
}

func appendEvents(t testing.TB, j *journal.Journal, id string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		ev, err := events.New(events.TypeFileActivity, id, events.SeverityLow, time.Now(), events.FileActivity{Activity: "modify", Path: fmt.Sprintf("/etc/app/%d.conf", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Append(ev); err != nil {
			t.Error(err)
			return
		}
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForwardSurvivesServerRestart forwards a journal to a real server,
// stops the server mid-stream and starts it again, and loses a fifth of
// the server's answers on the way; every event must be stored exactly
// once, with no gap or broken chain raised.
func TestForwardSurvivesServerRestart(t *testing.T) {
	ts := &testServer{t: t, dir: t.TempDir()}
	ts.start()
	defer func() { ts.stop() }()
	client, key, id := ts.enrolDevice()

	j, err := journal.Open(t.TempDir(), journal.Options{DeviceID: id, NoSync: true, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	const initial, live = 6000, 1500
	appendEvents(t, j, id, 0, initial)

	var lostAnswers, sends atomic.Int64
	send := func(ctx context.Context, b *api.EventBatch) (*api.EventBatchResponse, error) {
		sends.Add(1)
		resp, err := client.SendEvents(ctx, b)
		if err == nil && mrand.IntN(5) == 0 {
			lostAnswers.Add(1)
			return nil, errors.New("test: answer lost")
		}
		return resp, err
	}
	fwd, err := forward.New(forward.Config{Journal: j, Send: send, Signer: func() crypto.Signer { return key },
		CheckpointEvery: 200 * time.Millisecond, Rate: 20000, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { fwd.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() {
		for i := 0; i < live; i += 100 {
			appendEvents(t, j, id, initial+i, 100)
			fwd.Notify()
			time.Sleep(10 * time.Millisecond)
		}
	})

	waitFor(t, "the first acknowledgements", 30*time.Second, func() bool { return j.Acked() >= 1500 })
	ts.stop()
	stoppedAt := j.Acked()
	time.Sleep(300 * time.Millisecond)
	if j.Acked() != stoppedAt {
		t.Fatalf("acks advanced from %d to %d while the server was down", stoppedAt, j.Acked())
	}
	ts.start()
	waitFor(t, "every event acknowledged", 60*time.Second, func() bool { return j.Acked() == initial+live })
	if stoppedAt >= initial+live {
		t.Fatalf("the server stopped after the last ack (%d): not mid-stream", stoppedAt)
	}

	var seqs []uint64
	var after int64
	for {
		page, err := ts.srv.Store().ListEvents(context.Background(), store.EventFilter{DeviceID: id, Ascending: true, After: after, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.Source != store.EventFromDevice {
				t.Errorf("the server raised %s", e.Type)
			}
			seqs = append(seqs, e.Seq)
		}
		after = page[len(page)-1].ID
	}
	if len(seqs) != initial+live {
		t.Fatalf("stored %d events, want %d", len(seqs), initial+live)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("stored event %d has seq %d: lost or duplicated", i, s)
		}
	}
	h, err := ts.srv.Store().GetEventHead(context.Background(), id)
	if err != nil || h.CheckpointSeq == 0 {
		t.Errorf("no signed checkpoint was verified and kept: %+v, %v", h, err)
	}
	if err := j.Verify(); err != nil {
		t.Errorf("journal after forwarding: %v", err)
	}
	st := fwd.Stats()
	t.Logf("%d sends, %d answers lost, %d forwarded, acked %d, checkpoint at %d", sends.Load(), lostAnswers.Load(), st.Forwarded, st.AckedSeq, h.CheckpointSeq)
}

// TestForwardAlteredRecordIsAGap alters a record in the journal on disk:
// the server refuses it (hash_mismatch), the forwarder passes over it, and
// the server stores every other record and a journal.gap event naming it.
func TestForwardAlteredRecordIsAGap(t *testing.T) {
	ts := &testServer{t: t, dir: t.TempDir()}
	ts.start()
	defer ts.stop()
	client, _, id := ts.enrolDevice()
	jdir := t.TempDir()
	j, err := journal.Open(jdir, journal.Options{DeviceID: id, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	appendEvents(t, j, id, 0, 10)
	segs, _ := filepath.Glob(filepath.Join(jdir, "seg-*.log"))
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(data, []byte("/etc/app/4.conf"), []byte("/etc/app/X.conf"), 1) // seq 5
	if bytes.Equal(altered, data) {
		t.Fatal("record to alter not found")
	}
	if err := os.WriteFile(segs[0], altered, 0o600); err != nil {
		t.Fatal(err)
	}
	fwd, err := forward.New(forward.Config{Journal: j, Send: client.SendEvents, Rate: 1e6, RetryMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { fwd.Run(ctx) })
	waitFor(t, "the journal forwarded", 30*time.Second, func() bool { return j.Acked() == 10 })
	cancel()
	wg.Wait()
	list, err := ts.srv.Store().ListEvents(context.Background(), store.EventFilter{DeviceID: id, Ascending: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		if e.Source == store.EventFromServer {
			ev, err := events.Decode(e.Data)
			if err != nil {
				t.Fatal(err)
			}
			g := ev.Details.(*events.JournalGap)
			got = append(got, fmt.Sprintf("%s %d-%d", e.Type, g.FromSeq, g.ToSeq))
			continue
		}
		got = append(got, fmt.Sprint(e.Seq))
	}
	if want := "[1 2 3 4 journal.gap 5-5 6 7 8 9 10]"; fmt.Sprint(got) != want {
		t.Fatalf("stored %v, want %s", got, want)
	}
	if st := fwd.Stats(); st.Skipped != 1 {
		t.Errorf("skipped %d", st.Skipped)
	}
}
