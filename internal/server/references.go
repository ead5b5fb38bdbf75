package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
	"github.com/bulwark-iot/bulwark/internal/semver"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// Reference values (Code of Practice 4.2, 5.4): a maker publishes with each
// release an attest.ReferenceManifest — the PCRs of a device booting it and
// the hashes of the files it ships — so that a good update does not look
// like an attack. The server keeps the manifest with the release, signs it
// into the update repository as the target
// <product>/<version>/reference-values.json (kind "reference-values"), so
// relying parties and devices can check it came from the maker, and
// appraises the attestation of devices reporting the release installed
// against it.

func referenceValuesView(m *store.ReferenceManifest) api.ReferenceValues {
	return api.ReferenceValues{Product: m.Product, Version: m.Version, Target: api.ReferenceValuesTarget(m.Product, m.Version),
		SHA256: m.SHA256, Manifest: json.RawMessage(m.Manifest), CreatedAt: m.CreatedAt, CreatedBy: m.CreatedBy}
}

// handlePutReferenceValues attaches reference values to a published
// release. The body is the manifest; ?replace=true replaces the release's
// manifest, which is refused otherwise.
func (s *Server) handlePutReferenceValues(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if err := s.publishingReady(); err != nil {
		return err
	}
	ctx := r.Context()
	product, version := r.PathValue("product"), r.PathValue("version")
	replace := false
	if v := r.URL.Query().Get("replace"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badRequest("replace must be true or false")
		}
		replace = b
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" && !strings.HasPrefix(ct, "application/json;") {
		return errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	rel, err := s.store.GetRelease(ctx, product, version)
	if errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusNotFound, "not_found", fmt.Sprintf("there is no release %s %s: publish the release first", product, version))
	} else if err != nil {
		return internal(err)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, attest.MaxReferenceManifest+1))
	if err != nil || len(data) > attest.MaxReferenceManifest {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || len(data) > attest.MaxReferenceManifest {
			return errf(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the reference manifest is larger than %d bytes", attest.MaxReferenceManifest))
		}
		return badRequest("reading the reference manifest: " + err.Error())
	}
	m, err := attest.DecodeReferenceManifest(bytes.NewReader(data))
	if err != nil {
		return badRequest(strings.TrimPrefix(err.Error(), "attest: "))
	}
	if m.Product != rel.Product || m.Version != rel.Version {
		return badRequest(fmt.Sprintf("the reference manifest is for %s %s, not for the release %s %s", m.Product, m.Version, rel.Product, rel.Version))
	}
	sum := sha256.Sum256(data)
	rec := &store.ReferenceManifest{Product: rel.Product, Version: rel.Version, Manifest: string(data), SHA256: hex.EncodeToString(sum[:]),
		CreatedAt: s.now(), CreatedBy: p.Actor()}
	// Recorded first, so that of two concurrent uploads one is refused
	// before either is signed.
	prev, err := s.store.PutReferenceManifest(ctx, rec, replace)
	switch {
	case errors.Is(err, store.ErrConflict):
		cur, _ := s.store.GetReferenceManifest(ctx, rel.Product, rel.Version)
		msg := "this release already has reference values: add ?replace=true to replace them"
		if cur != nil {
			msg = fmt.Sprintf("this release already has reference values (sha256 %s): add ?replace=true to replace them", cur.SHA256)
		}
		return errf(http.StatusConflict, "conflict", msg)
	case errors.Is(err, store.ErrNotFound):
		return errf(http.StatusNotFound, "not_found", fmt.Sprintf("there is no release %s %s: publish the release first", product, version))
	case err != nil:
		return internal(err)
	}
	if err := s.signReferenceValues(ctx, rec, data); err != nil {
		// Undo, so that the store and the repository agree.
		undo := context.WithoutCancel(ctx)
		if prev != nil {
			_, uerr := s.store.PutReferenceManifest(undo, prev, true)
			if uerr != nil {
				s.log.Error("restoring reference values after a failed signature", "release", rel.Product+"@"+rel.Version, "err", uerr)
			}
		} else if uerr := s.store.DeleteReferenceManifest(undo, rel.Product, rel.Version); uerr != nil {
			s.log.Error("removing reference values after a failed signature", "release", rel.Product+"@"+rel.Version, "err", uerr)
		}
		return err
	}
	detail := fmt.Sprintf("target=%s sha256=%s pcrs=%d files=%d", api.ReferenceValuesTarget(rel.Product, rel.Version), rec.SHA256, len(m.PCRs), len(m.Files))
	action := "release.reference-values"
	if prev != nil {
		detail += " replaced=" + prev.SHA256
		action = "release.reference-values.replace"
	}
	s.audit(ctx, auditRecord{actor: p.Actor(), action: action, target: "release:" + rel.Product + "@" + rel.Version, remote: ClientIP(r),
		detail: detail, outcome: "ok"})
	out := referenceValuesView(rec)
	if prev != nil {
		out.Replaced = prev.SHA256
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// signReferenceValues stores a manifest among the repository's artifacts
// and signs it as the release's reference-values target.
func (s *Server) signReferenceValues(ctx context.Context, rec *store.ReferenceManifest, data []byte) error {
	h512 := sha512.Sum512(data)
	sum256, size, err := s.tufArtifacts.Put(ctx, bytes.NewReader(data), attest.MaxReferenceManifest)
	if err != nil {
		return internal(err)
	}
	if sum256 != rec.SHA256 {
		return internal(fmt.Errorf("reference values of %s %s: stored artifact sha256 %s, want %s", rec.Product, rec.Version, sum256, rec.SHA256))
	}
	var custom releaseCustom
	custom.Bulwark.Product, custom.Bulwark.Version, custom.Bulwark.Kind = rec.Product, rec.Version, "reference-values"
	return s.addTarget(ctx, api.ReferenceValuesTarget(rec.Product, rec.Version), size, sum256, hex.EncodeToString(h512[:]), custom)
}

// handleGetReferenceValues returns a release's reference values.
func (s *Server) handleGetReferenceValues(w http.ResponseWriter, r *http.Request) error {
	product, version := r.PathValue("product"), r.PathValue("version")
	m, err := s.store.GetReferenceManifest(r.Context(), product, version)
	if errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusNotFound, "not_found", fmt.Sprintf("release %s %s has no reference values (or does not exist)", product, version))
	} else if err != nil {
		return internal(err)
	}
	writeJSON(w, http.StatusOK, referenceValuesView(m))
	return nil
}

