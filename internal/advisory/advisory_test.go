package advisory

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/advisory/advisorytest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var testPublisher = Publisher{Name: "Example Devices Ltd", Namespace: "https://bulwark.example.com",
	Contact: "https://bulwark.example.com/disclose"}

// testReleases are published in the order written, one a day.
func testReleases() []Release {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)
	rel := func(day int, product, version, severity string, fixes ...string) Release {
		return Release{Product: product, Version: version, Fixes: fixes, Severity: severity,
			Target: product + "/" + version + "/app.tar.gz", SHA256: strings.Repeat("ab", 32), Length: 1024,
			Published: t0.Add(time.Duration(day) * 24 * time.Hour)}
	}
	return []Release{
		rel(0, "camera", "1.0.0", ""),
		rel(1, "camera", "1.1.0", "high", "CVE-2026-1234", "GHSA-abcd-efgh-ijkl", "CVE-2026-1234"),
		rel(2, "thermostat", "2.0.0", "critical", "CVE-2026-20001"),
		rel(3, "camera", "1.2.0-rc.1", ""),
		rel(4, "camera", "1.2.0", "low", "CVE-2026-5555"),
	}
}

func TestBuild(t *testing.T) {
	advs := Build(testReleases())
	var got []string
	for _, a := range advs {
		got = append(got, a.ID+" "+strings.Join(a.Vulns, ",")+" affected="+strings.Join(a.Affected, ",")+" "+a.Path())
	}
	want := []string{
		"BWSA-camera-1.2.0 CVE-2026-5555 affected=1.0.0,1.1.0,1.2.0-rc.1 2026/bwsa-camera-1_2_0.json",
		"BWSA-thermostat-2.0.0 CVE-2026-20001 affected= 2026/bwsa-thermostat-2_0_0.json",
		"BWSA-camera-1.1.0 CVE-2026-1234,GHSA-abcd-efgh-ijkl affected=1.0.0 2026/bwsa-camera-1_1_0.json",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("advisories:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Input order does not matter.
	rs := testReleases()
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	if again := Build(rs); len(again) != len(advs) || again[0].ID != advs[0].ID || strings.Join(again[0].Affected, ",") != "1.0.0,1.1.0,1.2.0-rc.1" {
		t.Fatalf("reversed input gave %v", again)
	}
}

func TestFileName(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"BWSA-camera-1.2.0", "bwsa-camera-1_2_0.json"},
		{"BWSA-Cam_X-1.0.0-rc.1+build.7", "bwsa-cam_x-1_0_0-rc_1+build_7.json"},
	} {
		if got := (&Advisory{ID: tc.id}).FileName(); got != tc.want {
			t.Errorf("FileName(%s) = %s, want %s", tc.id, got, tc.want)
		}
	}
}

// outputs is every generated file, by golden-file name.
func outputs(t *testing.T) map[string][]byte {
	advs := Build(testReleases())
	out := map[string][]byte{
		"provider-metadata.json": must(ProviderMetadata(testPublisher, advs)),
		"index.txt":              IndexTxt(advs),
		"changes.csv":            ChangesCSV(advs),
		"osv-index.json":         must(OSVList(testPublisher, advs)),
	}
	pages := NewPages()
	out["index.html"] = must(pages.Index(advs, "/assets/public.css"))
	for _, a := range advs {
		out[a.FileName()] = must(CSAF(testPublisher, a))
		out[strings.TrimSuffix(a.FileName(), ".json")+".osv.json"] = must(OSV(testPublisher, a))
		out[strings.TrimSuffix(a.FileName(), ".json")+".html"] = must(pages.Page(a, "/assets/public.css"))
	}
	return out
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestGolden(t *testing.T) {
	out := outputs(t)
	for name, got := range out {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
		}
	}
	// Deterministic: a second build gives the same bytes.
	for name, again := range outputs(t) {
		if !bytes.Equal(again, out[name]) {
			t.Errorf("%s is not deterministic", name)
		}
	}
}

