package journal

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
)

// Checkpoint is a signed statement by the device key that the journal's
// chain reached Hash at Seq. Signature is ECDSA (ASN.1) over SHA-256 of
// CheckpointMessage.
type Checkpoint struct {
	DeviceID  string    `json:"device_id"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"sig"`
}

// CheckpointMessage is the byte string a checkpoint signature covers.
func CheckpointMessage(cp Checkpoint) []byte {
	var b bytes.Buffer
	b.WriteString("bulwark journal checkpoint v1\n")
	for _, f := range []string{cp.DeviceID, strconv.FormatUint(cp.Seq, 10), cp.Hash, cp.Time.UTC().Format(time.RFC3339Nano)} {
		fmt.Fprintf(&b, "%d:%s;", len(f), f)
	}
	return b.Bytes()
}

// Checkpoint signs the current head of the chain with the device key (an
// ECDSA signer), appends it durably to checkpoints.log and returns it.
func (j *Journal) Checkpoint(signer crypto.Signer) (Checkpoint, error) {
	if _, ok := signer.Public().(*ecdsa.PublicKey); !ok {
		return Checkpoint{}, fmt.Errorf("journal: checkpoint key is %T, want ECDSA", signer.Public())
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lastSeq == 0 {
		return Checkpoint{}, errors.New("journal: nothing to checkpoint")
	}
	cp := Checkpoint{DeviceID: j.opts.DeviceID, Seq: j.lastSeq, Hash: j.lastHash, Time: j.opts.Now().UTC()}
	digest := sha256.Sum256(CheckpointMessage(cp))
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("journal: signing checkpoint: %w", err)
	}
	cp.Signature = sig
	// The records it covers must be durable before the checkpoint is.
	if err := j.f.Sync(); err != nil {
		return Checkpoint{}, err
	}
	line, _ := json.Marshal(cp)
	f, err := os.OpenFile(filepath.Join(j.dir, "checkpoints.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return Checkpoint{}, err
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return Checkpoint{}, err
	}
	if err := f.Sync(); err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}

// VerifyCheckpoint checks a checkpoint's signature with the device's public
// key.
func VerifyCheckpoint(pub crypto.PublicKey, cp Checkpoint) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("journal: checkpoint key is %T, want ECDSA", pub)
	}
	digest := sha256.Sum256(CheckpointMessage(cp))
	if !ecdsa.VerifyASN1(k, digest[:], cp.Signature) {
		return errors.New("journal: checkpoint signature does not verify")
	}
	return nil
}

// VerifyCheckpoints checks the signature of every stored checkpoint with the
// device's public key; Verify checks that they match the chain.
func (j *Journal) VerifyCheckpoints(pub crypto.PublicKey) error {
	cps, err := j.Checkpoints()
	if err != nil {
		return err
	}
	for _, cp := range cps {
		if cp.DeviceID != j.opts.DeviceID {
			return fmt.Errorf("journal: checkpoint at %d is for device %q", cp.Seq, cp.DeviceID)
		}
		if err := VerifyCheckpoint(pub, cp); err != nil {
			return fmt.Errorf("journal: checkpoint at %d: %w", cp.Seq, err)
		}
	}
	return nil
}

// trimCheckpoints drops checkpoints of deleted records, keeping the newest
// of those (it vouches for the anchor) and every later one.
func (j *Journal) trimCheckpoints() error {
	cps, err := j.readCheckpoints()
	if err != nil {
		return err
	}
	keep := 0
	for i, cp := range cps {
		if cp.Seq <= j.meta.AnchorSeq {
			keep = i
		}
	}
	if keep == 0 {
		return nil
	}
	var b bytes.Buffer
	for _, cp := range cps[keep:] {
		line, _ := json.Marshal(cp)
		b.Write(line)
		b.WriteByte('\n')
	}
	return state.WriteFile(filepath.Join(j.dir, "checkpoints.log"), b.Bytes(), 0o600)
}

// Checkpoints returns the stored checkpoints, oldest first.
func (j *Journal) Checkpoints() ([]Checkpoint, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.readCheckpoints()
}

func (j *Journal) readCheckpoints() ([]Checkpoint, error) {
	var out []Checkpoint
	path := filepath.Join(j.dir, "checkpoints.log")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	err := scan(path, func(line []byte) error {
		var cp Checkpoint
		if err := json.Unmarshal(line, &cp); err != nil {
			return fmt.Errorf("journal: corrupt checkpoint: %w", err)
		}
		out = append(out, cp)
		return nil
	})
	return out, err
}
