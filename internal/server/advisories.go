package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/advisory"
	"github.com/bulwark-iot/bulwark/internal/disclosure"
)

// Published advisories: for each release that fixes vulnerabilities, a
// CSAF 2.0 document in a CSAF provider's directory distribution, an OSV
// entry and a web page, all public. They are generated from the release
// records on every request; the output depends only on those records and
// the public URL, so hashes and dates do not change between requests.

type advisoryService struct {
	s     *Server
	pages *advisory.Pages
	css   string
}

func (s *Server) newAdvisoryService() *advisoryService {
	sum := sha256.Sum256(disclosure.CSS())
	return &advisoryService{s: s, pages: advisory.NewPages(), css: disclosure.CSSPath + "?v=" + hex.EncodeToString(sum[:6])}
}

// mountAdvisories registers the public advisory pages and files.
func (s *Server) mountAdvisories(mux *http.ServeMux) {
	a := s.newAdvisoryService()
	mux.Handle("GET "+advisory.ProviderMetadataPath, s.serve(a.providerMetadata))
	mux.Handle("GET "+advisory.CSAFDir+"{path...}", s.serve(a.csafFile))
	mux.Handle("GET "+advisory.HTMLIndex, s.serve(a.index))
	mux.Handle("GET "+advisory.OSVIndex+"{$}", s.serve(a.osvIndex))
	mux.Handle("GET "+advisory.HTMLIndex+"/{name}", s.serve(a.advisory))
}

// publisher is the issuer of the advisories: the server's public URL is
// the namespace (the configured one, else https:// and the request's
// host), its host name the name.
func (a *advisoryService) publisher(r *http.Request) advisory.Publisher {
	base := "https://" + a.s.cfg.Listen
	if pub := a.s.cfg.Disclosure.PublicURL; pub != "" {
		base = strings.TrimSuffix(pub, "/")
	} else if hostRE.MatchString(r.Host) {
		base = "https://" + r.Host
	}
	name := base
	if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
		name = u.Hostname()
	}
	contact := "Report vulnerabilities at " + base + "/disclose"
	if cs := a.s.cfg.Disclosure.Contacts; len(cs) > 0 {
		contact = "Report vulnerabilities to " + strings.Join(cs, " or ") + " (security.txt: " + base + "/.well-known/security.txt)"
	}
	return advisory.Publisher{Name: name, Namespace: base, Contact: contact}
}

// advisories builds every advisory from the published releases.
func (a *advisoryService) advisories(r *http.Request) ([]*advisory.Advisory, error) {
	rels, err := a.s.store.ListReleases(r.Context(), "")
	if err != nil {
		return nil, internal(err)
	}
	in := make([]advisory.Release, 0, len(rels))
	for _, rel := range rels {
		var fixes []string
		if rel.Fixes != "" {
			if err := json.Unmarshal([]byte(rel.Fixes), &fixes); err != nil {
				a.s.log.Error("release with unreadable fixes", "product", rel.Product, "version", rel.Version, "err", err)
			}
		}
		in = append(in, advisory.Release{Product: rel.Product, Version: rel.Version, Fixes: fixes, Severity: rel.Severity,
			Target: rel.Target, SHA256: rel.SHA256, Length: rel.Length, Published: rel.CreatedAt})
	}
	return advisory.Build(in), nil
}

// latestTime is the newest publication time, for Last-Modified.
func latestTime(advs []*advisory.Advisory) time.Time {
	var t time.Time
	for _, x := range advs {
		if x.Release.Published.After(t) {
			t = x.Release.Published
		}
	}
	return t
}

// serveBytes answers with data, honouring conditional and HEAD requests.
func serveBytes(w http.ResponseWriter, r *http.Request, contentType string, mod time.Time, data []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "public, max-age=300")
	http.ServeContent(w, r, "", mod, bytes.NewReader(data))
}

// serveHTML answers with a public page under a strict CSP.
func serveHTML(w http.ResponseWriter, r *http.Request, mod time.Time, data []byte) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	serveBytes(w, r, "text/html; charset=utf-8", mod, data)
}

