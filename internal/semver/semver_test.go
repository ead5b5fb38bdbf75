package semver

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"1.2.3", ""},
		{"0.0.0", ""},
		{"1.0.0-alpha.1+build.5", ""},
		{"1.0.0-x-y-z.--", ""},
		{"", "empty"},
		{"v1.2.3", "not a number"},
		{"1.2", "exactly three"},
		{"1.2.3.4", "exactly three"},
		{"01.2.3", "leading zero"},
		{"1.2.3-01", "leading zero"},
		{"1.2.3-", "empty identifier"},
		{"1.2.3+a..b", "empty identifier"},
		{"1.2.3-a_b", "not allowed"},
		{"1.2.x", "not a number"},
		{"99999999999999999999.0.0", "out of range"},
		{strings.Repeat("1", 130), "128 bytes"},
	} {
		_, err := Parse(tc.in)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tc.in, err, tc.err)
		}
	}
}

func TestCompareSpecOrder(t *testing.T) {
	// The precedence example of semver.org, section 11, plus numbers.
	ordered := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0"}
	for i := range ordered {
		for j := range ordered {
			a, b := mustParse(t, ordered[i]), mustParse(t, ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := Compare(a, b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if Compare(mustParse(t, "1.0.0+a"), mustParse(t, "1.0.0+b")) != 0 {
		t.Error("build metadata changed precedence")
	}
}

func mustParse(t *testing.T, s string) Version {
	v, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1.2.3", "1.0.0-alpha.1+b", "01.1.1", "1.2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		if v.String() != s || Compare(v, v) != 0 {
			t.Fatalf("round trip of %q", s)
		}
	})
}
