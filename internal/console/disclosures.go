package console

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/disclosure"
	"github.com/bulwark-iot/bulwark/internal/server"
)

// Vulnerability reports: the list, one report with its timeline, and the
// form that moves a report through the workflow. Authorisation, audit and
// the workflow rules are the server's (the same helpers as the admin API).

var disclosuresCrumb = &crumb{"Vulnerability reports", Prefix + "disclosures"}

// disclosureRoutes registers the pages; it runs after the templates are
// parsed, and parses its own from a clone of a page that shares the
// layout, partials and functions.
func (c *console) disclosureRoutes(m *http.ServeMux) {
	for _, name := range []string{"disclosures", "disclosure", "products"} {
		t := template.Must(c.pages["overview"].Clone())
		c.pages[name] = template.Must(t.ParseFS(templateFS, "templates/"+name+".html"))
	}
	m.Handle("GET /ui/disclosures", c.auth(c.disclosures))
	m.Handle("GET /ui/disclosures/{id}", c.auth(c.disclosure))
	m.Handle("POST /ui/disclosures/{id}/transition", c.auth(c.transitionDisclosure))
	m.Handle("GET /ui/products", c.auth(c.products))
	m.Handle("POST /ui/products", c.auth(c.adminOnly(c.putProduct)))
}

type disclosuresData struct {
	List   disclosure.ReportList
	State  string
	States []string
}

func (c *console) disclosures(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	list, err := c.s.ListDisclosures(r, p)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "disclosures", view{Title: "Vulnerability reports", Nav: "disclosures", P: p,
		Data: disclosuresData{List: list, State: r.URL.Query().Get("state"), States: disclosure.States}})
	return nil
}

type disclosureData struct {
	R       disclosure.Report
	CanMove bool
	Form    disclosure.TransitionRequest
}

func (c *console) disclosurePage(w http.ResponseWriter, r *http.Request, p *server.Principal, status int, form disclosure.TransitionRequest, errMsg string) error {
	rep, err := c.s.GetDisclosure(r, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if form.To == "" && len(rep.Allowed) > 0 {
		form.To = rep.Allowed[0]
	}
	c.render(w, r, status, "disclosure", view{Title: rep.ID, Nav: "disclosures", Crumb: disclosuresCrumb, P: p, Error: errMsg,
		Data: disclosureData{R: rep, CanMove: p.Global(api.RoleOperator) && len(rep.Allowed) > 0, Form: form}})
	return nil
}

func (c *console) disclosure(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	return c.disclosurePage(w, r, p, http.StatusOK, disclosure.TransitionRequest{}, "")
}

func (c *console) transitionDisclosure(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	f := r.PostForm
	req := disclosure.TransitionRequest{To: f.Get("to"), Note: strings.ReplaceAll(f.Get("note"), "\r\n", "\n"), Advisory: f.Get("advisory")}
	id := r.PathValue("id")
	if _, err := c.s.TransitionDisclosure(r, p, id, req); err != nil {
		status, msg := server.ErrorMessage(err)
		if status >= 500 || status == http.StatusNotFound || status == http.StatusForbidden {
			return err
		}
		return c.disclosurePage(w, r, p, status, req, sentence(msg))
	}
	redirect(w, r, Prefix+"disclosures/"+url.PathEscape(id), nil)
	return nil
}

// ---- products ----

type productsData struct {
	Products []disclosure.Product
	Form     disclosure.Product
	Saved    string
}

func (c *console) productsPage(w http.ResponseWriter, r *http.Request, p *server.Principal, status int, d productsData, errMsg string) error {
	ps, err := c.s.Products(r.Context())
	if err != nil {
		return err
	}
	d.Products = ps
	c.render(w, r, status, "products", view{Title: "Products and support", Nav: "products", P: p, Error: errMsg, Data: d})
	return nil
}

func (c *console) products(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	d := productsData{Saved: r.URL.Query().Get("saved")}
	if name := r.URL.Query().Get("edit"); name != "" {
		ps, err := c.s.Products(r.Context())
		if err != nil {
			return err
		}
		for _, pr := range ps {
			if pr.Name == name {
				d.Form = pr
			}
		}
	}
	return c.productsPage(w, r, p, http.StatusOK, d, "")
}

func (c *console) putProduct(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	f := r.PostForm
	req := disclosure.Product{Name: f.Get("name"), Description: f.Get("description"), SupportUntil: f.Get("support_until"),
		UpdateCadence: f.Get("update_cadence"), CriticalFixTarget: f.Get("critical_fix_target")}
	out, _, err := c.s.PutProduct(r, p, req)
	if err != nil {
		status, msg := server.ErrorMessage(err)
		if status >= 500 || status == http.StatusForbidden {
			return err
		}
		return c.productsPage(w, r, p, status, productsData{Form: req}, sentence(msg))
	}
	redirect(w, r, Prefix+"products", url.Values{"saved": {out.Name}})
	return nil
}
