package update

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	return b
}

func finalPath(dir string, want Target) string {
	return filepath.Join(dir, hex.EncodeToString(want.Hashes["sha256"]))
}

// dirEntries lists dir, for checking that nothing was left behind.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestDownload(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	data := randomBytes(3<<20+17, 1)
	url, want := srv.add("a", data)
	dir := t.TempDir()
	var last atomic.Int64
	d := &Downloader{Progress: func(done, total int64) {
		if total != want.Length || done > total {
			t.Errorf("progress %d/%d", done, total)
		}
		last.Store(done)
	}}
	path, err := d.Download(context.Background(), url, want, dir)
	if err != nil {
		t.Fatal(err)
	}
	if path != finalPath(dir, want) {
		t.Errorf("path %s", path)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, data) {
		t.Error("content differs")
	}
	if last.Load() != want.Length {
		t.Errorf("last progress %d", last.Load())
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("dir holds %v", names)
	}
	// A second call finds the verified file and makes no request.
	n := srv.requests.Load()
	if _, err := Download(context.Background(), nil, url, want, dir); err != nil {
		t.Fatal(err)
	}
	if srv.requests.Load() != n {
		t.Error("verified file downloaded again")
	}
}

func TestDownloadBadTarget(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]Target{
		"no sha256":       {Length: 1, Hashes: map[string][]byte{"sha512": make([]byte, 64)}},
		"short sha256":    {Length: 1, Hashes: map[string][]byte{"sha256": make([]byte, 31)}},
		"unknown hash":    {Length: 1, Hashes: map[string][]byte{"sha256": make([]byte, 32), "md5": make([]byte, 16)}},
		"negative length": {Length: -1, Hashes: map[string][]byte{"sha256": make([]byte, 32)}},
	} {
		if _, err := Download(context.Background(), nil, "http://127.0.0.1:1/", want, t.TempDir()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDownloadResume drops the connection halfway through the first
// transfer; the second continues with a Range request.
func TestDownloadResume(t *testing.T) {
	t.Parallel()
	data := randomBytes(2<<20, 2)
	want := targetOf(data)
	var ranges []string
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	dir := t.TempDir()
	_, err := Download(context.Background(), nil, srv.URL, want, dir)
	if err == nil || errors.Is(err, ErrLengthMismatch) {
		t.Fatalf("interrupted transfer: %v", err)
	}
	fi, err := os.Stat(finalPath(dir, want) + ".partial")
	if err != nil || fi.Size() == 0 || fi.Size() >= want.Length {
		t.Fatalf("partial file after interruption: %v, %v", fi, err)
	}
	path, err := Download(context.Background(), nil, srv.URL, want, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Error("content differs")
	}
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", fi.Size()) {
		t.Errorf("Range headers %q, partial had %d bytes", ranges, fi.Size())
	}
}

// TestDownloadRangeNotHonoured: servers that answer a Range request with
// the whole file (200) or the wrong range get a clean restart from 0, and
// a corrupt partial prefix does not survive.
func TestDownloadRangeNotHonoured(t *testing.T) {
	t.Parallel()
	data := randomBytes(1<<20, 3)
	want := targetOf(data)
	for name, handler := range map[string]http.HandlerFunc{
		"200": func(w http.ResponseWriter, r *http.Request) {
			w.Write(data)
		},
		"wrong range": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "" {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
				w.WriteHeader(http.StatusPartialContent)
			}
			w.Write(data)
		},
	} {
		t.Run(name, func(t *testing.T) {
			var reqs []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqs = append(reqs, r.Header.Get("Range"))
				handler(w, r)
			}))
			defer srv.Close()
			dir := t.TempDir()
			// A partial file whose prefix is garbage.
			if err := os.WriteFile(finalPath(dir, want)+".partial", bytes.Repeat([]byte{0xAA}, 1000), 0o600); err != nil {
				t.Fatal(err)
			}
			path, err := Download(context.Background(), nil, srv.URL, want, dir)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Error("content differs")
			}
			if len(reqs) != 2 || reqs[0] != "bytes=1000-" || reqs[1] != "" {
				t.Errorf("requests %q", reqs)
			}
		})
	}
}

func TestDownloadTampered(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	data := randomBytes(1<<20, 4)
	want := targetOf(data)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	url, _ := srv.add("a", bad)
	dir := t.TempDir()
	_, err := Download(context.Background(), nil, url, want, dir)
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("err = %v, want ErrHashMismatch", err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}

	// A tampered prefix left in the partial file is caught as well.
	url, _ = srv.add("b", data)
	prefix := bytes.Clone(data[:1000])
	prefix[10] ^= 1
	if err := os.WriteFile(finalPath(dir, want)+".partial", prefix, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Download(context.Background(), nil, url, want, dir); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("tampered prefix: err = %v", err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
	// And the retry then succeeds from scratch.
	if _, err := Download(context.Background(), nil, url, want, dir); err != nil {
		t.Fatal(err)
	}
}

// TestDownloadEndless: a server that never stops sending is cut off just
// past the trusted length.
func TestDownloadEndless(t *testing.T) {
	t.Parallel()
	data := randomBytes(1<<20, 5)
	want := targetOf(data)
	for _, announce := range []bool{false, true} {
		t.Run(fmt.Sprintf("content-length=%v", announce), func(t *testing.T) {
			var sent atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if announce {
					w.Header().Set("Content-Length", strconv.Itoa(100<<30))
				}
				w.Write(data)
				sent.Add(int64(len(data)))
				chunk := make([]byte, 64<<10)
				for r.Context().Err() == nil {
					n, err := w.Write(chunk)
					sent.Add(int64(n))
					if err != nil || sent.Load() > 1<<30 {
						return
					}
				}
			}))
			defer srv.Close()
			dir := t.TempDir()
			_, err := Download(context.Background(), nil, srv.URL, want, dir)
			if !errors.Is(err, ErrTooLong) {
				t.Fatalf("err = %v, want ErrTooLong", err)
			}
			srv.Close() // waits for the handler
			if sent.Load() > want.Length+64<<20 {
				t.Errorf("server got to send %d bytes for a %d-byte target", sent.Load(), want.Length)
			}
			if names := dirEntries(t, dir); len(names) != 0 {
				t.Errorf("left behind: %v", names)
			}
		})
	}
}

func TestDownloadShort(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	data := randomBytes(1<<20, 6)
	want := targetOf(data)
	url, _ := srv.add("a", data[:len(data)-1])
	dir := t.TempDir()
	if _, err := Download(context.Background(), nil, url, want, dir); !errors.Is(err, ErrLengthMismatch) {
		t.Fatalf("err = %v, want ErrLengthMismatch", err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
}

func TestDownloadNotFound(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	_, err := Download(context.Background(), nil, srv.URL+"/missing", targetOf([]byte("x")), t.TempDir())
	if err == nil {
		t.Fatal("404 accepted")
	}
}
