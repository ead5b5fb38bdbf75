// Package tufrepo is the server side of Bulwark's update repository: a
// TUF repository (The Update Framework, built on go-tuf v2's metadata
// package) with the four top-level roles root, targets, snapshot and
// timestamp, consistent snapshots, and Ed25519 keys (ECDSA P-256 is
// accepted for imported keys; nothing else).
//
// Every signed version of every role is kept in the store, with the
// signing keys; the private halves are sealed with the server's
// key-encryption key. Server replicas over one store therefore serve one
// repository. The root keys start in the store too (so that a new install
// works at once) and can be moved offline: ExportRootKeys, RemoveRootKeys,
// and from then on PrepareRoot, SignRoot on the offline machine and
// ImportRoot for every root change. While they are online, RotateOnlineKey,
// RotateRootKeys and Refresh sign new roots by themselves.
//
// A *Repo is safe for concurrent use, including by several servers
// sharing one store: each change is signed from the latest stored
// versions and committed all-or-nothing, and a server that loses a race
// reloads and signs again. Versions and expiry times never go backwards.
package tufrepo

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulwark-iot/bulwark/internal/pki"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// Errors callers act on.
var (
	// ErrNotInitialized: Init has not run on this store.
	ErrNotInitialized = errors.New("the update repository is not initialised")
	// ErrNotFound: no such metadata version or target.
	ErrNotFound = errors.New("not found")
	// ErrKeyOffline: a signature needs a private key the store does not
	// hold (typically the root key, kept offline).
	ErrKeyOffline = errors.New("signing key is offline")
	// ErrKeyType: a key is neither Ed25519 nor ECDSA P-256.
	ErrKeyType = errors.New("unsupported key type (only Ed25519 and ECDSA P-256 are accepted)")
	// ErrInvalid: an argument or an imported file is malformed.
	ErrInvalid = errors.New("invalid input")
	// ErrConflict: the repository kept changing under an operation.
	ErrConflict = errors.New("the update repository changed concurrently; try again")
)

// Config configures a Repo. Zero values are documented per field.
type Config struct {
	// Store keeps metadata and keys. Required.
	Store *store.Store
	// KEK seals the private keys kept in the store. Required.
	KEK pki.KEK
	// Artifacts holds target files by SHA-256; nil serves no targets.
	Artifacts ArtifactStore
	// RootThreshold is the number of root keys Init generates and the
	// number of signatures a root needs; zero means 1.
	RootThreshold int
	// Expiry periods of each role; zero means 365 days (root), 90 days
	// (targets), 7 days (snapshot) and 1 day (timestamp). Refresh
	// re-signs a role when a third of its period is left.
	RootExpiry, TargetsExpiry, SnapshotExpiry, TimestampExpiry time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives what Refresh does; nil discards it.
	Logger *slog.Logger
}

// Repo is the TUF repository.
type Repo struct {
	cfg Config

	mu sync.Mutex // serialises changes made by this process

	keyMu   sync.Mutex
	signers map[string]signerT

	tmu    sync.Mutex
	tcache struct {
		version int64
		targets map[string]*metadata.TargetFiles
	}
}

