package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// postReferenceValues uploads a manifest body the way `bulwark release
// reference-values` does.
func postReferenceValues(t *testing.T, ts *servertest.Server, product, version, query, body string) (int, api.ReferenceValues, api.Error) {
	t.Helper()
	path := "/api/v1/releases/" + product + "/" + version + "/reference-values"
	if query != "" {
		path += "?" + query
	}
	req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var rv api.ReferenceValues
	var e api.Error
	json.Unmarshal(data, &rv)
	json.Unmarshal(data, &e)
	return resp.StatusCode, rv, e
}

// bootManifest is what a maker publishes for a release that boots as cfg:
// the boot PCRs of a TPM after that boot.
func bootManifest(t *testing.T, tp *softtpm.TPM, product, version string) string {
	t.Helper()
	ref := &attest.Reference{PCRs: map[int][]byte{}}
	for _, i := range attestPCRs {
		v := tp.PCR(i)
		ref.PCRs[i] = v[:]
	}
	b, err := json.MarshalIndent(ref.Manifest(product, version), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustBoot(t *testing.T, tp *softtpm.TPM, firmware, kernel string) {
	t.Helper()
	if err := tp.Boot(softtpm.BootConfig{SecureBoot: true, Firmware: firmware, Kernel: kernel}); err != nil {
		t.Fatal(err)
	}
}

// reportInstalled checks in with the releases the device runs.
func reportInstalled(t *testing.T, d *tpmDevice, installed ...api.InstalledRelease) {
	t.Helper()
	inv := inventory("tpm-host")
	inv.Installed = installed
	if _, err := d.client.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inv, Health: api.Health{Status: api.HealthHealthy}}); err != nil {
		t.Fatal(err)
	}
}

func attestPCRsAnd(extra ...int) []int { return append(append([]int(nil), attestPCRs...), extra...) }

