package attest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-attestation/attest"
	"github.com/google/go-tpm/legacy/tpm2"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// AR4SI trustworthiness claim values (draft-ietf-rats-ar4si, as the
// veraison/ear library names them) that Verify uses.
const (
	ClaimNone                   = 0
	ClaimUnexpectedEvidence     = 1
	ClaimCryptoValidationFailed = 99

	ClaimTrustworthyInstance   = 2  // instance-identity
	ClaimUntrustworthyInstance = 96 // instance-identity

	ClaimApprovedConfig      = 2  // configuration
	ClaimUnsafeConfig        = 32 // configuration
	ClaimUnsupportableConfig = 96 // configuration

	ClaimApprovedRuntime        = 2  // executables
	ClaimApprovedBoot           = 3  // executables
	ClaimUnrecognizedRuntime    = 33 // executables
	ClaimContraindicatedRuntime = 96 // executables

	ClaimApprovedFiles        = 2  // file-system
	ClaimUnrecognizedFiles    = 32 // file-system
	ClaimContraindicatedFiles = 96 // file-system

	ClaimGenuineHardware = 2 // hardware
)

// DefaultBootPCRs returns the PCRs of the UEFI boot: 0-7 (firmware, its
// configuration, option ROMs, boot manager, GPT, Secure Boot policy).
func DefaultBootPCRs() []int { return []int{0, 1, 2, 3, 4, 5, 6, 7} }

// IMAPCR is the PCR the Linux IMA extends.
const IMAPCR = 10

// Policy is what evidence is appraised against. The zero Policy checks the
// quote, replays the event log for PCRs 0-7, and warns that there is no
// approved reference. A Policy must not be modified while Verify uses it.
type Policy struct {
	// ID names the policy in results (EAR ear.appraisal-policy-id); empty
	// means "bulwark-tpm-default".
	ID string
	// BootPCRs must all be quoted, have events in the event log
	// (including an EV_SEPARATOR) and replay; nil means DefaultBootPCRs().
	BootPCRs []int
	// Reference holds the expected final SHA-256 values of PCRs, from a
	// maker's signed ReferenceManifest or an admin-approved baseline
	// (CaptureReference). Nil means no approved reference: the
	// configuration claim is then a warning.
	Reference *Reference
	// AllowedFiles is the set of lowercase hex SHA-256 file digests of
	// released software. Every file IMA measured must be in it; nil means
	// no list, and IMA measurements are unrecognized (a warning).
	AllowedFiles map[string]bool
	// Files maps a path to its expected lowercase hex SHA-256, compared
	// with the agent's integrity monitor (Evidence.Files) on devices
	// without IMA. Nil makes no file-system claim.
	Files map[string]string
}

// Reference is the expected final values of PCRs in the SHA-256 bank.
type Reference struct {
	// ID names the reference (a manifest's product and version, or a
	// baseline's name) in problems and results.
	ID   string
	PCRs map[int][]byte
}

// Result is the appraisal of one piece of evidence. Status, Vector,
// Problems and SecureBoot map onto api.AttestationResult.
type Result struct {
	Status   string // api.AttestAffirming, AttestWarning or AttestContraindicated
	Vector   api.TrustVector
	Problems []string
	// SecureBoot is "enabled", "disabled" or "unknown"; SecureBootVerified
	// says whether it was read from the replayed event log (true) or is
	// the agent's unverified claim.
	SecureBoot         string
	SecureBootVerified bool
	// QuoteVerified is true when the quote was signed by the AK over the
	// expected nonce and the sent PCR values.
	QuoteVerified bool
	// PCRs are the quoted SHA-256 PCR values (only when QuoteVerified).
	PCRs map[int][]byte
	// Replayed lists the PCRs whose event-log (or, for PCR 10, IMA list)
	// replay matched the quoted value with at least one event.
	Replayed []int
	// IMAEntries is the number of IMA entries the quote vouches for.
	IMAEntries int
	// PolicyID is the appraisal policy's ID.
	PolicyID string
}

// maxProblemsPerCheck bounds the problems one check reports, so that a
// list of a thousand unknown files does not make a thousand lines.
const maxProblemsPerCheck = 20

type appraisal struct {
	r *Result
}

