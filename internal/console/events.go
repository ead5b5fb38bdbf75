package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// Security events and alerts: the event search with its live tail, the
// device page's recent events, the alert list with its Acknowledge button
// and the navigation's count of open alerts. Scoping, validation and
// audit are the server's (the same helpers as the admin API).

// eventsPerPage is how many events a page of the event search lists;
// deviceEventRows how many the device page shows.
const (
	eventsPerPage   = 50
	deviceEventRows = 20
)

// liveTailSeconds is how often the live tail reloads the page. The
// console runs no script, so the tail is a meta refresh (which the CSP
// allows) of the newest page.
const liveTailSeconds = 5

// alertsShown bounds the alerts the alert page reads; the severity and
// rule filters apply to these, the most recently seen.
const alertsShown = api.MaxAlertPage

// openAlertsCounted bounds the navigation's count of open alerts: more
// shows as "100+".
const openAlertsCounted = 100

var alertsFlashes = map[string]string{
	"acked": "The alert has been acknowledged and the acknowledgement recorded in the audit log.",
}

func (c *console) eventRoutes(m *http.ServeMux) {
	m.Handle("GET /ui/events", c.auth(c.eventsPage))
	m.Handle("GET /ui/alerts", c.auth(c.alertsPage))
	m.Handle("POST /ui/alerts/{id}/ack", c.auth(c.ackAlert))
}

// securityEvent is one stored event, for display.
type securityEvent struct {
	ID         int64
	DeviceID   string
	Seq        uint64
	Source     string // device or server
	Type       string
	SeverityID int
	Severity   string
	DeviceTime time.Time
	ServerTime time.Time
	Summary    string
	Raw        string // the envelope as stored, indented
	New        bool   // arrived since the previous live-tail load
}

// securityEvents converts stored events for display; rows with an ID above
// seen are marked new (seen 0 marks none).
func securityEvents(list []store.Event, seen int64) []securityEvent {
	out := make([]securityEvent, 0, len(list))
	for i := range list {
		e := &list[i]
		row := securityEvent{ID: e.ID, DeviceID: e.DeviceID, Seq: e.Seq, Source: e.Source, Type: e.Type, SeverityID: e.SeverityID,
			Severity: strings.ToLower(events.SeverityName(e.SeverityID)), DeviceTime: e.DeviceTime, ServerTime: e.ServerTime,
			Summary: detailsSummary(e.Data), New: seen > 0 && e.ID > seen}
		var buf bytes.Buffer
		if json.Indent(&buf, e.Data, "", "  ") == nil {
			row.Raw = buf.String()
		} else {
			row.Raw = string(e.Data)
		}
		out = append(out, row)
	}
	return out
}

// severityNames are the OCSF severities a filter offers, lowest first,
// in lower case.
func severityNames() []string {
	var out []string
	for id := events.SeverityInformational; id <= events.SeverityFatal; id++ {
		out = append(out, strings.ToLower(events.SeverityName(id)))
	}
	return out
}

// maxSummary bounds the one-line summary of an event's details.
const maxSummary = 240

// detailsSummary is a one-line "key=value" summary of an event
// envelope's details, keys in order, nested values as compact JSON.
func detailsSummary(data []byte) string {
	var env struct {
		Details map[string]json.RawMessage `json:"details"`
	}
	if json.Unmarshal(data, &env) != nil || len(env.Details) == 0 {
		return ""
	}
	keys := make([]string, 0, len(env.Details))
	for k := range env.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		v := env.Details[k]
		var s string
		if json.Unmarshal(v, &s) != nil {
			var buf bytes.Buffer
			if json.Compact(&buf, v) == nil {
				s = buf.String()
			} else {
				s = string(v)
			}
		}
		if s == "" || s == "null" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%s", k, s)
		if b.Len() > maxSummary {
			break
		}
	}
	s := b.String()
	if len(s) > maxSummary {
		// Cut on a rune boundary.
		s = strings.ToValidUTF8(s[:maxSummary], "") + "…"
	}
	return s
}

// eventFilterKeys are the query parameters of the event search, as the
// server's event filter reads them.
var eventFilterKeys = []string{"device", "group", "type", "severity", "since", "until"}

type eventsData struct {
	Device, Group, Type, Severity, Since, Until string
	Groups                                      []string
	Types                                       []string
	Severities                                  []string
	Events                                      []securityEvent
	Filtered                                    bool
	Live                                        bool
	NewestURL, NextURL, LiveURL, StopURL        string
}