// New returns a repository over cfg.Store. Call Init before use.
func New(cfg Config) (*Repo, error) {
	if cfg.Store == nil {
		return nil, errors.New("tufrepo: a store is required")
	}
	if cfg.RootThreshold == 0 {
		cfg.RootThreshold = 1
	}
	if cfg.RootThreshold < 1 || cfg.RootThreshold > 16 {
		return nil, fmt.Errorf("tufrepo: root threshold %d is out of range 1-16", cfg.RootThreshold)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.RootExpiry, 365*24*time.Hour)
	def(&cfg.TargetsExpiry, 90*24*time.Hour)
	def(&cfg.SnapshotExpiry, 7*24*time.Hour)
	def(&cfg.TimestampExpiry, 24*time.Hour)
	for _, d := range []time.Duration{cfg.RootExpiry, cfg.TargetsExpiry, cfg.SnapshotExpiry, cfg.TimestampExpiry} {
		if d < time.Minute {
			return nil, fmt.Errorf("tufrepo: expiry period %v is shorter than a minute", d)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Repo{cfg: cfg, signers: map[string]signerT{}}, nil
}

// state is the latest stored version of each role, parsed afresh (so that
// an operation may modify it), with the stored bodies.
type state struct {
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	body      map[string][]byte
}

// load reads the latest version of every role. Timestamp is read first:
// every commit writes a new timestamp, so if anything read later is newer
// than that timestamp, the commit built from this state will collide on
// the timestamp version and be retried.
func (r *Repo) load(ctx context.Context) (*state, error) {
	st := &state{body: map[string][]byte{}}
	for _, role := range []string{metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS, metadata.ROOT} {
		m, err := r.cfg.Store.LatestTUFMetadata(ctx, role)
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrNotInitialized
		}
		if err != nil {
			return nil, fmt.Errorf("tufrepo: reading %s: %w", role, err)
		}
		st.body[role] = m.Body
	}
	var err error
	if st.root, err = metadata.Root().FromBytes(st.body[metadata.ROOT]); err != nil {
		return nil, fmt.Errorf("tufrepo: stored root: %w", err)
	}
	if st.targets, err = metadata.Targets().FromBytes(st.body[metadata.TARGETS]); err != nil {
		return nil, fmt.Errorf("tufrepo: stored targets: %w", err)
	}
	if st.snapshot, err = metadata.Snapshot().FromBytes(st.body[metadata.SNAPSHOT]); err != nil {
		return nil, fmt.Errorf("tufrepo: stored snapshot: %w", err)
	}
	if st.timestamp, err = metadata.Timestamp().FromBytes(st.body[metadata.TIMESTAMP]); err != nil {
		return nil, fmt.Errorf("tufrepo: stored timestamp: %w", err)
	}
	return st, nil
}

// expiry is now+d rounded down to the second (TUF dates have no
// fractions), but never earlier than prev: expiry times are monotonic.
func expiry(now time.Time, d time.Duration, prev time.Time) time.Time {
	e := now.Add(d).UTC().Truncate(time.Second)
	if prev.After(e) {
		return prev.UTC()
	}
	return e
}

// Init creates the repository on first use: a root key (RootThreshold of
// them), one online key each for targets, snapshot and timestamp, and
// version 1 of every role. It does nothing when the repository exists,
// also when another server created it concurrently.
func (r *Repo) Init(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.cfg.Store.LatestTUFMetadata(ctx, metadata.ROOT); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("tufrepo: init: %w", err)
	}
	now := r.cfg.Now()
	root := metadata.Root(expiry(now, r.cfg.RootExpiry, time.Time{}))
	root.Signed.ConsistentSnapshot = true
	var keys []*store.TUFKey
	signers := map[string]signerT{}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		n := 1
		if role == metadata.ROOT {
			n = r.cfg.RootThreshold
			root.Signed.Roles[role].Threshold = n
		}
		for range n {
			k, rec, priv, err := r.newKey(role)
			if err != nil {
				return fmt.Errorf("tufrepo: init: %w", err)
			}
			if err := root.Signed.AddKey(k, role); err != nil {
				return fmt.Errorf("tufrepo: init: %w", err)
			}
			s, err := signerFor(priv)
			if err != nil {
				return err
			}
			signers[rec.ID] = s
			keys = append(keys, rec)
		}
	}
	r.keyMu.Lock()
	for id, s := range signers {
		r.signers[id] = s
	}
	r.keyMu.Unlock()
	// Root keys are never cached past Init (see signer).
	defer r.forget(root.Signed.Roles[metadata.ROOT].KeyIDs...)
	if err := signRole(ctx, r, root, &root.Signed, metadata.ROOT); err != nil {
		return err
	}
	rootBody, err := root.ToBytes(false)
	if err != nil {
		return err
	}
	// Version 1 of targets, snapshot and timestamp go through the same
	// path as every later change, from a "version 0" state.
	st := &state{root: root, body: map[string][]byte{}}
	st.targets = metadata.Targets(expiry(now, r.cfg.TargetsExpiry, time.Time{}))
	st.targets.Signed.Version = 0
	st.snapshot = metadata.Snapshot(expiry(now, r.cfg.SnapshotExpiry, time.Time{}))
	st.snapshot.Signed.Version = 0
	st.timestamp = metadata.Timestamp(expiry(now, r.cfg.TimestampExpiry, time.Time{}))
	st.timestamp.Signed.Version = 0
	metas, err := r.sign(ctx, st, &change{resignTargets: true}, now)
	if err != nil {
		return err
	}
	metas = append([]*store.TUFMetadata{{Role: metadata.ROOT, Version: 1, Body: rootBody, Expires: root.Signed.Expires, CreatedAt: now}}, metas...)
	err = r.cfg.Store.CommitTUF(ctx, keys, metas)
	if errors.Is(err, store.ErrConflict) {
		r.forget(keyIDs(keys)...)
		return nil // another server initialised it first
	}
	if err != nil {
		return fmt.Errorf("tufrepo: init: %w", err)
	}
	r.cfg.Logger.Info("initialised the TUF update repository", "root_keys", r.cfg.RootThreshold)
	return nil
}

