package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/pki"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// The attack tests of issue 3: each attack on the update path is played
// end to end against a real agent process, and must be refused with a
// clear reason, reported as a failed device status, with nothing
// installed.
//
// Set-up: the server runs in-process (servertest), so that the test can
// rotate its keys and read its sealed online keys (with the data
// directory's KEK) to forge metadata the way an attacker holding a key
// would. Each case has its own agent, product and group, and the agent
// talks to the server through its own "front door": a second TLS listener
// with the server's own TLS configuration (so the agent's pinned CA and its
// mutual-TLS device certificate work unchanged) whose handler is the
// server's handler behind an attacker layer that forwards everything and
// rewrites chosen responses (TUF metadata, target files, the check-in
// answer). That plays a malicious mirror or a network attacker with a
// valid certificate, without a separate proxy certificate.

// attackFn handles a request itself (true) or lets it through (false).
type attackFn func(w http.ResponseWriter, r *http.Request, next http.Handler) bool

type frontDoor struct {
	URL    string
	attack atomic.Pointer[attackFn]
}

func (f *frontDoor) set(fn attackFn) { f.attack.Store(&fn) }

func newFrontDoor(t *testing.T, ts *servertest.Server) *frontDoor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fd := &frontDoor{URL: "https://" + ln.Addr().String()}
	next := ts.Handler()
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if fn := fd.attack.Load(); fn != nil && (*fn)(w, r, next) {
				return
			}
			next.ServeHTTP(w, r)
		}),
		TLSConfig:         ts.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go hs.Serve(tls.NewListener(ln, hs.TLSConfig))
	t.Cleanup(func() { hs.Close() })
	return fd
}

// serve answers the given paths with fixed bodies.
func serve(bodies map[string][]byte) attackFn {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		b, ok := bodies[r.URL.Path]
		if ok {
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		}
		return ok
	}
}

// rewrite passes a matching request to the server and lets f change the
// answer's body.
func rewrite(match func(*http.Request) bool, f func([]byte) []byte) attackFn {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !match(r) {
			return false
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			body = f(body)
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
		return true
	}
}

