package disclosure

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config configures the public disclosure pages. The zero value is
// usable: the contact is the server's own form and URLs are built from
// the request's host.
type Config struct {
	// Contacts are the security.txt Contact values, in order of
	// preference: mailto:, https: or tel: URIs. Empty means the server's
	// own disclosure form, https://<host>/disclose.
	Contacts []string
	// PublicURL is the https base URL the server is reached at (e.g.
	// https://bulwark.example.com), used for every URL in security.txt
	// and in follow-up links. Empty means https:// and the request's Host
	// header, which suits a server reached by one name.
	PublicURL string
}

// Check reports a problem with the configuration.
func (c Config) Check() error {
	for _, ct := range c.Contacts {
		u, err := url.Parse(ct)
		if err != nil || (u.Scheme != "mailto" && u.Scheme != "https" && u.Scheme != "tel") || strings.ContainsAny(ct, " \r\n") {
			return fmt.Errorf("disclosure: contact %q must be a mailto:, https: or tel: URI", ct)
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return errors.New("disclosure: the public URL must be https://HOST[:PORT] with no path")
		}
	}
	return nil
}

// ExpiresAfter is how far ahead security.txt's Expires lies; RFC 9116
// recommends less than a year. It is recomputed on every request.
const ExpiresAfter = 180 * 24 * time.Hour

// SecurityTxt renders /.well-known/security.txt (RFC 9116) for a server
// whose public base URL is base (https://host[:port]).
func (c Config) SecurityTxt(base string, now time.Time) string {
	var b strings.Builder
	b.WriteString("# Security contact for this Bulwark server (RFC 9116).\n")
	b.WriteString("# Report vulnerabilities with the form at " + base + "/disclose\n")
	contacts := c.Contacts
	if len(contacts) == 0 {
		contacts = []string{base + "/disclose"}
	}
	for _, ct := range contacts {
		b.WriteString("Contact: " + ct + "\n")
	}
	b.WriteString("Expires: " + now.UTC().Add(ExpiresAfter).Truncate(time.Second).Format(time.RFC3339) + "\n")
	b.WriteString("Policy: " + base + "/disclosure-policy\n")
	b.WriteString("Acknowledgments: " + base + "/acknowledgments\n")
	b.WriteString("Canonical: " + base + "/.well-known/security.txt\n")
	b.WriteString("Preferred-Languages: en\n")
	// CSAF 2.0 requirement 8: advertise the provider metadata.
	b.WriteString("CSAF: " + base + "/.well-known/csaf/provider-metadata.json\n")
	return b.String()
}
