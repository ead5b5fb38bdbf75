package alert

import (
	"os"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// TestDocsListEveryRule keeps the rule table of docs/alerts.md in step
// with DefaultRules: a row per rule with its severity and dedup key fields.
func TestDocsListEveryRule(t *testing.T) {
	doc, err := os.ReadFile("../../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if id, ok := strings.CutPrefix(line, "| `"); ok && !strings.HasPrefix(id, "--") {
			id, _, _ = strings.Cut(id, "`")
			rows[id] = line
		}
	}
	for _, r := range DefaultRules() {
		row, ok := rows[r.ID]
		if !ok {
			t.Errorf("docs/alerts.md has no row for rule %s", r.ID)
			continue
		}
		cells := strings.Split(row, "|")
		if got := strings.TrimSpace(cells[2]); got != events.SeverityName(r.Severity) {
			t.Errorf("docs/alerts.md: %s has severity %q, the rule %q", r.ID, got, events.SeverityName(r.Severity))
		}
		for _, k := range r.Key {
			if !strings.Contains(cells[4], "`"+k+"`") {
				t.Errorf("docs/alerts.md: %s does not name its dedup key field %s", r.ID, k)
			}
		}
		if len(r.Key) == 0 && strings.TrimSpace(cells[4]) != "—" {
			t.Errorf("docs/alerts.md: %s has no dedup key, the table says %q", r.ID, cells[4])
		}
		delete(rows, r.ID)
	}
	for id := range rows {
		t.Errorf("docs/alerts.md lists %s, which is not a rule", id)
	}
	if !strings.Contains(string(doc), "5 `auth.login` events") || AuthFailureThreshold != 5 || AuthFailureWindow.String() != "5m0s" {
		t.Error("docs/alerts.md and the repeated-failures threshold disagree")
	}
}
