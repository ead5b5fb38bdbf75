package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Environment variables read by LoadOrCreateKEK.
const (
	envKEK     = "BULWARK_KEK"      // the key itself, 64 hex characters
	envKEKFile = "BULWARK_KEK_FILE" // path of a file holding the key
)

const (
	kekSize       = 32
	kekFileName   = "kek"
	maxKEKFileLen = 4 << 10

	sealVersion1 = 1
	// sealOverhead is version byte + 12-byte random nonce + 16-byte GCM tag.
	sealOverhead = 1 + 12 + 16
)

// KEK is a 256-bit key-encryption key that seals secrets at rest (the CA
// key, integration credentials, device backups) with AES-256-GCM.
//
// The zero KEK is not usable: Seal and Open return an error. KEK's String
// and GoString methods never reveal the key.
type KEK struct {
	key [kekSize]byte
}

// ParseKEK parses a KEK from 64 hexadecimal characters. Surrounding white
// space is ignored. An all-zero key is rejected. Errors never include the
// input.
func ParseKEK(s string) (KEK, error) {
	s = strings.TrimSpace(s)
	if len(s) != 2*kekSize {
		return KEK{}, fmt.Errorf("pki: KEK must be %d hexadecimal characters, got %d characters", 2*kekSize, len(s))
	}
	var k KEK
	if _, err := hex.Decode(k.key[:], []byte(s)); err != nil {
		return KEK{}, errors.New("pki: KEK contains a character that is not hexadecimal")
	}
	if k.isZero() {
		return KEK{}, errors.New("pki: KEK is all zeros; generate one with crypto/rand")
	}
	return k, nil
}

// LoadOrCreateKEK returns the server's KEK. The first of these that is set
// wins:
//
//  1. the environment variable BULWARK_KEK, 64 hex characters;
//  2. the environment variable BULWARK_KEK_FILE, the path of a file holding
//     64 hex characters (it must exist);
//  3. the file "kek" in dataDir, which is created with mode 0600 holding a
//     new random key if it does not exist (dataDir is created 0700 if
//     needed).
//
// An empty environment variable counts as unset. A key file that group or
// others can read or write is refused: losing the KEK loses every secret
// it protects.
func LoadOrCreateKEK(dataDir string) (KEK, error) {
	if v := os.Getenv(envKEK); v != "" {
		k, err := ParseKEK(v)
		if err != nil {
			return KEK{}, fmt.Errorf("%s: %w", envKEK, err)
		}
		return k, nil
	}
	if p := os.Getenv(envKEKFile); p != "" {
		k, err := readKEKFile(p)
		if err != nil {
			return KEK{}, fmt.Errorf("%s: %w", envKEKFile, err)
		}
		return k, nil
	}
	if dataDir == "" {
		return KEK{}, errors.New("pki: no KEK: set BULWARK_KEK or BULWARK_KEK_FILE, or give a data directory")
	}
	path := filepath.Join(dataDir, kekFileName)
	k, err := readKEKFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKEKFile(path)
	}
	return k, err
}

// readKEKFile reads a KEK from path, refusing files others can access.
func readKEKFile(path string) (KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return KEK{}, fmt.Errorf("pki: read KEK: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// the file read.
	fi, err := f.Stat()
	if err != nil {
		return KEK{}, fmt.Errorf("pki: read KEK: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return KEK{}, fmt.Errorf("pki: KEK file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return KEK{}, fmt.Errorf("pki: KEK file %s has mode %#o, which lets group or others access it; run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKEKFileLen+1))
	if err != nil {
		return KEK{}, fmt.Errorf("pki: read KEK: %w", err)
	}
	if len(b) > maxKEKFileLen {
		return KEK{}, fmt.Errorf("pki: KEK file %s is larger than %d bytes", path, maxKEKFileLen)
	}
	k, err := ParseKEK(string(b))
	if err != nil {
		return KEK{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return k, nil
}

// createKEKFile writes a new random KEK to path. The key is written to a
// temporary file, synced, then hard-linked into place, so a crash never
// leaves a partial key file and a concurrent creator never overwrites a key
// that may already protect data: whoever links second reads the winner's.
func createKEKFile(path string) (KEK, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return KEK{}, fmt.Errorf("pki: create KEK: %w", err)
	}
	var k KEK
	rand.Read(k.key[:])

	tmp, err := os.CreateTemp(dir, ".kek-*") // mode 0600
	if err != nil {
		return KEK{}, fmt.Errorf("pki: create KEK: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(k.key[:]) + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return KEK{}, fmt.Errorf("pki: create KEK: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKEKFile(path)
		}
		return KEK{}, fmt.Errorf("pki: create KEK: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: make the new directory entry durable
		d.Close()
	}
	return k, nil
}

func (k KEK) isZero() bool {
	var zero [kekSize]byte
	return subtle.ConstantTimeCompare(k.key[:], zero[:]) == 1
}

// String returns a fixed placeholder so that the key never reaches a log.
func (k KEK) String() string { return "pki.KEK(redacted)" }

// GoString returns a fixed placeholder so that the key never reaches a log.
func (k KEK) GoString() string { return "pki.KEK(redacted)" }

func (k KEK) aead() (cipher.AEAD, error) {
	if k.isZero() {
		return nil, errors.New("pki: KEK is not set")
	}
	block, err := aes.NewCipher(k.key[:])
	if err != nil {
		return nil, err
	}
	// Output is nonce || ciphertext || tag, with a fresh random 96-bit nonce.
	return cipher.NewGCMWithRandomNonce(block)
}

// Seal encrypts and authenticates plaintext with AES-256-GCM under a random
// nonce. aad is authenticated but not encrypted: pass a label saying what
// the secret is (and whose), so that sealed data cannot be swapped for
// other sealed data. The result is a version byte, the nonce, the
// ciphertext and the tag.
func (k KEK) Seal(plaintext, aad []byte) ([]byte, error) {
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1, sealOverhead+len(plaintext))
	out[0] = sealVersion1
	return g.Seal(out, nil, plaintext, sealAD(sealVersion1, aad)), nil
}

// Open reverses Seal. It fails if k is not the key that sealed the data,
// if aad differs, or if the data was modified.
func (k KEK) Open(sealed, aad []byte) ([]byte, error) {
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		return nil, errors.New("pki: open sealed data: input is empty")
	}
	if v := sealed[0]; v != sealVersion1 {
		return nil, fmt.Errorf("pki: open sealed data: unsupported format version %d", v)
	}
	if len(sealed) < sealOverhead {
		return nil, errors.New("pki: open sealed data: input is truncated")
	}
	pt, err := g.Open(nil, nil, sealed[1:], sealAD(sealVersion1, aad))
	if err != nil {
		return nil, errors.New("pki: open sealed data: authentication failed (wrong KEK, wrong context, or the data was modified)")
	}
	return pt, nil
}

// sealAD binds the format version into the authenticated data.
func sealAD(version byte, aad []byte) []byte {
	ad := make([]byte, 0, 1+len(aad))
	ad = append(ad, version)
	return append(ad, aad...)
}
