package attest_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
)

const h64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDecodeReferenceManifest(t *testing.T) {
	t.Parallel()
	good := `{"product":"gw-100","version":"2.3.1","pcrs":{"0":"` + h64 + `","7":"` + h64 + `"},"files":[{"path":"/usr/bin/app","sha256":"` + h64 + `"}]}`
	m, err := attest.DecodeReferenceManifest(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	ref := m.Reference()
	if ref.ID != "gw-100 2.3.1" || len(ref.PCRs) != 2 || len(ref.PCRs[7]) != 32 {
		t.Errorf("reference = %+v", ref)
	}
	if !m.AllowedFiles()[h64] {
		t.Error("file hash not allowed")
	}
	bad := map[string]string{
		"unknown field":  `{"product":"p","version":"1","pcrs":{"0":"` + h64 + `"},"extra":1}`,
		"trailing data":  good + `{}`,
		"PCR 24":         `{"product":"p","version":"1","pcrs":{"24":"` + h64 + `"}}`,
		"PCR 07":         `{"product":"p","version":"1","pcrs":{"07":"` + h64 + `"}}`,
		"uppercase hex":  `{"product":"p","version":"1","pcrs":{"0":"` + strings.ToUpper(h64) + `"}}`,
		"short hash":     `{"product":"p","version":"1","pcrs":{"0":"abcd"}}`,
		"relative path":  `{"product":"p","version":"1","files":[{"path":"bin/app","sha256":"` + h64 + `"}]}`,
		"duplicate file": `{"product":"p","version":"1","files":[{"path":"/a","sha256":"` + h64 + `"},{"path":"/a","sha256":"` + h64 + `"}]}`,
		"no version":     `{"product":"p","pcrs":{"0":"` + h64 + `"}}`,
		"empty":          `{"product":"p","version":"1"}`,
		"not JSON":       `product: p`,
		"wrong type":     `{"product":"p","version":1}`,
	}
	for name, in := range bad {
		if _, err := attest.DecodeReferenceManifest(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted %s", name, in)
		}
	}
}

func TestReferenceManifestFromBaseline(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 5)
	nonce := newNonce(t)
	r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, nil)
	ref, err := attest.CaptureReference("baseline", r, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := ref.Manifest("gw-100", "1.0")
	for _, h := range d.files {
		m.Files = append(m.Files, attest.ManifestFile{Path: "/x/" + string(rune('a'+len(m.Files))), SHA256: hexOf(h)})
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := attest.DecodeReferenceManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode own manifest: %v\n%s", err, b)
	}
	pol := &attest.Policy{Reference: m2.Reference(), AllowedFiles: m2.AllowedFiles()}
	nonce = newNonce(t)
	r = attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, pol)
	wantStatus(t, r, api.AttestAffirming)
}
