package advisory

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CSAF 2.0 document, the fields Bulwark fills, in the schema's order.
type csafDoc struct {
	Document        csafDocument `json:"document"`
	ProductTree     productTree  `json:"product_tree"`
	Vulnerabilities []csafVuln   `json:"vulnerabilities"`
}

type csafDocument struct {
	AggregateSeverity *struct {
		Text string `json:"text"`
	} `json:"aggregate_severity,omitempty"`
	Category     string `json:"category"`
	CSAFVersion  string `json:"csaf_version"`
	Distribution struct {
		TLP struct {
			Label string `json:"label"`
			URL   string `json:"url"`
		} `json:"tlp"`
	} `json:"distribution"`
	Lang       string        `json:"lang"`
	Notes      []note        `json:"notes"`
	Publisher  csafPublisher `json:"publisher"`
	References []reference   `json:"references"`
	Title      string        `json:"title"`
	Tracking   tracking      `json:"tracking"`
}

type note struct {
	Category string `json:"category"`
	Text     string `json:"text"`
	Title    string `json:"title,omitempty"`
}

type csafPublisher struct {
	Category       string `json:"category"`
	ContactDetails string `json:"contact_details,omitempty"`
	Name           string `json:"name"`
	Namespace      string `json:"namespace"`
}

type reference struct {
	Category string `json:"category"`
	Summary  string `json:"summary"`
	URL      string `json:"url"`
}

type tracking struct {
	CurrentReleaseDate string `json:"current_release_date"`
	Generator          struct {
		Engine struct {
			Name string `json:"name"`
		} `json:"engine"`
	} `json:"generator"`
	ID                 string     `json:"id"`
	InitialReleaseDate string     `json:"initial_release_date"`
	RevisionHistory    []revision `json:"revision_history"`
	Status             string     `json:"status"`
	Version            string     `json:"version"`
}

type revision struct {
	Date    string `json:"date"`
	Number  string `json:"number"`
	Summary string `json:"summary"`
}

type productTree struct {
	Branches []branch `json:"branches"`
}

type branch struct {
	Branches []branch     `json:"branches,omitempty"`
	Category string       `json:"category"`
	Name     string       `json:"name"`
	Product  *fullProduct `json:"product,omitempty"`
}

type fullProduct struct {
	Name      string `json:"name"`
	ProductID string `json:"product_id"`
}

type csafVuln struct {
	CVE           string        `json:"cve,omitempty"`
	IDs           []vulnID      `json:"ids,omitempty"`
	Notes         []note        `json:"notes"`
	ProductStatus productStatus `json:"product_status"`
	References    []reference   `json:"references,omitempty"`
	Remediations  []remediation `json:"remediations"`
	Threats       []threat      `json:"threats,omitempty"`
}

type vulnID struct {
	SystemName string `json:"system_name"`
	Text       string `json:"text"`
}

type productStatus struct {
	Fixed         []string `json:"fixed"`
	KnownAffected []string `json:"known_affected,omitempty"`
}

type remediation struct {
	Category   string   `json:"category"`
	Details    string   `json:"details"`
	ProductIDs []string `json:"product_ids"`
	URL        string   `json:"url,omitempty"`
}

type threat struct {
	Category   string   `json:"category"`
	Details    string   `json:"details"`
	ProductIDs []string `json:"product_ids,omitempty"`
}

// productID names one product version in the product tree.
func productID(product, version string) string { return "CSAFPID-" + product + "-" + version }

// plural returns "1 vulnerability" or "N vulnerabilities".
func plural(n int) string {
	if n == 1 {
		return "1 publicly known vulnerability"
	}
	return fmt.Sprintf("%d publicly known vulnerabilities", n)
}

// Title is the advisory's title.
func (a *Advisory) Title() string {
	return fmt.Sprintf("%s %s fixes %s", a.Release.Product, a.Release.Version, plural(len(a.Vulns)))
}

