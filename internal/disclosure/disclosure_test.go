package disclosure

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTransitions(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{StateReceived, StateTriaged, true},
		{StateReceived, StateFixed, false},
		{StateReceived, StateDuplicate, true},
		{StateTriaged, StateFixing, true},
		{StateFixing, StateFixed, true},
		{StateFixed, StatePublished, true},
		{StateFixed, StateFixing, true},
		{StatePublished, StateFixing, false},
		{StateRejected, StateTriaged, true},
		{StateRejected, StatePublished, false},
		{"bogus", StateTriaged, false},
	} {
		if got := CanTransition(tc.from, tc.to); got != tc.ok {
			t.Errorf("CanTransition(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
	// Every state is reachable and every target is a state.
	reached := map[string]bool{StateReceived: true}
	for _, s := range States {
		for _, to := range Allowed(s) {
			if !ValidState(to) {
				t.Errorf("%s -> %s: not a state", s, to)
			}
			reached[to] = true
		}
	}
	for _, s := range States {
		if !reached[s] {
			t.Errorf("state %s is unreachable", s)
		}
	}
	if a := Allowed(StatePublished); a == nil || len(a) != 0 {
		t.Errorf("Allowed(published) = %#v, want empty and non-nil", a)
	}
}

func TestTrackingIDAndKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := NewTrackingID()
		if err != nil || !ValidTrackingID(id) || seen[id] {
			t.Fatalf("NewTrackingID() = %q, %v", id, err)
		}
		seen[id] = true
	}
	key, hash, err := NewFollowUpKey()
	if err != nil || len(key) != 43 {
		t.Fatalf("NewFollowUpKey() = %q, %v", key, err)
	}
	if !KeyMatches(hash, key) || KeyMatches(hash, key[:42]) || KeyMatches(hash, "") || KeyMatches(nil, key) {
		t.Error("KeyMatches accepts or refuses the wrong keys")
	}
}

func TestSubmissionValidate(t *testing.T) {
	ok := Submission{Summary: "s", Product: "p", Details: "line 1\nline 2\ttab", Email: "a@example.com"}
	for _, tc := range []struct {
		mod   func(*Submission)
		field string // empty: valid
	}{
		{func(*Submission) {}, ""},
		{func(s *Submission) { s.Email = "" }, ""},
		{func(s *Submission) { s.Summary = "" }, "summary"},
		{func(s *Submission) { s.Summary = "a\nb" }, "summary"},
		{func(s *Submission) { s.Product = strings.Repeat("p", MaxProduct+1) }, "product"},
		{func(s *Submission) { s.Details = "\x00" }, "details"},
		{func(s *Submission) { s.Email = "a@localhost" }, "email"},
		{func(s *Submission) { s.Email = "<a@example.com>" }, "email"},
		{func(s *Submission) { s.AcknowledgeAs = "\u202e" }, ""}, // format, not control: allowed
		{func(s *Submission) { s.AcknowledgeAs = "x\u2028y" }, "acknowledge_as"},
	} {
		s := ok
		tc.mod(&s)
		err := s.Validate()
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v", s, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%+v: %v, want a problem with %s", s, err, tc.field)
		}
	}
}

func TestProductSupport(t *testing.T) {
	day := time.Date(2030, 6, 30, 0, 0, 0, 0, time.UTC)
	if !SupportedAt("2030-06-30", day.Add(23*time.Hour)) || SupportedAt("2030-06-30", day.Add(24*time.Hour)) || SupportedAt("junk", day) {
		t.Error("SupportedAt is wrong around the last day")
	}
	p := Product{Name: " cam ", SupportUntil: "2030-06-30", UpdateCadence: "monthly", CriticalFixTarget: "14 days"}
	if err := p.Validate(); err != nil || p.Name != "cam" {
		t.Errorf("Validate: %v, name %q", err, p.Name)
	}
}

func TestSecurityTxtConfig(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	txt := Config{}.SecurityTxt("https://h.example", now)
	for _, want := range []string{"Contact: https://h.example/disclose\n", "Expires: 2027-05-25T12:00:00Z\n", "Canonical: https://h.example/.well-known/security.txt\n"} {
		if !strings.Contains(txt, want) {
			t.Errorf("security.txt lacks %q:\n%s", want, txt)
		}
	}
	for _, c := range []Config{{Contacts: []string{"security@example.com"}}, {Contacts: []string{"http://x"}}, {PublicURL: "http://h"}, {PublicURL: "https://h/path"}} {
		if c.Check() == nil {
			t.Errorf("Check(%+v) = nil, want an error", c)
		}
	}
	if err := (Config{Contacts: []string{"mailto:s@example.com", "tel:+441234"}, PublicURL: "https://h.example:8443"}).Check(); err != nil {
		t.Error(err)
	}
}