func (a *advisoryService) providerMetadata(w http.ResponseWriter, r *http.Request) error {
	advs, err := a.advisories(r)
	if err != nil {
		return err
	}
	data, err := advisory.ProviderMetadata(a.publisher(r), advs)
	if err != nil {
		return internal(err)
	}
	serveBytes(w, r, "application/json", latestTime(advs), data)
	return nil
}

// csafFile serves the TLP:WHITE directory: listings, index.txt,
// changes.csv, YEAR/NAME.json and its .sha256 and .sha512 files.
func (a *advisoryService) csafFile(w http.ResponseWriter, r *http.Request) error {
	advs, err := a.advisories(r)
	if err != nil {
		return err
	}
	path := r.PathValue("path")
	mod := latestTime(advs)
	switch path {
	case "":
		var names []string
		for _, x := range advs {
			names = append(names, x.Year()+"/")
		}
		slices.Sort(names)
		names = append(slices.Compact(names), "changes.csv", "index.txt")
		return a.listing(w, r, mod, names)
	case "index.txt":
		serveBytes(w, r, "text/plain; charset=utf-8", mod, advisory.IndexTxt(advs))
		return nil
	case "changes.csv":
		serveBytes(w, r, "text/csv; charset=utf-8", mod, advisory.ChangesCSV(advs))
		return nil
	}
	year, file, ok := strings.Cut(path, "/")
	if !ok {
		for _, x := range advs {
			if x.Year() == year {
				http.Redirect(w, r, advisory.CSAFDir+year+"/", http.StatusMovedPermanently)
				return nil
			}
		}
		return errNotFound
	}
	var inYear []*advisory.Advisory
	for _, x := range advs {
		if x.Year() == year {
			inYear = append(inYear, x)
		}
	}
	if len(inYear) == 0 {
		return errNotFound
	}
	if file == "" {
		var names []string
		for _, x := range inYear {
			names = append(names, x.FileName(), x.FileName()+".sha256", x.FileName()+".sha512")
		}
		slices.Sort(names)
		return a.listing(w, r, latestTime(inYear), names)
	}
	for _, x := range inYear {
		name := x.FileName()
		if file != name && !strings.HasPrefix(file, name+".") {
			continue
		}
		doc, err := advisory.CSAF(a.publisher(r), x)
		if err != nil {
			return internal(err)
		}
		if file == name {
			serveBytes(w, r, "application/json", x.Release.Published, doc)
			return nil
		}
		if sum, ok := advisory.HashFile(strings.TrimPrefix(file, name+"."), doc, name); ok {
			serveBytes(w, r, "text/plain; charset=utf-8", x.Release.Published, sum)
			return nil
		}
	}
	return errNotFound
}

func (a *advisoryService) listing(w http.ResponseWriter, r *http.Request, mod time.Time, names []string) error {
	data, err := advisory.Listing(r.URL.Path, names)
	if err != nil {
		return internal(err)
	}
	serveHTML(w, r, mod, data)
	return nil
}

func (a *advisoryService) index(w http.ResponseWriter, r *http.Request) error {
	advs, err := a.advisories(r)
	if err != nil {
		return err
	}
	data, err := a.pages.Index(advs, a.css)
	if err != nil {
		return internal(err)
	}
	serveHTML(w, r, latestTime(advs), data)
	return nil
}

func (a *advisoryService) osvIndex(w http.ResponseWriter, r *http.Request) error {
	advs, err := a.advisories(r)
	if err != nil {
		return err
	}
	data, err := advisory.OSVList(a.publisher(r), advs)
	if err != nil {
		return internal(err)
	}
	serveBytes(w, r, "application/json", latestTime(advs), data)
	return nil
}

// advisory serves /advisories/ID (the web page) and /advisories/ID.osv.json.
func (a *advisoryService) advisory(w http.ResponseWriter, r *http.Request) error {
	advs, err := a.advisories(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	id, osv := strings.CutSuffix(name, ".osv.json")
	x := advisory.Find(advs, id)
	if x == nil {
		return errNotFound
	}
	if osv {
		data, err := advisory.OSV(a.publisher(r), x)
		if err != nil {
			return internal(err)
		}
		serveBytes(w, r, "application/json", x.Release.Published, data)
		return nil
	}
	data, err := a.pages.Page(x, a.css)
	if err != nil {
		return internal(err)
	}
	serveHTML(w, r, x.Release.Published, data)
	return nil
}
