package advisory

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// Pages renders the advisory web pages. It is safe for concurrent use.
type Pages struct {
	index, page *template.Template
}

// NewPages parses the embedded templates.
func NewPages() *Pages {
	funcs := template.FuncMap{
		"date":    func(t time.Time) string { return t.UTC().Format("2 January 2006") },
		"when":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"vulnURL": VulnURL,
	}
	parse := func(name string) *template.Template {
		return template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return &Pages{index: parse("index"), page: parse("advisory")}
}

type view struct {
	Title string
	CSS   string // the stylesheet's URL, or empty
	Data  any
}

type pageData struct {
	Advisory *Advisory
	CSAF     string // path of the CSAF document
}

// Index renders the list of advisories; css is the stylesheet's URL.
func (p *Pages) Index(advs []*Advisory, css string) ([]byte, error) {
	return render(p.index, view{Title: "Security advisories", CSS: css, Data: advs})
}

// Page renders one advisory.
func (p *Pages) Page(a *Advisory, css string) ([]byte, error) {
	return render(p.page, view{Title: a.ID, CSS: css, Data: pageData{Advisory: a, CSAF: CSAFDir + a.Path()}})
}

func render(t *template.Template, v view) ([]byte, error) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return nil, fmt.Errorf("advisory: rendering %s: %w", t.Name(), err)
	}
	return buf.Bytes(), nil
}

var listingTmpl = template.Must(template.New("listing").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Index of {{.Dir}}</title></head>
<body>
<h1>Index of {{.Dir}}</h1>
<ul>
{{- range .Names}}
<li><a href="{{.}}">{{.}}</a></li>
{{- end}}
</ul>
</body>
</html>
`))

// Listing renders a plain directory listing (§7.1.14) of dir, whose
// entries are names relative to it (a trailing "/" for a folder).
func Listing(dir string, names []string) ([]byte, error) {
	var buf bytes.Buffer
	if err := listingTmpl.Execute(&buf, struct {
		Dir   string
		Names []string
	}{dir, names}); err != nil {
		return nil, fmt.Errorf("advisory: rendering listing: %w", err)
	}
	return buf.Bytes(), nil
}
