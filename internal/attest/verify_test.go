package attest_test

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
)

func TestVerifyAffirming(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 80, 50)
	nonce := newNonce(t)
	r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, d.policy(t))
	wantStatus(t, r, api.AttestAffirming)
	if len(r.Problems) != 0 {
		t.Errorf("problems: %q", r.Problems)
	}
	want := api.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 2, Hardware: 2}
	if r.Vector != want {
		t.Errorf("vector = %+v, want %+v", r.Vector, want)
	}
	if r.SecureBoot != "enabled" || !r.SecureBootVerified {
		t.Errorf("secure boot = %q verified=%v", r.SecureBoot, r.SecureBootVerified)
	}
	if !slices.Equal(r.Replayed, quotePCRs) {
		t.Errorf("replayed = %v, want %v", r.Replayed, quotePCRs)
	}
	if r.IMAEntries != 50 {
		t.Errorf("IMA entries = %d, want 50", r.IMAEntries)
	}
	if r.PolicyID != "test" {
		t.Errorf("policy ID = %q", r.PolicyID)
	}
}

func TestVerifyNoReferenceWarns(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	nonce := newNonce(t)
	r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, nil)
	wantStatus(t, r, api.AttestWarning)
	wantProblem(t, r, "no approved reference")
	if r.Vector.Configuration != attest.ClaimUnsafeConfig || r.Vector.Executables != attest.ClaimApprovedBoot {
		t.Errorf("vector = %+v", r.Vector)
	}
}

func TestVerifyNonce(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	pol := d.policy(t)
	old, fresh := newNonce(t), newNonce(t)
	ev := d.quote(t, old)

	// A stale quote answering an old nonce.
	r := attest.Verify(d.tpm.AKPublic(), ev, fresh, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "nonce")
	if r.Vector.InstanceIdentity != attest.ClaimCryptoValidationFailed || r.QuoteVerified {
		t.Errorf("vector = %+v, quote verified = %v", r.Vector, r.QuoteVerified)
	}
	// The same, with the evidence's nonce field rewritten to the fresh one.
	ev.Nonce = fresh
	r = attest.Verify(d.tpm.AKPublic(), ev, fresh, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "nonce")
	// No nonce issued.
	r = attest.Verify(d.tpm.AKPublic(), ev, nil, pol)
	wantStatus(t, r, api.AttestContraindicated)
}

func TestVerifyPCRMismatch(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	nonce := newNonce(t)
	ev := d.quote(t, nonce)
	ev.PCRs[4].Digest = bytes.Repeat([]byte{7}, 32)
	r := attest.Verify(d.tpm.AKPublic(), ev, nonce, d.policy(t))
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "PCR digest does not match")
}

func TestVerifyOtherAK(t *testing.T) {
	t.Parallel()
	d, other := newDevice(t, 30, 0), newDevice(t, 30, 0)
	nonce := newNonce(t)
	r := attest.Verify(other.tpm.AKPublic(), d.quote(t, nonce), nonce, d.policy(t))
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "quote signature")
	r = attest.Verify([]byte("garbage"), d.quote(t, nonce), nonce, d.policy(t))
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "AK public area")
}

