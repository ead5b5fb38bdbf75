package console

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/server"
)

// Releases and staged deployments: the release list, the deployment
// list, one deployment with its stages, devices and history and the
// pause, resume and abort buttons, and the form that starts one.
// Authorisation, validation and audit are the server's (the same helpers
// as the admin API).

var deploymentsCrumb = &crumb{"Deployments", Prefix + "deployments"}

// deploymentStates are the states a deployment can be in, in the order
// the list's filter shows them.
var deploymentStates = []string{"running", "paused", "halted", "aborted", "completed"}

// deploymentFlashes are the messages a redirect can ask the deployment
// page to show.
var deploymentFlashes = map[string]string{
	"created": "The deployment has started: its first stage is open to devices.",
	"pause":   "The deployment is paused: no more devices are given the release until it is resumed.",
	"resume":  "The deployment is running again.",
	"abort":   "The deployment has been aborted. Devices that already installed the release keep it.",
}

// rolloutRoutes registers the pages. Like disclosureRoutes, it parses
// its templates from clones of a page that shares the layout, partials
// and functions; the deployment templates hold two pages each, chosen
// by a small "content" wrapper.
func (c *console) rolloutRoutes(m *http.ServeMux) {
	funcs := template.FuncMap{
		"stateClass":    deploymentStateClass,
		"devClass":      deviceStatusClass,
		"severityClass": severityClass,
		"bytes":         bytesText,
	}
	pages := map[string][2]string{
		"releases":         {"releases.html", ""},
		"deployments":      {"deployments.html", "deployments-list"},
		"deployment-new":   {"deployments.html", "deployment-form"},
		"deployment":       {"deployment.html", "deployment-detail"},
		"deployment-abort": {"deployment.html", "deployment-abort"},
	}
	for name, pg := range pages {
		t := template.Must(c.pages["overview"].Clone()).Funcs(funcs)
		t = template.Must(t.ParseFS(templateFS, "templates/"+pg[0]))
		if pg[1] != "" {
			t = template.Must(t.Parse(`{{define "content"}}{{template "` + pg[1] + `" .}}{{end}}`))
		}
		c.pages[name] = t
	}
	m.Handle("GET /ui/releases", c.auth(c.releases))
	m.Handle("GET /ui/deployments", c.auth(c.deployments))
	m.Handle("GET /ui/deployments/new", c.auth(c.newDeployment))
	m.Handle("POST /ui/deployments", c.auth(c.createDeployment))
	m.Handle("GET /ui/deployments/{id}", c.auth(c.deployment))
	m.Handle("GET /ui/deployments/{id}/abort", c.auth(c.abortConfirm))
	m.Handle("POST /ui/deployments/{id}/{action}", c.auth(c.deploymentAction))
}

// ---- the list ----

type deploymentRow struct {
	api.Deployment
	Total, Success, Failed int
	Pct                    int // share of devices finished, 0..100
}

func rowOf(d api.Deployment) deploymentRow {
	row := deploymentRow{Deployment: d}
	for status, n := range d.Counts {
		row.Total += n
		switch status {
		case "success":
			row.Success += n
		case "failed", "rolled-back":
			row.Failed += n
		}
	}
	if row.Total > 0 {
		row.Pct = (row.Success + row.Failed) * 100 / row.Total
	}
	return row
}

type deploymentsData struct {
	State     string
	States    []string
	Rows      []deploymentRow
	CanDeploy bool
}

func (c *console) deployments(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	d := deploymentsData{State: r.URL.Query().Get("state"), States: deploymentStates}
	if !slices.Contains(deploymentStates, d.State) {
		d.State = ""
	}
	list, err := c.s.ListDeployments(r, p, d.State)
	if err != nil {
		return err
	}
	for _, dep := range list {
		d.Rows = append(d.Rows, rowOf(dep))
	}
	groups, err := c.deployGroups(r, p)
	if err != nil {
		return err
	}
	d.CanDeploy = len(groups) > 0
	c.render(w, r, http.StatusOK, "deployments", view{Title: "Deployments", Nav: "deployments", P: p, Data: d})
	return nil
}

// ---- one deployment ----

// stageView is one stage of a deployment for display.
type stageView struct {
	N, Pct   int
	Devices  int    // devices in this stage (not cumulative)
	Finished int    // of them, done (success or failure)
	Failed   int    // of them, failed or rolled back
	State    string // done, open, halted or waiting
}

type deviceRow struct {
	api.DeploymentDevice
	Hostname string
}

