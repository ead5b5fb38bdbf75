// Package tufclient is the agent's TUF client: it refreshes the signed
// metadata of an update repository with go-tuf (a new Updater for every
// refresh, trusting the root.json kept in a local metadata directory) and
// returns a target's trusted length, hashes and custom metadata. Artifacts
// are downloaded by package update, which checks that length and those
// hashes while streaming (go-tuf's DownloadTarget would read the whole file
// into memory).
//
// The agent's update path and `bulwark-agent tuf-client` (the client CLI
// of the TUF conformance suite, see Main) both verify through this
// package.
package tufclient

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Config says where the metadata lives.
type Config struct {
	// MetadataDir keeps the trusted metadata (root.json, timestamp.json,
	// snapshot.json, targets.json). root.json must exist unless
	// FirstRootURL is set.
	MetadataDir string
	// MetadataURL is the base URL of the repository's metadata.
	MetadataURL string
	// TargetsURL is the base URL of the repository's target files.
	TargetsURL string
	// FirstRootURL, when set and MetadataDir holds no root.json, is where
	// the first root is fetched from (over a channel the caller trusts:
	// the agent uses the server's authenticated TLS) and stored.
	FirstRootURL string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
}

// Target is a target's signed description.
type Target struct {
	Name   string
	Length int64
	Hashes map[string][]byte
	Custom *json.RawMessage
	// URL is where the target file is downloaded from: TargetsURL, the
	// target's directory, and (with consistent snapshots) its hash as a
	// prefix of its name.
	URL string
}

// Client refreshes metadata and looks targets up.
type Client struct {
	cfg Config
	up  *updater.Updater
}

// Refresh loads the trusted root from cfg.MetadataDir and runs the TUF
// client workflow (root rotation, timestamp, snapshot, targets, with
// signature, version, expiry, length and hash checks). Verified metadata
// is written back to cfg.MetadataDir.
func Refresh(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if err := os.MkdirAll(cfg.MetadataDir, 0o700); err != nil {
		return nil, err
	}
	rootPath := filepath.Join(cfg.MetadataDir, "root.json")
	root, err := os.ReadFile(rootPath)
	if errors.Is(err, os.ErrNotExist) && cfg.FirstRootURL != "" {
		root, err = fetchFirstRoot(ctx, cfg.HTTP, cfg.FirstRootURL)
		if err == nil {
			err = os.WriteFile(rootPath, root, 0o600)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	c, err := config.New(strings.TrimRight(cfg.MetadataURL, "/")+"/", root)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	c.LocalMetadataDir = cfg.MetadataDir
	c.LocalTargetsDir = filepath.Join(cfg.MetadataDir, "targets")
	c.RemoteTargetsURL = strings.TrimRight(cfg.TargetsURL, "/") + "/"
	c.PrefixTargetsWithHash = true
	if err := c.SetDefaultFetcherHTTPClient(cfg.HTTP); err != nil {
		return nil, err
	}
	up, err := updater.New(c)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("refreshing signed metadata: %w", err)
	}
	return &Client{cfg: cfg, up: up}, nil
}

// Target returns the signed description of a target of the refreshed
// metadata (delegations included), or an error when it is not listed.
func (c *Client) Target(name string) (*Target, error) {
	ti, err := c.up.GetTargetInfo(name)
	if err != nil {
		return nil, fmt.Errorf("%s is not a signed target: %w", name, err)
	}
	out := &Target{Name: name, Length: ti.Length, Hashes: map[string][]byte{}, Custom: ti.Custom}
	for k, v := range ti.Hashes {
		out.Hashes[k] = v
	}
	dir, base := path.Split(name)
	if c.up.GetTrustedMetadataSet().Root.Signed.ConsistentSnapshot {
		prefix := hex.EncodeToString(ti.Hashes["sha256"])
		if prefix == "" {
			algs := make([]string, 0, len(ti.Hashes))
			for k := range ti.Hashes {
				algs = append(algs, k)
			}
			sort.Strings(algs)
			if len(algs) > 0 {
				prefix = hex.EncodeToString(ti.Hashes[algs[0]])
			}
		}
		if prefix != "" {
			base = prefix + "." + base
		}
	}
	out.URL = strings.TrimRight(c.cfg.TargetsURL, "/") + "/" + dir + base
	return out, nil
}

// TrustedTarget refreshes with a new Updater and returns the target.
func TrustedTarget(ctx context.Context, cfg Config, name string) (*Target, error) {
	c, err := Refresh(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c.Target(name)
}

func fetchFirstRoot(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 512<<10+1))
	if err != nil {
		return nil, err
	}
	if len(data) > 512<<10 {
		return nil, fmt.Errorf("GET %s: root metadata larger than 512 KiB", url)
	}
	return data, nil
}
