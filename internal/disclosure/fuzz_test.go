package disclosure

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// FuzzSubmission feeds arbitrary bodies through the strict decoder and
// the validation the server applies: neither panics, and whatever passes
// keeps within the documented limits.
func FuzzSubmission(f *testing.F) {
	f.Add([]byte(`{"summary":"s","product":"p","details":"d"}`))
	f.Add([]byte(`{"summary":"s","product":"p","details":"a\nb","email":"a@example.com","acknowledge_as":"Ada","affected_version":"1.0"}`))
	f.Add([]byte(`{"summary":"\u0000","product":"p","details":"d"}`))
	f.Add([]byte(`{"summary":"s","product":"p","details":"d","email":"Ada <a@example.com>"}`))
	f.Add([]byte(`{"summary":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var s Submission
		if err := api.DecodeBytes(body, MaxBody, &s); err != nil {
			return
		}
		s.Normalize()
		if s.Validate() != nil {
			return
		}
		if strings.TrimSpace(s.Summary) == "" || s.Product == "" || s.Details == "" {
			t.Fatalf("accepted a report without a required field: %+v", s)
		}
		for _, v := range []string{s.Summary, s.Product, s.AffectedVersion, s.Email, s.AcknowledgeAs} {
			if strings.ContainsAny(v, "\r\n\x00") || !utf8.ValidString(v) {
				t.Fatalf("accepted a control character or bad UTF-8 in %q", v)
			}
		}
		if utf8.RuneCountInString(s.Details) > MaxDetails || utf8.RuneCountInString(s.Summary) > MaxSummary {
			t.Fatalf("accepted an oversize field")
		}
	})
}