// formTime turns a datetime-local form value (taken as UTC) into RFC
// 3339; anything else is passed on for the server to judge.
func formTime(v string) string {
	v = strings.TrimSpace(v)
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return v
}

// formValue shows a time filter in the datetime-local field: an RFC 3339
// time (from a link or the API's syntax) as UTC, anything else as given.
func formValue(v string) string {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC().Format("2006-01-02T15:04:05")
	}
	return v
}

func (c *console) eventsPage(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	in := r.URL.Query()
	d := eventsData{Device: strings.TrimSpace(in.Get("device")), Group: in.Get("group"), Type: in.Get("type"), Severity: in.Get("severity"),
		Since: strings.TrimSpace(in.Get("since")), Until: strings.TrimSpace(in.Get("until")), Live: in.Get("live") == "1",
		Types: events.Types()}
	d.Severities = severityNames()
	groups, err := c.s.Store().ListGroups(r.Context())
	if err != nil {
		return err
	}
	for _, g := range groups {
		if p.Can(api.RoleAuditor, g.Name) {
			d.Groups = append(d.Groups, g.Name)
		}
	}
	filters := url.Values{}
	for k, v := range map[string]string{"device": d.Device, "group": d.Group, "type": d.Type, "severity": d.Severity,
		"since": formTime(d.Since), "until": formTime(d.Until)} {
		if v != "" {
			filters.Set(k, v)
		}
	}
	d.Filtered = len(filters) > 0
	d.Since, d.Until = formValue(d.Since), formValue(d.Until)
	link := func(extra url.Values) string {
		q := url.Values{}
		for k, v := range filters {
			q[k] = v
		}
		for k, v := range extra {
			q[k] = v
		}
		if len(q) == 0 {
			return Prefix + "events"
		}
		return Prefix + "events?" + q.Encode()
	}
	q := url.Values{}
	for k, v := range filters {
		q[k] = v
	}
	cursor := in.Get("cursor")
	if cursor != "" && !d.Live {
		q.Set("cursor", cursor)
	}
	v := view{Title: "Security events", Nav: "events", P: p}
	list, next, err := c.s.EventsPage(withQuery(r, q), p, eventsPerPage)
	if err != nil {
		status, msg := server.ErrorMessage(err)
		if status != http.StatusBadRequest && status != http.StatusNotFound {
			return err
		}
		// A bad filter, or a device that is not there (or not the
		// viewer's): say so above the form.
		if status == http.StatusNotFound {
			msg = "no device " + d.Device + " in your scope"
		}
		d.Live = false
		v.Error, v.Data = sentence(msg), d
		c.render(w, r, status, "events", v)
		return nil
	}
	seen, _ := strconv.ParseInt(in.Get("seen"), 10, 64)
	d.Events = securityEvents(list, seen)
	if d.Live {
		top := seen
		if len(list) > 0 {
			top = max(top, list[0].ID)
		}
		extra := url.Values{"live": {"1"}}
		if top > 0 {
			extra.Set("seen", strconv.FormatInt(top, 10))
		}
		v.Refresh = liveTailSeconds
		v.RefreshURL = link(extra)
		d.StopURL = link(nil)
	} else {
		d.LiveURL = link(url.Values{"live": {"1"}})
		if next != "" {
			d.NextURL = link(url.Values{"cursor": {next}})
		}
		if cursor != "" {
			d.NewestURL = link(nil)
		}
	}
	v.Data = d
	c.render(w, r, http.StatusOK, "events", v)
	return nil
}

// deviceEvents is the device page's list of its most recent events.
func (c *console) deviceEvents(r *http.Request, p *server.Principal, deviceID string) ([]securityEvent, string, error) {
	list, next, err := c.s.EventsPage(withQuery(r, url.Values{"device": {deviceID}}), p, deviceEventRows)
	if err != nil {
		return nil, "", err
	}
	more := ""
	if next != "" {
		more = Prefix + "events?" + url.Values{"device": {deviceID}}.Encode()
	}
	return securityEvents(list, 0), more, nil
}

// ---- alerts ----

// alertStates are the alert states, in the order the filter shows them.
var alertStates = []string{api.AlertOpen, api.AlertAcknowledged, api.AlertResolved}

type alertRow struct {
	api.Alert
	CanAck bool
}

type alertsData struct {
	Status, Severity, Device, Rule string
	States, Severities, Rules      []string
	Alerts                         []alertRow
	Filtered                       bool
	Capped                         bool   // the store held more than alertsShown
	Return                         string // this list, for the Acknowledge form to come back to
}