// attestPolicy builds the policy a device's evidence is appraised against,
// and names the source of its PCR reference for results: "manifest
// <product> <version>", "baseline", "baseline (awaiting approval)", or ""
// when there is none.
//
// The device reports the releases it runs (api.Inventory.Installed, from
// its latest check-in). The PCR reference comes from the one installed
// release whose reference values carry PCRs — normally the platform
// image — and takes precedence over the device's approved baseline. When
// several installed releases carry PCRs, none is chosen: which one
// describes the boot is ambiguous, so the baseline (if any) applies and
// the ambiguity is reported in notes. The files of every installed
// release's reference values make up Policy.AllowedFiles, against which
// the IMA list is checked. Releases below their product's version floor
// contribute nothing: a device that went back to one is not approved by
// its reference values.
//
// notes are problems to add to the result: the policy could not be built
// as the device's releases ask.
func (s *Server) attestPolicy(ctx context.Context, deviceID string) (pol *attest.Policy, refSource string, notes []string, err error) {
	pol = &attest.Policy{}
	manifests, notes, err := s.installedManifests(ctx, deviceID)
	if err != nil {
		return nil, "", nil, err
	}
	var withPCRs []*attest.ReferenceManifest
	var fileSets []map[string]bool
	for _, pm := range manifests {
		if len(pm.m.PCRs) > 0 {
			withPCRs = append(withPCRs, pm.m)
		}
		if len(pm.files) > 0 {
			fileSets = append(fileSets, pm.files)
		}
	}
	// Without IMA the agent's integrity monitor reports paths and hashes;
	// the released files' paths give what they must be.
	for _, pm := range manifests {
		for _, f := range pm.m.Files {
			if pol.Files == nil {
				pol.Files = map[string]string{}
			}
			pol.Files[f.Path] = f.SHA256
		}
	}
	switch len(fileSets) {
	case 0:
	case 1:
		pol.AllowedFiles = fileSets[0] // shared, never modified
	default:
		pol.AllowedFiles = map[string]bool{}
		for _, set := range fileSets {
			maps.Copy(pol.AllowedFiles, set)
		}
	}
	switch len(withPCRs) {
	case 0:
	case 1:
		m := withPCRs[0]
		refSource = "manifest " + m.Product + " " + m.Version
		pol.Reference = m.Reference()
		pol.Reference.ID = refSource
	default:
		names := make([]string, len(withPCRs))
		for i, m := range withPCRs {
			names[i] = m.Product + " " + m.Version
		}
		notes = append(notes, fmt.Sprintf("reference values: the installed releases %s all publish PCR values, so which describes the boot is ambiguous; none is used", strings.Join(names, ", ")))
	}
	if pol.Reference == nil {
		pol.Reference, refSource, err = s.attestReference(ctx, deviceID)
		if err != nil {
			return nil, "", nil, err
		}
	}
	if refSource != "" {
		pol.ID = "bulwark-tpm-default (reference: " + refSource + ")"
	}
	return pol, refSource, notes, nil
}

