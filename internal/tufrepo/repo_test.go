package tufrepo_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/bulwark-iot/bulwark/internal/pki"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
	"github.com/bulwark-iot/bulwark/internal/tufrepo"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

type fixture struct {
	repo  *tufrepo.Repo
	store *store.Store
	kek   pki.KEK
	clock *clock
	arts  tufrepo.DirArtifacts
	srv   *httptest.Server
	// forged maps a URL path to a body served instead of the
	// repository's, to play an attacker.
	forged sync.Map
}

func testKEK(t *testing.T) pki.KEK {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	k, err := pki.ParseKEK(hex.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newFixture initialises a repository on st and serves it over TLS.
func newFixture(t *testing.T, st *store.Store) *fixture {
	t.Helper()
	f := &fixture{store: st, kek: testKEK(t), clock: &clock{t: t0}, arts: tufrepo.DirArtifacts(filepath.Join(t.TempDir(), "artifacts"))}
	f.repo = f.newRepo(t)
	if err := f.repo.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := f.repo.Handler()
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := f.forged.Load(r.URL.Path); ok {
			w.Write(b.([]byte))
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// newRepo is another server over the same store and KEK.
func (f *fixture) newRepo(t *testing.T) *tufrepo.Repo {
	t.Helper()
	r, err := tufrepo.New(tufrepo.Config{Store: f.store, KEK: f.kek, Artifacts: f.arts, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) rootV(t *testing.T, v int64) []byte {
	t.Helper()
	b, err := f.repo.Metadata(context.Background(), metadata.ROOT, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// client is a go-tuf updater trusting root, with its cache in dir, whose
// clock reads at.
func (f *fixture) client(t *testing.T, root []byte, dir string, at time.Time) *updater.Updater {
	t.Helper()
	cfg, err := config.New(f.srv.URL+"/tuf/metadata", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = f.srv.URL + "/tuf/targets"
	cfg.LocalMetadataDir = filepath.Join(dir, "metadata")
	cfg.LocalTargetsDir = filepath.Join(dir, "targets")
	if err := cfg.SetDefaultFetcherHTTPClient(f.srv.Client()); err != nil {
		t.Fatal(err)
	}
	u, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u.UnsafeSetRefTime(at)
	return u
}

func (f *fixture) get(t *testing.T, path string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func trusted(u *updater.Updater) (root, targets, snapshot, timestamp int64) {
	tm := u.GetTrustedMetadataSet()
	return tm.Root.Signed.Version, tm.Targets[metadata.TARGETS].Signed.Version, tm.Snapshot.Signed.Version, tm.Timestamp.Signed.Version
}

// publish stores an artifact and adds it as a target.
func (f *fixture) publish(t *testing.T, name string, content []byte, custom string) {
	t.Helper()
	ctx := context.Background()
	sum, n, err := f.arts.Put(ctx, bytes.NewReader(content), 0)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := hex.DecodeString(sum)
	s512 := sha512.Sum512(content)
	var c json.RawMessage
	if custom != "" {
		c = json.RawMessage(custom)
	}
	if _, err := f.repo.AddTarget(ctx, name, n, map[string][]byte{"sha256": h, "sha512": s512[:]}, c); err != nil {
		t.Fatal(err)
	}
}

func TestInitPublishAndClientRefresh(t *testing.T) {
	storetest.Run(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		// Init is idempotent, also from another server.
		if err := f.newRepo(t).Init(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.repo.Metadata(ctx, metadata.ROOT, 2); !errors.Is(err, tufrepo.ErrNotFound) {
			t.Fatalf("root v2 after a second Init: %v", err)
		}
		root1 := f.rootV(t, 1)
		u := f.client(t, root1, t.TempDir(), t0.Add(time.Minute))
		if err := u.Refresh(); err != nil {
			t.Fatalf("client refresh of a new repository: %v", err)
		}
		if r, tg, sn, ts := trusted(u); r != 1 || tg != 1 || sn != 1 || ts != 1 {
			t.Fatalf("trusted versions = %d %d %d %d, want 1 1 1 1", r, tg, sn, ts)
		}
		tm := u.GetTrustedMetadataSet()
		if !tm.Root.Signed.ConsistentSnapshot {
			t.Fatal("consistent_snapshot is off")
		}
		for role, rl := range tm.Root.Signed.Roles {
			for _, id := range rl.KeyIDs {
				if k := tm.Root.Signed.Keys[id]; k.Scheme != metadata.KeySchemeEd25519 {
					t.Errorf("%s key scheme %s", role, k.Scheme)
				}
			}
		}

		content := []byte("firmware image v1.2.3\n")
		custom := `{"product":"thermostat","version":"1.2.3","installer":"app"}`
		f.publish(t, "thermostat/1.2.3/image.tar.gz", content, custom)

		dir := t.TempDir()
		u = f.client(t, root1, dir, t0.Add(time.Hour))
		if err := u.Refresh(); err != nil {
			t.Fatalf("client refresh after publishing: %v", err)
		}
		if _, tg, sn, ts := trusted(u); tg != 2 || sn != 2 || ts != 2 {
			t.Fatalf("versions after publishing = %d %d %d, want 2 2 2", tg, sn, ts)
		}
		ti, err := u.GetTargetInfo("thermostat/1.2.3/image.tar.gz")
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		if ti.Length != int64(len(content)) || !bytes.Equal(ti.Hashes["sha256"], sum[:]) {
			t.Fatalf("target info = %d %x", ti.Length, ti.Hashes["sha256"])
		}
		if ti.Custom == nil || string(*ti.Custom) != custom {
			t.Fatalf("custom = %v", ti.Custom)
		}
		// go-tuf picks either hash for the URL prefix: both are served.
		for i := 0; i < 4; i++ {
			_, data, err := u.DownloadTarget(ti, filepath.Join(dir, fmt.Sprint("dl", i)), "")
			if err != nil || !bytes.Equal(data, content) {
				t.Fatalf("download: %v", err)
			}
		}

		// Served with type, length and ranges.
		p := "/tuf/targets/thermostat/1.2.3/" + hex.EncodeToString(sum[:]) + ".image.tar.gz"
		res := f.get(t, p, "Range", "bytes=9-13")
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusPartialContent || string(body) != "image" || res.Header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("range request: %d %q %q", res.StatusCode, body, res.Header.Get("Content-Type"))
		}
		res = f.get(t, "/tuf/metadata/2.targets.json")
		body, _ = io.ReadAll(res.Body)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Fatalf("metadata: %d %v", res.StatusCode, res.Header)
		}
		rt, err := f.repo.Root(ctx)
		if err != nil || !bytes.Equal(rt, root1) {
			t.Fatalf("Root: %v", err)
		}
	})
}

func TestNotFound(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	f := newFixture(t, st)
	content := []byte("payload")
	f.publish(t, "app.bin", content, "")
	sum := sha256.Sum256(content)
	other := sha256.Sum256([]byte("other"))
	for _, p := range []string{
		"/tuf/metadata/2.root.json",
		"/tuf/metadata/3.targets.json",
		"/tuf/metadata/0.snapshot.json",
		"/tuf/metadata/02.targets.json",
		"/tuf/metadata/-1.root.json",
		"/tuf/metadata/1.timestamp.json",
		"/tuf/metadata/snapshot.json",
		"/tuf/metadata/1.delegated.json",
		"/tuf/metadata/1.root",
		"/tuf/targets/" + hex.EncodeToString(other[:]) + ".app.bin",
		"/tuf/targets/" + hex.EncodeToString(sum[:]) + ".missing.bin",
		"/tuf/targets/dir/" + hex.EncodeToString(sum[:]) + ".app.bin",
		"/tuf/targets/app.bin",
		"/tuf/nothing",
	} {
		if res := f.get(t, p); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, res.StatusCode)
		}
	}
	for _, p := range []string{"/tuf/metadata/1.root.json", "/tuf/metadata/root.json", "/tuf/metadata/2.targets.json", "/tuf/metadata/timestamp.json", "/tuf/targets/" + hex.EncodeToString(sum[:]) + ".app.bin"} {
		if res := f.get(t, p); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, res.StatusCode)
		}
	}
	// Listed but the artifact is gone: 404, not 500.
	gone := []byte("never stored")
	gs := sha256.Sum256(gone)
	if _, err := f.repo.AddTarget(context.Background(), "gone.bin", int64(len(gone)), map[string][]byte{"sha256": gs[:]}, nil); err != nil {
		t.Fatal(err)
	}
	if res := f.get(t, "/tuf/targets/"+hex.EncodeToString(gs[:])+".gone.bin"); res.StatusCode != http.StatusNotFound {
		t.Errorf("missing artifact = %d", res.StatusCode)
	}
}

func TestAddTargetValidation(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	f := newFixture(t, st)
	ctx := context.Background()
	good := sha256.Sum256(nil)
	for _, tc := range []struct {
		name   string
		length int64
		hashes map[string][]byte
		custom string
	}{
		{"", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"/abs", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"a/../b", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"dir/", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"a\\b", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"a b", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"a%2Fb", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"a?b", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"caf\u00e9", 1, map[string][]byte{"sha256": good[:]}, ""},
		{"ok", -1, map[string][]byte{"sha256": good[:]}, ""},
		{"ok", 1, map[string][]byte{"sha512": make([]byte, 64)}, ""},
		{"ok", 1, map[string][]byte{"sha256": good[:4]}, ""},
		{"ok", 1, map[string][]byte{"sha256": good[:], "md5": make([]byte, 16)}, ""},
		{"ok", 1, map[string][]byte{"sha256": good[:]}, `[1,2]`},
		{"ok", 1, map[string][]byte{"sha256": good[:]}, `{"a":`},
	} {
		var c json.RawMessage
		if tc.custom != "" {
			c = json.RawMessage(tc.custom)
		}
		if _, err := f.repo.AddTarget(ctx, tc.name, tc.length, tc.hashes, c); !errors.Is(err, tufrepo.ErrInvalid) {
			t.Errorf("AddTarget(%q, %d, %v, %s) = %v, want ErrInvalid", tc.name, tc.length, tc.hashes, tc.custom, err)
		}
	}
	if _, err := f.repo.Metadata(ctx, metadata.TARGETS, 2); !errors.Is(err, tufrepo.ErrNotFound) {
		t.Fatal("a rejected target signed a new version")
	}
}

func TestRefreshResignsBeforeExpiry(t *testing.T) {
	storetest.Run(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		root1 := f.rootV(t, 1)
		latest := func(role string) int64 {
			b, err := f.repo.Metadata(ctx, role, 0)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Signed struct {
					Version int64
					Expires time.Time
				}
			}
			json.Unmarshal(b, &m)
			return m.Signed.Version
		}
		// Timestamp lasts a day and is re-signed with 8 hours left.
		if err := f.repo.Refresh(ctx, t0.Add(15*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if v := latest(metadata.TIMESTAMP); v != 1 {
			t.Fatalf("timestamp re-signed too early: version %d", v)
		}
		now := f.clock.Advance(17 * time.Hour)
		if err := f.repo.Refresh(ctx, now); err != nil {
			t.Fatal(err)
		}
		if ts, sn := latest(metadata.TIMESTAMP), latest(metadata.SNAPSHOT); ts != 2 || sn != 1 {
			t.Fatalf("after 17h: timestamp %d snapshot %d, want 2 1", ts, sn)
		}
		if err := f.repo.Refresh(ctx, now); err != nil || latest(metadata.TIMESTAMP) != 2 {
			t.Fatalf("second refresh changed something: %v", err)
		}
		// Past the first timestamp's expiry, the client still refreshes.
		u := f.client(t, root1, t.TempDir(), t0.Add(30*time.Hour))
		if err := u.Refresh(); err != nil {
			t.Fatalf("client after re-signing: %v", err)
		}
		// Days later snapshot is due too; timestamp points at it.
		now = f.clock.Advance(5 * 24 * time.Hour)
		if err := f.repo.Refresh(ctx, now); err != nil {
			t.Fatal(err)
		}
		if ts, sn, tg := latest(metadata.TIMESTAMP), latest(metadata.SNAPSHOT), latest(metadata.TARGETS); ts != 3 || sn != 2 || tg != 1 {
			t.Fatalf("after 6 days: timestamp %d snapshot %d targets %d, want 3 2 1", ts, sn, tg)
		}
		u = f.client(t, root1, t.TempDir(), now.Add(time.Hour))
		if err := u.Refresh(); err != nil {
			t.Fatalf("client after snapshot re-signing: %v", err)
		}
		// After ten months the root is due, and its key is online.
		now = f.clock.Advance(300 * 24 * time.Hour)
		if err := f.repo.Refresh(ctx, now); err != nil {
			t.Fatal(err)
		}
		if latest(metadata.ROOT) != 2 || latest(metadata.TARGETS) != 2 {
			t.Fatalf("root %d targets %d after 306 days, want 2 2", latest(metadata.ROOT), latest(metadata.TARGETS))
		}
		u = f.client(t, root1, t.TempDir(), now.Add(time.Hour))
		if err := u.Refresh(); err != nil {
			t.Fatalf("client across the root re-signing: %v", err)
		}
		if r, _, _, _ := trusted(u); r != 2 {
			t.Fatalf("client root %d", r)
		}
	})
}

func TestFreezeAttack(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	f := newFixture(t, st)
	root1 := f.rootV(t, 1)
	// Nobody refreshes: a day and a bit later the timestamp is expired and
	// a client refuses it.
	u := f.client(t, root1, t.TempDir(), t0.Add(25*time.Hour))
	err := u.Refresh()
	var exp *metadata.ErrExpiredMetadata
	if !errors.As(err, &exp) {
		t.Fatalf("refresh with an expired timestamp = %v, want ErrExpiredMetadata", err)
	}
	if err := f.repo.Refresh(context.Background(), t0.Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	u = f.client(t, root1, t.TempDir(), t0.Add(25*time.Hour))
	if err := u.Refresh(); err != nil {
		t.Fatalf("after the server refreshed: %v", err)
	}
}

func TestRotateOnlineKeys(t *testing.T) {
	storetest.Run(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		root1 := f.rootV(t, 1)
		f.publish(t, "a.bin", []byte("a"), "")
		dir := t.TempDir()
		u := f.client(t, root1, dir, t0.Add(time.Hour))
		if err := u.Refresh(); err != nil {
			t.Fatal(err)
		}
		old := u.GetTrustedMetadataSet().Root.Signed.Roles

		for _, role := range []string{metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS} {
			if err := f.repo.RotateOnlineKey(ctx, role); err != nil {
				t.Fatalf("rotate %s: %v", role, err)
			}
		}
		if err := f.repo.RotateOnlineKey(ctx, metadata.ROOT); !errors.Is(err, tufrepo.ErrInvalid) {
			t.Fatalf("rotating root as an online key: %v", err)
		}
		f.publish(t, "b.bin", []byte("b"), "")

		// A client that has only ever trusted root 1, with its cache of
		// metadata signed by the old keys, follows the chain.
		u = f.client(t, root1, dir, t0.Add(2*time.Hour))
		if err := u.Refresh(); err != nil {
			t.Fatalf("client across key rotation: %v", err)
		}
		tm := u.GetTrustedMetadataSet()
		if tm.Root.Signed.Version != 4 {
			t.Fatalf("client root version %d, want 4", tm.Root.Signed.Version)
		}
		for _, role := range []string{metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS} {
			nk, ok := tm.Root.Signed.Roles[role].KeyIDs, true
			for _, id := range nk {
				for _, o := range old[role].KeyIDs {
					ok = ok && id != o
				}
			}
			if !ok || len(nk) != 1 {
				t.Errorf("%s keys %v, old %v", role, nk, old[role].KeyIDs)
			}
		}
		if _, err := u.GetTargetInfo("b.bin"); err != nil {
			t.Fatal(err)
		}
		// The same from a second server over the same store.
		f2 := f.newRepo(t)
		if err := f2.RotateOnlineKey(ctx, metadata.TIMESTAMP); err != nil {
			t.Fatal(err)
		}
		u = f.client(t, root1, t.TempDir(), t0.Add(3*time.Hour))
		if err := u.Refresh(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOfflineRoot(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	f := newFixture(t, st)
	ctx := context.Background()
	root1 := f.rootV(t, 1)

	// A second server signs a root while the key is online...
	f2 := f.newRepo(t)
	if err := f2.RotateOnlineKey(ctx, metadata.TIMESTAMP); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := f.repo.ExportRootKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.repo.RemoveRootKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.ExportRootKeys(ctx); !errors.Is(err, tufrepo.ErrKeyOffline) {
		t.Fatalf("export after removal: %v", err)
	}
	// ...and cannot any more once another server removed it.
	if err := f2.RotateOnlineKey(ctx, metadata.TARGETS); !errors.Is(err, tufrepo.ErrKeyOffline) {
		t.Fatalf("rotation with the root offline: %v", err)
	}
	// Online roles keep working.
	f.publish(t, "x.bin", []byte("x"), "")

	// Offline flow: prepare, sign elsewhere, import.
	draft, err := f2.PrepareRoot(ctx, tufrepo.RootChange{Rotate: []string{metadata.TARGETS}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f2.ImportRoot(ctx, draft); !errors.Is(err, tufrepo.ErrInvalid) {
		t.Fatalf("importing an unsigned root: %v", err)
	}
	priv, err := tufrepo.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := tufrepo.SignRoot(draft, priv)
	if err != nil {
		t.Fatal(err)
	}
	// A root signed by some other key is refused.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad, err := tufrepo.SignRoot(draft, ek)
	if err != nil {
		t.Fatal(err)
	}
	if err := f2.ImportRoot(ctx, bad); !errors.Is(err, tufrepo.ErrInvalid) {
		t.Fatalf("importing a root signed by a stranger: %v", err)
	}
	if err := f2.ImportRoot(ctx, signed); err != nil {
		t.Fatal(err)
	}
	if err := f2.ImportRoot(ctx, signed); !errors.Is(err, tufrepo.ErrInvalid) {
		t.Fatalf("importing the same root twice: %v", err)
	}
	f.publish(t, "y.bin", []byte("y"), "")
	u := f.client(t, root1, t.TempDir(), t0.Add(time.Hour))
	if err := u.Refresh(); err != nil {
		t.Fatal(err)
	}
	if r, _, _, _ := trusted(u); r != 3 {
		t.Fatalf("root %d", r)
	}
	if _, err := u.GetTargetInfo("y.bin"); err != nil {
		t.Fatal(err)
	}
	// An RSA key in a root is refused.
	draft, err = f2.PrepareRoot(ctx, tufrepo.RootChange{})
	if err != nil {
		t.Fatal(err)
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	md, _ := metadata.Root().FromBytes(draft)
	k, _ := metadata.KeyFromPublicKey(&rk.PublicKey)
	md.Signed.AddKey(k, metadata.TIMESTAMP)
	draft, _ = md.ToBytes(false)
	signed, _ = tufrepo.SignRoot(draft, priv)
	if err := f2.ImportRoot(ctx, signed); !errors.Is(err, tufrepo.ErrKeyType) {
		t.Fatalf("importing a root with an RSA key: %v", err)
	}
	// The key can come back online.
	if err := f2.ImportRootKey(ctx, keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := f2.RotateOnlineKey(ctx, metadata.SNAPSHOT); err != nil {
		t.Fatal(err)
	}
	if _, err := tufrepo.ParsePrivateKey([]byte(strings.Repeat("x", 10))); err == nil {
		t.Fatal("parsed garbage as a key")
	}
}

func TestConcurrentServers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		repos := []*tufrepo.Repo{f.repo, f.newRepo(t), f.newRepo(t)}
		const per = 4
		var wg sync.WaitGroup
		errs := make(chan error, len(repos)*per)
		for i, r := range repos {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range per {
					h := sha256.Sum256([]byte(fmt.Sprint(i, j)))
					if _, err := r.AddTarget(ctx, fmt.Sprintf("t%d-%d", i, j), 1, map[string][]byte{"sha256": h[:]}, nil); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		v, targets, err := f.repo.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != int64(1+len(repos)*per) || len(targets) != len(repos)*per {
			t.Fatalf("targets version %d with %d targets, want %d and %d", v, len(targets), 1+len(repos)*per, len(repos)*per)
		}
		u := f.client(t, f.rootV(t, 1), t.TempDir(), t0.Add(time.Hour))
		if err := u.Refresh(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestKeysSealedAtRest(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	f := newFixture(t, st)
	ctx := context.Background()
	md, _ := metadata.Root().FromBytes(f.rootV(t, 1))
	for role, rl := range md.Signed.Roles {
		for _, id := range rl.KeyIDs {
			k, err := st.GetTUFKey(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if k.Role != role || len(k.Sealed) == 0 {
				t.Fatalf("%s key stored as %q, %d sealed bytes", role, k.Role, len(k.Sealed))
			}
			// A server with another KEK cannot use the keys.
			if _, err := testKEK(t).Open(k.Sealed, []byte("bulwark/tuf/key/"+id)); err == nil {
				t.Fatal("opened a sealed key with another KEK")
			}
		}
	}
	other, err := tufrepo.New(tufrepo.Config{Store: st, KEK: testKEK(t), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(nil)
	if _, err := other.AddTarget(ctx, "z", 0, map[string][]byte{"sha256": h[:]}, nil); err == nil {
		t.Fatal("signed with the wrong KEK")
	}
}

// After a rotation, metadata signed by the old (revoked) key is refused
// even with a higher version.
func TestRevokedKeyRefused(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	f := newFixture(t, st)
	ctx := context.Background()
	root1 := f.rootV(t, 1)
	md, _ := metadata.Root().FromBytes(root1)
	oldID := md.Signed.Roles[metadata.TIMESTAMP].KeyIDs[0]
	rec, err := st.GetTUFKey(ctx, oldID)
	if err != nil {
		t.Fatal(err)
	}
	der, err := f.kek.Open(rec.Sealed, []byte("bulwark/tuf/key/"+oldID))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	oldSigner, err := signature.LoadED25519Signer(priv.(ed25519.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.repo.RotateOnlineKey(ctx, metadata.TIMESTAMP); err != nil {
		t.Fatal(err)
	}
	cur, err := f.repo.Metadata(ctx, metadata.TIMESTAMP, 0)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := metadata.Timestamp().FromBytes(cur)
	ts.Signed.Version += 10
	ts.ClearSignatures()
	if _, err := ts.Sign(oldSigner); err != nil {
		t.Fatal(err)
	}
	forged, _ := ts.ToBytes(false)
	f.forged.Store("/tuf/metadata/timestamp.json", forged)
	u := f.client(t, root1, t.TempDir(), t0.Add(time.Hour))
	err = u.Refresh()
	var unsigned *metadata.ErrUnsignedMetadata
	if !errors.As(err, &unsigned) {
		t.Fatalf("refresh with a timestamp signed by the revoked key = %v, want ErrUnsignedMetadata", err)
	}
	f.forged.Delete("/tuf/metadata/timestamp.json")
	u = f.client(t, root1, t.TempDir(), t0.Add(time.Hour))
	if err := u.Refresh(); err != nil {
		t.Fatal(err)
	}
}

func TestRotateRootKeys(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	f := newFixture(t, st)
	ctx := context.Background()
	root1 := f.rootV(t, 1)
	oldPEM, err := f.repo.ExportRootKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _ := tufrepo.ParsePrivateKey(oldPEM)

	// Online: new root keys, old ones deleted; clients follow.
	if err := f.repo.RotateRootKeys(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := f.repo.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version[metadata.ROOT] != 2 || s.RootKeysOnline != 1 || s.RootThreshold != 1 {
		t.Fatalf("status after rotation: %+v", s)
	}
	md, _ := metadata.Root().FromBytes(root1)
	if k, err := st.GetTUFKey(ctx, md.Signed.Roles[metadata.ROOT].KeyIDs[0]); err != nil || len(k.Sealed) != 0 {
		t.Fatalf("old root key still held: %v", err)
	}
	u := f.client(t, root1, t.TempDir(), t0.Add(time.Hour))
	if err := u.Refresh(); err != nil {
		t.Fatalf("client across root key rotation: %v", err)
	}

	// Offline: take the key offline, then rotate to a key made elsewhere.
	curPEM, err := f.repo.ExportRootKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := tufrepo.ParsePrivateKey(curPEM)
	if err := f.repo.RemoveRootKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.repo.Status(ctx); s.RootKeysOnline != 0 {
		t.Fatalf("root keys online after removal: %d", s.RootKeysOnline)
	}
	if err := f.repo.RotateRootKeys(ctx); !errors.Is(err, tufrepo.ErrKeyOffline) {
		t.Fatalf("online rotation with offline keys: %v", err)
	}
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	draft, err := f.repo.PrepareRoot(ctx, tufrepo.RootChange{RootKeys: []crypto.PublicKey{newKey.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	onlyNew, _ := tufrepo.SignRoot(draft, newKey)
	if err := f.repo.ImportRoot(ctx, onlyNew); !errors.Is(err, tufrepo.ErrInvalid) {
		t.Fatalf("root signed by the new key only: %v", err)
	}
	onlyOld, _ := tufrepo.SignRoot(draft, cur)
	if err := f.repo.ImportRoot(ctx, onlyOld); !errors.Is(err, tufrepo.ErrInvalid) {
		t.Fatalf("root signed by the old key only: %v", err)
	}
	both, err := tufrepo.SignRoot(onlyOld, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.repo.ImportRoot(ctx, both); err != nil {
		t.Fatal(err)
	}
	// The first, long-rotated root key can no longer sign a root.
	draft, _ = f.repo.PrepareRoot(ctx, tufrepo.RootChange{})
	stale, _ := tufrepo.SignRoot(draft, oldKey)
	if err := f.repo.ImportRoot(ctx, stale); !errors.Is(err, tufrepo.ErrInvalid) {
		t.Fatalf("root signed by a revoked root key: %v", err)
	}
	if _, err := f.repo.PrepareRoot(ctx, tufrepo.RootChange{RootThreshold: 2}); !errors.Is(err, tufrepo.ErrInvalid) {
		t.Fatalf("threshold above the key count: %v", err)
	}
	u = f.client(t, root1, t.TempDir(), t0.Add(2*time.Hour))
	if err := u.Refresh(); err != nil {
		t.Fatalf("client across offline root key rotation: %v", err)
	}
	if r, _, _, _ := trusted(u); r != 3 {
		t.Fatalf("client root %d, want 3", r)
	}
}

// A root threshold of two, then an offline move to an Ed25519 and an
// ECDSA P-256 key: clients verify both kinds of signature.
func TestRootThresholdAndECDSA(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	f := &fixture{store: st, kek: testKEK(t), clock: &clock{t: t0}, arts: tufrepo.DirArtifacts(t.TempDir())}
	r, err := tufrepo.New(tufrepo.Config{Store: st, KEK: f.kek, Artifacts: f.arts, Now: f.clock.Now, RootThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	f.repo = r
	f.srv = httptest.NewTLSServer(r.Handler())
	t.Cleanup(f.srv.Close)
	root1 := f.rootV(t, 1)
	md, _ := metadata.Root().FromBytes(root1)
	if rl := md.Signed.Roles[metadata.ROOT]; rl.Threshold != 2 || len(rl.KeyIDs) != 2 || len(md.Signatures) != 2 {
		t.Fatalf("root role %+v with %d signatures", rl, len(md.Signatures))
	}
	if err := r.RotateOnlineKey(ctx, metadata.SNAPSHOT); err != nil {
		t.Fatal(err)
	}
	pemKeys, err := r.ExportRootKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := tufrepo.ParsePrivateKeys(pemKeys)
	if err != nil || len(keys) != 2 {
		t.Fatalf("parsed %d keys: %v", len(keys), err)
	}
	if err := r.RemoveRootKeys(ctx); err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	draft, err := r.PrepareRoot(ctx, tufrepo.RootChange{RootKeys: []crypto.PublicKey{edPriv.Public(), ec.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	signed := draft
	for _, k := range []crypto.Signer{keys[0], edPriv, ec} {
		if signed, err = tufrepo.SignRoot(signed, k); err != nil {
			t.Fatal(err)
		}
	}
	// One of two old signatures is not enough.
	if err := r.ImportRoot(ctx, signed); !errors.Is(err, tufrepo.ErrInvalid) {
		t.Fatalf("root with one of two old signatures: %v", err)
	}
	if signed, err = tufrepo.SignRoot(signed, keys[1]); err != nil {
		t.Fatal(err)
	}
	if err := r.ImportRoot(ctx, signed); err != nil {
		t.Fatal(err)
	}
	// A P-384 key is refused.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := r.PrepareRoot(ctx, tufrepo.RootChange{RootKeys: []crypto.PublicKey{p384.Public()}}); !errors.Is(err, tufrepo.ErrKeyType) {
		t.Fatalf("P-384 root key: %v", err)
	}
	u := f.client(t, root1, t.TempDir(), t0.Add(time.Hour))
	if err := u.Refresh(); err != nil {
		t.Fatalf("client across threshold-2 rotation to ECDSA: %v", err)
	}
	if v, _, _, _ := trusted(u); v != 3 {
		t.Fatalf("client root %d", v)
	}
}