// Summary is one paragraph saying what the advisory is about.
func (a *Advisory) Summary() string {
	r := a.Release
	s := fmt.Sprintf("Release %s of %s, published %s, mitigates %s: %s.", r.Version, r.Product,
		r.Published.Format("2 January 2006"), plural(len(a.Vulns)), strings.Join(a.Vulns, ", "))
	if sev := a.Severity(); sev != "" {
		s += " The vendor rates the severity " + sev + "."
	}
	if len(a.Affected) > 0 {
		s += fmt.Sprintf(" Earlier published versions (%s) are affected.", strings.Join(a.Affected, ", "))
	} else {
		s += " Versions before " + r.Version + " are affected."
	}
	return s + " Update to " + r.Version + " or later."
}

// CSAF returns the advisory as a CSAF 2.0 document (category
// csaf_security_advisory), indented JSON with a final newline.
func CSAF(p Publisher, a *Advisory) ([]byte, error) {
	r := a.Release
	var d csafDoc
	doc := &d.Document
	doc.Category = "csaf_security_advisory"
	doc.CSAFVersion = "2.0"
	doc.Distribution.TLP.Label = "WHITE"
	doc.Distribution.TLP.URL = "https://www.first.org/tlp/"
	doc.Lang = "en"
	if sev := a.Severity(); sev != "" {
		doc.AggregateSeverity = &struct {
			Text string `json:"text"`
		}{sev}
	}
	doc.Notes = []note{{Category: "summary", Title: "Summary", Text: a.Summary()}}
	doc.Publisher = csafPublisher{Category: "vendor", ContactDetails: p.Contact, Name: p.Name, Namespace: p.Namespace}
	doc.References = []reference{
		{Category: "self", Summary: "Canonical URL of this CSAF document", URL: a.CSAFURL(p)},
		{Category: "self", Summary: "This advisory as a web page", URL: a.HTMLURL(p)},
		{Category: "self", Summary: "This advisory in OSV format", URL: a.OSVURL(p)},
	}
	doc.Title = a.Title()
	date := timestamp(r.Published)
	t := &doc.Tracking
	t.CurrentReleaseDate, t.InitialReleaseDate = date, date
	t.Generator.Engine.Name = "Bulwark"
	t.ID = a.ID
	t.RevisionHistory = []revision{{Date: date, Number: "1", Summary: "Initial version, published with release " + r.Version + "."}}
	t.Status, t.Version = "final", "1"

	// Product tree: vendor → product name → versions (the fixed one and
	// the earlier, affected ones), or a version range when no earlier
	// version was published here.
	fixed := productID(r.Product, r.Version)
	var versions []branch
	var affected []string
	for _, v := range a.Affected {
		id := productID(r.Product, v)
		affected = append(affected, id)
		versions = append(versions, branch{Category: "product_version", Name: v,
			Product: &fullProduct{Name: p.Name + " " + r.Product + " " + v, ProductID: id}})
	}
	if len(affected) == 0 {
		id := "CSAFPID-" + r.Product + "-before-" + r.Version
		affected = []string{id}
		versions = append(versions, branch{Category: "product_version_range", Name: "vers:semver/<" + r.Version,
			Product: &fullProduct{Name: p.Name + " " + r.Product + " before " + r.Version, ProductID: id}})
	}
	versions = append(versions, branch{Category: "product_version", Name: r.Version,
		Product: &fullProduct{Name: p.Name + " " + r.Product + " " + r.Version, ProductID: fixed}})
	d.ProductTree.Branches = []branch{{Category: "vendor", Name: p.Name, Branches: []branch{
		{Category: "product_name", Name: r.Product, Branches: versions}}}}

	for _, id := range a.Vulns {
		v := csafVuln{
			Notes: []note{{Category: "description", Title: "Vulnerability",
				Text: fmt.Sprintf("%s is a publicly known vulnerability that affects %s before %s and is fixed in %s %s.", id, r.Product, r.Version, r.Product, r.Version)}},
			ProductStatus: productStatus{Fixed: []string{fixed}, KnownAffected: affected},
			Remediations: []remediation{{Category: "vendor_fix", ProductIDs: affected, URL: a.HTMLURL(p),
				Details: fmt.Sprintf("Update %s to version %s or later (TUF target %s, SHA-256 %s), for example with a Bulwark deployment of %s@%s.", r.Product, r.Version, r.Target, r.SHA256, r.Product, r.Version)}},
		}
		if IsCVE(id) {
			v.CVE = id
		} else {
			v.IDs = []vulnID{{SystemName: idSystem(id), Text: id}}
		}
		if u := VulnURL(id); u != "" {
			v.References = []reference{{Category: "external", Summary: "Public record of " + id, URL: u}}
		}
		if sev := a.Severity(); sev != "" {
			v.Threats = []threat{{Category: "impact", Details: "Severity (vendor assessment): " + sev, ProductIDs: affected}}
		}
		d.Vulnerabilities = append(d.Vulnerabilities, v)
	}
	return marshal(d)
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("advisory: encoding: %w", err)
	}
	return buf.Bytes(), nil
}

