package tufclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulwark-iot/bulwark/internal/agent/tufclient"
	"github.com/bulwark-iot/bulwark/internal/pki"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
	"github.com/bulwark-iot/bulwark/internal/tufrepo"
)

// repo is a Bulwark TUF repository served over plain HTTP the way the
// conformance suite serves its test repositories; forged bodies replace
// chosen paths, and requests to target files are counted.
type repo struct {
	*tufrepo.Repo
	srv     *httptest.Server
	arts    tufrepo.DirArtifacts
	forged  sync.Map
	targets atomic.Int64
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	kek, err := pki.ParseKEK(hex.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	r := &repo{arts: tufrepo.DirArtifacts(filepath.Join(t.TempDir(), "artifacts"))}
	r.Repo, err = tufrepo.New(tufrepo.Config{Store: storetest.Open(t, store.SQLite), KEK: kek, Artifacts: r.arts})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := r.Handler()
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/tuf/targets/") {
			r.targets.Add(1)
		}
		if b, ok := r.forged.Load(req.URL.Path); ok {
			w.Write(b.([]byte))
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *repo) add(t *testing.T, name string, body []byte) string {
	t.Helper()
	ctx := context.Background()
	sum, size, err := r.arts.Put(ctx, bytes.NewReader(body), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	h256 := sha256.Sum256(body)
	h512 := sha512.Sum512(body)
	if _, err := r.AddTarget(ctx, name, size, map[string][]byte{"sha256": h256[:], "sha512": h512[:]}, nil); err != nil {
		t.Fatal(err)
	}
	return sum
}

// run runs the CLI the way the conformance suite does (flags first).
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := tufclient.Main(context.Background(), args, &out, &errb)
	return code, out.String() + errb.String()
}

func TestConformanceCLI(t *testing.T) {
	r := newRepo(t)
	tmp := t.TempDir()
	md, td := filepath.Join(tmp, "metadata"), filepath.Join(tmp, "targets")
	mdURL, tURL := r.srv.URL+"/tuf/metadata", r.srv.URL+"/tuf/targets"
	root, err := r.Metadata(context.Background(), "root", 1)
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(tmp, "root.json")
	os.WriteFile(rootFile, root, 0o600)

	// init stores the trusted root and makes no request.
	if code, out := run(t, "--metadata-dir", md, "init", rootFile); code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(md, "root.json")); !bytes.Equal(b, root) {
		t.Fatal("init did not store the trusted root")
	}
	if code, _ := run(t, "--metadata-dir", md, "init", filepath.Join(tmp, "missing.json")); code != 1 {
		t.Fatalf("init with a missing root: exit %d", code)
	}

	// refresh writes the verified top-level metadata, unversioned.
	if code, out := run(t, "--metadata-dir", md, "--metadata-url", mdURL, "refresh"); code != 0 {
		t.Fatalf("refresh: %d %s", code, out)
	}
	for _, f := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		if _, err := os.Stat(filepath.Join(md, f)); err != nil {
			t.Fatalf("after refresh: %v", err)
		}
	}

	// download fetches and verifies a target (hash-prefixed URL, the
	// repository uses consistent snapshots), and keeps a verified copy
	// without a second request.
	body := []byte("artifact contents\n")
	r.add(t, "dir/app.bin", body)
	dl := func(name string) (int, string) {
		return run(t, "--metadata-dir", md, "--metadata-url", mdURL, "--target-name", name, "--target-base-url", tURL, "--target-dir", td, "download")
	}
	if code, out := dl("dir/app.bin"); code != 0 {
		t.Fatalf("download: %d %s", code, out)
	}
	dest := filepath.Join(td, url.PathEscape("dir/app.bin"))
	if b, err := os.ReadFile(dest); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("downloaded %q %v", b, err)
	}
	n := r.targets.Load()
	if code, out := dl("dir/app.bin"); code != 0 || r.targets.Load() != n {
		t.Fatalf("cached download: %d %s (requests %d -> %d)", code, out, n, r.targets.Load())
	}

	// Flags may follow the command too.
	if code, out := run(t, "refresh", "--metadata-dir", md, "--metadata-url", mdURL); code != 0 {
		t.Fatalf("refresh with flags after the command: %d %s", code, out)
	}

	// A target that is not signed is refused.
	if code, out := dl("dir/other.bin"); code != 1 || !strings.Contains(out, "not a signed target") {
		t.Fatalf("unsigned target: %d %s", code, out)
	}

	// A tampered target (same length, one byte changed) is refused and
	// not stored.
	body2 := []byte("second artifact\n")
	sum2 := r.add(t, "b.bin", body2)
	evil2 := append([]byte(nil), body2...)
	evil2[0] ^= 0xff
	r.forged.Store("/tuf/targets/"+sum2+".b.bin", evil2)
	if code, out := dl("b.bin"); code != 1 || !strings.Contains(out, "hash does not match") {
		t.Fatalf("tampered target: %d %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(td, "b.bin")); err == nil {
		t.Fatal("a tampered target was stored")
	}
	// More bytes than the signed length are refused too.
	r.forged.Store("/tuf/targets/"+sum2+".b.bin", append(append([]byte(nil), body2...), bytes.Repeat([]byte("x"), 4096)...))
	if code, out := dl("b.bin"); code != 1 || !strings.Contains(out, "longer than its trusted length") {
		t.Fatalf("endless target: %d %s", code, out)
	}
	r.forged.Delete("/tuf/targets/" + sum2 + ".b.bin")
	if code, out := dl("b.bin"); code != 0 {
		t.Fatalf("download after the attack: %d %s", code, out)
	}

	// Forged metadata fails the refresh, and the trusted copy is kept.
	before, _ := os.ReadFile(filepath.Join(md, "timestamp.json"))
	ts, err := metadata.Timestamp().FromBytes(before)
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version += 10 // the signature no longer matches
	forged, _ := ts.ToBytes(false)
	r.forged.Store("/tuf/metadata/timestamp.json", forged)
	if code, out := run(t, "--metadata-dir", md, "--metadata-url", mdURL, "refresh"); code != 1 || !strings.Contains(out, "timestamp") {
		t.Fatalf("forged timestamp: %d %s", code, out)
	}
	if after, _ := os.ReadFile(filepath.Join(md, "timestamp.json")); !bytes.Equal(before, after) {
		t.Fatal("a refused timestamp replaced the trusted one")
	}

	// Usage errors.
	if code, _ := run(t, "refresh"); code != 2 {
		t.Fatalf("refresh without flags: %d", code)
	}
	if code, _ := run(t, "--metadata-dir", md, "bogus"); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
}