type eventRow struct {
	api.DeploymentEvent
	Hostname string
}

type deploymentData struct {
	D          deploymentRow
	Stages     []stageView
	Counts     []statusCount
	Devices    []deviceRow
	More       int // devices not listed
	Events     []eventRow
	CanOperate bool
	CanPause   bool
	CanResume  bool
	CanAbort   bool
}

type statusCount struct {
	Status string
	N      int
}

// deviceStatusOrder is the order counts are shown in.
var deviceStatusOrder = []string{"waiting", "pending", "downloading", "installing", "verifying", "success", "failed", "rolled-back", "cancelled"}

// maxDeviceRows bounds the device table; maxEventRows the history.
const (
	maxDeviceRows = 500
	maxEventRows  = 200
)

var failedStatus = map[string]bool{"failed": true, "rolled-back": true}
var finishedStatus = map[string]bool{"success": true, "failed": true, "rolled-back": true, "cancelled": true}

// stagesOf lays the deployment's devices (in rollout order) out over its
// cumulative stages, the way the rollout engine opens them.
func stagesOf(d api.Deployment) []stageView {
	n := len(d.Devices)
	out := make([]stageView, len(d.Stages))
	from := 0
	for i, pct := range d.Stages {
		upTo := min(n, (n*pct+99)/100)
		sv := stageView{N: i + 1, Pct: pct, Devices: max(0, upTo-from)}
		for _, dd := range d.Devices[min(from, upTo):upTo] {
			if finishedStatus[dd.Status] {
				sv.Finished++
			}
			if failedStatus[dd.Status] {
				sv.Failed++
			}
		}
		switch {
		case d.State == "completed" || i+1 < d.Stage:
			sv.State = "done"
		case i+1 > d.Stage:
			sv.State = "waiting"
		case d.State == "halted":
			sv.State = "halted"
		case sv.Finished == sv.Devices && d.State != "aborted":
			sv.State = "done"
		default:
			sv.State = "open"
		}
		if d.State == "aborted" && sv.State != "done" {
			sv.State = "stopped"
		}
		from = max(from, upTo)
		out[i] = sv
	}
	return out
}

