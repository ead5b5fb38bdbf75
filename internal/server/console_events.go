package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// Security events and alerts for the console. Each helper scopes and
// checks roles exactly as the matching admin API handler in events.go and
// alerts.go does, and writes the same audit entry; errors are classified
// for ErrorMessage.

// EventsPage returns a page of up to limit events matching the filters of
// r's query string (device, group, type, severity, since, until and
// cursor, as GET /api/v1/events takes them), newest first, limited to the
// devices p may read (auditor). next is the cursor of the following page,
// empty on the last.
func (s *Server) EventsPage(r *http.Request, p *Principal, limit int) (list []store.Event, next string, err error) {
	f, err := s.eventFilter(r, p)
	if err != nil {
		return nil, "", err
	}
	f.Limit = min(max(limit, 1), api.MaxEventPage)
	if c := r.URL.Query().Get("cursor"); c != "" {
		id, err := strconv.ParseInt(c, 10, 64)
		if err != nil || id <= 0 {
			return nil, "", badRequest("cursor is not a cursor from a previous page")
		}
		f.Before = id
	}
	if list, err = s.store.ListEvents(r.Context(), f); err != nil {
		return nil, "", internal(err)
	}
	if len(list) == f.Limit {
		next = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	return list, next, nil
}

// AlertQuery selects alerts for Alerts. Zero fields do not filter.
type AlertQuery struct {
	Status   string // open, acknowledged or resolved
	DeviceID string
	Limit    int // 0 means 100, at most api.MaxAlertPage
}

// Alerts returns the alerts of the devices p may read (auditor), most
// recently seen first, as GET /api/v1/alerts does.
func (s *Server) Alerts(r *http.Request, p *Principal, q AlertQuery) ([]api.Alert, error) {
	f := store.AlertFilter{Scope: p.Scope(api.RoleAuditor), Status: q.Status, Limit: min(q.Limit, api.MaxAlertPage)}
	switch f.Status {
	case "", api.AlertOpen, api.AlertAcknowledged, api.AlertResolved:
	default:
		return nil, badRequest("status must be open, acknowledged or resolved")
	}
	if q.DeviceID != "" {
		if _, err := s.VisibleDevice(r, p, q.DeviceID, api.RoleAuditor); err != nil {
			return nil, err
		}
		f.DeviceID = q.DeviceID
	}
	list, err := s.store.ListAlerts(r.Context(), f)
	if err != nil {
		return nil, internal(err)
	}
	out := make([]api.Alert, 0, len(list))
	for _, a := range list {
		out = append(out, AlertView(a))
	}
	return out, nil
}

// AckAlert acknowledges an alert for an operator of its device's group
// (POST /api/v1/alerts/{id}/ack), auditing it when it changed.
func (s *Server) AckAlert(r *http.Request, p *Principal, id string) (api.Alert, error) {
	a, err := s.store.GetAlert(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Alert{}, errNotFound
	}
	if err != nil {
		return api.Alert{}, internal(err)
	}
	if _, err := s.VisibleDevice(r, p, a.DeviceID, api.RoleOperator); err != nil {
		return api.Alert{}, err
	}
	a, changed, err := s.store.AckAlert(r.Context(), id, p.Actor(), s.now())
	switch {
	case errors.Is(err, store.ErrConflict):
		return api.Alert{}, errf(http.StatusConflict, "alert_resolved", "the alert is already resolved")
	case errors.Is(err, store.ErrNotFound):
		return api.Alert{}, errNotFound
	case err != nil:
		return api.Alert{}, internal(err)
	}
	if changed {
		s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "alert.ack", target: "alert:" + a.ID, remote: ClientIP(r),
			detail: "rule=" + a.Rule + " device=" + a.DeviceID, outcome: "ok"})
	}
	return AlertView(a), nil
}
