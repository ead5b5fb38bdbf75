package api

import (
	"encoding/json"
	"regexp"
	"time"
)

// MaxInstalled bounds the releases a device reports installed.
const MaxInstalled = 64

// InstalledRelease is a release a device runs: the active version of a
// product its agent installed. The server appraises the device's
// attestation against the reference values published with these
// releases.
type InstalledRelease struct {
	Product string `json:"product"` // 1-64 letters, digits, '.', '_' or '-'
	Version string `json:"version"` // 1-128 letters, digits, '.', '+', '_' or '-'
}

var (
	installedProductRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	installedVersionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}$`)
)

// Valid reports whether r's product and version are well-formed.
func (r InstalledRelease) Valid() bool {
	return installedProductRE.MatchString(r.Product) && installedVersionRE.MatchString(r.Version)
}

// validateInstalled checks inventory.installed: bounded, well-formed,
// each product once.
func validateInstalled(rs []InstalledRelease) error {
	if len(rs) > MaxInstalled {
		return decodeErrf("inventory.installed has more than %d entries", MaxInstalled)
	}
	seen := make(map[string]bool, len(rs))
	for i, r := range rs {
		if !installedProductRE.MatchString(r.Product) {
			return decodeErrf("inventory.installed[%d].product must be 1-64 letters, digits, '.', '_' or '-'", i)
		}
		if !installedVersionRE.MatchString(r.Version) {
			return decodeErrf("inventory.installed[%d].version must be 1-128 letters, digits, '.', '+', '_' or '-'", i)
		}
		if seen[r.Product] {
			return decodeErrf("inventory.installed lists product %s twice", r.Product)
		}
		seen[r.Product] = true
	}
	return nil
}

// ReferenceValues is a release's published reference values: the
// attestation reference manifest (internal/attest.ReferenceManifest) as
// the maker uploaded it, signed into the update repository as Target. The
// body of POST /api/v1/releases/{product}/{version}/reference-values is
// the manifest itself.
type ReferenceValues struct {
	Product string `json:"product"`
	Version string `json:"version"`
	// Target is the TUF target name under which the manifest is signed.
	Target string `json:"target"`
	// SHA256 is the hex SHA-256 of Manifest, as in the TUF target.
	SHA256 string `json:"sha256"`
	// Manifest is the reference manifest JSON: {product, version, pcrs,
	// files}.
	Manifest  json.RawMessage `json:"manifest"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by"`
	// Replaced is the SHA-256 of the manifest this upload replaced, when
	// it replaced one (?replace=true).
	Replaced string `json:"replaced,omitempty"`
}

// ReferenceValuesTarget is the TUF target name of a release's reference
// values.
func ReferenceValuesTarget(product, version string) string {
	return product + "/" + version + "/reference-values.json"
}
