package update

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrUnsafeArchive is wrapped by the errors AppInstaller.Install returns
// for an archive it refuses: a path escaping the version directory, a link
// pointing outside it, a device, FIFO or setuid/setgid file, or more data
// or files than the limits allow.
var ErrUnsafeArchive = errors.New("unsafe archive")

// Defaults for AppInstaller limits.
const (
	DefaultMaxBytes = 2 << 30 // total bytes of extracted file contents
	DefaultMaxFiles = 100_000 // entries in one archive
)

// AppInstaller installs .tar.gz artifacts as versioned directories:
//
//	<Root>/versions/<version>/   one directory per installed version
//	<Root>/current               symlink to versions/<active version>
//
// Install unpacks into versions/<version>.tmp, fsyncs, and renames it to
// versions/<version>, so a directory under its final name is always
// complete. Switch creates current.new and renames it over current, then
// fsyncs Root. The application is started from <Root>/current.
//
// Only regular files, directories, symlinks and hard links are unpacked.
// Owners and groups in the archive are ignored (files belong to the
// agent's user), permission bits are kept, the sticky bit is dropped, and
// setuid or setgid bits make the archive unsafe. A symlink must be
// relative and resolve inside the version directory; a hard link must
// name a regular file unpacked earlier; nothing is written below a
// symlink; a duplicate entry is refused.
type AppInstaller struct {
	// Root holds versions/ and the current symlink. Required.
	Root string
	// MaxBytes caps the total size of the files in one archive (a
	// decompression bomb stops there); zero means DefaultMaxBytes.
	MaxBytes int64
	// MaxFiles caps the number of entries in one archive; zero means
	// DefaultMaxFiles.
	MaxFiles int

	// hook, when set by tests, is called at named points so a test can
	// kill the process there.
	hook func(point string)
}

const (
	versionsDir = "versions"
	currentLink = "current"
	tmpSuffix   = ".tmp"

	maxPathLen   = 4096 // bytes in an archive path or link target
	maxPathDepth = 64   // directory levels in an archive path
)

func (a *AppInstaller) at(point string) {
	if a.hook != nil {
		a.hook(point)
	}
}

// Current implements Installer.
func (a *AppInstaller) Current(ctx context.Context) (string, error) {
	target, err := os.Readlink(filepath.Join(a.Root, currentLink))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading current version: %w", err)
	}
	dir, v := path.Split(target)
	if dir != versionsDir+"/" {
		return "", fmt.Errorf("reading current version: %s points to %q, not into %s/", currentLink, target, versionsDir)
	}
	if _, err := ParseVersion(v); err != nil {
		return "", fmt.Errorf("reading current version: %w", err)
	}
	return v, nil
}

// Install implements Installer. It refuses a version older than the
// active one unless r.AllowDowngrade is set (the Updater checks this too).
func (a *AppInstaller) Install(ctx context.Context, artifactPath string, r Release) error {
	cur, err := a.Current(ctx)
	if err != nil {
		return err
	}
	if same, err := checkVersion(cur, r); err != nil {
		return fmt.Errorf("install: %w", err)
	} else if same {
		return fmt.Errorf("install: %s is already active", r.Version)
	}
	versions := filepath.Join(a.Root, versionsDir)
	if err := os.MkdirAll(versions, 0o755); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	final := filepath.Join(versions, r.Version)
	tmp := final + tmpSuffix
	for _, p := range []string{tmp, final} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("install: removing leftover %s: %w", p, err)
		}
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := a.extract(ctx, artifactPath, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("install %s: %w", r.Version, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("install: %w", err)
	}
	if err := syncDir(versions); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	a.at("extracted")
	return nil
}

