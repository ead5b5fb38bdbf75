package tufclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulwark-iot/bulwark/internal/agent/update"
)

const cliUsage = `usage: bulwark-agent tuf-client [flags] init|refresh|download [TRUSTED_ROOT]

The client side of the TUF conformance suite's CLIENT-CLI protocol, verifying
with the same code as the agent's update path:

  --metadata-dir DIR init TRUSTED_ROOT
  --metadata-dir DIR --metadata-url URL refresh
  --metadata-dir DIR --metadata-url URL --target-name NAME
      --target-base-url URL --target-dir DIR download

Flags may also follow the command. Exit status 0 on success, 1 on failure,
2 on a bad command line.
`

// Main runs `bulwark-agent tuf-client` with args (after the command name)
// and returns the exit code: 0 on success, 1 on failure, 2 on a bad
// command line.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tuf-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, cliUsage) }
	mdDir := fs.String("metadata-dir", "", "directory of the trusted metadata")
	mdURL := fs.String("metadata-url", "", "base URL of the repository's metadata")
	name := fs.String("target-name", "", "TUF target path to download")
	tURL := fs.String("target-base-url", "", "base URL of the repository's target files")
	tDir := fs.String("target-dir", "", "directory for downloaded targets")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "bulwark-agent tuf-client %s: %v\n", pos[0], err)
		return 1
	}
	need := func(vals ...string) bool {
		for i := 0; i < len(vals); i += 2 {
			if vals[i+1] == "" {
				fmt.Fprintf(stderr, "bulwark-agent tuf-client %s: --%s is required\n", pos[0], vals[i])
				return false
			}
		}
		return true
	}
	hc := &http.Client{Timeout: 5 * time.Minute}
	switch pos[0] {
	case "init":
		if len(pos) != 2 || !need("metadata-dir", *mdDir) {
			fs.Usage()
			return 2
		}
		if err := initRoot(*mdDir, pos[1]); err != nil {
			return fail(err)
		}
		return 0
	case "refresh":
		if len(pos) != 1 || !need("metadata-dir", *mdDir, "metadata-url", *mdURL) {
			fs.Usage()
			return 2
		}
		if _, err := Refresh(ctx, Config{MetadataDir: *mdDir, MetadataURL: *mdURL, HTTP: hc}); err != nil {
			return fail(err)
		}
		return 0
	case "download":
		if len(pos) != 1 || !need("metadata-dir", *mdDir, "metadata-url", *mdURL, "target-name", *name, "target-base-url", *tURL, "target-dir", *tDir) {
			fs.Usage()
			return 2
		}
		p, err := download(ctx, Config{MetadataDir: *mdDir, MetadataURL: *mdURL, TargetsURL: *tURL, HTTP: hc}, *name, *tDir)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, p)
		return 0
	}
	fmt.Fprintf(stderr, "bulwark-agent tuf-client: unknown command %q\n", pos[0])
	fs.Usage()
	return 2
}

// initRoot stores the trusted root as DIR/root.json. It must parse as root
// metadata; no request is made.
func initRoot(dir, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if _, err := metadata.Root().FromBytes(data); err != nil {
		return fmt.Errorf("%s is not root metadata: %w", file, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".root.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "root.json"))
}

// download refreshes, then fetches the target into dir under its path
// escaped as one file name, verified against the signed length and hashes
// while streaming. A file already there that verifies is kept without a
// request.
func download(ctx context.Context, cfg Config, name, dir string) (string, error) {
	c, err := Refresh(ctx, cfg)
	if err != nil {
		return "", err
	}
	t, err := c.Target(name)
	if err != nil {
		return "", err
	}
	dest := filepath.Join(dir, url.PathEscape(name))
	if verifies(dest, t) {
		return dest, nil
	}
	want := update.Target{Length: t.Length, Hashes: t.Hashes}
	got, err := update.Download(ctx, cfg.HTTP, t.URL, want, dir)
	if err != nil {
		return "", fmt.Errorf("target %s: %w", name, err)
	}
	if err := os.Rename(got, dest); err != nil {
		os.Remove(got)
		return "", err
	}
	return dest, nil
}

// verifies reports whether the file at p has the target's length and
// every one of its hashes.
func verifies(p string, t *Target) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != t.Length || len(t.Hashes) == 0 {
		return false
	}
	hs := map[string]hash.Hash{}
	var ws []io.Writer
	for alg := range t.Hashes {
		var h hash.Hash
		switch alg {
		case "sha256":
			h = sha256.New()
		case "sha512":
			h = sha512.New()
		default:
			return false
		}
		hs[alg] = h
		ws = append(ws, h)
	}
	if _, err := io.Copy(io.MultiWriter(ws...), f); err != nil {
		return false
	}
	for alg, h := range hs {
		if !bytes.Equal(h.Sum(nil), t.Hashes[alg]) {
			return false
		}
	}
	return true
}
