package attest_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the committed fuzz seed corpora in testdata/fuzz")

// fuzzDevice is a booted softtpm with IMA, and a policy it satisfies.
func fuzzDevice(f *testing.F) (*device, *attest.Policy) {
	f.Helper()
	d := newDevice(f, 40, 8)
	return d, d.policy(f)
}

func FuzzParseIMALog(f *testing.F) {
	d, _ := fuzzDevice(f)
	f.Add(d.tpm.IMAList().Bytes())
	legacy := softtpm.IMAList{Entries: []softtpm.IMAEntry{{PCR: 10, Template: "ima", Path: "/bin/sh"}, {PCR: 10, Path: "/x", Violation: true}}}
	f.Add(legacy.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := attest.ParseIMALog(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.PCR < 0 || e.PCR > 23 || len(e.Path) > len(b) || len(e.FileDigest) > len(b) {
				t.Fatalf("implausible entry %+v from %d bytes", e, len(b))
			}
		}
	})
}

func FuzzVerifyEventLog(f *testing.F) {
	d, pol := fuzzDevice(f)
	nonce := make([]byte, api.NonceSize)
	ev := d.quote(f, nonce)
	f.Add(ev.EventLog, ev.IMALog)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, log, ima []byte) {
		e := *ev
		e.EventLog, e.IMALog = log, ima
		r := attest.Verify(d.tpm.AKPublic(), &e, nonce, pol)
		if !r.QuoteVerified {
			t.Fatalf("the quote stopped verifying: %q", r.Problems)
		}
		if r.Status == api.AttestAffirming && len(r.Problems) != 0 {
			t.Fatalf("affirming with problems %q", r.Problems)
		}
		if r.Status != api.AttestAffirming && len(r.Problems) == 0 {
			t.Fatalf("%s without a problem", r.Status)
		}
	})
}

func FuzzVerify(f *testing.F) {
	d, pol := fuzzDevice(f)
	nonce := make([]byte, api.NonceSize)
	good, err := json.Marshal(d.quote(f, nonce))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"nonce":"AAAA","quote":"/1RDR4AYAAA=","signature":"ABgACw==","pcrs":[{"index":0,"digest":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev api.Evidence
		if json.Unmarshal(b, &ev) != nil {
			return
		}
		r := attest.Verify(d.tpm.AKPublic(), &ev, nonce, pol)
		switch r.Status {
		case api.AttestAffirming, api.AttestWarning, api.AttestContraindicated, api.AttestNone:
		default:
			t.Fatalf("status %q", r.Status)
		}
		if r.Status != api.AttestAffirming && len(r.Problems) == 0 {
			t.Fatalf("%s without a problem", r.Status)
		}
	})
}

// TestWriteFuzzSeeds rewrites the committed seed corpora from softtpm
// (go test -run TestWriteFuzzSeeds -update-seeds).
// TestWriteFuzzSeeds makes the fuzz seed corpora. With -update-seeds it
// rewrites testdata/fuzz; without, it writes them to a temporary directory
// and checks that every seed it makes is committed (the contents differ
// from run to run: keys and nonces are random).
func TestWriteFuzzSeeds(t *testing.T) {
	base := filepath.Join("testdata", "fuzz")
	if !*updateSeeds {
		base = t.TempDir()
	}
	d := newDevice(t, 40, 8)
	nonce := make([]byte, api.NonceSize)
	ev := d.quote(t, nonce)
	tampered := d.tpm.EventLog()
	tampered.Events[3].Data = []byte("tampered")
	noSep := softtpm.EventLog{}
	for p := 0; p < 8; p++ {
		noSep.Add(p, softtpm.EvPostCode, []byte("code"))
	}
	legacy := softtpm.IMAList{Entries: []softtpm.IMAEntry{{PCR: 10, Template: "ima", Path: "/bin/sh"}, {PCR: 10, Path: "/x", Violation: true}}}
	evJSON, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	write := func(fuzz, name string, args ...[]byte) {
		dir := filepath.Join(base, fuzz)
		if !*updateSeeds {
			if _, err := os.Stat(filepath.Join("testdata", "fuzz", fuzz, name)); err != nil {
				t.Errorf("seed %s/%s is not committed (run go test -run TestWriteFuzzSeeds -update-seeds): %v", fuzz, name, err)
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s := "go test fuzz v1\n"
		for _, a := range args {
			s += fmt.Sprintf("[]byte(%q)\n", a)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("FuzzParseIMALog", "ima-ng", ev.IMALog)
	write("FuzzParseIMALog", "legacy-and-violation", legacy.Bytes())
	write("FuzzParseIMALog", "truncated", ev.IMALog[:len(ev.IMALog)-7])
	write("FuzzVerifyEventLog", "boot", ev.EventLog, ev.IMALog)
	write("FuzzVerifyEventLog", "tampered", tampered.Bytes(), ev.IMALog)
	write("FuzzVerifyEventLog", "no-separator", noSep.Bytes(), nil)
	write("FuzzVerifyEventLog", "header-only", (&softtpm.EventLog{}).Bytes(), nil)
	write("FuzzVerify", "evidence", evJSON)
	write("FuzzVerify", "empty", []byte(`{}`))
}