func (d *tpmDevice) attestWith(t *testing.T, nonce []byte, pcrs []int) *api.AttestationResult {
	t.Helper()
	ev, err := d.tpm.Quote(nonce, pcrs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.client.Attest(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func earPolicy(t *testing.T, ts *servertest.Server, res *api.AttestationResult) string {
	t.Helper()
	claims, err := attest.VerifyEAR(res.EAR, fetchEARKeys(t, ts))
	if err != nil {
		t.Fatal(err)
	}
	return claims.PolicyID
}

func hasProblem(res *api.AttestationResult, substr string) bool {
	for _, p := range res.Problems {
		if strings.Contains(p, substr) {
			return true
		}
	}
	return false
}

func TestReferenceValuesPublished(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	if code, _, e := publish(t, ts, rq("cam-fw", "1.0.0"), "firmware 1.0.0"); code != 201 {
		t.Fatalf("publish: %d %+v", code, e)
	}
	pcr := strings.Repeat("ab", 32)
	good := `{"product": "cam-fw", "version": "1.0.0", "pcrs": {"0": "` + pcr + `"}, "files": [{"path": "/usr/bin/camd", "sha256": "` + pcr + `"}]}`

	for _, tc := range []struct {
		name, product, version, query, body string
		want                                int
		code, msg                           string
	}{
		{"wrong product", "cam-fw", "1.0.0", "", strings.Replace(good, `"cam-fw"`, `"cam-app"`, 1), 400, "bad_request", "for cam-app 1.0.0, not for the release cam-fw 1.0.0"},
		{"wrong version", "cam-fw", "1.0.0", "", strings.Replace(good, `"1.0.0"`, `"1.0.1"`, 1), 400, "bad_request", "for cam-fw 1.0.1"},
		{"bad hex", "cam-fw", "1.0.0", "", strings.Replace(good, `"0": "`+pcr, `"0": "`+strings.ToUpper(pcr), 1), 400, "bad_request", "PCR 0"},
		{"short hash", "cam-fw", "1.0.0", "", strings.Replace(good, `"sha256": "`+pcr, `"sha256": "abcd`, 1), 400, "bad_request", "/usr/bin/camd"},
		{"PCR out of range", "cam-fw", "1.0.0", "", strings.Replace(good, `"0":`, `"24":`, 1), 400, "bad_request", "PCR index \"24\""},
		{"unknown field", "cam-fw", "1.0.0", "", strings.Replace(good, `"pcrs"`, `"signature": "x", "pcrs"`, 1), 400, "bad_request", "signature"},
		{"trailing data", "cam-fw", "1.0.0", "", good + ` {}`, 400, "bad_request", "trailing data"},
		{"empty", "cam-fw", "1.0.0", "", `{"product": "cam-fw", "version": "1.0.0"}`, 400, "bad_request", "no PCRs and no files"},
		{"unknown release", "cam-fw", "9.0.0", "", strings.Replace(good, `"1.0.0"`, `"9.0.0"`, 1), 404, "not_found", "no release cam-fw 9.0.0"},
		{"bad replace flag", "cam-fw", "1.0.0", "replace=maybe", good, 400, "bad_request", "replace"},
	} {
		code, _, e := postReferenceValues(t, ts, tc.product, tc.version, tc.query, tc.body)
		if code != tc.want || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d %s naming %q", tc.name, code, e, tc.want, tc.code, tc.msg)
		}
	}
	if code := ts.Do(t, "GET", "/api/v1/releases/cam-fw/1.0.0/reference-values", "", nil, nil); code != 404 {
		t.Fatalf("reference values after refused uploads: %d", code)
	}

	code, rv, e := postReferenceValues(t, ts, "cam-fw", "1.0.0", "", good)
	sum := sha256.Sum256([]byte(good))
	if code != 201 || rv.SHA256 != hex.EncodeToString(sum[:]) || rv.Target != "cam-fw/1.0.0/reference-values.json" || rv.Replaced != "" || rv.CreatedBy == "" {
		t.Fatalf("upload: %d %+v %+v", code, rv, e)
	}
	// Signed into the update repository, byte for byte, as kind
	// reference-values.
	info := tufTarget(t, ts, rv.Target)
	if string(info.Data) != good || hex.EncodeToString(info.Hashes["sha256"]) != rv.SHA256 {
		t.Fatalf("TUF target: %q", info.Data)
	}
	var custom struct {
		Bulwark struct{ Product, Version, Kind string } `json:"bulwark"`
	}
	json.Unmarshal(*info.Custom, &custom)
	if custom.Bulwark.Product != "cam-fw" || custom.Bulwark.Version != "1.0.0" || custom.Bulwark.Kind != "reference-values" {
		t.Fatalf("TUF custom %s", *info.Custom)
	}
	var got api.ReferenceValues
	if code := ts.Do(t, "GET", "/api/v1/releases/cam-fw/1.0.0/reference-values", "", nil, &got); code != 200 || got.SHA256 != rv.SHA256 {
		t.Fatalf("get: %d %+v", code, got)
	}
	if m, err := attest.DecodeReferenceManifest(bytes.NewReader(got.Manifest)); err != nil || m.Files[0].Path != "/usr/bin/camd" {
		t.Fatalf("served manifest: %+v, %v", m, err)
	}

	// One per release: a second upload needs ?replace=true, and the
	// replacement is audited with both hashes.
	second := strings.Replace(good, `"/usr/bin/camd"`, `"/usr/sbin/camd"`, 1)
	if code, _, e := postReferenceValues(t, ts, "cam-fw", "1.0.0", "", second); code != 409 || e.Code != "conflict" || !strings.Contains(e.Message, "replace=true") {
		t.Fatalf("second upload: %d %+v", code, e)
	}
	code, rv2, e := postReferenceValues(t, ts, "cam-fw", "1.0.0", "replace=true", second)
	if code != 201 || rv2.Replaced != rv.SHA256 || rv2.SHA256 == rv.SHA256 {
		t.Fatalf("replace: %d %+v %+v", code, rv2, e)
	}
	if info := tufTarget(t, ts, rv2.Target); string(info.Data) != second {
		t.Fatalf("TUF target after replace: %q", info.Data)
	}
	var audit api.AuditPage
	ts.Do(t, "GET", "/api/v1/audit?target=release:cam-fw@1.0.0", "", nil, &audit)
	var actions []string
	for _, a := range audit.Entries {
		actions = append(actions, a.Action)
		if a.Action == "release.reference-values.replace" && !strings.Contains(a.Detail, "replaced="+rv.SHA256) {
			t.Errorf("replace audited as %q", a.Detail)
		}
	}
	if !strings.Contains(strings.Join(actions, " "), "release.reference-values release.reference-values.replace") {
		t.Errorf("audit actions %v", actions)
	}
}

// TestAttestationAgainstReleaseReferenceValues follows a device through an
// update that changes its boot measurements: it is appraised against the
// reference values of the release it reports installed.
func TestAttestationAgainstReleaseReferenceValues(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{Config: server.Config{Attestation: server.AttestConfig{FailureAction: server.ActionUntrusted}}})
	for _, r := range [][2]string{{"cam-fw", "1.0.0"}, {"cam-app", "1.0.0"}, {"cam-extra", "1.0.0"}} {
		if code, _, e := publish(t, ts, rq(r[0], r[1]), r[0]+" "+r[1]); code != 201 {
			t.Fatalf("publish %v: %d %+v", r, code, e)
		}
	}
	tp, err := softtpm.New(softtpm.Options{EKCertificate: true})
	if err != nil {
		t.Fatal(err)
	}
	// The maker publishes the reference values of firmware 1.0.0: the
	// PCRs of a device booting it.
	mustBoot(t, tp, "1.0", "/boot/vmlinuz-1.0")
	if code, _, e := postReferenceValues(t, ts, "cam-fw", "1.0.0", "", bootManifest(t, tp, "cam-fw", "1.0.0")); code != 201 {
		t.Fatalf("reference values 1.0.0: %d %+v", code, e)
	}
	d := enrollTPM(t, ts, tp, ts.EnrollToken(t, 1, ""))
	fw1 := api.InstalledRelease{Product: "cam-fw", Version: "1.0.0"}
	reportInstalled(t, d, fw1)

	// Booting 1.0 and running 1.0: affirming against the 1.0 manifest,
	// with no baseline to approve.
	res := d.attest(t, d.nonce)
	if res.Status != api.AttestAffirming || res.Vector.Configuration != attest.ClaimApprovedConfig {
		t.Fatalf("1.0 against the 1.0 manifest: %+v", res)
	}
	if p := earPolicy(t, ts, res); !strings.Contains(p, "manifest cam-fw 1.0.0") {
		t.Errorf("EAR policy %q does not name the manifest", p)
	}

	// The update: release 2.0.0 boots other firmware and another kernel,
	// and carries its reference values.
	if code, _, e := publish(t, ts, rq("cam-fw", "2.0.0"), "firmware 2.0.0"); code != 201 {
		t.Fatalf("publish 2.0.0: %d %+v", code, e)
	}
	mustBoot(t, tp, "2.0", "/boot/vmlinuz-2.0")
	if code, _, e := postReferenceValues(t, ts, "cam-fw", "2.0.0", "", bootManifest(t, tp, "cam-fw", "2.0.0")); code != 201 {
		t.Fatalf("reference values 2.0.0: %d %+v", code, e)
	}
	fw2 := api.InstalledRelease{Product: "cam-fw", Version: "2.0.0"}
	reportInstalled(t, d, fw2)
	res = d.attest(t, d.freshNonce(t))
	if res.Status != api.AttestAffirming {
		t.Fatalf("2.0 against the 2.0 manifest: %+v", res)
	}
	if p := earPolicy(t, ts, res); !strings.Contains(p, "manifest cam-fw 2.0.0") {
		t.Errorf("EAR policy %q does not name the 2.0.0 manifest", p)
	}

	// IMA: files of the installed releases are known; a file in no
	// manifest contraindicates the executables.
	camd := sha256.Sum256([]byte("camd 1.0.0"))
	app := `{"product": "cam-app", "version": "1.0.0", "files": [{"path": "/usr/bin/camd", "sha256": "` + hex.EncodeToString(camd[:]) + `"}]}`
	if code, _, e := postReferenceValues(t, ts, "cam-app", "1.0.0", "", app); code != 201 {
		t.Fatalf("reference values of cam-app: %d %+v", code, e)
	}
	reportInstalled(t, d, fw2, api.InstalledRelease{Product: "cam-app", Version: "1.0.0"})
	tp.MeasureFile("/usr/bin/camd", camd)
	res = d.attestWith(t, d.freshNonce(t), attestPCRsAnd(attest.IMAPCR))
	if res.Status != api.AttestAffirming || res.Vector.Executables != attest.ClaimApprovedRuntime {
		t.Fatalf("released file under IMA: %+v", res)
	}
	tp.MeasureFile("/tmp/implant", sha256.Sum256([]byte("implant")))
	res = d.attestWith(t, d.freshNonce(t), attestPCRsAnd(attest.IMAPCR))
	if res.Status != api.AttestContraindicated || res.Vector.Executables != attest.ClaimContraindicatedRuntime || !hasProblem(res, "/tmp/implant") {
		t.Fatalf("unreleased file under IMA: %+v", res)
	}
	mustBoot(t, tp, "2.0", "/boot/vmlinuz-2.0") // a clean IMA list

	// Without IMA, the integrity monitor's hashes are compared with the
	// released files: the released camd passes, a changed one does not.
	for _, c := range []struct {
		sum  [32]byte
		want int
	}{{camd, attest.ClaimApprovedFiles}, {sha256.Sum256([]byte("patched camd")), attest.ClaimContraindicatedFiles}} {
		ev, err := tp.Quote(d.freshNonce(t), attestPCRs)
		if err != nil {
			t.Fatal(err)
		}
		ev.Files = []api.FileMeasurement{{Path: "/usr/bin/camd", SHA256: hex.EncodeToString(c.sum[:])}}
		res, err := d.client.Attest(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if res.Vector.FileSystem != c.want {
			t.Fatalf("integrity monitor file %x: file-system claim %d, want %d (%+v)", c.sum[:4], res.Vector.FileSystem, c.want, res)
		}
	}

	// Two installed releases that both publish PCRs: which describes the
	// boot is ambiguous, so neither is used, and the result says so.
	if code, _, e := postReferenceValues(t, ts, "cam-extra", "1.0.0", "", bootManifest(t, tp, "cam-extra", "1.0.0")); code != 201 {
		t.Fatalf("reference values of cam-extra: %d %+v", code, e)
	}
	reportInstalled(t, d, fw2, api.InstalledRelease{Product: "cam-extra", Version: "1.0.0"})
	res = d.attest(t, d.freshNonce(t))
	if res.Status != api.AttestWarning || !hasProblem(res, "cam-extra 1.0.0, cam-fw 2.0.0 all publish PCR values") {
		t.Fatalf("ambiguous PCR manifests: %+v", res)
	}

	// The same 2.0 measurements from a device claiming to run 1.0: the
	// PCRs are not 1.0's.
	reportInstalled(t, d, fw1)
	res = d.attest(t, d.freshNonce(t))
	if res.Status != api.AttestContraindicated || res.Vector.Configuration != attest.ClaimUnsupportableConfig ||
		!hasProblem(res, `reference "manifest cam-fw 1.0.0": PCR 0 is`) {
		t.Fatalf("2.0 measurements with inventory 1.0: %+v", res)
	}

	// Once 1.0.0 is below the version floor its reference values approve
	// nothing: a device claiming it, even booting it, is not affirmed.
	if code := ts.Do(t, "POST", "/api/v1/version-floors", "", api.VersionFloor{Product: "cam-fw", MinVersion: "2.0.0"}, nil); code != 200 {
		t.Fatalf("set floor: %d", code)
	}
	mustBoot(t, tp, "1.0", "/boot/vmlinuz-1.0")
	res = d.attest(t, d.freshNonce(t))
	if res.Status == api.AttestAffirming || !hasProblem(res, "cam-fw 1.0.0 are not used: the release is below the version floor 2.0.0") {
		t.Fatalf("1.0 below the floor: %+v", res)
	}
}

func TestInventoryInstalledValidated(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "host")
	many := make([]api.InstalledRelease, api.MaxInstalled+1)
	for i := range many {
		many[i] = api.InstalledRelease{Product: "p" + hex.EncodeToString([]byte{byte(i)}), Version: "1.0.0"}
	}
	for _, tc := range []struct {
		name      string
		installed []api.InstalledRelease
		msg       string
	}{
		{"too many", many, "more than 64"},
		{"bad product", []api.InstalledRelease{{Product: "../etc", Version: "1.0.0"}}, "installed[0].product"},
		{"empty version", []api.InstalledRelease{{Product: "cam", Version: ""}}, "installed[0].version"},
		{"product twice", []api.InstalledRelease{{Product: "cam", Version: "1.0.0"}, {Product: "cam", Version: "2.0.0"}}, "twice"},
	} {
		inv := inventory("host")
		inv.Installed = tc.installed
		_, err := d.client.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inv, Health: api.Health{Status: api.HealthHealthy}})
		wantCode(t, err, http.StatusBadRequest, "bad_request")
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v does not name %q", tc.name, err, tc.msg)
		}
	}
	inv := inventory("host")
	inv.Installed = many[:api.MaxInstalled]
	if _, err := d.client.Checkin(context.Background(), &api.CheckinRequest{Inventory: *inv, Health: api.Health{Status: api.HealthHealthy}}); err != nil {
		t.Fatalf("64 installed releases: %v", err)
	}
	var shown api.Device
	ts.Do(t, "GET", "/api/v1/devices/"+d.id, "", nil, &shown)
	if shown.Inventory == nil || len(shown.Inventory.Installed) != api.MaxInstalled {
		t.Fatalf("stored inventory lists %d installed releases", func() int {
			if shown.Inventory == nil {
				return -1
			}
			return len(shown.Inventory.Installed)
		}())
	}
}