func (c *console) alertsPage(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	in := r.URL.Query()
	d := alertsData{Status: in.Get("status"), Severity: in.Get("severity"), Device: strings.TrimSpace(in.Get("device")), Rule: in.Get("rule"),
		States: alertStates}
	if !in.Has("status") {
		d.Status = api.AlertOpen // the default view: what needs attention
	}
	d.Severities = severityNames()
	d.Filtered = d.Status != "" || d.Severity != "" || d.Device != "" || d.Rule != ""
	ret := url.Values{}
	for k, v := range in {
		if k != "done" {
			ret[k] = v
		}
	}
	d.Return = Prefix + "alerts"
	if len(ret) > 0 {
		d.Return += "?" + ret.Encode()
	}
	v := view{Title: "Alerts", Nav: "alerts", P: p, Flash: alertsFlashes[in.Get("done")]}
	fail := func(status int, msg string) error {
		v.Error, v.Data = sentence(msg), d
		c.render(w, r, status, "alerts", v)
		return nil
	}
	minSev := 0
	if d.Severity != "" {
		minSev = slices.Index(d.Severities, strings.ToLower(d.Severity)) + events.SeverityInformational
		if minSev < events.SeverityInformational {
			return fail(http.StatusBadRequest, "severity must be one of "+strings.Join(d.Severities, ", "))
		}
	}
	list, err := c.s.Alerts(r, p, server.AlertQuery{Status: d.Status, DeviceID: d.Device, Limit: alertsShown})
	if err != nil {
		status, msg := server.ErrorMessage(err)
		switch status {
		case http.StatusBadRequest:
			return fail(status, msg)
		case http.StatusNotFound:
			return fail(status, "no device "+d.Device+" in your scope")
		}
		return err
	}
	d.Capped = len(list) == alertsShown
	rules := map[string]bool{}
	devGroup := map[string]string{}
	for _, a := range list {
		rules[a.Rule] = true
		if (minSev > 0 && a.SeverityID < minSev) || (d.Rule != "" && a.Rule != d.Rule) {
			continue
		}
		row := alertRow{Alert: a}
		row.Severity = strings.ToLower(a.Severity)
		if a.Status == api.AlertOpen {
			g, ok := devGroup[a.DeviceID]
			if !ok {
				if dev, err := c.s.Store().GetDevice(r.Context(), a.DeviceID); err == nil {
					g = dev.Group
				}
				devGroup[a.DeviceID] = g
			}
			row.CanAck = p.Can(api.RoleOperator, g)
		}
		d.Alerts = append(d.Alerts, row)
	}
	if d.Rule != "" {
		rules[d.Rule] = true
	}
	for r := range rules {
		d.Rules = append(d.Rules, r)
	}
	slices.Sort(d.Rules)
	v.Data = d
	c.render(w, r, http.StatusOK, "alerts", v)
	return nil
}

func (c *console) ackAlert(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	if _, err := c.s.AckAlert(r, p, r.PathValue("id")); err != nil {
		return err
	}
	// Back to the list the button was on, when it says which.
	back := Prefix + "alerts"
	q := url.Values{}
	if ret := r.PostForm.Get("return"); ret != "" {
		if u, err := url.Parse(safeNext(ret)); err == nil && u.Path == back {
			q = u.Query()
		}
	}
	q.Set("done", "acked")
	redirect(w, r, back, q)
	return nil
}

// openAlerts is the navigation's count of the viewer's open alerts, as
// text ("" for none, "100+" past the count's bound).
func (c *console) openAlerts(r *http.Request, p *server.Principal) string {
	list, err := c.s.Alerts(r, p, server.AlertQuery{Status: api.AlertOpen, Limit: openAlertsCounted})
	if err != nil {
		c.log.Warn("console: counting open alerts", "err", err)
		return ""
	}
	switch n := len(list); {
	case n == 0:
		return ""
	case n >= openAlertsCounted:
		return strconv.Itoa(openAlertsCounted) + "+"
	default:
		return strconv.Itoa(n)
	}
}

// sevClass is the badge colour of an OCSF severity name.
func sevClass(s string) string {
	switch strings.ToLower(s) {
	case "critical", "fatal", "high":
		return "badge-bad"
	case "medium":
		return "badge-warn"
	case "low":
		return "badge-neutral"
	}
	return "badge-muted"
}

// alertStateClass is the badge colour of an alert state.
func alertStateClass(s string) string {
	switch s {
	case api.AlertOpen:
		return "badge-bad"
	case api.AlertAcknowledged:
		return "badge-warn"
	case api.AlertResolved:
		return "badge-ok"
	}
	return "badge-muted"
}
