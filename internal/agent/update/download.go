package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Errors reported by Download when the artifact does not match its
// trusted description. In each case the partial file has been deleted.
var (
	// ErrTooLong means the server sent more bytes than the trusted length
	// (an "endless data" attack). Download stops reading as soon as it
	// sees the excess.
	ErrTooLong = errors.New("artifact longer than its trusted length")
	// ErrLengthMismatch means the server ended the artifact before the
	// trusted length.
	ErrLengthMismatch = errors.New("artifact length does not match")
	// ErrHashMismatch means a hash of the complete artifact differs from
	// the trusted one.
	ErrHashMismatch = errors.New("artifact hash does not match")
)

// Target is the trusted description of an artifact, as taken from signed
// metadata (the TUF target info).
type Target struct {
	// Length is the exact size in bytes.
	Length int64
	// Hashes maps an algorithm name ("sha256", "sha512") to the digest.
	// sha256 is required (it names the file on disk); every given hash is
	// checked, and an unknown algorithm is an error rather than skipped.
	Hashes map[string][]byte
}

// DefaultBufferSize is the copy buffer Download uses when none is set.
const DefaultBufferSize = 256 << 10

// Downloader fetches artifacts. The zero value is ready to use.
type Downloader struct {
	// Client makes the requests; nil means http.DefaultClient. Its
	// timeout, if any, bounds the whole transfer, so a client for large
	// artifacts should rely on the context and transport timeouts instead.
	Client *http.Client
	// Progress, if set, is called after each chunk with the bytes present
	// so far (including a resumed prefix) and the total length. It runs on
	// the downloading goroutine and should return quickly.
	Progress func(done, total int64)
	// BufferSize is the copy buffer size; zero means DefaultBufferSize.
	// Memory use is five such buffers (one for re-hashing a partial file,
	// four in flight between the network and the hashing goroutine),
	// whatever the artifact size.
	BufferSize int
}

// Download fetches url into dir as described by want, using client (nil
// means http.DefaultClient). See Downloader.Download.
func Download(ctx context.Context, client *http.Client, url string, want Target, dir string) (string, error) {
	d := &Downloader{Client: client}
	return d.Download(ctx, url, want, dir)
}

// Download fetches url into dir/<sha256hex> and returns that path.
//
// It streams into dir/<sha256hex>.partial. When that file already exists
// (an earlier transfer was interrupted) it re-hashes the prefix and asks
// the server for the rest with an HTTP Range request; a server that does
// not answer 206 with a matching Content-Range gets the whole file again.
// It reads at most want.Length bytes: a longer body fails with ErrTooLong
// as soon as the excess arrives. At the end it checks the length and every
// hash, fsyncs, and renames the file into place. A verification failure
// deletes the partial file and returns an error wrapping ErrTooLong,
// ErrLengthMismatch or ErrHashMismatch; a transport error (the connection
// dropped, ctx ended) keeps the partial file for the next attempt.
//
// If dir/<sha256hex> already exists and verifies, Download returns it
// without a request.
func (d *Downloader) Download(ctx context.Context, url string, want Target, dir string) (string, error) {
	v, err := newVerifier(want)
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	final := filepath.Join(dir, hex.EncodeToString(want.Hashes["sha256"]))
	partial := final + ".partial"
	bufSize := d.BufferSize
	if bufSize <= 0 {
		bufSize = DefaultBufferSize
	}
	buf := make([]byte, bufSize)

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	// A complete file from an earlier run (say, a crash after the rename)
	// is used again once it verifies.
	if f, err := os.Open(final); err == nil {
		err := v.hashFrom(f, buf)
		f.Close()
		if err == nil && v.check() == nil {
			return final, nil
		}
		os.Remove(final)
		v.reset()
	}

	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	fail := func(err error) (string, error) {
		f.Close()
		f = nil
		os.Remove(partial)
		return "", fmt.Errorf("download %s: %w", url, err)
	}

	// Re-hash what an earlier attempt left.
	if err := v.hashFrom(f, buf); err != nil {
		return "", fmt.Errorf("download: reading partial file: %w", err)
	}
	if v.n > want.Length {
		if err := v.restart(f); err != nil {
			return "", fmt.Errorf("download: %w", err)
		}
	}

	if v.n < want.Length || want.Length == 0 && v.n == 0 {
		if err := d.fetch(ctx, url, f, v, buf); err != nil {
			if errors.Is(err, ErrTooLong) || errors.Is(err, ErrLengthMismatch) {
				return fail(err)
			}
			return "", fmt.Errorf("download %s: %w", url, err)
		}
	}
	if err := v.check(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return "", fmt.Errorf("download: %w", err)
	}
	f = nil
	if err := os.Rename(partial, final); err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	return final, nil
}

// fetch requests the rest of the artifact (from v.n) and appends it to f.
// It makes at most two requests: a ranged one, and a whole one when the
// server did not honour the range.
func (d *Downloader) fetch(ctx context.Context, url string, f *os.File, v *verifier, buf []byte) error {
	client := d.Client
	if client == nil {
		client = http.DefaultClient
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		offset := v.n
		if offset > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		switch {
		case offset > 0 && resp.StatusCode == http.StatusPartialContent && rangeMatches(resp.Header.Get("Content-Range"), offset, v.want.Length):
			// Resume where the partial file ends.
		case resp.StatusCode == http.StatusOK && offset == 0:
		case attempt == 0 && offset > 0 && (resp.StatusCode == http.StatusOK ||
			resp.StatusCode == http.StatusPartialContent ||
			resp.StatusCode == http.StatusRequestedRangeNotSatisfiable):
			// The server ignored or mangled the range. A 200 body is the
			// whole file, so it could be used as is; starting over with a
			// plain request keeps one code path.
			resp.Body.Close()
			if err := v.restart(f); err != nil {
				return err
			}
			continue
		default:
			resp.Body.Close()
			return fmt.Errorf("server answered %s", resp.Status)
		}
		err = v.copyFrom(f, resp, len(buf), d.Progress)
		resp.Body.Close()
		return err
	}
}

