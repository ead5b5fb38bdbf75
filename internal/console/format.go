package console

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

var pageNames = []string{"login", "error", "overview", "devices", "device", "revoke", "users", "tokens", "account", "audit", "events", "alerts"}

func (c *console) parseTemplates() map[string]*template.Template {
	funcs := template.FuncMap{
		"css":        func() string { return c.cssHref },
		"ago":        c.ago,
		"when":       when,
		"iso":        iso,
		"until":      c.until,
		"uptime":     uptime,
		"badge":      badgeClass,
		"grants":     grantsText,
		"joinAddrs":  func(a []string) string { return strings.Join(a, ", ") },
		"assurance":  assurance,
		"outcomeOK":  func(o string) bool { return o == "ok" },
		"claims":     claimRows,
		"tierClass":  tierClass,
		"trust":      trustOf,
		"trustClass": trustClass,
		"b64":        func(b []byte) string { return base64.StdEncoding.EncodeToString(b) },
		"hasPrefix":  strings.HasPrefix,
		"sevClass":   sevClass,
		"alertClass": alertStateClass,
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t := template.New(name).Funcs(funcs)
		out[name] = template.Must(t.ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
	}
	return out
}

// timeOf accepts a time.Time or *time.Time; ok is false for nil or zero.
func timeOf(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t == nil {
			return time.Time{}, false
		}
		return *t, !t.IsZero()
	}
	return time.Time{}, false
}

// ago says how long ago v was: "12s ago", "5m ago", "3h ago", "2d ago",
// or "never".
func (c *console) ago(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return "never"
	}
	d := c.s.Now().Sub(t)
	if d < 0 {
		return "in " + shortDuration(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return shortDuration(d) + " ago"
}

// until says how far off a future time is, or how long ago it passed.
func (c *console) until(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return ""
	}
	d := t.Sub(c.s.Now())
	if d <= 0 {
		return "expired " + shortDuration(-d) + " ago"
	}
	return "in " + shortDuration(d)
}

func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}

func when(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func iso(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// uptime formats seconds as "3d 4h 12m".
func uptime(sec int64) string {
	if sec <= 0 {
		return "—"
	}
	d, h, m := sec/86400, sec%86400/3600, sec%3600/60
	switch {
	case d > 0:
		return fmt.Sprintf("%dd %dh %dm", d, h, m)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%ds", sec)
}

// badgeClass maps a status word to a badge colour.
func badgeClass(status string) string {
	switch status {
	case "ok", "healthy", "active", "online", "done", "on", "hardware":
		return "badge-ok"
	case "degraded", "queued", "delivered", "pending", "locked", "software":
		return "badge-warn"
	case "unhealthy", "failing", "revoked", "failed", "disabled", "expired":
		return "badge-bad"
	}
	return "badge-muted"
}

// assurance explains a key assurance level (api.AssuranceHardware or
// api.AssuranceSoftware).
func assurance(a string) string {
	switch a {
	case api.AssuranceHardware:
		return "TPM-bound key: the device key was created in the TPM and cannot be exported; the server proved this at enrolment by credential activation against the endorsement key and a certification by the attestation key."
	case api.AssuranceSoftware:
		return "Software key (lower assurance): the device key is a file on the device, so anyone who copies it can impersonate the device, and the device cannot attest its boot state."
	case "":
		return "unknown"
	}
	return a
}

// healthOf is the device's health status for display.
func healthOf(d api.Device) string {
	if d.HealthStatus == "" {
		return "unknown"
	}
	return d.HealthStatus
}
