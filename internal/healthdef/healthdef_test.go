package healthdef

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func TestJSON(t *testing.T) {
	var d Definition
	if err := json.Unmarshal(JSON(), &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, Get()) {
		t.Fatalf("JSON() does not round-trip:\n%s", JSON())
	}
	var states []string
	for _, s := range d.States {
		states = append(states, s.Name)
	}
	if !slices.Equal(states, api.HealthStates) {
		t.Errorf("states %v, api.HealthStates %v", states, api.HealthStates)
	}
}

// TestConsistent: names are unique, every check says when it is healthy,
// and every threshold is used by the conditions of its check.
func TestConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Get().Checks {
		if seen[c.Name] || c.Name == "" || c.Healthy == "" || c.Description == "" {
			t.Errorf("check %+v: duplicate or incomplete", c)
		}
		seen[c.Name] = true
		conds := c.Healthy + c.Degraded + c.Unhealthy + c.Unknown
		for _, th := range c.Thresholds {
			if seen[th.Name] {
				t.Errorf("threshold %s defined twice", th.Name)
			}
			seen[th.Name] = true
			if !strings.Contains(conds, th.Name) {
				t.Errorf("check %s does not use its threshold %s", c.Name, th.Name)
			}
			if th.Unit != "fraction" && th.Unit != "seconds" {
				t.Errorf("threshold %s has unit %q", th.Name, th.Unit)
			}
		}
	}
}

// TestDocumented keeps docs/device-health.md and the definition in step:
// the version, the states, the table of checks (the rows the end-to-end
// test also reads) with the thresholds each uses, and the thresholds with
// their values.
func TestDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/device-health.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	def := Get()
	if want := fmt.Sprintf("# Device health (definition, version %d)\n", def.Version); !strings.HasPrefix(doc, want) {
		t.Errorf("docs/device-health.md does not start with %q", want)
	}
	section := func(title string) string {
		_, s, ok := strings.Cut(doc, "\n## "+title+"\n")
		if !ok {
			t.Fatalf("docs/device-health.md has no %q section", title)
		}
		s, _, _ = strings.Cut(s, "\n## ")
		return s
	}

	states := section("States")
	for _, s := range def.States {
		if !strings.Contains(states, "- `"+s.Name+"` — ") {
			t.Errorf("state %s is not documented", s.Name)
		}
	}

	rows := map[string]string{}
	var documented []string
	for _, line := range strings.Split(doc, "\n") {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			name, _, _ = strings.Cut(name, "`")
			documented = append(documented, name)
			rows[name] = line
		}
	}
	if !slices.Equal(documented, CheckNames()) {
		t.Errorf("docs/device-health.md lists checks %v, the definition %v", documented, CheckNames())
	}
	for _, c := range def.Checks {
		cells := strings.Split(rows[c.Name], "|")
		if len(cells) != 7 {
			t.Errorf("row of %s has %d cells, want check and four states", c.Name, len(cells)-2)
			continue
		}
		// A state the check never takes is "—" in the table.
		for i, cond := range []string{c.Healthy, c.Degraded, c.Unhealthy, c.Unknown} {
			if empty := strings.TrimSpace(cells[i+2]) == "—"; empty != (cond == "") {
				t.Errorf("%s, %s: the table says %q, the definition %q", c.Name, def.States[i].Name, cells[i+2], cond)
			}
		}
		for _, th := range c.Thresholds {
			if !strings.Contains(rows[c.Name], "`"+th.Name+"`") {
				t.Errorf("the table row of %s does not name its threshold %s", c.Name, th.Name)
			}
		}
	}

	thresholds := section("Thresholds")
	var names []string
	for _, line := range strings.Split(thresholds, "\n") {
		if rest, ok := strings.CutPrefix(line, "- `"); ok {
			name, _, _ := strings.Cut(rest, "`")
			names = append(names, name)
		}
	}
	var want []string
	for _, c := range def.Checks {
		for _, th := range c.Thresholds {
			want = append(want, th.Name)
			if entry := fmt.Sprintf("- `%s` = %s %s — ", th.Name, th.ValueString(), th.Unit); !strings.Contains(thresholds, entry) {
				t.Errorf("threshold %s is not documented as %q", th.Name, entry)
			}
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("docs/device-health.md lists thresholds %v, the definition %v", names, want)
	}
}