// rangeMatches reports whether a Content-Range header value describes the
// bytes from offset to the end of an artifact of the given length.
func rangeMatches(cr string, offset, length int64) bool {
	unit, rest, ok := strings.Cut(cr, " ")
	if !ok || unit != "bytes" {
		return false
	}
	span, total, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	first, last, ok := strings.Cut(span, "-")
	if !ok {
		return false
	}
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || a != offset || b != length-1 {
		return false
	}
	if total != "*" {
		t, err := strconv.ParseInt(total, 10, 64)
		if err != nil || t != length {
			return false
		}
	}
	return true
}

// verifier hashes an artifact as it is written and checks it against its
// trusted description.
type verifier struct {
	want   Target
	names  []string
	hashes []hash.Hash
	n      int64 // bytes hashed so far
}

func newVerifier(want Target) (*verifier, error) {
	if want.Length < 0 {
		return nil, fmt.Errorf("negative target length %d", want.Length)
	}
	if len(want.Hashes["sha256"]) != sha256.Size {
		return nil, errors.New("target has no valid sha256 hash")
	}
	v := &verifier{want: want}
	for _, name := range slices.Sorted(mapKeys(want.Hashes)) {
		var h hash.Hash
		switch name {
		case "sha256":
			h = sha256.New()
		case "sha512":
			h = sha512.New()
		default:
			return nil, fmt.Errorf("unsupported hash algorithm %q", name)
		}
		if len(want.Hashes[name]) != h.Size() {
			return nil, fmt.Errorf("target %s hash has %d bytes, want %d", name, len(want.Hashes[name]), h.Size())
		}
		v.names = append(v.names, name)
		v.hashes = append(v.hashes, h)
	}
	return v, nil
}

func mapKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (v *verifier) write(p []byte) {
	for _, h := range v.hashes {
		h.Write(p)
	}
	v.n += int64(len(p))
}

func (v *verifier) reset() {
	for _, h := range v.hashes {
		h.Reset()
	}
	v.n = 0
}

// restart empties f and the hashes.
func (v *verifier) restart(f *os.File) error {
	v.reset()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// hashFrom hashes f from its start to its end, leaving the offset at the
// end. It stops early once past the trusted length.
func (v *verifier) hashFrom(f *os.File, buf []byte) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	for {
		n, err := f.Read(buf)
		v.write(buf[:n])
		if v.n > v.want.Length {
			return nil
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// copyFrom appends the response body to f, and refuses to go past the
// trusted length. Hashing runs on a second goroutine, overlapping the
// network and disk I/O, fed through a small ring of buffers so memory
// stays bounded.
func (v *verifier) copyFrom(f *os.File, resp *http.Response, bufSize int, progress func(done, total int64)) (err error) {
	remaining := v.want.Length - v.n
	if resp.ContentLength > remaining {
		return fmt.Errorf("%w: server announced %d bytes, %d expected", ErrTooLong, resp.ContentLength, remaining)
	}
	const ring = 4
	free := make(chan []byte, ring)
	full := make(chan []byte, ring)
	done := make(chan struct{})
	for range ring {
		free <- make([]byte, bufSize)
	}
	go func() {
		defer close(done)
		for b := range full {
			for _, h := range v.hashes {
				h.Write(b)
			}
			free <- b[:cap(b)]
		}
	}()
	defer func() {
		close(full)
		<-done
	}()

	for {
		buf := <-free
		n, rerr := resp.Body.Read(buf)
		if int64(n) > v.want.Length-v.n {
			return fmt.Errorf("%w: more than %d bytes", ErrTooLong, v.want.Length)
		}
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			v.n += int64(n)
			full <- buf[:n]
			if progress != nil {
				progress(v.n, v.want.Length)
			}
		} else {
			free <- buf
		}
		if rerr == io.EOF {
			if v.n != v.want.Length {
				return fmt.Errorf("%w: got %d bytes, want %d", ErrLengthMismatch, v.n, v.want.Length)
			}
			return nil
		}
		if rerr != nil {
			return rerr
		}
		if v.n == v.want.Length {
			// Everything trusted has arrived; one more read tells an
			// honest end from extra data.
			var one [1]byte
			n, err := resp.Body.Read(one[:])
			if n > 0 {
				return fmt.Errorf("%w: more than %d bytes", ErrTooLong, v.want.Length)
			}
			if err == io.EOF || err == nil {
				return nil
			}
			return err
		}
	}
}

// check compares the complete artifact with its trusted description.
func (v *verifier) check() error {
	if v.n > v.want.Length {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLong, v.want.Length)
	}
	if v.n != v.want.Length {
		return fmt.Errorf("%w: got %d bytes, want %d", ErrLengthMismatch, v.n, v.want.Length)
	}
	for i, h := range v.hashes {
		if !bytes.Equal(h.Sum(nil), v.want.Hashes[v.names[i]]) {
			return fmt.Errorf("%w: %s", ErrHashMismatch, v.names[i])
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}
