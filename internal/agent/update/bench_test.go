//go:build unix

package update

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDownloadVerify downloads and verifies a 256 MiB artifact
// (BULWARK_BENCH_MB overrides the size) from a local httptest server, and
// reports, besides MB/s, the throughput of sha256sum on the same file in
// the same run (sha256sum_MB/s, best of three), the ratio of the two (x_sha256sum; the
// target is >= 0.8), and the process's peak RSS (maxRSS_MB, which
// includes the test server).
func BenchmarkDownloadVerify(b *testing.B) {
	size := int64(256 << 20)
	if mb, err := strconv.Atoi(os.Getenv("BULWARK_BENCH_MB")); err == nil && mb > 0 {
		size = int64(mb) << 20
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "artifact")
	want := writeRandomFile(b, src, size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, src)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	out := filepath.Join(dir, "out")

	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		path, err := Download(context.Background(), client, srv.URL, want, out)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(path)
		b.StartTimer()
	}
	b.StopTimer()
	elapsed := b.Elapsed().Seconds() / float64(b.N)
	ours := float64(size) / 1e6 / elapsed
	if sum, err := exec.LookPath("sha256sum"); err == nil {
		// Best of three runs (the file is in the page cache, as it is for
		// the server), so a noisy machine flatters sha256sum, not us.
		best := time.Duration(1<<63 - 1)
		for range 3 {
			start := time.Now()
			if err := exec.Command(sum, src).Run(); err != nil {
				b.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		theirs := float64(size) / 1e6 / best.Seconds()
		b.ReportMetric(theirs, "sha256sum_MB/s")
		b.ReportMetric(ours/theirs, "x_sha256sum")
	}
	var ru syscall.Rusage
	if runtime.GOOS == "linux" && syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxRSS_MB") // Linux reports KiB
	}
}

// writeRandomFile writes size pseudo-random bytes to path through a small
// buffer and returns the file's target.
func writeRandomFile(tb testing.TB, path string, size int64) Target {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	w := io.MultiWriter(f, h)
	if _, err := io.CopyN(w, rand.NewChaCha8([32]byte{42}), size); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return Target{Length: size, Hashes: map[string][]byte{"sha256": h.Sum(nil)}}
}

// BenchmarkAppInstall unpacks a 128 MiB .tar.gz (one large file of
// incompressible data and 1,000 small ones) with AppInstaller.Install,
// fsyncs included. MB/s counts the unpacked bytes.
func BenchmarkAppInstall(b *testing.B) {
	const big = 128 << 20
	dir := b.TempDir()
	artifact := filepath.Join(dir, "app.tar.gz")
	f, err := os.Create(artifact)
	if err != nil {
		b.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: big, Mode: 0o644})
	io.CopyN(tw, rand.NewChaCha8([32]byte{7}), big)
	for i := range 1000 {
		body := []byte(strconv.Itoa(i))
		tw.WriteHeader(&tar.Header{Name: "small/" + strconv.Itoa(i), Typeflag: tar.TypeReg, Size: int64(len(body)), Mode: 0o644})
		tw.Write(body)
	}
	if err := errors.Join(tw.Close(), zw.Close(), f.Close()); err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	inst := &AppInstaller{Root: root}
	b.SetBytes(big)
	for i := 0; b.Loop(); i++ {
		if err := inst.Install(context.Background(), artifact, Release{Version: "1.0." + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(filepath.Join(root, "versions"))
		b.StartTimer()
	}
}

// BenchmarkUpdateEndToEnd measures the whole update of an app artifact
// (BULWARK_BENCH_MB, default 256 MiB, of incompressible content in a
// .tar.gz) served by a local httptest server: streaming download with
// length and hash checks, fsync, safe extraction, atomic switch and
// commit. It reports artifact MB/s, sha256sum's throughput on the same
// file (best of three), the ratio (target >= 0.8) and peak RSS.
func BenchmarkUpdateEndToEnd(b *testing.B) {
	size := int64(256 << 20)
	if mb, err := strconv.Atoi(os.Getenv("BULWARK_BENCH_MB")); err == nil && mb > 0 {
		size = int64(mb) << 20
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "app.tar.gz")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(f, h), gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "payload", Typeflag: tar.TypeReg, Size: size, Mode: 0o644})
	io.CopyN(tw, rand.NewChaCha8([32]byte{9}), size)
	if err := errors.Join(tw.Close(), zw.Close(), f.Close()); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(src)
	want := Target{Length: fi.Size(), Hashes: map[string][]byte{"sha256": h.Sum(nil)}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, src) }))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()

	b.SetBytes(fi.Size())
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		root := filepath.Join(dir, "root"+strconv.Itoa(i))
		u, err := New(Config{Root: root, Installer: &AppInstaller{Root: root, MaxBytes: size + 1<<20}, Client: client})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := u.Update(context.Background(), srv.URL, want, Release{Product: "app", Version: "1.0.0"})
		if err != nil || rep.Outcome != OutcomeInstalled {
			b.Fatalf("update: %+v %v", rep, err)
		}
		b.StopTimer()
		os.RemoveAll(root)
		b.StartTimer()
	}
	b.StopTimer()
	ours := float64(fi.Size()) / 1e6 / (b.Elapsed().Seconds() / float64(b.N))
	if sum, err := exec.LookPath("sha256sum"); err == nil {
		best := time.Duration(1<<63 - 1)
		for range 3 {
			start := time.Now()
			if err := exec.Command(sum, src).Run(); err != nil {
				b.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		theirs := float64(fi.Size()) / 1e6 / best.Seconds()
		b.ReportMetric(theirs, "sha256sum_MB/s")
		b.ReportMetric(ours/theirs, "x_sha256sum")
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxRSS_MB")
	}
}
