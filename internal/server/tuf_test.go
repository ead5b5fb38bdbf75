package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/tufrepo"
)

// The update repository is mounted publicly under /tuf/ and go-tuf's own
// client verifies it end to end, including a target stored as an artifact.
func TestTUFRepositoryServed(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	root, err := ts.TUF().Root(ctx)
	if err != nil {
		t.Fatal(err)
	}
	arts := tufrepo.DirArtifacts(filepath.Join(ts.DataDir, "artifacts"))
	content := []byte("app v1\n")
	sum, n, err := arts.Put(ctx, bytes.NewReader(content), 0)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := hex.DecodeString(sum)
	if _, err := ts.TUF().AddTarget(ctx, "app/1.0.0/app.tar.gz", n, map[string][]byte{"sha256": h}, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, err := config.New(ts.URL+"/tuf/metadata", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = ts.URL + "/tuf/targets"
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = filepath.Join(dir, "m"), filepath.Join(dir, "t")
	cfg.SetDefaultFetcherHTTPClient(ts.HTTP)
	u, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Refresh(); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	ti, err := u.GetTargetInfo("app/1.0.0/app.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if _, data, err := u.DownloadTarget(ti, filepath.Join(dir, "app"), ""); err != nil || !bytes.Equal(data, content) {
		t.Fatalf("download: %v", err)
	}
	for path, want := range map[string]int{
		"/tuf/metadata/1.root.json":    200,
		"/tuf/metadata/timestamp.json": 200,
		"/tuf/metadata/2.root.json":    404,
		"/tuf/metadata/9.targets.json": 404,
	} {
		res, err := ts.HTTP.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want || want == 200 && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s = %d %s, want %d", path, res.StatusCode, res.Header.Get("Content-Type"), want)
		}
	}
	res, err := ts.HTTP.Post(ts.URL+"/tuf/metadata/timestamp.json", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST timestamp.json = %d", res.StatusCode)
	}
}