func TestVerifyTamperedEventLog(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	nonce := newNonce(t)
	pol := d.policy(t)

	t.Run("event altered", func(t *testing.T) {
		ev := d.quote(t, nonce)
		log := d.tpm.EventLog()
		for i, e := range log.Events {
			if e.Type == softtpm.EvEFIBootServicesApplication {
				// Claim another boot loader was loaded.
				log.Events[i].Digest = sha256.Sum256([]byte("innocent-looking-loader.efi"))
				break
			}
		}
		ev.EventLog = log.Bytes()
		r := attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
		wantStatus(t, r, api.AttestContraindicated)
		wantProblem(t, r, "does not replay", "[4]")
	})
	t.Run("event removed", func(t *testing.T) {
		ev := d.quote(t, nonce)
		log := d.tpm.EventLog()
		for i, e := range log.Events {
			if e.PCR == 1 && e.Type == softtpm.EvEFIVariableBoot {
				log.Events = slices.Delete(log.Events, i, i+1)
				break
			}
		}
		ev.EventLog = log.Bytes()
		r := attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
		wantStatus(t, r, api.AttestContraindicated)
		wantProblem(t, r, "does not replay", "[1]")
	})
	t.Run("secure boot data altered", func(t *testing.T) {
		// The digest still replays, but the data no longer matches it: the
		// Secure Boot state must not be believed.
		ev := d.quote(t, nonce)
		log := d.tpm.EventLog()
		log.Events[0].Data = softtpm.UEFIVariable(softtpm.EFIGlobalVariable, "SecureBoot", []byte{0})
		ev.EventLog = log.Bytes()
		r := attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
		if r.SecureBootVerified {
			t.Fatal("Secure Boot state verified from altered event data")
		}
		wantProblem(t, r, "Secure Boot state unverified")
	})
	t.Run("garbage", func(t *testing.T) {
		ev := d.quote(t, nonce)
		ev.EventLog = []byte{1, 2, 3}
		r := attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
		wantStatus(t, r, api.AttestContraindicated)
		wantProblem(t, r, "event log")
	})
}

func TestVerifyForgedLogKnob(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	pol := d.policy(t)
	// The device hides its real boot loader behind a log that names
	// another: the TPM's PCRs still hold the real one.
	log := d.tpm.EventLog()
	for i, e := range log.Events {
		if e.Type == softtpm.EvEFIBootServicesApplication {
			log.Events[i].Digest = sha256.Sum256([]byte("approved-loader.efi"))
		}
	}
	d.tpm.SetEventLog(log)
	nonce := newNonce(t)
	r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "does not replay", "[4]")
}

func TestVerifyUnloggedMeasurement(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	pol := d.policy(t)
	pol.Reference = nil
	d.tpm.Extend(4, sha256.Sum256([]byte("bootkit")))
	nonce := newNonce(t)
	r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "does not replay", "[4]")
}

func TestVerifyEmptyLogZeroPCRs(t *testing.T) {
	t.Parallel()
	tpm, err := softtpm.New(softtpm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nonce := newNonce(t)
	ev, err := tpm.Quote(nonce, quotePCRs)
	if err != nil {
		t.Fatal(err)
	}
	r := attest.Verify(tpm.AKPublic(), ev, nonce, nil)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "no measured-boot event log")

	// A log with only its header "replays" vacuously: each boot PCR must
	// still have events.
	ev.EventLog = (&softtpm.EventLog{}).Bytes()
	r = attest.Verify(tpm.AKPublic(), ev, nonce, nil)
	wantStatus(t, r, api.AttestContraindicated)
	for p := 0; p < 8; p++ {
		wantProblem(t, r, "boot PCR", string(rune('0'+p)), "no events")
	}
}

func TestVerifyMissingSeparator(t *testing.T) {
	t.Parallel()
	tpm, err := softtpm.New(softtpm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for p := 0; p < 8; p++ {
		tpm.Measure(p, softtpm.EvPostCode, []byte("firmware"))
		if p != 3 {
			tpm.Measure(p, softtpm.EvSeparator, []byte{0, 0, 0, 0})
		}
	}
	nonce := newNonce(t)
	ev, err := tpm.Quote(nonce, quotePCRs)
	if err != nil {
		t.Fatal(err)
	}
	r := attest.Verify(tpm.AKPublic(), ev, nonce, nil)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "boot PCR 3 has no EV_SEPARATOR")
	if len(r.Problems) > 3 {
		t.Logf("problems: %q", r.Problems)
	}
}

func TestVerifyBootPCRNotQuoted(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	nonce := newNonce(t)
	pol := d.policy(t)
	pol.Reference = nil
	r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce, 0, 1, 2, 3, 4, 5, 6), nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "boot PCR 7 is not in the quote")
}

func TestVerifySecureBootDisabled(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	d.boot(t, softtpm.BootConfig{SecureBoot: false})
	nonce := newNonce(t)
	ev := d.quote(t, nonce)
	r := attest.Verify(d.tpm.AKPublic(), ev, nonce, d.policy(t))
	wantStatus(t, r, api.AttestWarning)
	wantProblem(t, r, "Secure Boot is disabled")
	// The agent's claim of "enabled" is contradicted by the log.
	wantProblem(t, r, `reported "enabled"`)
	if r.SecureBoot != "disabled" || !r.SecureBootVerified {
		t.Errorf("secure boot = %q verified=%v", r.SecureBoot, r.SecureBootVerified)
	}
}

