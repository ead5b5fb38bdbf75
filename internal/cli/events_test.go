package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

func TestEventsCommands(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, ts.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BULWARK_ADDR", ts.URL)
	t.Setenv("BULWARK_TOKEN", ts.AdminToken)
	t.Setenv("BULWARK_CACERT", ca)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}

	// A device forwards two logins and a config change.
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := deviceclient.New(deviceclient.Config{Server: ts.URL, Roots: ts.Roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	csr, _ := deviceclient.NewCSR(key)
	er, err := c.Enroll(ctx, api.EnrollRequest{Token: ts.EnrollToken(t, 1, ""), CSR: csr, Inventory: &api.Inventory{Hostname: "cli-ev", OS: "linux", Kernel: "6", Arch: "amd64", AgentVersion: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode([]byte(er.Certificate))
	leaf, _ := x509.ParseCertificate(b.Bytes)
	c.SetCertificate(&tls.Certificate{Certificate: [][]byte{b.Bytes}, PrivateKey: key, Leaf: leaf})
	j, err := journal.Open(t.TempDir(), journal.Options{DeviceID: er.DeviceID, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for _, e := range []struct {
		typ string
		d   any
	}{
		{events.TypeAuthLogin, events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: "root"}},
		{events.TypeAuthLogin, events.AuthLogin{Activity: "logon", Outcome: "success", Service: "ssh", User: "ops"}},
		{events.TypeConfigChange, events.ConfigChange{Setting: "ntp", New: "pool.example", Source: "local"}},
	} {
		ev, _ := events.New(e.typ, er.DeviceID, events.SeverityMedium, time.Now(), e.d)
		if _, err := j.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	recs, _ := j.Read(1, 10)
	var batch api.EventBatch
	for _, r := range recs {
		batch.Records = append(batch.Records, api.EventRecord{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Event: r.Event})
	}
	if _, err := c.SendEvents(ctx, &batch); err != nil {
		t.Fatal(err)
	}

	code, out, errs := run("events", "list", "--type", "auth.login", "--since", "1h")
	if code != 0 || strings.Count(out, "auth.login") != 2 || !strings.Contains(out, er.DeviceID) || strings.Contains(out, "config.change") {
		t.Errorf("list: %d %q %q", code, out, errs)
	}
	var list []api.StoredEvent
	code, out, errs = run("events", "list", "--device", er.DeviceID, "--json", "--limit", "2")
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].Seq != 3 {
		t.Errorf("list --json: %d %q %q", code, out, errs)
	}
	if code, _, errs := run("events", "list", "--since", "yesterday"); code != 2 || !strings.Contains(errs, "--since") {
		t.Errorf("bad --since: %d %q", code, errs)
	}
	if code, _, errs := run("events", "list", "--type", "nope"); code != 1 || !strings.Contains(errs, "not an event type") {
		t.Errorf("bad --type: %d %q", code, errs)
	}
	code, out, errs = run("events", "export", "--since", "2026-01-01T00:00:00Z")
	if code != 0 {
		t.Fatalf("export: %d %q", code, errs)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		ev, err := events.Decode(sc.Bytes())
		if err != nil || ev.ServerTime == nil || ev.Seq != uint64(n+1) {
			t.Fatalf("export line %d: %v %+v", n, err, ev)
		}
		n++
	}
	if n != 3 {
		t.Errorf("exported %d events, want 3", n)
	}
	if code, _, errs := run("events"); code != 2 || !strings.Contains(errs, "list or export") {
		t.Errorf("no subcommand: %d %q", code, errs)
	}
}