// ProviderMetadata returns provider-metadata.json (CSAF 2.0 §7.1.7) for
// a csaf_provider distributing TLP:WHITE documents in a directory
// (§7.1.11-14) with SHA-256 and SHA-512 files. last_updated is the newest
// advisory's release date (the Unix epoch when there is none), so the
// file changes only when an advisory is added.
func ProviderMetadata(p Publisher, advs []*Advisory) ([]byte, error) {
	type dist struct {
		DirectoryURL string `json:"directory_url"`
	}
	m := struct {
		CanonicalURL            string        `json:"canonical_url"`
		Distributions           []dist        `json:"distributions"`
		LastUpdated             string        `json:"last_updated"`
		ListOnCSAFAggregators   bool          `json:"list_on_CSAF_aggregators"`
		MetadataVersion         string        `json:"metadata_version"`
		MirrorOnCSAFAggregators bool          `json:"mirror_on_CSAF_aggregators"`
		Publisher               csafPublisher `json:"publisher"`
		Role                    string        `json:"role"`
	}{
		CanonicalURL:            p.Namespace + ProviderMetadataPath,
		Distributions:           []dist{{DirectoryURL: p.Namespace + CSAFDir}},
		LastUpdated:             timestamp(latest(advs)),
		ListOnCSAFAggregators:   true,
		MetadataVersion:         "2.0",
		MirrorOnCSAFAggregators: true,
		Publisher:               csafPublisher{Category: "vendor", ContactDetails: p.Contact, Name: p.Name, Namespace: p.Namespace},
		Role:                    "csaf_provider",
	}
	if latest(advs).IsZero() {
		m.LastUpdated = timestamp(time.Unix(0, 0))
	}
	return marshal(m)
}

// IndexTxt returns index.txt (§7.1.12): every document's path, one a
// line, in the order of advs.
func IndexTxt(advs []*Advisory) []byte {
	var b bytes.Buffer
	for _, a := range advs {
		b.WriteString(a.Path() + "\n")
	}
	return b.Bytes()
}

// ChangesCSV returns changes.csv (§7.1.13): path and current release
// date of every document, newest first (advs is in that order).
func ChangesCSV(advs []*Advisory) []byte {
	var b bytes.Buffer
	for _, a := range advs {
		// Paths hold only [a-z0-9+_./-], so quoting needs no escaping.
		b.WriteString(`"` + a.Path() + `","` + timestamp(a.Release.Published) + `"` + "\n")
	}
	return b.Bytes()
}

// HashFile returns the content of FILE.sha256 or FILE.sha512 (§7.1.18):
// the hex digest, two spaces and the file name, as sha256sum prints it.
func HashFile(alg string, data []byte, name string) ([]byte, bool) {
	var sum []byte
	switch alg {
	case "sha256":
		s := sha256.Sum256(data)
		sum = s[:]
	case "sha512":
		s := sha512.Sum512(data)
		sum = s[:]
	default:
		return nil, false
	}
	return []byte(hex.EncodeToString(sum) + "  " + name + "\n"), true
}
