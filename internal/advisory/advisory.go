// Package advisory turns published releases into security advisories:
// CSAF 2.0 documents (with the provider metadata, index.txt, changes.csv
// and hash files of a CSAF provider's directory distribution), OSV
// entries, and HTML pages. Everything is built from the release records
// alone, deterministically: the same releases and publisher always give
// the same bytes, so hashes and timestamps are stable across requests.
//
// One advisory is built per release that fixes at least one vulnerability.
// Its tracking ID is BWSA-<product>-<version>. The functions here are
// pure; Pages is safe for concurrent use.
package advisory

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/semver"
)

// URL layout under the publisher's namespace (its https base URL).
const (
	ProviderMetadataPath = "/.well-known/csaf/provider-metadata.json"
	// CSAFDir is the TLP:WHITE directory distribution (CSAF 2.0 §7.1.11-14).
	CSAFDir   = "/.well-known/csaf/white/"
	HTMLIndex = "/advisories"
	OSVIndex  = "/advisories/osv/"
)

// Ecosystem is the OSV ecosystem of Bulwark-published products. It is a
// custom name (OSV's registry does not list vendor firmware); the package
// name is the product name.
const Ecosystem = "Bulwark"

// IDPrefix starts every tracking ID and OSV ID.
const IDPrefix = "BWSA-"

// Publisher is who issues the advisories.
type Publisher struct {
	// Name is the vendor's name, shown in documents and the product tree.
	Name string
	// Namespace is the publisher's https base URL with no trailing slash
	// (e.g. https://bulwark.example.com); every URL is made from it.
	Namespace string
	// Contact says how to reach the publisher's security team.
	Contact string
}

// Release is the part of a published release an advisory is built from.
type Release struct {
	Product, Version string
	Fixes            []string // vulnerability IDs, e.g. CVE-2026-1234
	Severity         string   // low, medium, high, critical, or empty
	Target           string   // the TUF target name of the artifact
	SHA256           string
	Length           int64
	Published        time.Time
}

// Advisory is the advisory of one release.
type Advisory struct {
	ID       string
	Release  Release
	Vulns    []string // sorted, without duplicates
	Affected []string // earlier published versions, oldest first
}

// Build returns the advisories of the releases that fix vulnerabilities,
// newest first (ties by ID). releases are all published releases, in any
// order; a release's earlier versions are the other releases of its
// product with a lower semantic version.
func Build(releases []Release) []*Advisory {
	// Parse every version once, grouped by product.
	type pv struct {
		raw string
		v   semver.Version
	}
	byProduct := map[string][]pv{}
	for _, r := range releases {
		if v, err := semver.Parse(r.Version); err == nil {
			byProduct[r.Product] = append(byProduct[r.Product], pv{r.Version, v})
		}
	}
	for _, vs := range byProduct {
		slices.SortFunc(vs, func(a, b pv) int {
			if c := semver.Compare(a.v, b.v); c != 0 {
				return c
			}
			return strings.Compare(a.raw, b.raw)
		})
	}
	var out []*Advisory
	for _, r := range releases {
		vulns := dedupe(r.Fixes)
		if len(vulns) == 0 {
			continue
		}
		r.Published = r.Published.UTC().Truncate(time.Second)
		r.Fixes = vulns
		a := &Advisory{ID: IDPrefix + r.Product + "-" + r.Version, Release: r, Vulns: vulns}
		if rv, err := semver.Parse(r.Version); err == nil {
			// Sorted, so the earlier versions are a prefix.
			for _, o := range byProduct[r.Product] {
				if semver.Compare(o.v, rv) >= 0 {
					break
				}
				a.Affected = append(a.Affected, o.raw)
			}
		}
		a.Affected = slices.Compact(a.Affected)
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *Advisory) int {
		if c := b.Release.Published.Compare(a.Release.Published); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func dedupe(ids []string) []string {
	var out []string
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Find returns the advisory with the given ID, or nil.
func Find(advs []*Advisory, id string) *Advisory {
	for _, a := range advs {
		if a.ID == id {
			return a
		}
	}
	return nil
}

var fileNameUnsafe = regexp.MustCompile(`[^+\-a-z0-9]+`)

// FileName is the CSAF file name (§5.1): the tracking ID in lower case,
// runs of characters other than [+\-a-z0-9] replaced by "_", and ".json".
func (a *Advisory) FileName() string {
	return fileNameUnsafe.ReplaceAllString(strings.ToLower(a.ID), "_") + ".json"
}

// Year is the year folder of the document (§7.1.11), from its initial
// release date.
func (a *Advisory) Year() string { return a.Release.Published.Format("2006") }

// Path is the document's path relative to CSAFDir: YEAR/FILE.json.
func (a *Advisory) Path() string { return a.Year() + "/" + a.FileName() }

// CSAFURL is the canonical URL of the CSAF document.
func (a *Advisory) CSAFURL(p Publisher) string { return p.Namespace + CSAFDir + a.Path() }

// HTMLURL is the URL of the advisory's web page.
func (a *Advisory) HTMLURL(p Publisher) string { return p.Namespace + HTMLIndex + "/" + a.ID }

// OSVURL is the URL of the advisory's OSV entry.
func (a *Advisory) OSVURL(p Publisher) string {
	return p.Namespace + HTMLIndex + "/" + a.ID + ".osv.json"
}

// Severity is the release's severity with a capital, e.g. "High", or "".
func (a *Advisory) Severity() string {
	s := a.Release.Severity
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cveRE is the CVE pattern of the CSAF 2.0 schema.
var cveRE = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,}$`)

// IsCVE reports whether id is a well-formed CVE ID.
func IsCVE(id string) bool { return cveRE.MatchString(id) }

// VulnURL is a public page about a vulnerability ID, or "" when none is
// known for its kind of ID.
func VulnURL(id string) string {
	switch {
	case IsCVE(id):
		return "https://www.cve.org/CVERecord?id=" + id
	case strings.HasPrefix(id, "GHSA-"):
		return "https://github.com/advisories/" + id
	}
	return ""
}

// idSystem names the system a non-CVE ID comes from.
func idSystem(id string) string {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "GHSA":
		return "GitHub Security Advisory"
	case "CVE":
		return "CVE (malformed ID)"
	}
	return prefix
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func latest(advs []*Advisory) time.Time {
	var t time.Time
	for _, a := range advs {
		if a.Release.Published.After(t) {
			t = a.Release.Published
		}
	}
	return t
}
