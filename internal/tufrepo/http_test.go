package tufrepo

import (
	"strconv"
	"testing"
)

func TestParseMetadataName(t *testing.T) {
	for _, tc := range []struct {
		in      string
		role    string
		version int64
		ok      bool
	}{
		{"timestamp.json", "timestamp", 0, true},
		{"root.json", "root", 0, true},
		{"1.root.json", "root", 1, true},
		{"42.snapshot.json", "snapshot", 42, true},
		{"7.targets.json", "targets", 7, true},
		{"snapshot.json", "", 0, false},
		{"targets.json", "", 0, false},
		{"1.timestamp.json", "", 0, false},
		{"0.root.json", "", 0, false},
		{"01.root.json", "", 0, false},
		{"+1.root.json", "", 0, false},
		{"-1.root.json", "", 0, false},
		{"1.root.json.json", "", 0, false},
		{"1.root", "", 0, false},
		{"99999999999999999999.root.json", "", 0, false},
		{"1.delegated.json", "", 0, false},
		{"", "", 0, false},
	} {
		role, v, ok := parseMetadataName(tc.in)
		if role != tc.role || v != tc.version || ok != tc.ok {
			t.Errorf("parseMetadataName(%q) = %q, %d, %v; want %q, %d, %v", tc.in, role, v, ok, tc.role, tc.version, tc.ok)
		}
	}
}

// FuzzParseMetadataName checks that every accepted name is the canonical
// spelling of what it parsed to.
func FuzzParseMetadataName(f *testing.F) {
	for _, s := range []string{"timestamp.json", "1.root.json", "12.targets.json", "01.root.json", "1.x.json"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		role, v, ok := parseMetadataName(s)
		if !ok {
			return
		}
		want := role + ".json"
		if v != 0 {
			want = strconv.FormatInt(v, 10) + "." + want
		}
		if want != s {
			t.Fatalf("%q parsed to %q, %d", s, role, v)
		}
	})
}