func (a *appraisal) problem(format string, args ...any) {
	a.r.Problems = append(a.r.Problems, fmt.Sprintf(format, args...))
}

// raise sets a claim to v unless it already holds a worse tier.
func raise(claim *int, v int) {
	if tier(v) > tier(*claim) || (tier(v) == tier(*claim) && v > *claim) {
		*claim = v
	}
}

// tier orders claim values: 0 none, 1 affirming, 2 warning, 3
// contraindicated (AR4SI: 2..31, 32..95, 96..127; 1 and -1 are warnings).
func tier(v int) int {
	switch {
	case v == 0:
		return 0
	case v >= 96:
		return 3
	case v >= 32 || v == 1 || v < 0:
		return 2
	default:
		return 1
	}
}

func statusOf(v api.TrustVector) string {
	worst := 0
	for _, c := range []int{v.InstanceIdentity, v.Configuration, v.Executables, v.FileSystem, v.Hardware, v.RuntimeOpaque, v.StorageOpaque, v.SourcedData} {
		worst = max(worst, tier(c))
	}
	switch worst {
	case 3:
		return api.AttestContraindicated
	case 2:
		return api.AttestWarning
	case 1:
		return api.AttestAffirming
	}
	return api.AttestNone
}

// akCache holds parsed AK public areas by their encoding: a server
// verifies the same few thousand AKs over and over.
var akCache struct {
	sync.Mutex
	m map[string]*attest.AKPublic
}

const akCacheMax = 1 << 14

func parseAK(b []byte) (*attest.AKPublic, error) {
	akCache.Lock()
	ak := akCache.m[string(b)]
	akCache.Unlock()
	if ak != nil {
		return ak, nil
	}
	ak, err := attest.ParseAKPublic(b)
	if err != nil {
		return nil, err
	}
	akCache.Lock()
	if akCache.m == nil || len(akCache.m) >= akCacheMax {
		akCache.m = make(map[string]*attest.AKPublic)
	}
	akCache.m[string(b)] = ak
	akCache.Unlock()
	return ak, nil
}

// Verify appraises evidence from a device whose AK public area (TPMT_PUBLIC,
// from Enrollment.AKPublic) is akPublic, answering nonce, under pol (nil
// means the zero Policy). It never fails: every failed or unverifiable
// check is a problem in the Result, reflected in its trust vector.
//
// The checks: the quote is signed by the AK over the nonce (compared in
// constant time) and over the PCR values sent; the quote covers every
// boot PCR; the measured-boot event log replays to the quoted values, and
// every boot PCR has events, including an EV_SEPARATOR (so an empty log
// with zero PCRs fails); Secure Boot is read from the replayed log; the
// PCRs equal pol.Reference; the IMA list, when sent, replays to PCR 10
// (recomputing SHA-256 template digests) and every file it measured is in
// pol.AllowedFiles; without IMA, the integrity monitor's file hashes equal
// pol.Files.
//
// Verify is safe for concurrent use.
func Verify(akPublic []byte, ev *api.Evidence, nonce []byte, pol *Policy) *Result {
	if pol == nil {
		pol = &Policy{}
	}
	r := &Result{SecureBoot: "unknown", PolicyID: pol.ID}
	if r.PolicyID == "" {
		r.PolicyID = "bulwark-tpm-default"
	}
	a := &appraisal{r: r}
	defer func() { r.Status = statusOf(r.Vector) }()
	if ev == nil {
		a.problem("no evidence")
		r.Vector.InstanceIdentity = ClaimCryptoValidationFailed
		return r
	}
	pcrs, ok := a.verifyQuote(akPublic, ev, nonce)
	if !ok {
		return r
	}
	bootPCRs := pol.BootPCRs
	if bootPCRs == nil {
		bootPCRs = DefaultBootPCRs()
	}
	a.verifyBoot(ev, pcrs, bootPCRs)
	a.compareReference(pol.Reference)
	if len(ev.IMALog) > 0 {
		a.verifyIMA(ev.IMALog, pol.AllowedFiles)
	} else {
		a.compareFiles(ev.Files, pol.Files)
	}
	slices.Sort(r.Replayed)
	return r
}