func TestVerifyReference(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	nonce := newNonce(t)
	r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, nil)
	ref, err := attest.CaptureReference("baseline", r, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol := &attest.Policy{Reference: ref}

	// Rebooting the same release matches the baseline.
	d.boot(t, softtpm.BootConfig{SecureBoot: true, Events: 30})
	nonce = newNonce(t)
	r = attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, pol)
	wantStatus(t, r, api.AttestAffirming)

	// New firmware does not.
	d.boot(t, softtpm.BootConfig{SecureBoot: true, Events: 30, Firmware: "2.0"})
	nonce = newNonce(t)
	r = attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, `reference "baseline": PCR 0 is`)
	if r.Vector.Configuration != attest.ClaimUnsupportableConfig {
		t.Errorf("configuration = %d", r.Vector.Configuration)
	}

	// A reference cannot be captured from a failed quote.
	r = attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), newNonce(t), pol)
	if _, err := attest.CaptureReference("bad", r, nil); err == nil {
		t.Error("captured a reference from a failed quote")
	}
}

func TestVerifyIMA(t *testing.T) {
	t.Parallel()
	t.Run("unknown hash", func(t *testing.T) {
		d := newDevice(t, 30, 10)
		d.tpm.MeasureFile("/tmp/.x/miner", sha256.Sum256([]byte("not released")))
		nonce := newNonce(t)
		r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, d.policy(t))
		wantStatus(t, r, api.AttestContraindicated)
		wantProblem(t, r, "/tmp/.x/miner", "unknown SHA-256")
		if r.Vector.Executables != attest.ClaimContraindicatedRuntime {
			t.Errorf("executables = %d", r.Vector.Executables)
		}
	})
	t.Run("tampered list", func(t *testing.T) {
		d := newDevice(t, 30, 10)
		d.tpm.MeasureFile("/tmp/.x/miner", sha256.Sum256([]byte("not released")))
		pol := d.policy(t)
		nonce := newNonce(t)
		ev := d.quote(t, nonce)
		// Hide the miner behind a released file's name and hash.
		list := d.tpm.IMAList()
		last := &list.Entries[len(list.Entries)-1]
		last.Path, last.FileHash = "/usr/lib/bulwark/lib001.so", d.files["/usr/lib/bulwark/lib001.so"]
		ev.IMALog = list.Bytes()
		r := attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
		wantStatus(t, r, api.AttestContraindicated)
		wantProblem(t, r, "IMA list does not replay")
		// Dropping the entry fails too: the quote covers it.
		list.Entries = list.Entries[:len(list.Entries)-1]
		ev.IMALog = list.Bytes()
		r = attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
		wantStatus(t, r, api.AttestContraindicated)
		wantProblem(t, r, "IMA list does not replay")
	})
	t.Run("list grew after the quote", func(t *testing.T) {
		d := newDevice(t, 30, 10)
		pol := d.policy(t)
		nonce := newNonce(t)
		ev := d.quote(t, nonce)
		d.tpm.MeasureFile("/usr/bin/later", sha256.Sum256([]byte("later")))
		ev.IMALog = d.tpm.IMAList().Bytes()
		r := attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
		wantStatus(t, r, api.AttestAffirming)
		if r.IMAEntries != 10 {
			t.Errorf("IMA entries = %d, want the 10 quoted", r.IMAEntries)
		}
	})
	t.Run("violation and legacy template", func(t *testing.T) {
		d := newDevice(t, 30, 5)
		h := d.files["/usr/lib/bulwark/lib001.so"]
		d.tpm.MeasureIMA(softtpm.IMAEntry{PCR: 10, Template: "ima", FileHash: h, Path: "/usr/lib/bulwark/lib001.so"})
		pol := d.policy(t)
		nonce := newNonce(t)
		r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, pol)
		// A legacy entry replays, but its SHA-1 digest cannot be checked.
		wantStatus(t, r, api.AttestContraindicated)
		wantProblem(t, r, "lib001.so is measured with sha1")

		d = newDevice(t, 30, 5)
		d.tpm.MeasureIMA(softtpm.IMAEntry{PCR: 10, Template: "ima-ng", Path: "/var/log/app.log", Violation: true})
		pol = d.policy(t)
		r = attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, pol)
		wantStatus(t, r, api.AttestWarning)
		wantProblem(t, r, "violation", "/var/log/app.log")
	})
	t.Run("no allowed list", func(t *testing.T) {
		d := newDevice(t, 30, 5)
		pol := d.policy(t)
		pol.AllowedFiles = nil
		nonce := newNonce(t)
		r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce), nonce, pol)
		wantStatus(t, r, api.AttestWarning)
		wantProblem(t, r, "no list of released software")
	})
	t.Run("PCR 10 not quoted", func(t *testing.T) {
		d := newDevice(t, 30, 5)
		nonce := newNonce(t)
		r := attest.Verify(d.tpm.AKPublic(), d.quote(t, nonce, 0, 1, 2, 3, 4, 5, 6, 7), nonce, d.policy(t))
		wantStatus(t, r, api.AttestContraindicated)
		wantProblem(t, r, "PCR 10 is not in the quote")
	})
}

