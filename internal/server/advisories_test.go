package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/advisory/advisorytest"
	"github.com/bulwark-iot/bulwark/internal/disclosure"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// publishFixes publishes a release through the admin API, the way
// `bulwark release publish` does.
func publishFixes(t *testing.T, ts *servertest.Server, product, version, severity, fixes string) {
	t.Helper()
	q := url.Values{"product": {product}, "version": {version}, "filename": {"app.tar.gz"}, "severity": {severity}, "fixes": {fixes}}
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/releases?"+q.Encode(), strings.NewReader(product+" "+version))
	req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 201 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publish %s %s: %d %s", product, version, resp.StatusCode, b)
	}
}

// fetch GETs a public path with no credentials.
func fetch(t *testing.T, ts *servertest.Server, path string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := ts.HTTP.Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func mustFetch(t *testing.T, ts *servertest.Server, path, contentType string) []byte {
	t.Helper()
	code, h, b := fetch(t, ts, path)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), contentType) {
		t.Fatalf("GET %s: %d %s\n%s", path, code, h.Get("Content-Type"), b)
	}
	return b
}

func TestAdvisoriesPublished(t *testing.T) {
	const base = "https://bulwark.example.com"
	ts := servertest.Start(t, servertest.Options{Config: server.Config{Disclosure: disclosure.Config{PublicURL: base}}})

	// No advisories yet: the distribution exists and is empty.
	var meta struct {
		CanonicalURL  string `json:"canonical_url"`
		Distributions []struct {
			DirectoryURL string `json:"directory_url"`
		} `json:"distributions"`
		Role      string `json:"role"`
		Publisher struct{ Category, Namespace string }
	}
	if err := json.Unmarshal(mustFetch(t, ts, "/.well-known/csaf/provider-metadata.json", "application/json"), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.CanonicalURL != base+"/.well-known/csaf/provider-metadata.json" || len(meta.Distributions) != 1 ||
		meta.Distributions[0].DirectoryURL != base+"/.well-known/csaf/white/" || meta.Role != "csaf_provider" ||
		meta.Publisher.Category != "vendor" || meta.Publisher.Namespace != base {
		t.Fatalf("provider metadata %+v", meta)
	}
	if b := mustFetch(t, ts, "/.well-known/csaf/white/index.txt", "text/plain"); len(b) != 0 {
		t.Fatalf("index.txt before any advisory: %q", b)
	}

	publishFixes(t, ts, "camera", "1.0.0", "", "")
	publishFixes(t, ts, "camera", "1.1.0", "high", "CVE-2026-1234,GHSA-abcd-efgh-ijkl")
	publishFixes(t, ts, "thermostat", "2.0.0", "critical", "CVE-2026-20001")

	index := string(mustFetch(t, ts, "/.well-known/csaf/white/index.txt", "text/plain"))
	lines := strings.Fields(index)
	if len(lines) != 2 || !strings.Contains(index, "/bwsa-camera-1_1_0.json") || !strings.Contains(index, "/bwsa-thermostat-2_0_0.json") {
		t.Fatalf("index.txt:\n%s", index)
	}
	changes := string(mustFetch(t, ts, "/.well-known/csaf/white/changes.csv", "text/csv"))
	if strings.Count(changes, "\n") != 2 || !strings.HasPrefix(changes, `"`+lines[0]+`","`) {
		t.Fatalf("changes.csv:\n%s", changes)
	}
	year, _, _ := strings.Cut(lines[0], "/")
	if l := string(mustFetch(t, ts, "/.well-known/csaf/white/", "text/html")); !strings.Contains(l, `href="`+year+`/"`) || !strings.Contains(l, `href="index.txt"`) {
		t.Fatalf("directory listing:\n%s", l)
	}
	if l := string(mustFetch(t, ts, "/.well-known/csaf/white/"+year+"/", "text/html")); !strings.Contains(l, `href="bwsa-camera-1_1_0.json.sha256"`) {
		t.Fatalf("year listing:\n%s", l)
	}

	docs := map[string][]byte{}
	for _, p := range lines {
		code, h, doc := fetch(t, ts, "/.well-known/csaf/white/"+p)
		if code != 200 || h.Get("Content-Type") != "application/json" || h.Get("Last-Modified") == "" {
			t.Fatalf("GET %s: %d %v", p, code, h)
		}
		name := p[strings.LastIndex(p, "/")+1:]
		sum := sha256.Sum256(doc)
		if h := string(mustFetch(t, ts, "/.well-known/csaf/white/"+p+".sha256", "text/plain")); h != hex.EncodeToString(sum[:])+"  "+name+"\n" {
			t.Fatalf("%s.sha256 = %q, want the document's hash", p, h)
		}
		mustFetch(t, ts, "/.well-known/csaf/white/"+p+".sha512", "text/plain")
		// Stable: the same bytes on the next request.
		if again := mustFetch(t, ts, "/.well-known/csaf/white/"+p, "application/json"); string(again) != string(doc) {
			t.Fatalf("%s changed between requests", p)
		}
		docs[name] = doc
		// Conditional requests: Last-Modified is the publication time.
		req, _ := http.NewRequest("GET", ts.URL+"/.well-known/csaf/white/"+p, nil)
		req.Header.Set("If-Modified-Since", h.Get("Last-Modified"))
		if resp, err := ts.HTTP.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
			t.Fatalf("conditional GET %s: %v %v", p, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	var csaf struct {
		Document struct {
			Publisher struct{ Namespace string }
			Tracking  struct{ ID, Status string }
		}
		Vulnerabilities []struct {
			CVE           string
			ProductStatus struct {
				Fixed         []string
				KnownAffected []string `json:"known_affected"`
			} `json:"product_status"`
		}
	}
	if err := json.Unmarshal(docs["bwsa-camera-1_1_0.json"], &csaf); err != nil {
		t.Fatal(err)
	}
	if csaf.Document.Tracking.ID != "BWSA-camera-1.1.0" || csaf.Document.Publisher.Namespace != base || len(csaf.Vulnerabilities) != 2 ||
		csaf.Vulnerabilities[0].CVE != "CVE-2026-1234" || csaf.Vulnerabilities[0].ProductStatus.Fixed[0] != "CSAFPID-camera-1.1.0" ||
		strings.Join(csaf.Vulnerabilities[0].ProductStatus.KnownAffected, ",") != "CSAFPID-camera-1.0.0" {
		t.Fatalf("CSAF document:\n%s", docs["bwsa-camera-1_1_0.json"])
	}

	var osv struct {
		ID       string
		Aliases  []string
		Affected []struct {
			Package struct{ Ecosystem, Name string }
			Ranges  []struct {
				Type   string
				Events []map[string]string
			}
			Versions []string
		}
	}
	if err := json.Unmarshal(mustFetch(t, ts, "/advisories/BWSA-camera-1.1.0.osv.json", "application/json"), &osv); err != nil {
		t.Fatal(err)
	}
	if osv.ID != "BWSA-camera-1.1.0" || strings.Join(osv.Aliases, ",") != "CVE-2026-1234,GHSA-abcd-efgh-ijkl" || len(osv.Affected) != 1 ||
		osv.Affected[0].Package.Ecosystem != "Bulwark" || osv.Affected[0].Package.Name != "camera" ||
		osv.Affected[0].Ranges[0].Type != "SEMVER" || osv.Affected[0].Ranges[0].Events[1]["fixed"] != "1.1.0" ||
		strings.Join(osv.Affected[0].Versions, ",") != "1.0.0" {
		t.Fatalf("OSV %+v", osv)
	}
	var osvIndex []struct{ ID, URL string }
	if err := json.Unmarshal(mustFetch(t, ts, "/advisories/osv/", "application/json"), &osvIndex); err != nil || len(osvIndex) != 2 {
		t.Fatalf("OSV index %+v %v", osvIndex, err)
	}

	page := string(mustFetch(t, ts, "/advisories/BWSA-camera-1.1.0", "text/html"))
	for _, want := range []string{"CVE-2026-1234", "GHSA-abcd-efgh-ijkl", `id="fixed">1.1.0<`, "1.0.0", "High", "/.well-known/csaf/white/" + year + "/bwsa-camera-1_1_0.json"} {
		if !strings.Contains(page, want) {
			t.Fatalf("advisory page lacks %q:\n%s", want, page)
		}
	}
	if idx := string(mustFetch(t, ts, "/advisories", "text/html")); !strings.Contains(idx, `href="/advisories/BWSA-thermostat-2.0.0"`) || strings.Contains(idx, "camera-1.0.0") {
		t.Fatalf("advisory index:\n%s", idx)
	}

	for _, p := range []string{"/advisories/BWSA-camera-1.0.0", "/advisories/nope.osv.json", "/.well-known/csaf/white/1999/x.json",
		"/.well-known/csaf/white/" + year + "/bwsa-camera-1_1_0.json.md5", "/.well-known/csaf/white/" + year + "/nope.json"} {
		if code, _, _ := fetch(t, ts, p); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}

	// The served documents pass the official CSAF validator.
	advisorytest.Validate(t, docs)
}

// CheckerEnv names the environment variable holding the path of the BSI
// CSAF checker (github.com/gocsaf/csaf/v3/cmd/csaf_checker); .ci/run
// installs it and sets the variable.
const CheckerEnv = "BULWARK_CSAF_CHECKER"

// TestCSAFProviderChecker runs the BSI csaf_checker against a server with
// published advisories: it must find a conforming csaf_provider.
func TestCSAFProviderChecker(t *testing.T) {
	bin := os.Getenv(CheckerEnv)
	if bin == "" {
		t.Skipf("the CSAF checker is not installed: `go install github.com/gocsaf/csaf/v3/cmd/csaf_checker@v3.5.1` and set %s to its path", CheckerEnv)
	}
	ts := servertest.Start(t, servertest.Options{})
	publishFixes(t, ts, "camera", "1.0.0", "", "")
	publishFixes(t, ts, "camera", "1.1.0", "high", "CVE-2026-1234,GHSA-abcd-efgh-ijkl")
	publishFixes(t, ts, "thermostat", "2.0.0", "critical", "CVE-2026-20001")
	out, err := exec.Command(bin, "--insecure", "--format", "json", strings.TrimPrefix(ts.URL, "https://")).Output()
	if err != nil {
		t.Fatalf("csaf_checker: %v\n%s", err, out)
	}
	var report struct {
		Domains []struct {
			Role         string `json:"role"`
			Passed       bool   `json:"passed"`
			Requirements []struct {
				Num         int    `json:"num"`
				Description string `json:"description"`
				Messages    []struct {
					Type int    `json:"type"`
					Text string `json:"text"`
				} `json:"messages"`
			} `json:"requirements"`
		} `json:"domains"`
	}
	if err := json.Unmarshal(out[bytes.IndexByte(out, '{'):], &report); err != nil || len(report.Domains) != 1 {
		t.Fatalf("csaf_checker report (%v):\n%s", err, out)
	}
	d := report.Domains[0]
	if d.Role != "csaf_provider" || !d.Passed {
		t.Fatalf("csaf_checker: role %q passed %v:\n%s", d.Role, d.Passed, out)
	}
	// The requirements a directory-based csaf_provider meets (CSAF 2.0
	// §7.1): no error (type 2) in any of them.
	must := map[int]bool{1: true, 2: true, 3: true, 4: true, 7: true, 9: true, 11: true, 12: true, 13: true, 14: true, 18: true}
	for _, r := range d.Requirements {
		for _, m := range r.Messages {
			if must[r.Num] && m.Type >= 2 {
				t.Errorf("requirement %d (%s): %s", r.Num, r.Description, m.Text)
			}
		}
		if must[r.Num] {
			delete(must, r.Num)
		}
	}
	if len(must) > 0 {
		t.Errorf("requirements not checked: %v", must)
	}
}
