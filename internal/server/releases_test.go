package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// publish uploads an artifact the way `bulwark release publish` does.
func publish(t *testing.T, ts *servertest.Server, q url.Values, body string) (int, api.Release, api.Error) {
	t.Helper()
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/releases?"+q.Encode(), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var rel api.Release
	var e api.Error
	json.Unmarshal(data, &rel)
	json.Unmarshal(data, &e)
	return resp.StatusCode, rel, e
}

func rq(product, version string, extra ...string) url.Values {
	q := url.Values{"product": {product}, "version": {version}, "filename": {"app.tar.gz"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

func TestPublishRelease(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	artifact := "release 1.2.0 contents"
	code, rel, e := publish(t, ts, rq("camera", "1.2.0", "fixes", "CVE-2026-1234,GHSA-abcd-efgh-ijkl", "severity", "high", "hardware", "cam-v2"), artifact)
	if code != 201 {
		t.Fatalf("publish: %d %+v", code, e)
	}
	sum := sha256.Sum256([]byte(artifact))
	if rel.SHA256 != hex.EncodeToString(sum[:]) || rel.Length != int64(len(artifact)) || rel.Target != "camera/1.2.0/app.tar.gz" ||
		len(rel.Fixes) != 2 || rel.Installer != "app" {
		t.Fatalf("release %+v", rel)
	}

	// A TUF client that trusts the repository's first root finds the
	// target, with its hashes and the release metadata, signed.
	info := tufTarget(t, ts, rel.Target)
	if info.Length != rel.Length || hex.EncodeToString(info.Hashes["sha256"]) != rel.SHA256 {
		t.Fatalf("TUF target %+v", info)
	}
	var custom struct {
		Bulwark struct {
			Product, Version, Severity string
			Fixes                      []string
		} `json:"bulwark"`
	}
	json.Unmarshal(*info.Custom, &custom)
	if custom.Bulwark.Product != "camera" || custom.Bulwark.Version != "1.2.0" || custom.Bulwark.Severity != "high" || len(custom.Bulwark.Fixes) != 2 {
		t.Fatalf("TUF custom %s", *info.Custom)
	}

	for _, tc := range []struct {
		name string
		q    url.Values
		body string
		want int
		code string
	}{
		{"older version", rq("camera", "1.1.9"), "x", 409, "not_newer"},
		{"same version", rq("camera", "1.2.0"), "x", 409, "not_newer"},
		{"not semver", rq("camera", "v2"), "x", 400, "bad_request"},
		{"bad product", rq("../etc", "1.0.0"), "x", 400, "bad_request"},
		{"bad filename", rq("camera", "1.3.0", "filename", "../x"), "x", 400, "bad_request"},
		{"bad installer", rq("camera", "1.3.0", "installer", "rpm"), "x", 400, "bad_request"},
		{"bad CVE", rq("camera", "1.3.0", "fixes", "not a cve", "severity", "low"), "x", 400, "bad_request"},
		{"fixes without severity", rq("camera", "1.3.0", "fixes", "CVE-2026-1"), "x", 400, "bad_request"},
		{"empty artifact", rq("camera", "1.3.0"), "", 400, "bad_request"},
	} {
		if code, _, e := publish(t, ts, tc.q, tc.body); code != tc.want || e.Code != tc.code {
			t.Errorf("%s: %d %+v, want %d %s", tc.name, code, e, tc.want, tc.code)
		}
	}

	// The floor only goes up, and refuses publishing below it.
	var fl api.VersionFloor
	if code := ts.Do(t, "POST", "/api/v1/version-floors", "", api.VersionFloor{Product: "camera", MinVersion: "2.0.0"}, &fl); code != 200 {
		t.Fatalf("set floor: %d", code)
	}
	if code := ts.Do(t, "POST", "/api/v1/version-floors", "", api.VersionFloor{Product: "camera", MinVersion: "1.0.0"}, nil); code != 409 {
		t.Fatalf("lowering the floor: %d", code)
	}
	if code, _, e := publish(t, ts, rq("camera", "1.5.0"), "x"); code != 409 || e.Code != "below_floor" {
		t.Fatalf("publish below floor: %d %+v", code, e)
	}
	if code, _, _ := publish(t, ts, rq("camera", "2.0.0"), "two"); code != 201 {
		t.Fatalf("publish at the floor: %d", code)
	}

	// SBOM: CycloneDX only, served publicly.
	sbomURL := "/api/v1/releases/camera/2.0.0/sbom"
	if code := ts.Do(t, "POST", sbomURL, "", map[string]string{"bomFormat": "SPDX"}, nil); code != 400 {
		t.Fatalf("non-CycloneDX SBOM: %d", code)
	}
	bom := map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []any{}}
	var withSBOM api.Release
	if code := ts.Do(t, "POST", sbomURL, "", bom, &withSBOM); code != 201 || withSBOM.SBOM == "" {
		t.Fatalf("SBOM: %d %+v", code, withSBOM)
	}
	resp, err := ts.HTTP.Get(ts.URL + "/releases/camera/2.0.0/sbom.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(got), "CycloneDX") {
		t.Fatalf("public SBOM: %d %s", resp.StatusCode, got)
	}
	tufTarget(t, ts, withSBOM.SBOM)

	var list []api.Release
	ts.Do(t, "GET", "/api/v1/releases?product=camera", "", nil, &list)
	if len(list) != 2 || list[0].Version != "2.0.0" {
		t.Fatalf("release list %+v", list)
	}
}

// tufTarget refreshes a go-tuf client against the server's repository and
// returns the target's trusted info.
func tufTarget(t *testing.T, ts *servertest.Server, name string) *targetInfo {
	t.Helper()
	base := ts.URL + "/tuf"
	resp, err := ts.HTTP.Get(base + "/metadata/1.root.json")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("first root: %d", resp.StatusCode)
	}
	cfg, err := config.New(base+"/metadata/", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	cfg.RemoteTargetsURL = base + "/targets/"
	cfg.PrefixTargetsWithHash = true
	if err := cfg.SetDefaultFetcherHTTPClient(ts.HTTP); err != nil {
		t.Fatal(err)
	}
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("TUF refresh: %v", err)
	}
	ti, err := up.GetTargetInfo(name)
	if err != nil {
		t.Fatalf("TUF target %s: %v", name, err)
	}
	path, data, err := up.DownloadTarget(ti, "", "")
	if err != nil {
		t.Fatalf("downloading %s: %v", name, err)
	}
	_ = path
	hashes := map[string][]byte{}
	for k, v := range ti.Hashes {
		hashes[k] = v
	}
	return &targetInfo{Length: ti.Length, Hashes: hashes, Custom: ti.Custom, Data: data}
}

type targetInfo struct {
	Length int64
	Hashes map[string][]byte
	Custom *json.RawMessage
	Data   []byte
}

func TestPublishTooLarge(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: server.Config{MaxArtifact: 64}})
	if code, _, e := publish(t, ts, rq("camera", "1.0.0"), strings.Repeat("x", 65)); code != 413 || e.Code != "too_large" {
		t.Fatalf("oversized artifact: %d %+v", code, e)
	}
	if code, _, e := publish(t, ts, rq("camera", "1.0.0"), strings.Repeat("x", 64)); code != 201 {
		t.Fatalf("artifact at the limit: %d %+v", code, e)
	}
}