func isTarget(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/tuf/targets/") }

// reassign rewrites the check-in answer's update assignment.
func reassign(target, version string) attackFn {
	return rewrite(func(r *http.Request) bool { return r.URL.Path == api.PathCheckin }, func(b []byte) []byte {
		var resp map[string]json.RawMessage
		if json.Unmarshal(b, &resp) != nil || resp["update"] == nil {
			return b
		}
		var a api.UpdateAssignment
		json.Unmarshal(resp["update"], &a)
		a.Target, a.Version = target, version
		resp["update"], _ = json.Marshal(a)
		out, _ := json.Marshal(resp)
		return out
	})
}

// rig is the shared server and agent binary.
type rig struct {
	ts     *servertest.Server
	agent  string
	caFile string
	tmp    string
}

// victim is one agent with product P and group G, behind its front door,
// running P 1.0.0 (and P 0.9.0 published before it).
type victim struct {
	g       *rig
	fd      *frontDoor
	name    string
	product string
	group   string
	state   string
	// before is the repository's timestamp and snapshot version before
	// the agent's first install, which the agent has seen superseded.
	oldTimestamp []byte
	oldSnapshot  int64
}

func (g *rig) publish(t *testing.T, product, version string, body []byte) {
	t.Helper()
	q := url.Values{"product": {product}, "version": {version}, "filename": {"app.tar.gz"}}
	req, _ := http.NewRequest("POST", g.ts.URL+"/api/v1/releases?"+q.Encode(), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.ts.AdminToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := g.ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publishing %s %s: %s %s", product, version, resp.Status, b)
	}
}

func (g *rig) latest(t *testing.T, role string) []byte {
	t.Helper()
	b, err := g.ts.TUF().Metadata(context.Background(), role, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// genuineSigner returns the server's current key for an online role, as
// an attacker who stole it would use it: unsealed from the store with the
// data directory's KEK.
func (g *rig) genuineSigner(t *testing.T, role string) signature.Signer {
	t.Helper()
	root, err := metadata.Root().FromBytes(g.latest(t, metadata.ROOT))
	if err != nil {
		t.Fatal(err)
	}
	id := root.Signed.Roles[role].KeyIDs[0]
	rec, err := g.ts.Store().GetTUFKey(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := pki.LoadOrCreateKEK(g.ts.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	der, err := kek.Open(rec.Sealed, []byte("bulwark/tuf/key/"+id))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	var s signature.Signer
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		s, err = signature.LoadED25519Signer(p)
	case *ecdsa.PrivateKey:
		s, err = signature.LoadECDSASigner(p, crypto.SHA256)
	default:
		t.Fatalf("key type %T", priv)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func freshSigner(t *testing.T) signature.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func resign[T metadata.Roles](t *testing.T, md *metadata.Metadata[T], s signature.Signer) []byte {
	t.Helper()
	md.ClearSignatures()
	if _, err := md.Sign(s); err != nil {
		t.Fatal(err)
	}
	b, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func metaFile(version int64, body []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(body)
	return &metadata.MetaFiles{Version: version, Length: int64(len(body)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

func metaPath(role string, version int64) string {
	if role == metadata.TIMESTAMP {
		return "/tuf/metadata/timestamp.json"
	}
	return fmt.Sprintf("/tuf/metadata/%d.%s.json", version, role)
}

// newVictim enrols an agent behind its own front door and installs
// P 1.0.0 on it.
func (g *rig) newVictim(t *testing.T, name string) *victim {
	t.Helper()
	v := &victim{g: g, name: name, product: "cam-" + name, group: "g-" + name, state: filepath.Join(g.tmp, name)}
	if code := g.ts.Do(t, "POST", "/api/v1/groups", "", api.Group{Name: v.group}, nil); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("creating group: %d", code)
	}
	v.oldTimestamp = g.latest(t, metadata.TIMESTAMP)
	sn, _ := metadata.Snapshot().FromBytes(g.latest(t, metadata.SNAPSHOT))
	v.oldSnapshot = sn.Signed.Version
	g.publish(t, v.product, "0.9.0", tarGz(t, map[string]string{"bin/cam": "0.9.0"}))
	g.publish(t, v.product, "1.0.0", tarGz(t, map[string]string{"bin/cam": "1.0.0"}))
	v.fd = newFrontDoor(t, g.ts)

	r := &runner{t: t}
	tok := g.ts.EnrollToken(t, 1, v.group)
	r.ok(g.agent, "enroll", "--server", v.fd.URL, "--token", tok, "--ca-cert", g.caFile, "--state", v.state)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, g.agent, "run", "--state", v.state, "--interval", "1s", "--health-check", "true")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("agent %s log:\n%s", name, logs.String())
		}
	})

	dep := v.deploy(t, "1.0.0")
	d := v.wait(t, dep, "success")
	if d.Devices[0].Status != "success" {
		t.Fatalf("baseline install: %+v", d.Devices[0])
	}
	v.assertInstalled(t)
	return v
}

func (v *victim) deploy(t *testing.T, version string) string {
	t.Helper()
	var d api.Deployment
	if code := v.g.ts.Do(t, "POST", "/api/v1/deployments", "", api.DeploymentCreate{Product: v.product, Version: version, Group: v.group}, &d); code != http.StatusCreated && code != http.StatusOK || d.ID == "" {
		t.Fatalf("creating deployment of %s %s: %d %+v", v.product, version, code, d)
	}
	return d.ID
}

// wait waits until the device's status in the deployment is final.
func (v *victim) wait(t *testing.T, dep, what string) api.Deployment {
	t.Helper()
	var d api.Deployment
	eventually(t, v.name+": deployment "+dep+" to end ("+what+")", 90*time.Second, func() bool {
		d = api.Deployment{}
		v.g.ts.Do(t, "GET", "/api/v1/deployments/"+dep, "", nil, &d)
		if len(d.Devices) != 1 {
			return false
		}
		switch d.Devices[0].Status {
		case "success", "failed", "rolled-back":
			return true
		}
		return false
	})
	return d
}

// assertInstalled checks that P 1.0.0 is what the agent runs and that no
// other version was ever unpacked.
func (v *victim) assertInstalled(t *testing.T) {
	t.Helper()
	r := &runner{t: t}
	out := r.ok(v.g.agent, "status", "--json", "--state", v.state)
	var st agentStatus
	json.Unmarshal([]byte(out), &st)
	if len(st.Installed) != 1 || st.Installed[0].Product != v.product || st.Installed[0].Version != "1.0.0" {
		t.Fatalf("installed: %+v", st.Installed)
	}
	entries, err := os.ReadDir(filepath.Join(v.state, "apps", v.product, "versions"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "1.0.0" {
			t.Fatalf("%s was unpacked under versions/", e.Name())
		}
	}
}

// refused deploys version through the attack and checks the outcome: the
// device status is failed with a reason containing each of want, and
// P 1.0.0 is still what is installed.
func (v *victim) refused(t *testing.T, version string, want ...string) {
	t.Helper()
	dep := v.deploy(t, version)
	d := v.wait(t, dep, "refusal")
	dev := d.Devices[0]
	if dev.Status != "failed" {
		t.Fatalf("device status %q (%s), want failed", dev.Status, dev.Reason)
	}
	for _, w := range want {
		if !strings.Contains(dev.Reason, w) {
			t.Fatalf("failure reason %q does not name %q", dev.Reason, w)
		}
	}
	t.Logf("refused: %s", dev.Reason)
	v.assertInstalled(t)
}

// recovers stops the attack and checks that the same agent then installs
// the same release: the refusal was the attack's doing, and it left the
// agent able to update.
func (v *victim) recovers(t *testing.T, version string) {
	t.Helper()
	v.fd.attack.Store(nil)
	dep := v.deploy(t, version)
	d := v.wait(t, dep, "success after the attack")
	if d.Devices[0].Status != "success" {
		t.Fatalf("after the attack stopped: %s (%s)", d.Devices[0].Status, d.Devices[0].Reason)
	}
}

func TestUpdateAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds binaries; skipped with -short")
	}
	tmp := t.TempDir()
	g := &rig{ts: servertest.Start(t, servertest.Options{}), agent: build(t, tmp, "cmd/bulwark-agent"), tmp: tmp}
	g.caFile = filepath.Join(tmp, "ca.pem")
	os.WriteFile(g.caFile, g.ts.CAPEM, 0o644)
	evil := tarGz(t, map[string]string{"bin/cam": "evil"})

	// Runs first, alone: it rotates a key of the shared repository, which
	// the parallel cases below must not race with.
	t.Run("revoked_key_after_rotation", func(t *testing.T) {
		v := g.newVictim(t, "revoked")
		old := g.genuineSigner(t, metadata.TIMESTAMP)
		if err := g.ts.TUF().RotateOnlineKey(context.Background(), metadata.TIMESTAMP); err != nil {
			t.Fatal(err)
		}
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// The holder of the revoked timestamp key signs a newer timestamp.
		ts, _ := metadata.Timestamp().FromBytes(g.latest(t, metadata.TIMESTAMP))
		ts.Signed.Version++
		v.fd.set(serve(map[string][]byte{metaPath(metadata.TIMESTAMP, 0): resign(t, ts, old)}))
		v.refused(t, "2.0.0", "Verifying timestamp failed, not enough signatures")
		v.recovers(t, "2.0.0")
	})

	t.Run("tampered_artifact", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "tampered")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		v.fd.set(rewrite(isTarget, func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[len(b)/2] ^= 0xff
			return b
		}))
		v.refused(t, "2.0.0", "artifact hash does not match")
		v.recovers(t, "2.0.0")
	})

	t.Run("untrusted_key", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "untrusted")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// Targets metadata listing an evil artifact under the release's
		// name, signed by a key the root does not list; snapshot and
		// timestamp are re-signed with the genuine online keys so that
		// the targets signature check is what must catch it.
		tg, _ := metadata.Targets().FromBytes(g.latest(t, metadata.TARGETS))
		name := v.product + "/2.0.0/app.tar.gz"
		tf := *tg.Signed.Targets[name]
		h256, h512 := sha256.Sum256(evil), sha512.Sum512(evil)
		tf.Length, tf.Hashes = int64(len(evil)), metadata.Hashes{"sha256": h256[:], "sha512": h512[:]}
		tg.Signed.Targets[name] = &tf
		tg.Signed.Version++
		tb := resign(t, tg, freshSigner(t))
		sn, _ := metadata.Snapshot().FromBytes(g.latest(t, metadata.SNAPSHOT))
		sn.Signed.Version++
		sn.Signed.Meta["targets.json"] = metaFile(tg.Signed.Version, tb)
		sb := resign(t, sn, g.genuineSigner(t, metadata.SNAPSHOT))
		ts, _ := metadata.Timestamp().FromBytes(g.latest(t, metadata.TIMESTAMP))
		ts.Signed.Version++
		ts.Signed.Meta["snapshot.json"] = metaFile(sn.Signed.Version, sb)
		v.fd.set(serve(map[string][]byte{
			metaPath(metadata.TIMESTAMP, 0):                                                       resign(t, ts, g.genuineSigner(t, metadata.TIMESTAMP)),
			metaPath(metadata.SNAPSHOT, sn.Signed.Version):                                        sb,
			metaPath(metadata.TARGETS, tg.Signed.Version):                                         tb,
			"/tuf/targets/" + v.product + "/2.0.0/" + hex.EncodeToString(h256[:]) + ".app.tar.gz": evil,
		}))
		v.refused(t, "2.0.0", "Verifying targets failed, not enough signatures")
		// No recovery check: the agent has accepted the forged timestamp
		// and snapshot (genuine keys, newer versions), as TUF requires,
		// and waits for the repository to sign versions past them.
	})

	t.Run("target_not_in_metadata", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "unlisted")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// The check-in answer names arbitrary software the metadata does
		// not list.
		name := v.product + "/6.6.6/app.tar.gz"
		v.fd.set(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if r.URL.Path == "/tuf/targets/"+v.product+"/6.6.6/"+hex.EncodeToString(sha256Of(evil))+".app.tar.gz" {
				w.Write(evil)
				return true
			}
			return reassign(name, "6.6.6")(w, r, next)
		})
		v.refused(t, "2.0.0", name+" is not a signed target")
		v.recovers(t, "2.0.0")
	})

	t.Run("metadata_rollback_snapshot", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "rollback")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// A genuine, newer timestamp pointing at a snapshot version older
		// than the one the agent trusts (the genuine old snapshot is
		// still served by the repository).
		old, err := g.ts.TUF().Metadata(context.Background(), metadata.SNAPSHOT, v.oldSnapshot)
		if err != nil {
			t.Fatal(err)
		}
		ts, _ := metadata.Timestamp().FromBytes(g.latest(t, metadata.TIMESTAMP))
		ts.Signed.Version++
		ts.Signed.Meta["snapshot.json"] = metaFile(v.oldSnapshot, old)
		v.fd.set(serve(map[string][]byte{metaPath(metadata.TIMESTAMP, 0): resign(t, ts, g.genuineSigner(t, metadata.TIMESTAMP))}))
		v.refused(t, "2.0.0", fmt.Sprintf("new snapshot version %d must be >=", v.oldSnapshot))
		v.recovers(t, "2.0.0")
	})

	t.Run("metadata_rollback_timestamp_replay", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "replay")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// Replays the genuine timestamp captured before the agent saw
		// newer ones: no key needed.
		v.fd.set(serve(map[string][]byte{metaPath(metadata.TIMESTAMP, 0): v.oldTimestamp}))
		old, _ := metadata.Timestamp().FromBytes(v.oldTimestamp)
		v.refused(t, "2.0.0", fmt.Sprintf("new timestamp version %d must be >=", old.Signed.Version))
		v.recovers(t, "2.0.0")
	})

	t.Run("expired_timestamp_freeze", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "freeze")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// A freeze attack replays a timestamp that was genuine but has
		// expired. The server's expiry is a day, so rather than wait, the
		// test signs with the genuine timestamp key a timestamp that
		// expired an hour ago and whose version the agent has not seen
		// superseded: what such a capture looks like to the agent.
		ts, _ := metadata.Timestamp().FromBytes(g.latest(t, metadata.TIMESTAMP))
		ts.Signed.Version++
		ts.Signed.Expires = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
		v.fd.set(serve(map[string][]byte{metaPath(metadata.TIMESTAMP, 0): resign(t, ts, g.genuineSigner(t, metadata.TIMESTAMP))}))
		v.refused(t, "2.0.0", "timestamp.json is expired")
		v.recovers(t, "2.0.0")
	})

	t.Run("mix_and_match", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "mix")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// Every targets version asked for is answered with the genuine
		// previous version: validly signed, but not what snapshot lists.
		re := regexp.MustCompile(`^/tuf/metadata/([0-9]+)\.targets\.json$`)
		v.fd.set(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			m := re.FindStringSubmatch(r.URL.Path)
			if m == nil {
				return false
			}
			n, _ := strconv.ParseInt(m[1], 10, 64)
			old, err := g.ts.TUF().Metadata(r.Context(), metadata.TARGETS, n-1)
			if err != nil {
				return false
			}
			w.Write(old)
			return true
		})
		v.refused(t, "2.0.0", "length/hash verification error")
		v.recovers(t, "2.0.0")
	})

	t.Run("endless_data", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "endless")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// The target file is followed by an endless stream (capped at
		// 1 GiB so that a broken client cannot hang the test forever).
		v.fd.set(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if !isTarget(r) {
				return false
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				return false
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			w.Write(rec.Body.Bytes())
			junk := make([]byte, 64<<10)
			for range (1 << 30) / len(junk) {
				if _, err := w.Write(junk); err != nil {
					break
				}
			}
			return true
		})
		v.refused(t, "2.0.0", "artifact longer than its trusted length")
		v.recovers(t, "2.0.0")
	})

	t.Run("downgrade", func(t *testing.T) {
		t.Parallel()
		v := g.newVictim(t, "downgrade")
		g.publish(t, v.product, "2.0.0", tarGz(t, map[string]string{"bin/cam": "2.0.0"}))
		// The server refuses to publish below the newest release, so the
		// attacker rewrites the assignment to the older, genuinely signed
		// release 0.9.0.
		v.fd.set(reassign(v.product+"/0.9.0/app.tar.gz", "0.9.0"))
		v.refused(t, "2.0.0", "refusing to install an older version", "0.9.0 is not newer than the installed 1.0.0")
		v.recovers(t, "2.0.0")
	})
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