// sbCache holds the Secure Boot state parsed from the PCR 2 and 7 events
// (which go-attestation reads by parsing every certificate in PK, KEK and
// db), keyed by a hash of those events: a fleet boots the same few
// configurations.
var sbCache struct {
	sync.Mutex
	m map[[32]byte]sbState
}

type sbState struct {
	enabled bool
	err     error
}

const sbCacheMax = 4096

// secureBootState is attest.ParseSecurebootState(events).Enabled, cached.
func secureBootState(events []attest.Event) (bool, error) {
	h := sha256.New()
	var hdr [16]byte
	for _, e := range events {
		if e.Index != 2 && e.Index != 7 {
			continue
		}
		binary.LittleEndian.PutUint32(hdr[0:], uint32(e.Index))
		binary.LittleEndian.PutUint32(hdr[4:], uint32(e.Type))
		binary.LittleEndian.PutUint32(hdr[8:], uint32(len(e.Data)))
		binary.LittleEndian.PutUint32(hdr[12:], uint32(len(e.Digest)))
		h.Write(hdr[:])
		h.Write(e.Data)
		h.Write(e.Digest)
	}
	var key [32]byte
	h.Sum(key[:0])
	sbCache.Lock()
	st, ok := sbCache.m[key]
	sbCache.Unlock()
	if ok {
		return st.enabled, st.err
	}
	sb, err := attest.ParseSecurebootState(events)
	st = sbState{err: err}
	if err == nil {
		st.enabled = sb.Enabled
	}
	sbCache.Lock()
	if sbCache.m == nil || len(sbCache.m) >= sbCacheMax {
		sbCache.m = make(map[[32]byte]sbState)
	}
	sbCache.m[key] = st
	sbCache.Unlock()
	return st.enabled, st.err
}

// verifyQuote checks the quote and returns the quoted PCRs.
func (a *appraisal) verifyQuote(akPublic []byte, ev *api.Evidence, nonce []byte) ([]attest.PCR, bool) {
	r := a.r
	fail := func(format string, args ...any) ([]attest.PCR, bool) {
		a.problem(format, args...)
		r.Vector.InstanceIdentity = ClaimCryptoValidationFailed
		return nil, false
	}
	if len(nonce) == 0 {
		return fail("no nonce was issued for this evidence")
	}
	if len(ev.Quote) > api.MaxTPMStructure || len(ev.Signature) > api.MaxTPMStructure {
		return fail("quote or signature larger than %d bytes", api.MaxTPMStructure)
	}
	if subtle.ConstantTimeCompare(ev.Nonce, nonce) != 1 {
		return fail("nonce: the evidence answers another nonce (stale or replayed)")
	}
	ak, err := parseAK(akPublic)
	if err != nil {
		return fail("AK public area: %v", err)
	}
	if len(ev.PCRs) > api.MaxPCRIndex+1 {
		return fail("%d PCR values sent; at most %d", len(ev.PCRs), api.MaxPCRIndex+1)
	}
	pcrs := make([]attest.PCR, 0, len(ev.PCRs))
	seen := map[int]bool{}
	for _, p := range ev.PCRs {
		if p.Index < 0 || p.Index > api.MaxPCRIndex || seen[p.Index] {
			return fail("PCR value with index %d is out of range or repeated", p.Index)
		}
		if len(p.Digest) != sha256.Size {
			return fail("PCR %d: digest is %d bytes, not a SHA-256 bank value", p.Index, len(p.Digest))
		}
		seen[p.Index] = true
		pcrs = append(pcrs, attest.PCR{Index: p.Index, Digest: p.Digest, DigestAlg: crypto.SHA256})
	}
	// The signature first; only then look inside the quote.
	if err := ak.Verify(attest.Quote{Quote: ev.Quote, Signature: ev.Signature}, pcrs, nonce); err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "nonce"):
			return fail("nonce: the quote was made for another nonce (stale or replayed)")
		case strings.Contains(msg, "digest didn't match"):
			return fail("PCR values: the quoted PCR digest does not match the PCR values sent")
		case strings.Contains(msg, "signature"):
			return fail("quote signature: not signed by the device's attestation key: %v", err)
		}
		return fail("quote: %v", err)
	}
	att, err := tpm2.DecodeAttestationData(ev.Quote)
	if err != nil || att.AttestedQuoteInfo == nil {
		return fail("quote: %v", err)
	}
	if subtle.ConstantTimeCompare(att.ExtraData, nonce) != 1 {
		return fail("nonce: the quote was made for another nonce (stale or replayed)")
	}
	if att.AttestedQuoteInfo.PCRSelection.Hash != tpm2.AlgSHA256 {
		return fail("quote: PCR bank %v; the SHA-256 bank is required", att.AttestedQuoteInfo.PCRSelection.Hash)
	}
	r.QuoteVerified = true
	r.Vector.InstanceIdentity = ClaimTrustworthyInstance
	r.Vector.Hardware = ClaimGenuineHardware
	r.PCRs = make(map[int][]byte, len(pcrs))
	for _, p := range pcrs {
		r.PCRs[p.Index] = p.Digest
	}
	return pcrs, true
}