// parsedManifest is a decoded reference manifest with its set of file
// hashes.
type parsedManifest struct {
	m     *attest.ReferenceManifest
	files map[string]bool
}

// manifestCache holds decoded manifests by their SHA-256: every device
// running a release is appraised against the same manifest, which may
// list thousands of files. Entries are immutable.
var manifestCache struct {
	sync.Mutex
	m map[string]*parsedManifest
}

const manifestCacheMax = 256

// parseManifest decodes a stored manifest, through the cache.
func parseManifest(rec *store.ReferenceManifest) (*parsedManifest, error) {
	key := rec.Product + "\x00" + rec.Version + "\x00" + rec.SHA256
	manifestCache.Lock()
	pm := manifestCache.m[key]
	manifestCache.Unlock()
	if pm != nil {
		return pm, nil
	}
	m, err := attest.DecodeReferenceManifest(strings.NewReader(rec.Manifest))
	if err != nil {
		return nil, err
	}
	pm = &parsedManifest{m: m, files: m.AllowedFiles()}
	manifestCache.Lock()
	if manifestCache.m == nil || len(manifestCache.m) >= manifestCacheMax {
		manifestCache.m = make(map[string]*parsedManifest)
	}
	manifestCache.m[key] = pm
	manifestCache.Unlock()
	return pm, nil
}

// installedManifests returns the reference manifests of the releases the
// device reported installed at its latest check-in, ordered by product.
func (s *Server) installedManifests(ctx context.Context, deviceID string) ([]*parsedManifest, []string, error) {
	d, err := s.store.GetDevice(ctx, deviceID)
	if err != nil {
		return nil, nil, err
	}
	if d.Inventory == "" {
		return nil, nil, nil
	}
	var inv api.Inventory
	if err := json.Unmarshal([]byte(d.Inventory), &inv); err != nil {
		return nil, nil, fmt.Errorf("stored inventory of %s: %w", deviceID, err)
	}
	if len(inv.Installed) == 0 {
		return nil, nil, nil
	}
	refs := make([]store.ReleaseRef, 0, min(len(inv.Installed), store.MaxReleaseRefs))
	for _, r := range inv.Installed[:min(len(inv.Installed), store.MaxReleaseRefs)] {
		refs = append(refs, store.ReleaseRef{Product: r.Product, Version: r.Version})
	}
	recs, err := s.store.ListReferenceManifests(ctx, refs)
	if err != nil {
		return nil, nil, err
	}
	var floors map[string]string
	if len(recs) > 0 {
		fs, err := s.store.VersionFloors(ctx)
		if err != nil {
			return nil, nil, err
		}
		floors = make(map[string]string, len(fs))
		for _, f := range fs {
			floors[f.Product] = f.MinVersion
		}
	}
	var out []*parsedManifest
	var notes []string
	for _, rec := range recs {
		// A release below its product's version floor is one devices
		// must no longer run: its measurements are not approved.
		if floor, ok := floors[rec.Product]; ok {
			if c, err := semver.CompareStrings(rec.Version, floor); err != nil || c < 0 {
				notes = append(notes, fmt.Sprintf("reference values of %s %s are not used: the release is below the version floor %s", rec.Product, rec.Version, floor))
				continue
			}
		}
		pm, err := parseManifest(rec)
		if err != nil {
			// Validated on upload; a stored manifest that no longer
			// decodes is reported, not trusted.
			notes = append(notes, fmt.Sprintf("reference values of %s %s are unreadable: %v", rec.Product, rec.Version, err))
			continue
		}
		out = append(out, pm)
	}
	return out, notes, nil
}
