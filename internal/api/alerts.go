package api

import "time"

// Alert states.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// MaxAlertPage bounds the limit of GET /api/v1/alerts.
const MaxAlertPage = 1000

// AlertEventRef names an event behind an alert: the stored event's id
// (absent for state changes the server saw itself), its device, journal
// seq (0 for events the server raised) and type.
type AlertEventRef struct {
	EventID  int64  `json:"event_id,omitempty"`
	DeviceID string `json:"device_id"`
	Seq      uint64 `json:"seq"`
	Type     string `json:"type"`
}

// Alert is a detection rule that fired for a device (docs/alerts.md).
// While it is open, further firings of the same rule for the same device
// and key count on it (Count, LastSeen) instead of opening another.
type Alert struct {
	ID         string `json:"id"`
	Rule       string `json:"rule"`
	SeverityID int    `json:"severity_id"`
	Severity   string `json:"severity"`
	DeviceID   string `json:"device_id"`
	// Key is the rule's dedup key, e.g. the matched indicator.
	Key        string     `json:"key,omitempty"`
	Summary    string     `json:"summary"`
	FirstSeen  time.Time  `json:"first_seen"`
	LastSeen   time.Time  `json:"last_seen"`
	Count      int        `json:"count"`
	Status     string     `json:"status"` // open, acknowledged or resolved
	AckedBy    string     `json:"acked_by,omitempty"`
	AckedAt    *time.Time `json:"acked_at,omitempty"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Events are the triggering events, at most the latest 100.
	Events []AlertEventRef `json:"events"`
}

// AlertList answers GET /api/v1/alerts: most recently seen first.
type AlertList struct {
	Alerts []Alert `json:"alerts"`
}