// Switch implements Installer.
func (a *AppInstaller) Switch(ctx context.Context, version string) error {
	cur := filepath.Join(a.Root, currentLink)
	if version == "" {
		if err := os.Remove(cur); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("switch: %w", err)
		}
		return syncDir(a.Root)
	}
	if _, err := ParseVersion(version); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	target := versionsDir + "/" + version
	fi, err := os.Lstat(filepath.Join(a.Root, target))
	if err != nil {
		return fmt.Errorf("switch to %s: %w", version, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("switch to %s: %s is not a directory", version, target)
	}
	if t, err := os.Readlink(cur); err == nil && t == target {
		return nil
	}
	next := cur + ".new"
	if err := os.Remove(next); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("switch: %w", err)
	}
	if err := os.Symlink(target, next); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	a.at("symlinked")
	if err := syncDir(a.Root); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	a.at("before-rename")
	if err := os.Rename(next, cur); err != nil {
		os.Remove(next)
		return fmt.Errorf("switch: %w", err)
	}
	if err := syncDir(a.Root); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	a.at("renamed")
	return nil
}

// Commit implements Installer: it removes every version directory other
// than the active one and keep.
func (a *AppInstaller) Commit(ctx context.Context, keep string) error {
	cur, err := a.Current(ctx)
	if err != nil {
		return err
	}
	versions := filepath.Join(a.Root, versionsDir)
	entries, err := os.ReadDir(versions)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("commit: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); n != cur && (keep == "" || n != keep) {
			if err := os.RemoveAll(filepath.Join(versions, n)); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
	}
	return syncDir(versions)
}

// Recover implements Installer: it removes versions/*.tmp and current.new.
func (a *AppInstaller) Recover(ctx context.Context) error {
	if err := os.Remove(filepath.Join(a.Root, currentLink+".new")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recover: %w", err)
	}
	versions := filepath.Join(a.Root, versionsDir)
	entries, err := os.ReadDir(versions)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			if err := os.RemoveAll(filepath.Join(versions, e.Name())); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
		}
	}
	return syncDir(versions)
}

