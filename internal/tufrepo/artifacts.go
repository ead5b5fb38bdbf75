package tufrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ArtifactStore holds target files, named by the lowercase hex SHA-256 of
// their content. Open returns an error satisfying errors.Is(err,
// fs.ErrNotExist) when there is no such file. Implementations must be
// safe for concurrent use.
type ArtifactStore interface {
	Open(ctx context.Context, sha256Hex string) (io.ReadSeekCloser, error)
}

// DirArtifacts is an ArtifactStore in a local directory: one file per
// artifact, named by its SHA-256. It is safe for concurrent use.
type DirArtifacts string

func validSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Open opens the artifact with the given SHA-256.
func (d DirArtifacts) Open(ctx context.Context, sha256Hex string) (io.ReadSeekCloser, error) {
	if !validSHA256Hex(sha256Hex) {
		return nil, fmt.Errorf("tufrepo: artifact %q: %w", sha256Hex, fs.ErrNotExist)
	}
	f, err := os.Open(filepath.Join(string(d), sha256Hex))
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("tufrepo: artifact %s is not a regular file: %w", sha256Hex, fs.ErrNotExist)
	}
	return f, nil
}

// Put stores the content of r (at most maxSize bytes; 0 means no limit)
// and returns its SHA-256 and length. The file is written to a temporary
// name, synced and renamed, so a reader never sees a partial artifact.
func (d DirArtifacts) Put(ctx context.Context, r io.Reader, maxSize int64) (sha256Hex string, size int64, err error) {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return "", 0, fmt.Errorf("tufrepo: artifacts: %w", err)
	}
	f, err := os.CreateTemp(string(d), ".upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("tufrepo: artifacts: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err == nil && maxSize > 0 && n > maxSize {
		err = fmt.Errorf("%w: artifact is larger than %d bytes", ErrInvalid, maxSize)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("tufrepo: storing artifact: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(f.Name(), filepath.Join(string(d), sum)); err != nil {
		return "", 0, fmt.Errorf("tufrepo: storing artifact: %w", err)
	}
	return sum, n, nil
}

var _ ArtifactStore = DirArtifacts("")

// isNotExist reports a missing artifact.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
