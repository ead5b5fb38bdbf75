package tufrepo

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulwark-iot/bulwark/internal/store"
)

// keyAAD binds a sealed private key to its TUF key ID, so that one sealed
// key cannot be swapped for another in the store.
func keyAAD(keyID string) []byte { return []byte("bulwark/tuf/key/" + keyID) }

// newKey generates an Ed25519 key for role and returns it with its
// store record (private half sealed with the KEK).
func (r *Repo) newKey(role string) (*metadata.Key, *store.TUFKey, crypto.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	k, rec, err := r.keyRecord(role, priv)
	return k, rec, priv, err
}

// keyRecord builds the TUF key and the store record of priv.
func (r *Repo) keyRecord(role string, priv crypto.Signer) (*metadata.Key, *store.TUFKey, error) {
	if err := checkKeyType(priv.Public()); err != nil {
		return nil, nil, err
	}
	k, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("tufrepo: %w", err)
	}
	id, err := k.ID()
	if err != nil {
		return nil, nil, fmt.Errorf("tufrepo: %w", err)
	}
	pub, err := json.Marshal(k)
	if err != nil {
		return nil, nil, fmt.Errorf("tufrepo: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("tufrepo: %w", err)
	}
	sealed, err := r.cfg.KEK.Seal(der, keyAAD(id))
	if err != nil {
		return nil, nil, fmt.Errorf("tufrepo: sealing %s key: %w", role, err)
	}
	return k, &store.TUFKey{ID: id, Role: role, Public: pub, Sealed: sealed, CreatedAt: r.cfg.Now()}, nil
}

// checkKeyType accepts Ed25519 and ECDSA P-256 public keys only.
func checkKeyType(pub crypto.PublicKey) error {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return nil
		}
		return fmt.Errorf("%w: ECDSA keys must use P-256, not %s", ErrKeyType, p.Curve.Params().Name)
	default:
		return fmt.Errorf("%w: %T", ErrKeyType, pub)
	}
}

// checkTUFKey accepts the TUF key objects of Ed25519 and ECDSA P-256 keys.
func checkTUFKey(k *metadata.Key) error {
	switch k.Scheme {
	case metadata.KeySchemeEd25519, metadata.KeySchemeECDSA_SHA2_P256:
	default:
		return fmt.Errorf("%w: scheme %q", ErrKeyType, k.Scheme)
	}
	pub, err := k.ToPublicKey()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKeyType, err)
	}
	return checkKeyType(pub)
}

// ParsePrivateKey parses a PEM "PRIVATE KEY" (PKCS #8) block holding an
// Ed25519 or ECDSA P-256 key, as ExportRootKeys writes them. Only the
// first block is read.
func ParsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("tufrepo: key file holds no PEM PRIVATE KEY block")
	}
	return parsePKCS8(b.Bytes)
}

// ParsePrivateKeys parses every PEM "PRIVATE KEY" block in pemBytes (as
// ExportRootKeys writes them when the root has several keys); other
// blocks are skipped.
func ParsePrivateKeys(pemBytes []byte) ([]crypto.Signer, error) {
	var out []crypto.Signer
	for {
		var b *pem.Block
		b, pemBytes = pem.Decode(pemBytes)
		if b == nil {
			break
		}
		if b.Type != "PRIVATE KEY" {
			continue
		}
		k, err := parsePKCS8(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("tufrepo: key file holds no PEM PRIVATE KEY block")
	}
	return out, nil
}

func parsePKCS8(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: parsing private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrKeyType, k)
	}
	if err := checkKeyType(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// signerFor wraps a private key as a go-tuf signer.
func signerFor(priv crypto.Signer) (signature.Signer, error) {
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		return signature.LoadED25519Signer(p)
	case *ecdsa.PrivateKey:
		return signature.LoadECDSASigner(p, crypto.SHA256)
	}
	return nil, fmt.Errorf("%w: %T", ErrKeyType, priv)
}

// signer returns the signer of a stored key, or ErrKeyOffline when its
// private half is not in the store.
func (r *Repo) signer(ctx context.Context, keyID string) (signature.Signer, error) {
	r.keyMu.Lock()
	s, ok := r.signers[keyID]
	r.keyMu.Unlock()
	if ok {
		return s, nil
	}
	rec, err := r.cfg.Store.GetTUFKey(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) || err == nil && len(rec.Sealed) == 0 {
		return nil, fmt.Errorf("%w (key %s)", ErrKeyOffline, short(keyID))
	}
	if err != nil {
		return nil, fmt.Errorf("tufrepo: reading key: %w", err)
	}
	der, err := r.cfg.KEK.Open(rec.Sealed, keyAAD(keyID))
	if err != nil {
		return nil, fmt.Errorf("tufrepo: unsealing %s key %s: %w", rec.Role, short(keyID), err)
	}
	priv, err := parsePKCS8(der)
	if err != nil {
		return nil, err
	}
	s, err = signerFor(priv)
	if err != nil {
		return nil, err
	}
	// Root keys are read from the store each time, so that once another
	// server took them offline (RemoveRootKeys) this one stops using them.
	if rec.Role != metadata.ROOT {
		r.keyMu.Lock()
		r.signers[keyID] = s
		r.keyMu.Unlock()
	}
	return s, nil
}

