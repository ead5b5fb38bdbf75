package disclosure

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed public.css
var css []byte

// CSSPath is where the public pages' stylesheet is served.
const CSSPath = "/assets/public.css"

// CSS returns the public pages' stylesheet.
func CSS() []byte { return css }

// Pages renders the public HTML pages. It is safe for concurrent use.
type Pages struct {
	pages   map[string]*template.Template
	cssHref string
}

// NewPages parses the embedded templates.
func NewPages() *Pages {
	sum := sha256.Sum256(css)
	p := &Pages{pages: map[string]*template.Template{}, cssHref: CSSPath + "?v=" + hex.EncodeToString(sum[:6])}
	funcs := template.FuncMap{
		"css":   func() string { return p.cssHref },
		"date":  func(t time.Time) string { return t.UTC().Format("2 January 2006") },
		"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"isURL": func(s string) bool { return strings.HasPrefix(s, "https://") },
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		base := n[len("templates/") : len(n)-len(".html")]
		if base == "layout" {
			continue
		}
		p.pages[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n))
	}
	return p
}

// View is what every page template gets.
type View struct {
	Title string
	Error string
	Data  any
}

// Render renders page name into HTML.
func (p *Pages) Render(name string, v View) ([]byte, error) {
	t, ok := p.pages[name]
	if !ok {
		return nil, fmt.Errorf("disclosure: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return nil, fmt.Errorf("disclosure: rendering %s: %w", name, err)
	}
	return buf.Bytes(), nil
}