func TestVerifyFiles(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 0)
	pol := d.policy(t)
	pol.Files = map[string]string{
		"/usr/bin/bulwark-agent":  "aa00000000000000000000000000000000000000000000000000000000000000",
		"/etc/bulwark/agent.json": "bb00000000000000000000000000000000000000000000000000000000000000",
	}
	nonce := newNonce(t)
	ev := d.quote(t, nonce)
	ev.Files = []api.FileMeasurement{
		{Path: "/usr/bin/bulwark-agent", SHA256: "AA00000000000000000000000000000000000000000000000000000000000000"},
		{Path: "/etc/bulwark/agent.json", SHA256: "bb00000000000000000000000000000000000000000000000000000000000000"},
	}
	r := attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
	wantStatus(t, r, api.AttestAffirming)
	if r.Vector.FileSystem != attest.ClaimApprovedFiles {
		t.Errorf("file-system = %d", r.Vector.FileSystem)
	}
	ev.Files[1].SHA256 = "cc00000000000000000000000000000000000000000000000000000000000000"
	r = attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "/etc/bulwark/agent.json has SHA-256 cc")
	ev.Files = ev.Files[:1]
	r = attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
	wantStatus(t, r, api.AttestWarning)
	wantProblem(t, r, "/etc/bulwark/agent.json was not reported")
}

func TestVerifyNilEvidence(t *testing.T) {
	t.Parallel()
	r := attest.Verify(nil, nil, []byte("nonce"), nil)
	wantStatus(t, r, api.AttestContraindicated)
}

// The caches key on content: evidence altered in place after a
// verification is appraised afresh.
func TestVerifyCachesKeyOnContent(t *testing.T) {
	t.Parallel()
	d := newDevice(t, 30, 10)
	pol := d.policy(t)
	nonce := newNonce(t)
	ev := d.quote(t, nonce)
	wantStatus(t, attest.Verify(d.tpm.AKPublic(), ev, nonce, pol), api.AttestAffirming)

	i := bytes.Index(ev.IMALog, []byte("lib003.so"))
	ev.IMALog[i] = 'L'
	r := attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "IMA list does not replay")
	ev.IMALog[i] = 'l'

	// Flip a bit of the last event's digest in place.
	last := d.tpm.EventLog().Events
	digest := last[len(last)-1].Digest
	k := bytes.Index(ev.EventLog, digest[:])
	if k < 0 {
		t.Fatal("digest not found in the encoded log")
	}
	ev.EventLog[k] ^= 1
	r = attest.Verify(d.tpm.AKPublic(), ev, nonce, pol)
	wantStatus(t, r, api.AttestContraindicated)
	wantProblem(t, r, "does not replay", "[5]")
	ev.EventLog[k] ^= 1
	wantStatus(t, attest.Verify(d.tpm.AKPublic(), ev, nonce, pol), api.AttestAffirming)
}
