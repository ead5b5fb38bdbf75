package update

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract feeds arbitrary tar streams to the extractor and checks the
// safety properties whether or not it accepts them: nothing is written
// outside the destination, and an accepted tree holds no device files, no
// setuid or setgid bits and no symlink resolving outside.
func FuzzExtract(f *testing.F) {
	for _, entries := range [][]entry{
		{{name: "a/b", body: "x"}, {name: "l", typ: tar.TypeSymlink, link: "a/b"}, {name: "h", typ: tar.TypeLink, link: "a/b"}},
		{{name: "../x", body: "x"}},
		{{name: "a/", typ: tar.TypeDir}, {name: "c", typ: tar.TypeSymlink, link: "a/b/../.."}, {name: "a/b", typ: tar.TypeSymlink, link: ".."}},
		{{name: "d/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "l/x", body: "x"}},
		{{name: "h", typ: tar.TypeLink, link: "../outside/secret"}},
		{{name: "s", body: "x", mode: 0o4755}},
	} {
		gz := tarGz(f, entries)
		zr, _ := gzip.NewReader(bytes.NewReader(gz))
		raw, _ := io.ReadAll(zr)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		base := t.TempDir()
		dst := filepath.Join(base, "dst")
		outside := filepath.Join(base, "outside")
		os.Mkdir(dst, 0o755)
		os.Mkdir(outside, 0o755)
		os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
		src := filepath.Join(base, "a.tar.gz")
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		zw.Close()
		os.WriteFile(src, buf.Bytes(), 0o600)

		inst := &AppInstaller{Root: base, MaxBytes: 1 << 20, MaxFiles: 64}
		err := inst.extract(context.Background(), src, dst)

		if es, _ := os.ReadDir(base); len(es) != 3 {
			t.Fatalf("written beside the destination: %v", es)
		}
		if es, _ := os.ReadDir(outside); len(es) != 1 {
			t.Fatalf("written outside: %v", es)
		}
		if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "s" {
			t.Fatal("outside file changed")
		}
		if err != nil {
			return
		}
		root, rerr := os.OpenRoot(dst)
		if rerr != nil {
			t.Fatal(rerr)
		}
		defer root.Close()
		filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := d.Info()
			rel, _ := filepath.Rel(dst, p)
			switch {
			case fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
				t.Fatalf("%s: special file accepted", rel)
			case fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0:
				t.Fatalf("%s: setuid/setgid accepted", rel)
			case fi.Mode()&fs.ModeSymlink != 0:
				if _, err := root.Stat(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s: symlink resolves outside: %v", rel, err)
				}
			}
			return nil
		})
	})
}