func TestCSAFShape(t *testing.T) {
	advs := Build(testReleases())
	a := Find(advs, "BWSA-camera-1.1.0")
	var doc struct {
		Document struct {
			Tracking  struct{ ID, Status, Version string } `json:"tracking"`
			Publisher struct{ Category, Namespace string } `json:"publisher"`
		} `json:"document"`
		Vulnerabilities []struct {
			CVE           string                  `json:"cve"`
			IDs           []struct{ Text string } `json:"ids"`
			ProductStatus struct {
				Fixed         []string `json:"fixed"`
				KnownAffected []string `json:"known_affected"`
			} `json:"product_status"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(must(CSAF(testPublisher, a)), &doc); err != nil {
		t.Fatal(err)
	}
	d := doc.Document
	if d.Tracking.ID != a.ID || d.Tracking.Status != "final" || d.Publisher.Category != "vendor" || d.Publisher.Namespace != testPublisher.Namespace {
		t.Fatalf("document %+v", d)
	}
	v := doc.Vulnerabilities
	if len(v) != 2 || v[0].CVE != "CVE-2026-1234" || len(v[1].IDs) != 1 || v[1].IDs[0].Text != "GHSA-abcd-efgh-ijkl" ||
		v[0].ProductStatus.Fixed[0] != "CSAFPID-camera-1.1.0" || strings.Join(v[0].ProductStatus.KnownAffected, ",") != "CSAFPID-camera-1.0.0" {
		t.Fatalf("vulnerabilities %+v", v)
	}
}

func TestHashFile(t *testing.T) {
	got, ok := HashFile("sha256", []byte("abc"), "x.json")
	if !ok || string(got) != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  x.json\n" {
		t.Fatalf("sha256 file %q", got)
	}
	if _, ok := HashFile("md5", nil, "x"); ok {
		t.Fatal("md5 accepted")
	}
}

// TestCSAFValidator runs the official validator over the documents.
func TestCSAFValidator(t *testing.T) {
	docs := map[string][]byte{}
	for _, a := range Build(testReleases()) {
		docs[a.FileName()] = must(CSAF(testPublisher, a))
	}
	advisorytest.Validate(t, docs)
}

// BenchmarkBuild builds the advisories of 2,000 releases of 20 products,
// every other one fixing two vulnerabilities (what each request does).
func BenchmarkBuild(b *testing.B) {
	var rs []Release
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2000 {
		r := Release{Product: "p" + strconv.Itoa(i%20), Version: "1." + strconv.Itoa(i/20) + ".0", Published: t0.Add(time.Duration(i) * time.Hour)}
		if i%2 == 0 {
			r.Fixes, r.Severity = []string{"CVE-2026-" + strconv.Itoa(10000+i), "CVE-2026-" + strconv.Itoa(20000+i)}, "high"
		}
		rs = append(rs, r)
	}
	for b.Loop() {
		if len(Build(rs)) != 1000 {
			b.Fatal("wrong count")
		}
	}
}

// FuzzBuild checks that any release record gives well-formed output: JSON
// that parses, a CSAF file name of the allowed characters, the same bytes
// twice.
func FuzzBuild(f *testing.F) {
	f.Add("camera", "1.2.0", "CVE-2026-1234,GHSA-abcd-efgh-ijkl", "high", "1.0.0")
	f.Add("Cam_X", "1.0.0-rc.1+build.7", "CVE-2026-1", "", "0.9.0")
	f.Add("x", "not-semver", "OSV-2026-1,,CVE-2026-99999", "critical", "1.0.0")
	pages := NewPages()
	fileName := regexp.MustCompile(`^[+\-a-z0-9_]+\.json$`)
	f.Fuzz(func(t *testing.T, product, version, fixes, severity, earlier string) {
		t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		rs := []Release{{Product: product, Version: earlier, Published: t0},
			{Product: product, Version: version, Fixes: strings.Split(fixes, ","), Severity: severity, Published: t0.Add(time.Hour)}}
		for _, a := range Build(rs) {
			if !fileName.MatchString(a.FileName()) {
				t.Fatalf("file name %q", a.FileName())
			}
			for _, gen := range []func(Publisher, *Advisory) ([]byte, error){CSAF, OSV} {
				b1, err1 := gen(testPublisher, a)
				b2, err2 := gen(testPublisher, a)
				if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) || !json.Valid(b1) {
					t.Fatalf("output %v %v:\n%s", err1, err2, b1)
				}
			}
			if _, err := pages.Page(a, ""); err != nil {
				t.Fatal(err)
			}
		}
	})
}