// forget drops cached signers, after a key went offline.
func (r *Repo) forget(ids ...string) {
	r.keyMu.Lock()
	defer r.keyMu.Unlock()
	for _, id := range ids {
		delete(r.signers, id)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// signRole signs md with every key of role in root that is online and
// fails with ErrKeyOffline when fewer than the threshold are.
func signRole[T metadata.Roles](ctx context.Context, r *Repo, md *metadata.Metadata[T], root *metadata.RootType, role string) error {
	rl := root.Roles[role]
	if rl == nil {
		return fmt.Errorf("tufrepo: root has no %s role", role)
	}
	n := 0
	var offline error
	for _, id := range rl.KeyIDs {
		if hasSig(md.Signatures, id) {
			n++
			continue
		}
		s, err := r.signer(ctx, id)
		if errors.Is(err, ErrKeyOffline) {
			offline = err
			continue
		}
		if err != nil {
			return err
		}
		if _, err := md.Sign(s); err != nil {
			return fmt.Errorf("tufrepo: signing %s: %w", role, err)
		}
		n++
	}
	if n < rl.Threshold {
		if offline == nil {
			offline = ErrKeyOffline
		}
		return fmt.Errorf("tufrepo: signing %s: %d of %d keys available: %w", role, n, rl.Threshold, offline)
	}
	return nil
}

func hasSig(sigs []metadata.Signature, id string) bool {
	for _, s := range sigs {
		if s.KeyID == id {
			return true
		}
	}
	return false
}

// ExportRootKeys returns the root private keys held in the store, as PEM
// PKCS #8 blocks, for an operator moving them to offline custody. Follow
// it with RemoveRootKeys once the keys are safe. ErrKeyOffline when no
// root key is held.
func (r *Repo) ExportRootKeys(ctx context.Context) ([]byte, error) {
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, id := range st.root.Signed.Roles[metadata.ROOT].KeyIDs {
		rec, err := r.cfg.Store.GetTUFKey(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tufrepo: reading key: %w", err)
		}
		if len(rec.Sealed) == 0 {
			continue
		}
		der, err := r.cfg.KEK.Open(rec.Sealed, keyAAD(id))
		if err != nil {
			return nil, fmt.Errorf("tufrepo: unsealing root key %s: %w", short(id), err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"TUF-Key-ID": id}, Bytes: der})...)
	}
	if out == nil {
		return nil, fmt.Errorf("tufrepo: export root keys: %w", ErrKeyOffline)
	}
	return out, nil
}

// RemoveRootKeys deletes the root private keys from the store: from then
// on the root is offline, and root changes (online-key rotation, root
// re-signing) go through PrepareRoot, an offline signature (SignRoot) and
// ImportRoot. Export the keys first: this cannot be undone except by
// ImportRootKey.
func (r *Repo) RemoveRootKeys(ctx context.Context) error {
	st, err := r.load(ctx)
	if err != nil {
		return err
	}
	ids := st.root.Signed.Roles[metadata.ROOT].KeyIDs
	for _, id := range ids {
		if err := r.cfg.Store.SetTUFKeySealed(ctx, id, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("tufrepo: removing root key: %w", err)
		}
	}
	r.forget(ids...)
	return nil
}

// ImportRootKey brings an exported root key (PEM PKCS #8) back online,
// sealed in the store. The key must be a root key of the current root.
func (r *Repo) ImportRootKey(ctx context.Context, pemBytes []byte) error {
	priv, err := ParsePrivateKey(pemBytes)
	if err != nil {
		return err
	}
	st, err := r.load(ctx)
	if err != nil {
		return err
	}
	_, rec, err := r.keyRecord(metadata.ROOT, priv)
	if err != nil {
		return err
	}
	found := false
	for _, id := range st.root.Signed.Roles[metadata.ROOT].KeyIDs {
		found = found || id == rec.ID
	}
	if !found {
		return fmt.Errorf("tufrepo: import root key: key %s is not a root key of root version %d", short(rec.ID), st.root.Signed.Version)
	}
	err = r.cfg.Store.SetTUFKeySealed(ctx, rec.ID, rec.Sealed)
	if errors.Is(err, store.ErrNotFound) {
		err = r.cfg.Store.AddTUFKey(ctx, rec)
	}
	if err != nil {
		return fmt.Errorf("tufrepo: import root key: %w", err)
	}
	return nil
}

// SignRoot adds a signature by priv to a root metadata file (as
// PrepareRoot returns it) and returns the signed file. It needs no store
// and is meant for the offline machine that holds the root key.
func SignRoot(root []byte, priv crypto.Signer) ([]byte, error) {
	md, err := metadata.Root().FromBytes(root)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: %w: %v", ErrInvalid, err)
	}
	s, err := signerFor(priv)
	if err != nil {
		return nil, err
	}
	if _, err := md.Sign(s); err != nil {
		return nil, fmt.Errorf("tufrepo: signing root: %w", err)
	}
	if err := checkUnique(md.Signatures); err != nil {
		return nil, err
	}
	return md.ToBytes(true)
}

func checkUnique(sigs []metadata.Signature) error {
	seen := map[string]bool{}
	for _, s := range sigs {
		if seen[s.KeyID] {
			return fmt.Errorf("tufrepo: %w: the file is already signed by key %s", ErrInvalid, short(s.KeyID))
		}
		seen[s.KeyID] = true
	}
	return nil
}

type signerT = signature.Signer
