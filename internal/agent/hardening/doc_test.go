package hardening

import (
	"os"
	"strings"
	"testing"
)

// TestDocumented keeps docs/exploit-mitigations.md and Collect in step:
// the facts table lists exactly the facts Collect reports, in its order,
// each with the expected value Collect reports.
func TestDocumented(t *testing.T) {
	b, err := os.ReadFile("../../../docs/exploit-mitigations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Kernel and platform facts\n")
	if !ok {
		t.Fatal("docs/exploit-mitigations.md has no 'Kernel and platform facts' section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	type row struct{ name, expected string }
	var documented []row
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Fatalf("short table row %q", line)
		}
		documented = append(documented, row{strings.Trim(strings.TrimSpace(cells[1]), "`"), strings.TrimSpace(cells[2])})
	}
	var reported []row
	for _, f := range Collect(Options{Root: "testdata/hardened", NoSelf: true}).Facts {
		reported = append(reported, row{f.Name, f.Expected})
	}
	if len(documented) != len(reported) {
		t.Fatalf("docs list %d facts %v, Collect reports %d %v", len(documented), documented, len(reported), reported)
	}
	for i := range reported {
		if documented[i] != reported[i] {
			t.Errorf("fact %d: docs say %+v, Collect reports %+v", i, documented[i], reported[i])
		}
	}
}
