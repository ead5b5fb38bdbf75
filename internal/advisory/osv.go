package advisory

import "strings"

// OSVSchemaVersion is the OSV schema version of the entries.
const OSVSchemaVersion = "1.6.0"

type osvEntry struct {
	SchemaVersion    string            `json:"schema_version"`
	ID               string            `json:"id"`
	Modified         string            `json:"modified"`
	Published        string            `json:"published"`
	Aliases          []string          `json:"aliases"`
	Summary          string            `json:"summary"`
	Details          string            `json:"details"`
	Affected         []osvAffected     `json:"affected"`
	References       []osvReference    `json:"references"`
	DatabaseSpecific map[string]string `json:"database_specific,omitempty"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Ranges   []osvRange `json:"ranges"`
	Versions []string   `json:"versions,omitempty"`
}

type osvRange struct {
	Type   string              `json:"type"`
	Events []map[string]string `json:"events"`
}

type osvReference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// OSV returns the advisory as an OSV entry (schema 1.6): the package is
// the product in the custom ecosystem "Bulwark", affected from "0" up to
// the fixed version (SEMVER), with the earlier published versions listed;
// aliases are the vulnerability IDs the release fixes. modified and
// published are the release's publication time.
func OSV(p Publisher, a *Advisory) ([]byte, error) {
	r := a.Release
	e := osvEntry{SchemaVersion: OSVSchemaVersion, ID: a.ID, Modified: timestamp(r.Published), Published: timestamp(r.Published),
		Aliases: a.Vulns, Summary: a.Title(), Details: a.Summary()}
	var af osvAffected
	af.Package.Ecosystem, af.Package.Name = Ecosystem, r.Product
	af.Ranges = []osvRange{{Type: "SEMVER", Events: []map[string]string{{"introduced": "0"}, {"fixed": r.Version}}}}
	af.Versions = a.Affected
	e.Affected = []osvAffected{af}
	e.References = []osvReference{{"ADVISORY", a.HTMLURL(p)}, {"ADVISORY", a.CSAFURL(p)}}
	for _, id := range a.Vulns {
		if u := VulnURL(id); u != "" {
			e.References = append(e.References, osvReference{"WEB", u})
		}
	}
	e.DatabaseSpecific = map[string]string{"csaf": a.CSAFURL(p)}
	if r.Severity != "" {
		e.DatabaseSpecific["severity"] = strings.ToUpper(r.Severity)
	}
	return marshal(e)
}

// OSVIndexEntry is one line of the OSV index.
type OSVIndexEntry struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases"`
	URL      string   `json:"url"`
}

// OSVList returns the OSV index: every entry's ID, modified time,
// aliases and URL, newest first.
func OSVList(p Publisher, advs []*Advisory) ([]byte, error) {
	out := []OSVIndexEntry{}
	for _, a := range advs {
		out = append(out, OSVIndexEntry{ID: a.ID, Modified: timestamp(a.Release.Published), Aliases: a.Vulns, URL: a.OSVURL(p)})
	}
	return marshal(out)
}
