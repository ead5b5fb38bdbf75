package attest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// ReferenceManifest is what a maker publishes (signed, for example as a
// TUF target) for each release of a product: the expected final SHA-256
// PCR values of a device booting it, and the SHA-256 of every file it
// ships that IMA may measure.
type ReferenceManifest struct {
	Product string `json:"product"`
	Version string `json:"version"`
	// PCRs maps a PCR index ("0".."23") to its lowercase hex SHA-256
	// value.
	PCRs map[string]string `json:"pcrs"`
	// Files are the released files with their hashes.
	Files []ManifestFile `json:"files,omitempty"`
}

// ManifestFile is one released file.
type ManifestFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"` // lowercase hex
}

// MaxReferenceManifest bounds a manifest's encoding.
const MaxReferenceManifest = 8 << 20

// DecodeReferenceManifest decodes exactly one JSON manifest from r, with
// no unknown fields and no trailing data, and validates it.
func DecodeReferenceManifest(r io.Reader) (*ReferenceManifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxReferenceManifest+1))
	if err != nil {
		return nil, fmt.Errorf("attest: reference manifest: %w", err)
	}
	if len(b) > MaxReferenceManifest {
		return nil, fmt.Errorf("attest: reference manifest larger than %d bytes", MaxReferenceManifest)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m ReferenceManifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("attest: reference manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("attest: reference manifest: trailing data")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("attest: reference manifest: trailing data")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks that the manifest names a product and version, that PCR
// indices are 0..23 with 32-byte lowercase hex values, and that files have
// absolute paths (once each) and 32-byte lowercase hex hashes.
func (m *ReferenceManifest) Validate() error {
	if strings.TrimSpace(m.Product) == "" || strings.TrimSpace(m.Version) == "" {
		return errors.New("attest: reference manifest: product and version are required")
	}
	if len(m.PCRs) == 0 && len(m.Files) == 0 {
		return errors.New("attest: reference manifest: no PCRs and no files")
	}
	for k, v := range m.PCRs {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i > 23 || strconv.Itoa(i) != k {
			return fmt.Errorf("attest: reference manifest: PCR index %q is not 0..23", k)
		}
		if !isSHA256Hex(v) {
			return fmt.Errorf("attest: reference manifest: PCR %s: %q is not a lowercase hex SHA-256", k, v)
		}
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Path, "/") || strings.ContainsRune(f.Path, 0) {
			return fmt.Errorf("attest: reference manifest: file path %q is not absolute", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("attest: reference manifest: file %s listed twice", f.Path)
		}
		seen[f.Path] = true
		if !isSHA256Hex(f.SHA256) {
			return fmt.Errorf("attest: reference manifest: file %s: %q is not a lowercase hex SHA-256", f.Path, f.SHA256)
		}
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Reference returns the manifest's PCRs as a Reference named
// "product version"; nil when the manifest has no PCRs. Call it on a
// validated manifest.
func (m *ReferenceManifest) Reference() *Reference {
	if len(m.PCRs) == 0 {
		return nil
	}
	ref := &Reference{ID: m.Product + " " + m.Version, PCRs: make(map[int][]byte, len(m.PCRs))}
	for k, v := range m.PCRs {
		i, _ := strconv.Atoi(k)
		ref.PCRs[i], _ = hex.DecodeString(v)
	}
	return ref
}

// AllowedFiles returns the set of the manifest's file hashes, for
// Policy.AllowedFiles; merge the sets of every release a device may run.
func (m *ReferenceManifest) AllowedFiles() map[string]bool {
	set := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		set[f.SHA256] = true
	}
	return set
}

// Manifest returns a ReferenceManifest of the reference's PCRs, for
// publishing a captured baseline.
func (ref *Reference) Manifest(product, version string) *ReferenceManifest {
	m := &ReferenceManifest{Product: product, Version: version, PCRs: make(map[string]string, len(ref.PCRs))}
	idx := make([]int, 0, len(ref.PCRs))
	for i := range ref.PCRs {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		m.PCRs[strconv.Itoa(i)] = hex.EncodeToString(ref.PCRs[i])
	}
	return m
}
