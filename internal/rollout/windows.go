package rollout

import (
	"fmt"
	"strings"
	"time"
)

// Window is a weekly maintenance window in UTC: on the given days, from
// Start to End ("HH:MM"); an End before Start runs past midnight.
type Window struct {
	Days  []string `json:"days"` // mon, tue, wed, thu, fri, sat, sun
	Start string   `json:"start"`
	End   string   `json:"end"`
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%w: time %q must be HH:MM", ErrBadRequest, s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Validate checks a window.
func (w Window) Validate() error {
	if len(w.Days) == 0 {
		return fmt.Errorf("%w: a maintenance window needs days", ErrBadRequest)
	}
	for _, d := range w.Days {
		if _, ok := dayNames[strings.ToLower(d)]; !ok {
			return fmt.Errorf("%w: day %q must be one of mon, tue, wed, thu, fri, sat, sun", ErrBadRequest, d)
		}
	}
	s, err := clock(w.Start)
	if err != nil {
		return err
	}
	e, err := clock(w.End)
	if err != nil {
		return err
	}
	if s == e {
		return fmt.Errorf("%w: a window must not start and end at the same time", ErrBadRequest)
	}
	return nil
}

// InWindow reports whether t falls in any window; no windows means
// always.
func InWindow(ws []Window, t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	t = t.UTC()
	mins := t.Hour()*60 + t.Minute()
	for _, w := range ws {
		s, err1 := clock(w.Start)
		e, err2 := clock(w.End)
		if err1 != nil || err2 != nil {
			continue
		}
		for _, d := range w.Days {
			day := dayNames[strings.ToLower(d)]
			switch {
			case s < e && t.Weekday() == day && mins >= s && mins < e:
				return true
			case s > e && t.Weekday() == day && mins >= s: // before midnight
				return true
			case s > e && t.Weekday() == (day+1)%7 && mins < e: // after midnight
				return true
			}
		}
	}
	return false
}