func keyIDs(keys []*store.TUFKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

// change is what an operation alters; sign derives the rest.
type change struct {
	keys []*store.TUFKey
	// root, when set, is the new root, fully signed.
	root *metadata.Metadata[metadata.RootType]
	// targets, when set, is the new targets content (version, expiry
	// and signatures are set by sign).
	targets        *metadata.Metadata[metadata.TargetsType]
	resignTargets  bool
	resignSnapshot bool
}

// sign builds and signs the new versions a change implies: the new root,
// targets when changed or when its keys changed, snapshot when targets or
// its keys changed, and always a new timestamp.
func (r *Repo) sign(ctx context.Context, st *state, ch *change, now time.Time) ([]*store.TUFMetadata, error) {
	var metas []*store.TUFMetadata
	root := st.root
	if ch.root != nil {
		body, err := ch.root.ToBytes(false)
		if err != nil {
			return nil, err
		}
		metas = append(metas, &store.TUFMetadata{Role: metadata.ROOT, Version: ch.root.Signed.Version, Body: body, Expires: ch.root.Signed.Expires, CreatedAt: now})
		root = ch.root
	}
	keysChanged := func(role string) bool {
		if ch.root == nil {
			return false
		}
		a, b := st.root.Signed.Roles[role], ch.root.Signed.Roles[role]
		return a.Threshold != b.Threshold || !sameSet(a.KeyIDs, b.KeyIDs)
	}

	targets := ch.targets
	if targets == nil && (ch.resignTargets || keysChanged(metadata.TARGETS)) {
		targets = st.targets
	}
	targetsBody := st.body[metadata.TARGETS]
	targetsVersion := st.targets.Signed.Version
	if targets != nil {
		targets.Signed.Version = st.targets.Signed.Version + 1
		targets.Signed.Expires = expiry(now, r.cfg.TargetsExpiry, st.targets.Signed.Expires)
		targets.ClearSignatures()
		if err := signRole(ctx, r, targets, &root.Signed, metadata.TARGETS); err != nil {
			return nil, err
		}
		b, err := targets.ToBytes(false)
		if err != nil {
			return nil, err
		}
		targetsBody, targetsVersion = b, targets.Signed.Version
		metas = append(metas, &store.TUFMetadata{Role: metadata.TARGETS, Version: targetsVersion, Body: b, Expires: targets.Signed.Expires, CreatedAt: now})
	}

	snapshotBody := st.body[metadata.SNAPSHOT]
	snapshotVersion := st.snapshot.Signed.Version
	if targets != nil || ch.resignSnapshot || keysChanged(metadata.SNAPSHOT) {
		sn := st.snapshot
		sn.Signed.Version++
		sn.Signed.Expires = expiry(now, r.cfg.SnapshotExpiry, sn.Signed.Expires)
		sn.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(targetsVersion, targetsBody)}
		sn.ClearSignatures()
		if err := signRole(ctx, r, sn, &root.Signed, metadata.SNAPSHOT); err != nil {
			return nil, err
		}
		b, err := sn.ToBytes(false)
		if err != nil {
			return nil, err
		}
		snapshotBody, snapshotVersion = b, sn.Signed.Version
		metas = append(metas, &store.TUFMetadata{Role: metadata.SNAPSHOT, Version: snapshotVersion, Body: b, Expires: sn.Signed.Expires, CreatedAt: now})
	}

	ts := st.timestamp
	ts.Signed.Version++
	ts.Signed.Expires = expiry(now, r.cfg.TimestampExpiry, ts.Signed.Expires)
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(snapshotVersion, snapshotBody)}
	ts.ClearSignatures()
	if err := signRole(ctx, r, ts, &root.Signed, metadata.TIMESTAMP); err != nil {
		return nil, err
	}
	b, err := ts.ToBytes(false)
	if err != nil {
		return nil, err
	}
	metas = append(metas, &store.TUFMetadata{Role: metadata.TIMESTAMP, Version: ts.Signed.Version, Body: b, Expires: ts.Signed.Expires, CreatedAt: now})
	return metas, nil
}

