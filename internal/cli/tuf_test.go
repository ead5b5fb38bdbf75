package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// TestTUFKeyCustody runs the offline root ceremony and the key rotations
// through the CLI against the data directory of a running server, and
// checks that a client that trusted root version 1 follows them all.
func TestTUFKeyCustody(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	data := ts.DataDir
	ctx := context.Background()
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Run(ctx, args, &out, &errb)
		if e := errb.String(); strings.Count(e, "\n") > 1 {
			t.Errorf("%v: error is not one line: %q", args, e)
		}
		return code, out.String(), errb.String()
	}
	mustRun := func(args ...string) string {
		t.Helper()
		code, out, errs := run(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		return out
	}
	status := func() tufStatus {
		t.Helper()
		var s tufStatus
		if err := json.Unmarshal([]byte(mustRun("tuf", "status", "--data", data, "--json")), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	wantErr := func(code int, contains string, args ...string) {
		t.Helper()
		c, _, errs := run(args...)
		if c != code || !strings.Contains(errs, contains) {
			t.Errorf("%v: exit %d %q, want %d and %q", args, c, errs, code, contains)
		}
	}

	// The first root, as a device gets it at enrolment.
	resp, err := ts.HTTP.Get(ts.URL + "/tuf/metadata/1.root.json")
	if err != nil {
		t.Fatal(err)
	}
	root1, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	out := mustRun("tuf", "status", "--data", data)
	for _, w := range []string{"timestamp", "ed25519", "root keys: online"} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}
	s := status()
	if s.RootKeys != "online" || s.Roles[0].Role != "root" || s.Roles[0].Version != 1 || !s.Roles[0].Keys[0].Online {
		t.Fatalf("status %+v", s)
	}

	dir := t.TempDir()
	exported := filepath.Join(dir, "root-key.pem")
	wantErr(2, "--data DIR is required", "tuf", "status")
	wantErr(2, "--out FILE is required", "tuf", "export-root-key", "--data", data)
	wantErr(1, "not an initialised Bulwark data directory", "tuf", "status", "--data", dir)
	wantErr(2, "unknown subcommand", "tuf", "frobnicate")

	// Export, then take the root offline.
	mustRun("tuf", "export-root-key", "--data", data, "--out", exported)
	if fi, err := os.Stat(exported); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("exported key file: %v %v", fi, err)
	}
	wantErr(1, "will not overwrite", "tuf", "export-root-key", "--data", data, "--out", exported)
	wantErr(2, "--confirm-exported FILE is required", "tuf", "remove-root-key", "--data", data)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	wantErr(1, "no PEM PRIVATE KEY", "tuf", "remove-root-key", "--data", data, "--confirm-exported", garbage)
	wantErr(1, "no such file", "tuf", "remove-root-key", "--data", data, "--confirm-exported", filepath.Join(dir, "missing.pem"))
	// A valid key that is not the root key proves nothing.
	mustRun("tuf", "gen-key", "--out", filepath.Join(dir, "stranger.pem"))
	wantErr(1, "does not hold root key", "tuf", "remove-root-key", "--data", data, "--confirm-exported", filepath.Join(dir, "stranger.pem"))
	mustRun("tuf", "remove-root-key", "--data", data, "--confirm-exported", exported)
	if s := status(); s.RootKeys != "offline" || s.RootKeysOnline != 0 {
		t.Fatalf("after remove: %+v", s)
	}
	wantErr(1, "already offline", "tuf", "export-root-key", "--data", data, "--out", filepath.Join(dir, "again.pem"))

	// Online-key rotation needs the root key.
	wantErr(1, "root keys are offline", "tuf", "rotate-key", "--data", data, "timestamp")
	wantErr(2, "must be targets, snapshot, timestamp or root", "tuf", "rotate-key", "--data", data, "admin")

	// Ceremony 1: rotate the timestamp key with the offline root key.
	next := filepath.Join(dir, "next-root.json")
	wantErr(2, "must be targets, snapshot, timestamp or root", "tuf", "prepare-root", "--data", data, "--out", next, "--rotate", "bogus")
	wantErr(2, "--rotate root needs --root-key", "tuf", "prepare-root", "--data", data, "--out", next, "--rotate", "root")
	wantErr(1, "holds a private key", "tuf", "prepare-root", "--data", data, "--out", next, "--root-key", exported)
	oldTimestamp := status().Roles[3].Keys[0].ID
	mustRun("tuf", "prepare-root", "--data", data, "--out", next, "--rotate", "timestamp")
	wantErr(1, "exists", "tuf", "prepare-root", "--data", data, "--out", next)
	wantErr(1, "not signed by a threshold", "tuf", "import-root", "--data", data, next)
	wantErr(2, "--key FILE is required", "tuf", "sign-root", next)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(rk)
	rsaFile := filepath.Join(dir, "rsa.pem")
	os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	wantErr(1, "unsupported key type", "tuf", "sign-root", "--key", rsaFile, next)
	wantErr(1, "not a TUF root", "tuf", "sign-root", "--key", exported, garbage)
	// A stranger's signature does not make the root importable.
	strangerSigned := filepath.Join(dir, "stranger-signed.json")
	mustRun("tuf", "sign-root", "--key", filepath.Join(dir, "stranger.pem"), "--out", strangerSigned, next)
	wantErr(1, "not signed by a threshold", "tuf", "import-root", "--data", data, strangerSigned)
	if out := mustRun("tuf", "sign-root", "--key", exported, next); !strings.Contains(out, "threshold is met") || !strings.Contains(out, "root version 2") {
		t.Errorf("sign-root: %s", out)
	}
	wantErr(1, "already signed", "tuf", "sign-root", "--key", exported, next)
	mustRun("tuf", "import-root", "--data", data, next)
	s = status()
	if s.Roles[0].Version != 2 || s.RootKeys != "offline" || s.Roles[3].Keys[0].ID == oldTimestamp || !s.Roles[3].Keys[0].Online {
		t.Fatalf("after ceremony 1: %+v", s)
	}
	wantErr(1, "does not follow the current root version", "tuf", "import-root", "--data", data, next)

	// Ceremony 2: move the root to a new ECDSA P-256 key made offline,
	// signed by the old and the new key.
	newKey := filepath.Join(dir, "new-root.pem")
	mustRun("tuf", "gen-key", "--out", newKey, "--type", "ecdsa-p256")
	next2 := filepath.Join(dir, "next-root-2.json")
	mustRun("tuf", "prepare-root", "--data", data, "--out", next2, "--root-key", newKey+".pub")
	mustRun("tuf", "sign-root", "--key", newKey, next2)
	wantErr(1, "not signed by a threshold of the current root keys", "tuf", "import-root", "--data", data, next2)
	if out := mustRun("tuf", "sign-root", "--key", exported, next2); !strings.Contains(out, "previous root") {
		t.Errorf("sign-root with the old key: %s", out)
	}
	mustRun("tuf", "import-root", "--data", data, next2)
	if s := status(); s.Roles[0].Version != 3 || s.Roles[0].Keys[0].Scheme != "ecdsa-sha2-nistp256" || s.RootKeys != "offline" {
		t.Fatalf("after ceremony 2: %+v", s)
	}

	// The retired root key cannot come back; the new one can, and then
	// the server rotates online keys by itself.
	wantErr(1, "is not a root key", "tuf", "import-root-key", "--data", data, exported)
	mustRun("tuf", "import-root-key", "--data", data, newKey)
	if s := status(); s.RootKeys != "online" {
		t.Fatalf("after import-root-key: %+v", s)
	}
	mustRun("tuf", "rotate-key", "--data", data, "snapshot")
	if s := status(); s.Roles[0].Version != 4 {
		t.Fatalf("after rotate-key: %+v", s)
	}

	// A client that trusted root 1 follows the whole chain.
	cfg, err := config.New(ts.URL+"/tuf/metadata/", root1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	cfg.RemoteTargetsURL = ts.URL + "/tuf/targets/"
	cfg.PrefixTargetsWithHash = true
	if err := cfg.SetDefaultFetcherHTTPClient(ts.HTTP); err != nil {
		t.Fatal(err)
	}
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("client refresh after the rotations: %v", err)
	}
	if v := up.GetTrustedMetadataSet().Root.Signed.Version; v != 4 {
		t.Fatalf("client trusts root %d, want 4", v)
	}

	// Every state change is audited with the local actor.
	es, err := ts.Store().ListAudit(ctx, 0, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range es {
		if strings.HasPrefix(e.Action, "tuf.") {
			if !strings.HasPrefix(e.Actor, "local:") {
				t.Errorf("audit actor %q", e.Actor)
			}
			got[e.Action+" "+strings.SplitN(e.Outcome, ":", 2)[0]]++
		}
	}
	for k, n := range map[string]int{"tuf.export_root_key ok": 1, "tuf.remove_root_key ok": 1, "tuf.prepare_root ok": 2,
		"tuf.import_root ok": 2, "tuf.import_root failed": 4, "tuf.import_root_key ok": 1, "tuf.import_root_key failed": 1,
		"tuf.rotate_key ok": 1, "tuf.rotate_key failed": 1} {
		if got[k] != n {
			t.Errorf("audit %s: %d entries, want %d (all: %v)", k, got[k], n, got)
		}
	}
}
