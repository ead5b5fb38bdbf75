package siem

import (
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// Alert is a notification that a detection rule fired: a significant change
// in a device's state (Code of Practice guideline 10.7). Its JSON form is what
// the webhook sink posts.
type Alert struct {
	ID       string     `json:"id"`               // unique alert id, 1..128 bytes
	Rule     string     `json:"rule"`             // id of the rule that fired
	Severity int        `json:"severity_id"`      // OCSF severity id, as in events
	DeviceID string     `json:"device_id"`        // the device the alert is about
	Summary  string     `json:"summary"`          // one line for a human, at most 1,000 bytes
	Time     time.Time  `json:"time"`             // when the rule fired (UTC)
	Events   []EventRef `json:"events,omitempty"` // the events that triggered it
}

// EventRef names one event by its device and journal sequence number.
type EventRef struct {
	DeviceID string `json:"device_id"`
	Seq      uint64 `json:"seq"`
	Type     string `json:"type,omitempty"`
}

// Ref returns the reference to an event.
func Ref(e *events.Event) EventRef {
	return EventRef{DeviceID: e.DeviceID, Seq: e.Seq, Type: e.Type}
}

// Validate reports whether the alert is complete enough to deliver.
func (a *Alert) Validate() error {
	switch {
	case a.ID == "" || len(a.ID) > 128:
		return errors.New("siem: alert id must be 1..128 bytes")
	case a.Rule == "" || len(a.Rule) > 256:
		return errors.New("siem: alert rule must be 1..256 bytes")
	case events.SeverityName(a.Severity) == "":
		return fmt.Errorf("siem: alert severity %d is not an OCSF severity id", a.Severity)
	case a.DeviceID == "" || len(a.DeviceID) > 256:
		return errors.New("siem: alert device_id must be 1..256 bytes")
	case a.Summary == "" || len(a.Summary) > 1000:
		return errors.New("siem: alert summary must be 1..1000 bytes")
	case a.Time.IsZero():
		return errors.New("siem: alert time is required")
	case len(a.Events) > 1000:
		return errors.New("siem: alert refers to more than 1000 events")
	}
	return nil
}
