package update

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// entry is one member of a test archive.
type entry struct {
	name string
	typ  byte // tar.TypeReg when zero
	body string
	link string
	mode int64 // 0o644 (0o755 for directories) when zero
	size int64 // overrides len(body) for oversized headers
}

func tarGz(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: time.Unix(0, 0)}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// appArchive is a well-formed release: a VERSION file, a program, a
// directory, an in-tree symlink and a hard link.
func appArchive(t testing.TB, version string) []byte {
	return tarGz(t, []entry{
		{name: "./", typ: tar.TypeDir},
		{name: "VERSION", body: version},
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/app", body: "#!/bin/sh\necho " + version + "\n", mode: 0o755},
		{name: "lib/data.txt", body: strings.Repeat("data ", 100)},
		{name: "bin/data", typ: tar.TypeSymlink, link: "../lib/data.txt"},
		{name: "lib/data-copy.txt", typ: tar.TypeLink, link: "lib/data.txt"},
	})
}

func targetOf(data []byte) Target {
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	return Target{Length: int64(len(data)), Hashes: map[string][]byte{"sha256": s256[:], "sha512": s512[:]}}
}

// artifactServer serves blobs by path with Range support, and counts
// requests.
type artifactServer struct {
	*httptest.Server
	blobs    map[string][]byte
	requests atomic.Int32
}

func newArtifactServer(t testing.TB) *artifactServer {
	s := &artifactServer{blobs: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		b, ok := s.blobs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(s.Close)
	return s
}

// add publishes data under name and returns its URL and target.
func (s *artifactServer) add(name string, data []byte) (string, Target) {
	s.blobs["/"+name] = data
	return s.URL + "/" + name, targetOf(data)
}

func newTestUpdater(t testing.TB, root string, health ...string) (*Updater, *AppInstaller) {
	t.Helper()
	inst := &AppInstaller{Root: root}
	u, err := New(Config{Root: root, Installer: inst, HealthCheck: health, HealthTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return u, inst
}

// installVersion installs version into root through a fresh Updater.
func installVersion(t testing.TB, srv *artifactServer, root, version string) {
	t.Helper()
	u, _ := newTestUpdater(t, root)
	url, want := srv.add("app-"+version+".tar.gz", appArchive(t, version))
	rep, err := u.Update(context.Background(), url, want, Release{Product: "app", Version: version})
	if err != nil || rep.Outcome != OutcomeInstalled {
		t.Fatalf("installing %s: %+v, %v", version, rep, err)
	}
}

// assertActive checks that root/current points to a complete copy of
// version, and that no leftovers of an interrupted step remain.
func assertActive(t testing.TB, root, version string) {
	t.Helper()
	target, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil {
		t.Fatalf("current: %v", err)
	}
	if target != "versions/"+version {
		t.Fatalf("current -> %s, want versions/%s", target, version)
	}
	assertComplete(t, root, version)
}

func assertComplete(t testing.TB, root, version string) {
	t.Helper()
	dir := filepath.Join(root, "versions", version)
	for name, want := range map[string]string{
		"VERSION":           version,
		"bin/app":           "#!/bin/sh\necho " + version + "\n",
		"bin/data":          strings.Repeat("data ", 100),
		"lib/data-copy.txt": strings.Repeat("data ", 100),
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Fatalf("version %s incomplete: %s: %q, %v", version, name, got, err)
		}
	}
}

func assertNoLeftovers(t testing.TB, root string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, "current.new")); err == nil {
		t.Error("current.new left behind")
	}
	matches, _ := filepath.Glob(filepath.Join(root, "versions", "*.tmp"))
	if len(matches) > 0 {
		t.Errorf("temporary directories left behind: %v", matches)
	}
}

func readJournal(t testing.TB, root string) *Journal {
	t.Helper()
	u, _ := newTestUpdater(t, root)
	j, err := u.Journal()
	if err != nil || j == nil {
		t.Fatalf("journal: %v, %v", j, err)
	}
	return j
}
