package tufrepo

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulwark-iot/bulwark/internal/store"
)

// RootChange describes the next root version for PrepareRoot.
type RootChange struct {
	// Rotate lists online roles (targets, snapshot, timestamp) that get a
	// new key, generated and sealed in the store by PrepareRoot.
	Rotate []string
	// RootKeys, when not empty, replace the root keys (public halves,
	// Ed25519 or ECDSA P-256). The new root must then be signed by a
	// threshold of the current root keys and a threshold of these.
	RootKeys []crypto.PublicKey
	// RootThreshold is the new root threshold; zero keeps the current
	// one, capped at the number of root keys.
	RootThreshold int
}

// PrepareRoot returns the next root version, unsigned, for signing with
// the offline root keys (SignRoot, once per key) and then ImportRoot: the
// current root with a renewed expiry and the changes in ch. New online
// keys are stored (sealed) at once; they are used only once the root
// naming them is imported.
func (r *Repo) PrepareRoot(ctx context.Context, ch RootChange) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	next := r.nextRoot(st, r.cfg.Now())
	var keys []*store.TUFKey
	for _, role := range ch.Rotate {
		if !slices.Contains(onlineRoles, role) {
			return nil, fmt.Errorf("tufrepo: prepare root: %w: %q is not an online role", ErrInvalid, role)
		}
		ks, err := r.replaceKeys(next, role)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	if len(ch.RootKeys) > 0 || ch.RootThreshold > 0 {
		if err := setRootKeys(next, ch.RootKeys, ch.RootThreshold); err != nil {
			return nil, fmt.Errorf("tufrepo: prepare root: %w", err)
		}
	}
	if len(keys) > 0 {
		if err := r.cfg.Store.CommitTUF(ctx, keys, nil); err != nil {
			return nil, fmt.Errorf("tufrepo: prepare root: storing keys: %w", err)
		}
	}
	return next.ToBytes(true)
}

// setRootKeys replaces the root keys of next with pubs (none: keep them)
// and sets the threshold (zero: keep it, capped at the number of keys).
func setRootKeys(next *metadata.Metadata[metadata.RootType], pubs []crypto.PublicKey, threshold int) error {
	rl := next.Signed.Roles[metadata.ROOT]
	if len(pubs) > 0 {
		var ks []*metadata.Key
		for _, p := range pubs {
			if err := checkKeyType(p); err != nil {
				return err
			}
			k, err := metadata.KeyFromPublicKey(p)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrKeyType, err)
			}
			ks = append(ks, k)
		}
		for _, id := range slices.Clone(rl.KeyIDs) {
			if err := next.Signed.RevokeKey(id, metadata.ROOT); err != nil {
				return err
			}
		}
		for _, k := range ks {
			if err := next.Signed.AddKey(k, metadata.ROOT); err != nil {
				return err
			}
		}
	}
	if threshold == 0 {
		threshold = min(rl.Threshold, len(rl.KeyIDs))
	}
	if threshold < 1 || threshold > len(rl.KeyIDs) {
		return fmt.Errorf("%w: root threshold %d with %d root keys", ErrInvalid, threshold, len(rl.KeyIDs))
	}
	rl.Threshold = threshold
	return nil
}

// RotateRootKeys replaces the root keys, while they are online, with as
// many new ones: the new root is signed by the old and the new keys, so
// clients follow, and the old keys' private halves are then deleted.
func (r *Repo) RotateRootKeys(ctx context.Context) error {
	var old []string
	err := r.update(ctx, r.cfg.Now, func(st *state, now time.Time) (*change, error) {
		next := r.nextRoot(st, now)
		rl := next.Signed.Roles[metadata.ROOT]
		old = slices.Clone(rl.KeyIDs)
		var pubs []crypto.PublicKey
		var signers []signerT
		var recs []*store.TUFKey
		for range len(old) {
			_, rec, priv, err := r.newKey(metadata.ROOT)
			if err != nil {
				return nil, err
			}
			s, err := signerFor(priv)
			if err != nil {
				return nil, err
			}
			pubs, signers, recs = append(pubs, priv.Public()), append(signers, s), append(recs, rec)
		}
		if err := setRootKeys(next, pubs, rl.Threshold); err != nil {
			return nil, err
		}
		for _, s := range signers {
			if _, err := next.Sign(s); err != nil {
				return nil, fmt.Errorf("signing root: %w", err)
			}
		}
		if err := r.signRoot(ctx, st.root, next); err != nil {
			return nil, err
		}
		return &change{root: next, keys: recs}, nil
	})
	if err != nil {
		return fmt.Errorf("tufrepo: rotate root keys: %w", err)
	}
	var errs []error
	for _, id := range old {
		if err := r.cfg.Store.SetTUFKeySealed(ctx, id, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tufrepo: rotate root keys: the new root is live but deleting the old keys failed: %w", err)
	}
	r.cfg.Logger.Info("rotated TUF root keys", "old_keys", old)
	return nil
}

// Status is a summary of the repository, for operators.
type Status struct {
	// Version and Expires of the latest version of each role.
	Version map[string]int64
	Expires map[string]time.Time
	// RootThreshold is the number of root signatures a root needs, and
	// RootKeysOnline how many root keys the store holds (0: offline).
	RootThreshold, RootKeysOnline int
	// Targets is the number of targets.
	Targets int
}

// Status summarises the repository.
func (r *Repo) Status(ctx context.Context) (*Status, error) {
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	s := &Status{
		Version: map[string]int64{
			metadata.ROOT: st.root.Signed.Version, metadata.TARGETS: st.targets.Signed.Version,
			metadata.SNAPSHOT: st.snapshot.Signed.Version, metadata.TIMESTAMP: st.timestamp.Signed.Version,
		},
		Expires: map[string]time.Time{
			metadata.ROOT: st.root.Signed.Expires, metadata.TARGETS: st.targets.Signed.Expires,
			metadata.SNAPSHOT: st.snapshot.Signed.Expires, metadata.TIMESTAMP: st.timestamp.Signed.Expires,
		},
		RootThreshold: st.root.Signed.Roles[metadata.ROOT].Threshold,
		Targets:       len(st.targets.Signed.Targets),
	}
	for _, id := range st.root.Signed.Roles[metadata.ROOT].KeyIDs {
		k, err := r.cfg.Store.GetTUFKey(ctx, id)
		if err == nil && len(k.Sealed) > 0 {
			s.RootKeysOnline++
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("tufrepo: status: %w", err)
		}
	}
	return s, nil
}
