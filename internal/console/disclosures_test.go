package console_test

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/disclosure"
)

func TestDisclosurePages(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "olga", api.Grant{Role: api.RoleOperator})
	createUser(t, ts, "audrey", api.Grant{Role: api.RoleAuditor})
	body, _ := json.Marshal(disclosure.Submission{Summary: "Debug shell on UART", Product: "cam-100", Details: "Pins 3-4 give a root shell.", Email: "r@example.com"})
	resp, err := ts.HTTP.Post(ts.URL+"/api/v1/disclosures", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var rec disclosure.Receipt
	json.NewDecoder(resp.Body).Decode(&rec)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("submit: %d", resp.StatusCode)
	}

	inlineRE := regexp.MustCompile(`(?i)(\sstyle=|<script|<style|\son[a-z]+=|javascript:|https?://)`)
	b := newBrowser(t, ts)
	csrf := b.mustLogin("olga")
	list := b.get("/ui/disclosures")
	if list.Status != http.StatusOK || !strings.Contains(list.Body, rec.ID) || !strings.Contains(list.Body, "Debug shell on UART") {
		t.Fatalf("list: %d\n%s", list.Status, list.Body)
	}
	detail := b.get("/ui/disclosures/" + rec.ID)
	if detail.Status != http.StatusOK || !strings.Contains(detail.Body, "Pins 3-4 give a root shell.") || !strings.Contains(detail.Body, `id="transition-form"`) {
		t.Fatalf("detail: %d\n%s", detail.Status, detail.Body)
	}
	for _, p := range []struct{ path, body string }{{"list", list.Body}, {"detail", detail.Body}} {
		if m := inlineRE.FindString(p.body); m != "" {
			t.Errorf("%s page contains %q", p.path, m)
		}
	}

	// A move the workflow forbids re-shows the page with the allowed ones.
	p := b.post("/ui/disclosures/"+rec.ID+"/transition", url.Values{"csrf": {csrf}, "to": {"fixed"}})
	if p.Status != http.StatusConflict || !strings.Contains(html.UnescapeString(p.Body), "allowed: triaged, rejected, duplicate") {
		t.Errorf("forbidden move: %d\n%s", p.Status, p.Body)
	}
	// Without the CSRF token nothing happens.
	if p := b.post("/ui/disclosures/"+rec.ID+"/transition", url.Values{"to": {"triaged"}}); p.Status != http.StatusForbidden {
		t.Errorf("no CSRF token: %d", p.Status)
	}
	p = b.post("/ui/disclosures/"+rec.ID+"/transition", url.Values{"csrf": {csrf}, "to": {"triaged"}, "note": {"Confirmed."}})
	if p.Status != http.StatusSeeOther || p.Location != "/ui/disclosures/"+rec.ID {
		t.Fatalf("move: %d %q\n%s", p.Status, p.Location, p.Body)
	}
	detail = b.get(p.Location)
	if !strings.Contains(detail.Body, `id="state">triaged<`) || !strings.Contains(detail.Body, "user:olga") || !strings.Contains(detail.Body, "Confirmed.") {
		t.Errorf("after the move:\n%s", detail.Body)
	}

	// An auditor reads but gets no form, and cannot move by posting.
	a := newBrowser(t, ts)
	acsrf := a.mustLogin("audrey")
	if d := a.get("/ui/disclosures/" + rec.ID); d.Status != http.StatusOK || strings.Contains(d.Body, `id="transition-form"`) {
		t.Errorf("auditor detail: %d, form shown: %v", d.Status, strings.Contains(d.Body, `id="transition-form"`))
	}
	if p := a.post("/ui/disclosures/"+rec.ID+"/transition", url.Values{"csrf": {acsrf}, "to": {"fixing"}}); p.Status != http.StatusForbidden {
		t.Errorf("auditor move: %d, want 403", p.Status)
	}
	if p := a.get("/ui/disclosures/VR-AAAAAAAAAA"); p.Status != http.StatusNotFound {
		t.Errorf("unknown report: %d", p.Status)
	}
}

func TestProductsPage(t *testing.T) {
	ts := start(t)
	createUser(t, ts, "root", api.Grant{Role: api.RoleAdmin})
	createUser(t, ts, "olga", api.Grant{Role: api.RoleOperator})
	b := newBrowser(t, ts)
	csrf := b.mustLogin("root")
	form := url.Values{"csrf": {csrf}, "name": {"cam-100"}, "support_until": {"2031-12-31"}, "update_cadence": {"monthly"}, "critical_fix_target": {"14 days"}}
	p := b.post("/ui/products", form)
	if p.Status != http.StatusSeeOther || p.Location != "/ui/products?saved=cam-100" {
		t.Fatalf("save: %d %q\n%s", p.Status, p.Location, p.Body)
	}
	page := b.get(p.Location)
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `id="saved"`) || !strings.Contains(page.Body, "2031-12-31") || !strings.Contains(page.Body, `id="product-form"`) {
		t.Fatalf("products page: %d\n%s", page.Status, page.Body)
	}
	if m := regexp.MustCompile(`(?i)(\sstyle=|<script|<style|\son[a-z]+=|javascript:|https?://)`).FindString(page.Body); m != "" {
		t.Errorf("products page contains %q", m)
	}
	if edit := b.get("/ui/products?edit=cam-100"); !strings.Contains(edit.Body, `value="monthly"`) {
		t.Errorf("edit form not filled:\n%s", edit.Body)
	}
	form.Set("support_until", "2031-02-30")
	if p := b.post("/ui/products", form); p.Status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(p.Body), "Support_until") {
		t.Errorf("bad date: %d\n%s", p.Status, p.Body)
	}
	// The public page shows what was saved.
	if resp, err := ts.HTTP.Get(ts.URL + "/products.json"); err != nil {
		t.Fatal(err)
	} else {
		var list disclosure.ProductList
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list.Products) != 1 || list.Products[0].SupportUntil != "2031-12-31" {
			t.Errorf("products.json: %+v", list)
		}
	}

	o := newBrowser(t, ts)
	ocsrf := o.mustLogin("olga")
	if page := o.get("/ui/products"); page.Status != http.StatusOK || !strings.Contains(page.Body, "cam-100") || strings.Contains(page.Body, `id="product-form"`) {
		t.Errorf("operator view: %d, form shown: %v", page.Status, strings.Contains(page.Body, `id="product-form"`))
	}
	form.Set("csrf", ocsrf)
	form.Set("support_until", "2020-01-01")
	if p := o.post("/ui/products", form); p.Status != http.StatusForbidden {
		t.Errorf("operator save: %d, want 403", p.Status)
	}
}