var separatorData = [][]byte{{0, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff}, {1, 0, 0, 0}}

// verifyBoot replays the event log against the quoted PCRs.
func (a *appraisal) verifyBoot(ev *api.Evidence, pcrs []attest.PCR, bootPCRs []int) {
	r := a.r
	bad := false
	for _, p := range bootPCRs {
		if _, ok := r.PCRs[p]; !ok {
			a.problem("boot PCR %d is not in the quote", p)
			bad = true
		}
	}
	claimSB := ev.SecureBoot
	if claimSB != "enabled" && claimSB != "disabled" {
		claimSB = "unknown"
	}
	r.SecureBoot = claimSB
	if len(ev.EventLog) == 0 {
		a.problem("no measured-boot event log: boot PCRs %v are unexplained", bootPCRs)
		raise(&r.Vector.Configuration, ClaimUnsupportableConfig)
		raise(&r.Vector.Executables, ClaimContraindicatedRuntime)
		return
	}
	if len(ev.EventLog) > api.MaxEventLog {
		a.problem("event log larger than %d bytes", api.MaxEventLog)
		raise(&r.Vector.Configuration, ClaimUnsupportableConfig)
		raise(&r.Vector.Executables, ClaimContraindicatedRuntime)
		return
	}
	el, logKey, err := parseEventLog(ev.EventLog)
	if err != nil {
		a.problem("event log: %v", err)
		raise(&r.Vector.Configuration, ClaimUnsupportableConfig)
		raise(&r.Vector.Executables, ClaimContraindicatedRuntime)
		return
	}
	// PCR 10 belongs to IMA, not to firmware.
	replayPCRs := make([]attest.PCR, 0, len(pcrs))
	for _, p := range pcrs {
		if p.Index != IMAPCR {
			replayPCRs = append(replayPCRs, p)
		}
	}
	events, err := replayBoot(el, logKey, replayPCRs)
	if err != nil {
		var re attest.ReplayError
		if errors.As(err, &re) {
			a.problem("event log does not replay to the quoted PCRs %v (tampered log or unlogged measurements)", re.InvalidPCRs)
		} else {
			a.problem("event log: %v", err)
		}
		raise(&r.Vector.Configuration, ClaimUnsupportableConfig)
		raise(&r.Vector.Executables, ClaimContraindicatedRuntime)
		return
	}
	count := map[int]int{}
	sep := map[int]bool{}
	for _, e := range events {
		count[e.Index]++
		if e.Type == attest.EventType(0x04) {
			d := sha256.Sum256(e.Data)
			if bytes.Equal(d[:], e.Digest) && slices.ContainsFunc(separatorData, func(s []byte) bool { return bytes.Equal(s, e.Data) }) {
				sep[e.Index] = true
			}
		}
	}
	for i := range count {
		r.Replayed = append(r.Replayed, i)
	}
	for _, p := range bootPCRs {
		if _, quoted := r.PCRs[p]; !quoted {
			continue
		}
		switch {
		case count[p] == 0:
			a.problem("boot PCR %d has no events in the event log", p)
			bad = true
		case !sep[p]:
			a.problem("boot PCR %d has no EV_SEPARATOR in the event log", p)
			bad = true
		}
	}
	if bad {
		raise(&r.Vector.Configuration, ClaimUnsupportableConfig)
		raise(&r.Vector.Executables, ClaimContraindicatedRuntime)
		return
	}
	raise(&r.Vector.Executables, ClaimApprovedBoot)

	if count[7] > 0 {
		enabled, err := secureBootState(events)
		if err == nil {
			r.SecureBootVerified = true
			r.SecureBoot = "disabled"
			if enabled {
				r.SecureBoot = "enabled"
			}
			if claimSB != "unknown" && claimSB != r.SecureBoot {
				a.problem("Secure Boot: the agent reported %q but the measured log says %q", claimSB, r.SecureBoot)
				raise(&r.Vector.Configuration, ClaimUnsafeConfig)
			}
		} else {
			a.problem("Secure Boot state unverified (%v); the agent reports %q", err, claimSB)
		}
	} else {
		a.problem("Secure Boot state unverified (PCR 7 not replayed); the agent reports %q", claimSB)
	}
	// Secure Boot that is off, or on only by the agent's word, is a
	// warning.
	if !r.SecureBootVerified || r.SecureBoot != "enabled" {
		if r.SecureBootVerified {
			a.problem("Secure Boot is disabled")
		}
		raise(&r.Vector.Configuration, ClaimUnsafeConfig)
	}
}