func metaFile(version int64, body []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(body)
	return &metadata.MetaFiles{Version: version, Length: int64(len(body)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// update runs f on the latest state and commits what it returns,
// retrying from a fresh state when another server committed first. f
// returning a nil change means there is nothing to do.
func (r *Repo) update(ctx context.Context, now func() time.Time, f func(st *state, now time.Time) (*change, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range 10 {
		st, err := r.load(ctx)
		if err != nil {
			return err
		}
		t := now()
		ch, err := f(st, t)
		if err != nil || ch == nil {
			return err
		}
		metas, err := r.sign(ctx, st, ch, t)
		if err != nil {
			return err
		}
		err = r.cfg.Store.CommitTUF(ctx, ch.keys, metas)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("tufrepo: storing metadata: %w", err)
		}
		return nil
	}
	return fmt.Errorf("tufrepo: %w", ErrConflict)
}

// Hash algorithms accepted for targets; sha256 is required (artifacts
// are stored and served by it).
var targetHashSizes = map[string]int{"sha256": sha256.Size, "sha512": 64}

// maxTargetName bounds target names.
const maxTargetName = 512

// AddTarget adds (or replaces) the target name with the given length,
// hashes (sha256 required, sha512 optional) and custom metadata (a JSON
// object, or nil), and signs new targets, snapshot and timestamp
// versions. It returns the new targets version. Names are slash-separated
// relative paths without "." or ".." elements, of letters, digits and
// "._-+~@=,".
func (r *Repo) AddTarget(ctx context.Context, name string, length int64, hashes map[string][]byte, custom json.RawMessage) (int64, error) {
	if err := checkTargetName(name); err != nil {
		return 0, err
	}
	if length < 0 {
		return 0, fmt.Errorf("tufrepo: add target: %w: negative length", ErrInvalid)
	}
	if _, ok := hashes["sha256"]; !ok {
		return 0, fmt.Errorf("tufrepo: add target: %w: a sha256 hash is required", ErrInvalid)
	}
	hs := metadata.Hashes{}
	for alg, h := range hashes {
		n, ok := targetHashSizes[alg]
		if !ok {
			return 0, fmt.Errorf("tufrepo: add target: %w: hash algorithm %q is not supported (sha256, sha512)", ErrInvalid, alg)
		}
		if len(h) != n {
			return 0, fmt.Errorf("tufrepo: add target: %w: %s hash is %d bytes, want %d", ErrInvalid, alg, len(h), n)
		}
		hs[alg] = slices.Clone(h)
	}
	var cm *json.RawMessage
	if custom != nil {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(custom, &obj); err != nil || obj == nil {
			return 0, fmt.Errorf("tufrepo: add target: %w: custom metadata must be a JSON object", ErrInvalid)
		}
		c := json.RawMessage(slices.Clone(custom))
		cm = &c
	}
	var version int64
	err := r.update(ctx, r.cfg.Now, func(st *state, now time.Time) (*change, error) {
		t := st.targets
		if t.Signed.Targets == nil {
			t.Signed.Targets = map[string]*metadata.TargetFiles{}
		}
		t.Signed.Targets[name] = &metadata.TargetFiles{Length: length, Hashes: hs, Custom: cm, Path: name}
		version = t.Signed.Version + 1
		return &change{targets: t}, nil
	})
	if err != nil {
		return 0, fmt.Errorf("tufrepo: add target %s: %w", name, err)
	}
	return version, nil
}

func checkTargetName(name string) error {
	if name == "" || len(name) > maxTargetName || !fs.ValidPath(name) || name == "." ||
		strings.ContainsAny(name, "\\\x00") || strings.HasSuffix(name, "/") {
		return fmt.Errorf("tufrepo: %w: target name %q is not a relative slash-separated path", ErrInvalid, name)
	}
	// Clients put names into URLs unescaped: keep to characters that
	// need no escaping.
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._-+~@=,", r)) {
			return fmt.Errorf("tufrepo: %w: target name %q contains %q (allowed: letters, digits and / . _ - + ~ @ = ,)", ErrInvalid, name, r)
		}
	}
	return nil
}

// Refresh re-signs what nears expiry as of now: each role when a third of
// its period is left (root only when its keys are online; otherwise it
// logs a warning), and timestamp whenever anything else changed. Servers
// call it periodically; it does nothing when nothing is due.
func (r *Repo) Refresh(ctx context.Context, now time.Time) error {
	due := func(exp time.Time, d time.Duration) bool { return !now.Before(exp.Add(-d / 3)) }
	err := r.update(ctx, func() time.Time { return now }, func(st *state, now time.Time) (*change, error) {
		ch := &change{
			resignTargets:  due(st.targets.Signed.Expires, r.cfg.TargetsExpiry),
			resignSnapshot: due(st.snapshot.Signed.Expires, r.cfg.SnapshotExpiry),
		}
		if due(st.root.Signed.Expires, r.cfg.RootExpiry) {
			next := r.nextRoot(st, now)
			if err := r.signRoot(ctx, st.root, next); errors.Is(err, ErrKeyOffline) {
				r.cfg.Logger.Warn("the TUF root expires soon and its keys are offline: sign a new root with the offline key",
					"root_version", st.root.Signed.Version, "expires", st.root.Signed.Expires)
			} else if err != nil {
				return nil, err
			} else {
				ch.root = next
			}
		}
		if ch.root == nil && !ch.resignTargets && !ch.resignSnapshot && !due(st.timestamp.Signed.Expires, r.cfg.TimestampExpiry) {
			return nil, nil
		}
		r.cfg.Logger.Info("re-signing TUF metadata", "root", ch.root != nil, "targets", ch.resignTargets, "snapshot", ch.resignSnapshot)
		return ch, nil
	})
	if err != nil {
		return fmt.Errorf("tufrepo: refresh: %w", err)
	}
	return nil
}

// nextRoot is a copy of the current root with the next version, a renewed
// expiry and no signatures.
func (r *Repo) nextRoot(st *state, now time.Time) *metadata.Metadata[metadata.RootType] {
	next, _ := metadata.Root().FromBytes(st.body[metadata.ROOT]) // parsed once already
	next.Signed.Version = st.root.Signed.Version + 1
	next.Signed.Expires = expiry(now, r.cfg.RootExpiry, st.root.Signed.Expires)
	next.ClearSignatures()
	return next
}

// signRoot signs next with the online root keys of both prev and next (a
// new root must satisfy both) and checks that the thresholds are met.
func (r *Repo) signRoot(ctx context.Context, prev, next *metadata.Metadata[metadata.RootType]) error {
	if err := signRole(ctx, r, next, &next.Signed, metadata.ROOT); err != nil {
		return err
	}
	if err := signRole(ctx, r, next, &prev.Signed, metadata.ROOT); err != nil {
		return err
	}
	return nil
}

// onlineRoles are the roles whose keys the server holds.
var onlineRoles = []string{metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// RotateOnlineKey replaces the key of an online role (targets, snapshot or
// timestamp) with a new one: a new root version, signed by the root keys,
// lists the new key instead of the old, and the role (and those below it)
// is re-signed with the new key. Clients follow through the root chain.
// It fails with ErrKeyOffline when the root keys are offline; use
// PrepareRoot, SignRoot and ImportRoot then.
func (r *Repo) RotateOnlineKey(ctx context.Context, role string) error {
	if !slices.Contains(onlineRoles, role) {
		return fmt.Errorf("tufrepo: rotate key: %w: %q is not an online role (targets, snapshot, timestamp)", ErrInvalid, role)
	}
	var old string
	err := r.update(ctx, r.cfg.Now, func(st *state, now time.Time) (*change, error) {
		next := r.nextRoot(st, now)
		keys, err := r.replaceKeys(next, role)
		if err != nil {
			return nil, err
		}
		if err := r.signRoot(ctx, st.root, next); err != nil {
			return nil, err
		}
		old = strings.Join(st.root.Signed.Roles[role].KeyIDs, ",")
		return &change{root: next, keys: keys}, nil
	})
	if err != nil {
		return fmt.Errorf("tufrepo: rotate %s key: %w", role, err)
	}
	r.cfg.Logger.Info("rotated TUF online key", "role", role, "old_keys", old)
	return nil
}

// replaceKeys gives role in next one new key in place of its old ones,
// and returns the new key's store record.
func (r *Repo) replaceKeys(next *metadata.Metadata[metadata.RootType], role string) ([]*store.TUFKey, error) {
	for _, id := range slices.Clone(next.Signed.Roles[role].KeyIDs) {
		if err := next.Signed.RevokeKey(id, role); err != nil {
			return nil, err
		}
	}
	k, rec, priv, err := r.newKey(role)
	if err != nil {
		return nil, err
	}
	if err := next.Signed.AddKey(k, role); err != nil {
		return nil, err
	}
	next.Signed.Roles[role].Threshold = 1
	s, err := signerFor(priv)
	if err != nil {
		return nil, err
	}
	r.keyMu.Lock()
	r.signers[rec.ID] = s
	r.keyMu.Unlock()
	return []*store.TUFKey{rec}, nil
}

// maxRootSize bounds an imported root file.
const maxRootSize = 512 << 10

// ImportRoot validates a new root version (the next version after the
// current one, signed by a threshold of both the current and its own root
// keys, only Ed25519 and ECDSA P-256 keys, consistent snapshots, not
// expired, and online keys this server holds), stores it and re-signs the
// roles whose keys changed, exactly as a client will check it.
func (r *Repo) ImportRoot(ctx context.Context, data []byte) error {
	if len(data) > maxRootSize {
		return fmt.Errorf("tufrepo: import root: %w: larger than %d bytes", ErrInvalid, maxRootSize)
	}
	err := r.update(ctx, r.cfg.Now, func(st *state, now time.Time) (*change, error) {
		next, err := metadata.Root().FromBytes(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if err := r.checkRoot(st.root, next, now); err != nil {
			return nil, err
		}
		return &change{root: next}, nil
	})
	if err != nil {
		return fmt.Errorf("tufrepo: import root: %w", err)
	}
	return nil
}

func (r *Repo) checkRoot(prev, next *metadata.Metadata[metadata.RootType], now time.Time) error {
	s := &next.Signed
	switch {
	case s.Type != metadata.ROOT:
		return fmt.Errorf("%w: _type is %q, not root", ErrInvalid, s.Type)
	case s.Version != prev.Signed.Version+1:
		return fmt.Errorf("%w: version %d does not follow the current root version %d", ErrInvalid, s.Version, prev.Signed.Version)
	case !s.ConsistentSnapshot:
		return fmt.Errorf("%w: consistent_snapshot must be true", ErrInvalid)
	case !s.Expires.After(now):
		return fmt.Errorf("%w: the root expired at %s", ErrInvalid, s.Expires.Format(time.RFC3339))
	}
	for id, k := range s.Keys {
		if err := checkTUFKey(k); err != nil {
			return fmt.Errorf("key %s: %w", short(id), err)
		}
		if kid, err := k.ID(); err != nil || kid != id {
			return fmt.Errorf("%w: key ID %s does not match its key", ErrInvalid, short(id))
		}
	}
	for _, role := range metadata.TOP_LEVEL_ROLE_NAMES {
		rl := s.Roles[role]
		if rl == nil || rl.Threshold < 1 || len(rl.KeyIDs) < rl.Threshold {
			return fmt.Errorf("%w: role %s needs at least threshold keys and a threshold of 1 or more", ErrInvalid, role)
		}
	}
	if len(s.Roles) != len(metadata.TOP_LEVEL_ROLE_NAMES) {
		return fmt.Errorf("%w: unknown roles in root", ErrInvalid)
	}
	if err := prev.VerifyDelegate(metadata.ROOT, next); err != nil {
		return fmt.Errorf("%w: not signed by a threshold of the current root keys: %v", ErrInvalid, err)
	}
	if err := next.VerifyDelegate(metadata.ROOT, next); err != nil {
		return fmt.Errorf("%w: not signed by a threshold of its own root keys: %v", ErrInvalid, err)
	}
	return nil
}

// Metadata returns a stored metadata file: version 0 means the latest.
// ErrNotFound when there is no such version.
func (r *Repo) Metadata(ctx context.Context, role string, version int64) ([]byte, error) {
	m, err := r.metadata(ctx, role, version)
	if err != nil {
		return nil, err
	}
	return m.Body, nil
}

func (r *Repo) metadata(ctx context.Context, role string, version int64) (*store.TUFMetadata, error) {
	var m *store.TUFMetadata
	var err error
	if version == 0 {
		m, err = r.cfg.Store.LatestTUFMetadata(ctx, role)
	} else {
		m, err = r.cfg.Store.GetTUFMetadata(ctx, role, version)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("tufrepo: reading %s: %w", role, err)
	}
	return m, nil
}

// Root returns the latest root metadata, the trust anchor agents are
// given at enrolment.
func (r *Repo) Root(ctx context.Context) ([]byte, error) {
	b, err := r.Metadata(ctx, metadata.ROOT, 0)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotInitialized
	}
	return b, err
}

// Targets returns the latest targets version and its targets by name.
// The map is shared: do not modify it.
func (r *Repo) Targets(ctx context.Context) (int64, map[string]*metadata.TargetFiles, error) {
	m, err := r.metadata(ctx, metadata.TARGETS, 0)
	if errors.Is(err, ErrNotFound) {
		return 0, nil, ErrNotInitialized
	}
	if err != nil {
		return 0, nil, err
	}
	r.tmu.Lock()
	defer r.tmu.Unlock()
	if r.tcache.version == m.Version && r.tcache.targets != nil {
		return m.Version, r.tcache.targets, nil
	}
	t, err := metadata.Targets().FromBytes(m.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("tufrepo: stored targets: %w", err)
	}
	if t.Signed.Targets == nil {
		t.Signed.Targets = map[string]*metadata.TargetFiles{}
	}
	r.tcache.version, r.tcache.targets = m.Version, t.Signed.Targets
	return m.Version, t.Signed.Targets, nil
}