// extract unpacks the .tar.gz at src into the empty directory dst. Every
// file operation goes through an os.Root at dst, so nothing is written
// outside it even if a check below were wrong; the checks make the refusal
// explicit and also cover links that would only escape later, at run time.
func (a *AppInstaller) extract(ctx context.Context, src, dst string) error {
	maxBytes, maxFiles := a.MaxBytes, a.MaxFiles
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsafeArchive, err)
	}
	defer zr.Close()
	// Bound the decompressed stream too: headers and padding of maxFiles
	// entries besides the file data.
	stream := &limitedReader{r: zr, n: maxBytes + int64(maxFiles)*3*512 + 1<<20}
	tr := tar.NewReader(stream)
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()

	unsafe := func(name, format string, args ...any) error {
		return fmt.Errorf("%w: %q: %s", ErrUnsafeArchive, name, fmt.Sprintf(format, args...))
	}
	var total int64
	var links []string
	buf := make([]byte, 128<<10)
	for files := 0; ; files++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if stream.n <= 0 {
				return fmt.Errorf("%w: archive expands past the size limit", ErrUnsafeArchive)
			}
			return fmt.Errorf("%w: %v", ErrUnsafeArchive, err)
		}
		if files >= maxFiles {
			return fmt.Errorf("%w: more than %d entries", ErrUnsafeArchive, maxFiles)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // pax global header: metadata only
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return unsafe(hdr.Name, "%v", err)
		}
		if hdr.Mode&(0o4000|0o2000) != 0 {
			return unsafe(hdr.Name, "setuid or setgid bit")
		}
		perm := fs.FileMode(hdr.Mode) & 0o777
		if name == "." {
			if hdr.Typeflag != tar.TypeDir {
				return unsafe(hdr.Name, "the top directory is not a directory")
			}
			continue
		}
		if err := a.checkParents(root, name); err != nil {
			return unsafe(hdr.Name, "%v", err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, perm|0o700); err != nil {
				fi, lerr := root.Lstat(name)
				if lerr != nil || !fi.IsDir() {
					return unsafe(hdr.Name, "%v", err)
				}
			}
		case tar.TypeReg:
			if hdr.Size > maxBytes-total {
				return fmt.Errorf("%w: files larger than %d bytes in total", ErrUnsafeArchive, maxBytes)
			}
			total += hdr.Size
			if err := writeFile(root, name, perm, tr, hdr.Size, buf); errors.Is(err, fs.ErrExist) {
				return unsafe(hdr.Name, "duplicate entry")
			} else if err != nil {
				return fmt.Errorf("extracting %q: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := checkLinkTarget(name, hdr.Linkname); err != nil {
				return unsafe(hdr.Name, "%v", err)
			}
			if err := root.Symlink(hdr.Linkname, name); errors.Is(err, fs.ErrExist) {
				return unsafe(hdr.Name, "duplicate entry")
			} else if err != nil {
				return fmt.Errorf("extracting %q: %w", hdr.Name, err)
			}
			links = append(links, name)
		case tar.TypeLink:
			old, err := cleanName(hdr.Linkname)
			if err != nil || old == "." {
				return unsafe(hdr.Name, "hard link to %q outside the archive", hdr.Linkname)
			}
			fi, err := root.Lstat(old)
			if err != nil || !fi.Mode().IsRegular() {
				return unsafe(hdr.Name, "hard link to %q, which is not a file extracted earlier", hdr.Linkname)
			}
			if err := a.checkParents(root, old); err != nil {
				return unsafe(hdr.Name, "%v", err)
			}
			if err := root.Link(old, name); errors.Is(err, fs.ErrExist) {
				return unsafe(hdr.Name, "duplicate entry")
			} else if err != nil {
				return fmt.Errorf("extracting %q: %w", hdr.Name, err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return unsafe(hdr.Name, "device or FIFO file")
		default:
			return unsafe(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
		}
	}
	// Links were checked lexically one by one; a chain of them could still
	// resolve outside (a → b/.., b → ..). Resolve each one now that the
	// tree is complete; os.Root refuses any resolution that leaves dst.
	for _, l := range links {
		if _, err := root.Stat(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return unsafe(l, "symlink resolves outside the version directory")
		}
	}
	return syncTree(dst)
}

// cleanName validates an archive path: relative, no ".." element, and
// returns it cleaned ("." for the top directory).
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	// Every operation below resolves the path one element at a time, so
	// depth costs quadratically: bound it.
	if len(name) > maxPathLen || strings.Count(name, "/") > maxPathDepth {
		return "", fmt.Errorf("path longer than %d bytes or deeper than %d", maxPathLen, maxPathDepth)
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	if strings.ContainsRune(name, 0) || strings.ContainsRune(name, '\\') {
		return "", errors.New("bad character in path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", errors.New("path escapes with ..")
		}
	}
	return path.Clean(name), nil
}

// checkLinkTarget allows only relative symlinks that stay inside the
// version directory when resolved lexically from the link's directory.
func checkLinkTarget(name, target string) error {
	if target == "" || strings.HasPrefix(target, "/") {
		return fmt.Errorf("symlink to %q: absolute or empty target", target)
	}
	if strings.ContainsRune(target, 0) {
		return errors.New("bad character in symlink target")
	}
	if len(target) > maxPathLen || strings.Count(target, "/") > maxPathDepth {
		return fmt.Errorf("symlink target longer than %d bytes or deeper than %d", maxPathLen, maxPathDepth)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink to %q points outside", target)
	}
	return nil
}

// checkParents refuses to create anything below a symlink, and creates
// missing parent directories.
func (a *AppInstaller) checkParents(root *os.Root, name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	p := ""
	for _, el := range strings.Split(dir, "/") {
		p = path.Join(p, el)
		fi, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := root.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("parent %q is a symlink", p)
		case !fi.IsDir():
			return fmt.Errorf("parent %q is not a directory", p)
		}
	}
	return nil
}

func writeFile(root *os.Root, name string, perm fs.FileMode, r io.Reader, size int64, buf []byte) error {
	// O_EXCL: a duplicate entry could otherwise replace a file through a
	// link created earlier.
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(onlyWriter{f}, io.LimitReader(r, size), buf)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// onlyWriter hides ReadFrom so CopyBuffer uses the given buffer.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// syncTree fsyncs every file and directory under dir, so the tree
// survives a power loss before the rename that publishes dir. It runs
// after the whole tree is written rather than file by file, which lets
// the kernel write back in the background meanwhile and batch the
// journal commits.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil // symlinks: their directory's fsync covers them
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("%w: archive expands past the size limit", ErrUnsafeArchive)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