// compareReference compares the quoted PCRs with the approved reference.
func (a *appraisal) compareReference(ref *Reference) {
	r := a.r
	if ref == nil || len(ref.PCRs) == 0 {
		a.problem("configuration: no approved reference to compare the PCRs with")
		raise(&r.Vector.Configuration, ClaimUnsafeConfig)
		return
	}
	idx := make([]int, 0, len(ref.PCRs))
	for i := range ref.PCRs {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	ok := true
	for _, i := range idx {
		got, quoted := r.PCRs[i]
		switch {
		case !quoted:
			a.problem("reference %q: PCR %d is not in the quote", ref.ID, i)
			ok = false
		case !bytes.Equal(got, ref.PCRs[i]):
			a.problem("reference %q: PCR %d is %x, expected %x", ref.ID, i, got, ref.PCRs[i])
			ok = false
		}
	}
	if !ok {
		raise(&r.Vector.Configuration, ClaimUnsupportableConfig)
		return
	}
	raise(&r.Vector.Configuration, ClaimApprovedConfig)
}

// verifyIMA replays the IMA list into PCR 10 and checks the files.
func (a *appraisal) verifyIMA(list []byte, allowed map[string]bool) {
	r := a.r
	fail := func(format string, args ...any) {
		a.problem(format, args...)
		raise(&r.Vector.Executables, ClaimContraindicatedRuntime)
	}
	if len(list) > api.MaxIMALog {
		fail("IMA list larger than %d bytes", api.MaxIMALog)
		return
	}
	quoted, ok := r.PCRs[IMAPCR]
	if !ok {
		fail("IMA list sent but PCR %d is not in the quote", IMAPCR)
		return
	}
	rp, err := replayIMA(list)
	if err != nil {
		fail("%v", err)
		return
	}
	entries := rp.entries
	// The list may have grown between the quote and reading it: the quote
	// vouches for the prefix that replays to the quoted value.
	verified := -1
	if n, ok := rp.prefix[[32]byte(quoted)]; ok {
		verified = n
	} else if allZero(quoted) {
		verified = 0
	}
	if verified < 0 {
		fail("IMA list does not replay to the quoted PCR %d (tampered or truncated list)", IMAPCR)
		return
	}
	r.Replayed = append(r.Replayed, IMAPCR)
	r.IMAEntries = verified
	unknown, violations := 0, 0
	var hexbuf [2 * 64]byte
	for i := range entries[:verified] {
		e := &entries[i]
		switch {
		case e.PCR != IMAPCR:
			a.problem("IMA: %s measured into PCR %d, which is not verified", e.Path, e.PCR)
			raise(&r.Vector.Executables, ClaimUnrecognizedRuntime)
			continue
		case e.Violation:
			if violations++; violations <= maxProblemsPerCheck {
				a.problem("IMA: measurement violation for %s", e.Path)
			}
			raise(&r.Vector.Executables, ClaimUnrecognizedRuntime)
			continue
		case e.Template == "ima-buf" || (i == 0 && e.Path == "boot_aggregate"):
			// Buffers (kexec command lines, keys) and the boot aggregate
			// are not files.
			continue
		}
		if allowed == nil {
			continue
		}
		if e.FileAlg != "sha256" || len(e.FileDigest) > 64 {
			if unknown++; unknown <= maxProblemsPerCheck {
				a.problem("IMA: %s is measured with %s, not SHA-256", e.Path, e.FileAlg)
			}
			continue
		}
		n := hex.Encode(hexbuf[:], e.FileDigest)
		if !allowed[string(hexbuf[:n])] {
			if unknown++; unknown <= maxProblemsPerCheck {
				a.problem("IMA: %s has unknown SHA-256 %s (not in released software)", e.Path, hexbuf[:n])
			}
		}
	}
	if unknown > maxProblemsPerCheck {
		a.problem("IMA: %d more unknown files", unknown-maxProblemsPerCheck)
	}
	if violations > maxProblemsPerCheck {
		a.problem("IMA: %d more measurement violations", violations-maxProblemsPerCheck)
	}
	switch {
	case unknown > 0:
		raise(&r.Vector.Executables, ClaimContraindicatedRuntime)
	case allowed == nil:
		a.problem("IMA: no list of released software to compare %d measurements with", verified)
		raise(&r.Vector.Executables, ClaimUnrecognizedRuntime)
	case r.Vector.Executables == ClaimApprovedBoot:
		// Approved software after boot as well as during it.
		r.Vector.Executables = ClaimApprovedRuntime
	default:
		raise(&r.Vector.Executables, ClaimApprovedRuntime)
	}
}

// elCache holds parsed event logs by the SHA-256 of their encoding: a
// device sends the same boot log until it reboots, and a fleet boots the
// same few. A parsed attest.EventLog is only read by Verify, so it is
// shared.
var elCache struct {
	sync.Mutex
	m     map[[32]byte]*attest.EventLog
	bytes int
}

// elCacheBytes bounds the event logs held, counting each at twice its
// encoded size; the cache empties when full.
const elCacheBytes = 32 << 20

func parseEventLog(b []byte) (*attest.EventLog, [32]byte, error) {
	key := sha256.Sum256(b)
	elCache.Lock()
	el := elCache.m[key]
	elCache.Unlock()
	if el != nil {
		return el, key, nil
	}
	el, err := attest.ParseEventLog(b)
	if err != nil {
		return nil, key, err
	}
	elCache.Lock()
	if elCache.m == nil || elCache.bytes+2*len(b) > elCacheBytes {
		elCache.m = make(map[[32]byte]*attest.EventLog)
		elCache.bytes = 0
	}
	elCache.m[key] = el
	elCache.bytes += 2 * len(b)
	elCache.Unlock()
	return el, key, nil
}

// replayCache holds the outcome of replaying an event log (by the hash of
// its encoding) against PCR values: the same device quotes the same values
// until it reboots. The events are only read, so they are shared.
var replayCache struct {
	sync.Mutex
	m     map[[32]byte]replayed
	bytes int
}

type replayed struct {
	events []attest.Event
	err    error
}

// replayCacheBytes bounds the replays held, counting 64 bytes an event
// (the event data belongs to the parsed log); the cache empties when full.
const replayCacheBytes = 16 << 20

// replayBoot is el.Verify(pcrs), cached.
func replayBoot(el *attest.EventLog, logKey [32]byte, pcrs []attest.PCR) ([]attest.Event, error) {
	h := sha256.New()
	h.Write(logKey[:])
	var idx [4]byte
	for _, p := range pcrs {
		binary.LittleEndian.PutUint32(idx[:], uint32(p.Index))
		h.Write(idx[:])
		h.Write(p.Digest)
	}
	var key [32]byte
	h.Sum(key[:0])
	replayCache.Lock()
	out, ok := replayCache.m[key]
	replayCache.Unlock()
	if ok {
		return out.events, out.err
	}
	events, err := el.Verify(pcrs)
	out = replayed{events: events, err: err}
	size := 64 * (len(events) + 1)
	replayCache.Lock()
	if replayCache.m == nil || replayCache.bytes+size > replayCacheBytes {
		replayCache.m = make(map[[32]byte]replayed)
		replayCache.bytes = 0
	}
	replayCache.m[key] = out
	replayCache.bytes += size
	replayCache.Unlock()
	return events, err
}

// imaReplayed is a parsed IMA list with its PCR 10 replay: prefix maps
// each value PCR 10 takes to the longest prefix of entries extending it to
// that value.
type imaReplayed struct {
	entries []IMAEntry
	prefix  map[[32]byte]int
}

// imaCache holds replayed IMA lists by the SHA-256 of their encoding: a
// device sends the same list attestation after attestation.
var imaCache struct {
	sync.Mutex
	m     map[[32]byte]*imaReplayed
	bytes int
}

// imaCacheBytes bounds the IMA lists held (the encoding, which entries
// point into, plus 128 bytes an entry); the cache empties when full.
const imaCacheBytes = 64 << 20

func replayIMA(list []byte) (*imaReplayed, error) {
	key := sha256.Sum256(list)
	imaCache.Lock()
	rp := imaCache.m[key]
	imaCache.Unlock()
	if rp != nil {
		return rp, nil
	}
	// Entries point into the list: keep a copy the caller cannot reuse.
	entries, err := ParseIMALog(bytes.Clone(list))
	if err != nil {
		return nil, err
	}
	rp = &imaReplayed{entries: entries, prefix: make(map[[32]byte]int, len(entries))}
	var buf [64]byte // PCR || extended digest
	for i := range entries {
		e := &entries[i]
		if e.PCR != IMAPCR {
			continue
		}
		copy(buf[32:], e.Extend[:])
		pcr := sha256.Sum256(buf[:])
		copy(buf[:32], pcr[:])
		rp.prefix[pcr] = i + 1
	}
	size := len(list) + 128*len(entries)
	imaCache.Lock()
	if imaCache.m == nil || imaCache.bytes+size > imaCacheBytes {
		imaCache.m = make(map[[32]byte]*imaReplayed)
		imaCache.bytes = 0
	}
	imaCache.m[key] = rp
	imaCache.bytes += size
	imaCache.Unlock()
	return rp, nil
}

// compareFiles compares the integrity monitor's hashes with the policy.
func (a *appraisal) compareFiles(files []api.FileMeasurement, want map[string]string) {
	r := a.r
	if len(want) == 0 {
		return
	}
	if len(files) > api.MaxFileReports {
		a.problem("file-system: %d file reports; at most %d", len(files), api.MaxFileReports)
		raise(&r.Vector.FileSystem, ClaimContraindicatedFiles)
		return
	}
	got := make(map[string]string, len(files))
	for _, f := range files {
		got[f.Path] = strings.ToLower(f.SHA256)
	}
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	claim := ClaimApprovedFiles
	for _, p := range paths {
		h, ok := got[p]
		switch {
		case !ok:
			a.problem("file-system: %s was not reported", p)
			claim = max(claim, ClaimUnrecognizedFiles)
		case h == "":
			a.problem("file-system: %s is missing", p)
			claim = ClaimContraindicatedFiles
		case h != strings.ToLower(want[p]):
			a.problem("file-system: %s has SHA-256 %s, expected %s", p, h, strings.ToLower(want[p]))
			claim = ClaimContraindicatedFiles
		}
	}
	raise(&r.Vector.FileSystem, claim)
}

// CaptureReference makes a Reference from a result: the quoted values of
// pcrs (nil means DefaultBootPCRs()), for an administrator to approve as the
// baseline of a device or product. It refuses a result whose quote did not
// verify or whose event log did not replay for those PCRs.
func CaptureReference(id string, r *Result, pcrs []int) (*Reference, error) {
	if r == nil || !r.QuoteVerified {
		return nil, errors.New("attest: capture reference: the quote did not verify")
	}
	if pcrs == nil {
		pcrs = DefaultBootPCRs()
	}
	ref := &Reference{ID: id, PCRs: make(map[int][]byte, len(pcrs))}
	for _, p := range pcrs {
		v, ok := r.PCRs[p]
		if !ok {
			return nil, fmt.Errorf("attest: capture reference: PCR %d was not quoted", p)
		}
		if !slices.Contains(r.Replayed, p) {
			return nil, fmt.Errorf("attest: capture reference: PCR %d did not replay from its log", p)
		}
		ref.PCRs[p] = append([]byte(nil), v...)
	}
	return ref, nil
}