func (c *console) deploymentPage(w http.ResponseWriter, r *http.Request, p *server.Principal, status int, flashMsg, errMsg string) error {
	dep, err := c.s.ShowDeployment(r, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	d := deploymentData{D: rowOf(dep), Stages: stagesOf(dep), CanOperate: server.CanOperateDeployment(p, dep.Group)}
	for _, s := range deviceStatusOrder {
		if n := dep.Counts[s]; n > 0 {
			d.Counts = append(d.Counts, statusCount{s, n})
		}
	}
	for s, n := range dep.Counts {
		if !slices.Contains(deviceStatusOrder, s) {
			d.Counts = append(d.Counts, statusCount{s, n})
		}
	}
	devs := dep.Devices
	if len(devs) > maxDeviceRows {
		d.More, devs = len(devs)-maxDeviceRows, devs[:maxDeviceRows]
	}
	hostnames := map[string]string{}
	for _, dd := range devs {
		row := deviceRow{DeploymentDevice: dd}
		if sd, err := c.s.VisibleDevice(r, p, dd.DeviceID, api.RoleAuditor); err == nil {
			row.Hostname = sd.Hostname
			hostnames[dd.DeviceID] = sd.Hostname
		}
		d.Devices = append(d.Devices, row)
	}
	evs := dep.Events
	for i := len(evs) - 1; i >= 0 && len(d.Events) < maxEventRows; i-- { // newest first
		d.Events = append(d.Events, eventRow{DeploymentEvent: evs[i], Hostname: hostnames[evs[i].DeviceID]})
	}
	if d.CanOperate {
		d.CanPause = dep.State == "running"
		d.CanResume = dep.State == "paused" || dep.State == "halted"
		d.CanAbort = d.CanPause || d.CanResume
	}
	c.render(w, r, status, "deployment", view{Title: "Deployment " + dep.ID, Nav: "deployments", Crumb: deploymentsCrumb, P: p,
		Flash: flashMsg, Error: errMsg, Data: d})
	return nil
}

func (c *console) deployment(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	return c.deploymentPage(w, r, p, http.StatusOK, deploymentFlashes[r.URL.Query().Get("done")], "")
}

func (c *console) abortConfirm(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	dep, err := c.s.ShowDeployment(r, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !server.CanOperateDeployment(p, dep.Group) {
		return errForbidden
	}
	if dep.State == "aborted" || dep.State == "completed" {
		redirect(w, r, Prefix+"deployments/"+url.PathEscape(dep.ID), nil)
		return nil
	}
	c.render(w, r, http.StatusOK, "deployment-abort", view{Title: "Abort deployment", Nav: "deployments", Crumb: deploymentsCrumb, P: p, Data: rowOf(dep)})
	return nil
}

func (c *console) deploymentAction(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	switch action {
	case server.DeploymentPause, server.DeploymentResume, server.DeploymentAbort:
	default:
		return errNotFound
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if _, err := c.s.DeploymentAction(r, p, id, action, reason); err != nil {
		status, msg := server.ErrorMessage(err)
		if status == http.StatusConflict || status == http.StatusBadRequest {
			return c.deploymentPage(w, r, p, status, "", sentence(msg))
		}
		return err
	}
	redirect(w, r, Prefix+"deployments/"+url.PathEscape(id), url.Values{"done": {action}})
	return nil
}

// ---- a new deployment ----

type deploymentForm struct {
	Release   string // product@version
	Group     string
	Stages    string
	Halt      string
	Expedited bool
}

type newDeploymentData struct {
	Form     deploymentForm
	Releases []api.Release
	Groups   []string
}

// deployGroups returns the groups p may deploy to.
func (c *console) deployGroups(r *http.Request, p *server.Principal) ([]string, error) {
	groups, err := c.s.Store().ListGroups(r.Context())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range groups {
		if p.Can(api.RoleOperator, g.Name) {
			out = append(out, g.Name)
		}
	}
	return out, nil
}

func (c *console) deploymentForm(w http.ResponseWriter, r *http.Request, p *server.Principal, status int, f deploymentForm, errMsg string) error {
	groups, err := c.deployGroups(r, p)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return errForbidden
	}
	rels, err := c.s.ListReleases(r, "")
	if err != nil {
		return err
	}
	c.render(w, r, status, "deployment-new", view{Title: "New deployment", Nav: "deployments", Crumb: deploymentsCrumb, P: p, Error: errMsg,
		Data: newDeploymentData{Form: f, Releases: rels, Groups: groups}})
	return nil
}

func (c *console) newDeployment(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	return c.deploymentForm(w, r, p, http.StatusOK, deploymentForm{Release: r.URL.Query().Get("release"), Stages: "5,25,100", Halt: "10"}, "")
}

func (c *console) createDeployment(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	pf := r.PostForm
	f := deploymentForm{Release: pf.Get("release"), Group: pf.Get("group"), Stages: strings.ReplaceAll(strings.TrimSpace(pf.Get("stages")), " ", ""),
		Halt: strings.TrimSpace(pf.Get("halt")), Expedited: pf.Get("expedited") != ""}
	product, version, ok := strings.Cut(f.Release, "@")
	if !ok || product == "" || version == "" {
		return c.deploymentForm(w, r, p, http.StatusBadRequest, f, "Choose a release to deploy.")
	}
	if f.Group == "" {
		return c.deploymentForm(w, r, p, http.StatusBadRequest, f, "Choose a group to deploy to.")
	}
	halt, err := strconv.Atoi(f.Halt)
	if err != nil || halt < 0 || halt > 100 {
		return c.deploymentForm(w, r, p, http.StatusBadRequest, f, "The halt threshold must be a whole percentage from 0 to 100.")
	}
	dep, err := c.s.CreateDeployment(r, p, api.DeploymentCreate{Product: product, Version: version, Group: f.Group,
		Stages: f.Stages, HaltFailurePct: &halt, Expedited: f.Expedited})
	if err != nil {
		status, msg := server.ErrorMessage(err)
		if status >= 500 {
			return err
		}
		return c.deploymentForm(w, r, p, status, f, sentence(msg))
	}
	redirect(w, r, Prefix+"deployments/"+url.PathEscape(dep.ID), url.Values{"done": {"created"}})
	return nil
}

// ---- formatting ----

func deploymentStateClass(state string) string {
	switch state {
	case "running":
		return "badge-neutral"
	case "paused":
		return "badge-warn"
	case "halted":
		return "badge-bad"
	case "completed":
		return "badge-ok"
	}
	return "badge-muted"
}

func deviceStatusClass(status string) string {
	switch status {
	case "success", "done":
		return "badge-ok"
	case "failed", "rolled-back", "halted":
		return "badge-bad"
	case "downloading", "installing", "verifying", "open":
		return "badge-warn"
	case "pending":
		return "badge-neutral"
	}
	return "badge-muted"
}
