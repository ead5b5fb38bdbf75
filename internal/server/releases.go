package server

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/semver"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/tufrepo"
)

// DefaultMaxArtifact bounds an uploaded release artifact.
const DefaultMaxArtifact = 8 << 30

func (s *Server) maxArtifact() int64 {
	if s.cfg.MaxArtifact > 0 {
		return s.cfg.MaxArtifact
	}
	return DefaultMaxArtifact
}

// MaxSBOM bounds an uploaded SBOM.
const MaxSBOM = 16 << 20

var (
	fileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	vulnIDRE   = regexp.MustCompile(`^[A-Z][A-Z0-9]{1,15}-[A-Za-z0-9._:-]{1,64}$`)
	hardwareRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	severities = map[string]bool{"": true, "low": true, "medium": true, "high": true, "critical": true}
)

// releaseParams are the publication parameters, from the query string:
// the body is the artifact itself, streamed to disk.
type releaseParams struct {
	product, version, filename, installer, severity string
	fixes, hardware                                 []string
	ver                                             semver.Version
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseReleaseParams(r *http.Request) (*releaseParams, error) {
	q := r.URL.Query()
	p := &releaseParams{product: q.Get("product"), version: q.Get("version"), filename: q.Get("filename"),
		installer: q.Get("installer"), severity: q.Get("severity"), fixes: splitList(q.Get("fixes")), hardware: splitList(q.Get("hardware"))}
	if !nameRE.MatchString(p.product) {
		return nil, badRequest("product must be 1-64 letters, digits, '.', '_' or '-'")
	}
	v, err := semver.Parse(p.version)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	p.ver = v
	if p.filename == "" {
		p.filename = "artifact"
	}
	if !fileNameRE.MatchString(p.filename) {
		return nil, badRequest("filename must be 1-128 letters, digits, '.', '_' or '-'")
	}
	switch p.installer {
	case "":
		p.installer = "app"
	case "app", "ab":
	default:
		return nil, badRequest("installer must be app or ab")
	}
	if !severities[p.severity] {
		return nil, badRequest("severity must be low, medium, high or critical")
	}
	if len(p.fixes) > 256 || len(p.hardware) > 64 {
		return nil, badRequest("too many fixes or hardware entries")
	}
	for _, f := range p.fixes {
		if !vulnIDRE.MatchString(f) {
			return nil, badRequest(fmt.Sprintf("fixes: %q is not a vulnerability ID such as CVE-2026-12345", f))
		}
	}
	for _, h := range p.hardware {
		if !hardwareRE.MatchString(h) {
			return nil, badRequest(fmt.Sprintf("hardware: %q must be letters, digits, '.', '_' or '-'", h))
		}
	}
	if len(p.fixes) > 0 && p.severity == "" {
		return nil, badRequest("a release that fixes vulnerabilities needs a severity")
	}
	return p, nil
}

// newerThanAll reports whether v is above every published version.
func newerThanAll(v semver.Version) func([]string) bool {
	return func(published []string) bool {
		for _, s := range published {
			pv, err := semver.Parse(s)
			if err != nil || semver.Compare(v, pv) <= 0 {
				return false
			}
		}
		return true
	}
}

// releaseCustom is the custom metadata of a release's TUF target: what
// the device needs to decide whether, and how, to install it, signed with
// the targets metadata.
type releaseCustom struct {
	Bulwark struct {
		Product   string   `json:"product"`
		Version   string   `json:"version"`
		Installer string   `json:"installer,omitempty"`
		Hardware  []string `json:"hardware,omitempty"`
		Fixes     []string `json:"fixes,omitempty"`
		Severity  string   `json:"severity,omitempty"`
		Kind      string   `json:"kind"` // "artifact", "sbom" or "downgrade"
		// Deployment names the deployment a downgrade instruction is for.
		Deployment string `json:"deployment,omitempty"`
		MinFloor   string `json:"version_floor,omitempty"`
	} `json:"bulwark"`
}

func (s *Server) publishingReady() error {
	if s.tuf == nil {
		return errf(http.StatusServiceUnavailable, "unavailable", "the update repository is not initialised on this server")
	}
	return nil
}

func (s *Server) handlePublishRelease(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if err := s.publishingReady(); err != nil {
		return err
	}
	rp, err := parseReleaseParams(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if floor, err := s.floorOf(ctx, rp.product); err != nil {
		return internal(err)
	} else if floor != nil && semver.Compare(rp.ver, *floor) < 0 {
		return errf(http.StatusConflict, "below_floor", fmt.Sprintf("version %s is below the version floor %s of %s", rp.version, floor, rp.product))
	}
	// Fail fast, before the upload, when the version is not newer; the
	// store checks again when recording.
	if existing, err := s.store.ListReleases(ctx, rp.product); err != nil {
		return internal(err)
	} else {
		var vs []string
		for _, e := range existing {
			vs = append(vs, e.Version)
		}
		if !newerThanAll(rp.ver)(vs) {
			return errf(http.StatusConflict, "not_newer", fmt.Sprintf("%s %s is not newer than every published version of %s", rp.product, rp.version, rp.product))
		}
	}
	if r.ContentLength == 0 {
		return badRequest("the request body must be the artifact")
	}
	h512 := sha512.New()
	body := io.TeeReader(http.MaxBytesReader(w, r.Body, s.maxArtifact()+1), h512)
	sum256, size, err := s.tufArtifacts.Put(ctx, body, s.maxArtifact())
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, tufrepo.ErrInvalid) {
			return errf(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the artifact is larger than %d bytes", s.maxArtifact()))
		}
		return &httpError{Status: http.StatusBadRequest, Code: "upload_failed", Msg: "the artifact upload did not complete", Err: err}
	}
	if size == 0 {
		return badRequest("the artifact is empty")
	}
	rel := &store.Release{ID: newID("rel"), Product: rp.product, Version: rp.version,
		Target: rp.product + "/" + rp.version + "/" + rp.filename, Length: size, SHA256: sum256,
		SHA512: hex.EncodeToString(h512.Sum(nil)), Installer: rp.installer, Hardware: strings.Join(rp.hardware, ","),
		Severity: rp.severity, CreatedAt: s.now(), CreatedBy: p.Actor()}
	fixes, _ := json.Marshal(nonNil(rp.fixes))
	rel.Fixes = string(fixes)
	if err := s.store.CreateRelease(ctx, rel, newerThanAll(rp.ver)); errors.Is(err, store.ErrNotNewer) || errors.Is(err, store.ErrConflict) {
		return errf(http.StatusConflict, "not_newer", fmt.Sprintf("%s %s is not newer than every published version of %s", rp.product, rp.version, rp.product))
	} else if err != nil {
		return internal(err)
	}
	var custom releaseCustom
	c := &custom.Bulwark
	c.Product, c.Version, c.Installer, c.Hardware, c.Fixes, c.Severity, c.Kind = rp.product, rp.version, rp.installer, rp.hardware, rp.fixes, rp.severity, "artifact"
	if floor, _ := s.floorOf(ctx, rp.product); floor != nil {
		c.MinFloor = floor.String()
	}
	if err := s.addTarget(ctx, rel.Target, rel.Length, sum256, rel.SHA512, custom); err != nil {
		s.store.DeleteRelease(context.WithoutCancel(ctx), rel.Product, rel.Version)
		return err
	}
	s.audit(ctx, auditRecord{actor: p.Actor(), action: "release.publish", target: "release:" + rel.Product + "@" + rel.Version, remote: ClientIP(r),
		detail: fmt.Sprintf("target=%s sha256=%s length=%d fixes=%s severity=%s", rel.Target, rel.SHA256, rel.Length, rel.Fixes, rel.Severity), outcome: "ok"})
	writeJSON(w, http.StatusCreated, releaseView(rel))
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) addTarget(ctx context.Context, name string, length int64, sha256hex, sha512hex string, custom releaseCustom) error {
	h256, _ := hex.DecodeString(sha256hex)
	h512, _ := hex.DecodeString(sha512hex)
	raw, _ := json.Marshal(custom)
	if _, err := s.tuf.AddTarget(ctx, name, length, map[string][]byte{"sha256": h256, "sha512": h512}, raw); err != nil {
		return &httpError{Status: http.StatusInternalServerError, Code: "internal", Msg: "signing the release into the update repository failed", Err: err}
	}
	return nil
}

func releaseView(r *store.Release) api.Release {
	out := api.Release{Product: r.Product, Version: r.Version, Target: r.Target, Length: r.Length, SHA256: r.SHA256, SHA512: r.SHA512,
		Installer: r.Installer, Hardware: nonNil(splitList(r.Hardware)), Fixes: []string{}, Severity: r.Severity,
		CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy}
	if r.Fixes != "" {
		json.Unmarshal([]byte(r.Fixes), &out.Fixes)
	}
	if r.SBOMSHA256 != "" {
		out.SBOM = r.Product + "/" + r.Version + "/sbom.cdx.json"
	}
	return out
}

func (s *Server) handleListReleases(w http.ResponseWriter, r *http.Request) error {
	out, err := s.ListReleases(r, r.URL.Query().Get("product"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// cycloneDX is the part of a CycloneDX BOM that is checked on upload.
type cycloneDX struct {
	BOMFormat   string `json:"bomFormat"`
	SpecVersion string `json:"specVersion"`
}

func (s *Server) handleReleaseSBOM(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if err := s.publishingReady(); err != nil {
		return err
	}
	ctx := r.Context()
	rel, err := s.store.GetRelease(ctx, r.PathValue("product"), r.PathValue("version"))
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound
	} else if err != nil {
		return internal(err)
	}
	if rel.SBOMSHA256 != "" {
		return errf(http.StatusConflict, "conflict", "this release already has an SBOM: publish a new release to change it")
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxSBOM+1))
	if err != nil || len(data) > MaxSBOM {
		return errf(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the SBOM is larger than %d bytes", MaxSBOM))
	}
	var bom cycloneDX
	if err := json.Unmarshal(data, &bom); err != nil {
		return badRequest("the SBOM is not valid JSON: " + err.Error())
	}
	if bom.BOMFormat != "CycloneDX" {
		return badRequest(`the SBOM must be CycloneDX JSON ("bomFormat": "CycloneDX")`)
	}
	switch bom.SpecVersion {
	case "1.4", "1.5", "1.6":
	default:
		return badRequest(fmt.Sprintf("CycloneDX specVersion %q is not supported (1.4, 1.5 or 1.6)", bom.SpecVersion))
	}
	h512 := sha512.Sum512(data)
	sum256, size, err := s.tufArtifacts.Put(ctx, strings.NewReader(string(data)), MaxSBOM)
	if err != nil {
		return internal(err)
	}
	var custom releaseCustom
	custom.Bulwark.Product, custom.Bulwark.Version, custom.Bulwark.Kind = rel.Product, rel.Version, "sbom"
	name := rel.Product + "/" + rel.Version + "/sbom.cdx.json"
	if err := s.addTarget(ctx, name, size, sum256, hex.EncodeToString(h512[:]), custom); err != nil {
		return err
	}
	if err := s.store.SetReleaseSBOM(ctx, rel.Product, rel.Version, sum256); err != nil {
		return internal(err)
	}
	rel.SBOMSHA256 = sum256
	s.audit(ctx, auditRecord{actor: p.Actor(), action: "release.sbom", target: "release:" + rel.Product + "@" + rel.Version, remote: ClientIP(r),
		detail: "sha256=" + sum256, outcome: "ok"})
	writeJSON(w, http.StatusCreated, releaseView(rel))
	return nil
}

// handlePublicSBOM serves a release's SBOM without login (transparency).
func (s *Server) handlePublicSBOM(w http.ResponseWriter, r *http.Request) error {
	if s.tuf == nil {
		return errNotFound
	}
	rel, err := s.store.GetRelease(r.Context(), r.PathValue("product"), r.PathValue("version"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && rel.SBOMSHA256 == "") {
		return errNotFound
	} else if err != nil {
		return internal(err)
	}
	f, err := s.tufArtifacts.Open(r.Context(), rel.SBOMSHA256)
	if err != nil {
		return errNotFound
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/vnd.cyclonedx+json")
	http.ServeContent(w, r, "sbom.cdx.json", rel.CreatedAt, f)
	return nil
}

func (s *Server) floorOf(ctx context.Context, product string) (*semver.Version, error) {
	floors, err := s.store.VersionFloors(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range floors {
		if f.Product == product {
			v, err := semver.Parse(f.MinVersion)
			if err != nil {
				return nil, err
			}
			return &v, nil
		}
	}
	return nil, nil
}

func (s *Server) handleSetFloor(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	var req api.VersionFloor
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Product) {
		return badRequest("product must be 1-64 letters, digits, '.', '_' or '-'")
	}
	v, err := semver.Parse(req.MinVersion)
	if err != nil {
		return badRequest(err.Error())
	}
	f := &store.VersionFloor{Product: req.Product, MinVersion: req.MinVersion, UpdatedAt: s.now(), UpdatedBy: p.Actor()}
	err = s.store.SetVersionFloor(r.Context(), f, func(cur string) bool {
		if cur == "" {
			return true
		}
		cv, err := semver.Parse(cur)
		return err != nil || semver.Compare(v, cv) > 0
	})
	if errors.Is(err, store.ErrNotNewer) {
		return errf(http.StatusConflict, "not_newer", "a version floor can only be raised")
	} else if err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "release.floor", target: "product:" + req.Product, remote: ClientIP(r),
		detail: "min_version=" + req.MinVersion, outcome: "ok"})
	writeJSON(w, http.StatusOK, api.VersionFloor{Product: f.Product, MinVersion: f.MinVersion, UpdatedAt: f.UpdatedAt, UpdatedBy: f.UpdatedBy})
	return nil
}

func (s *Server) handleListFloors(w http.ResponseWriter, r *http.Request) error {
	fs, err := s.store.VersionFloors(r.Context())
	if err != nil {
		return internal(err)
	}
	out := []api.VersionFloor{}
	for _, f := range fs {
		out = append(out, api.VersionFloor{Product: f.Product, MinVersion: f.MinVersion, UpdatedAt: f.UpdatedAt, UpdatedBy: f.UpdatedBy})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// DowngradeTarget is the TUF target name of a deployment's signed
// downgrade instruction.
func DowngradeTarget(deploymentID string) string { return "downgrades/" + deploymentID + ".json" }

// signDowngrade signs into the update repository an instruction allowing
// devices of deployment id to install product@version over a newer
// version. Devices refuse any downgrade without it.
func (s *Server) signDowngrade(ctx context.Context, id, product, version string) error {
	if err := s.publishingReady(); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"deployment": id, "product": product, "version": version})
	h512 := sha512.Sum512(body)
	sum256, size, err := s.tufArtifacts.Put(ctx, strings.NewReader(string(body)), 4096)
	if err != nil {
		return internal(err)
	}
	var custom releaseCustom
	custom.Bulwark.Product, custom.Bulwark.Version, custom.Bulwark.Kind, custom.Bulwark.Deployment = product, version, "downgrade", id
	return s.addTarget(ctx, DowngradeTarget(id), size, sum256, hex.EncodeToString(h512[:]), custom)
}
