package ioc

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// checkIndicators asserts what every parser promises about its output: each
// indicator is normalized (Normalize is the identity on it) and a Matcher
// accepts it and matches it.
func checkIndicators(t *testing.T, inds []Indicator) {
	t.Helper()
	for _, in := range inds {
		v, err := Normalize(in.Type, in.Value)
		if err != nil || v != in.Value {
			t.Fatalf("indicator %+v not normalized: %q, %v", in, v, err)
		}
	}
	m, err := Build(inds, nil)
	if err != nil {
		t.Fatalf("Build rejected parser output: %v", err)
	}
	for _, in := range inds {
		if !in.Expires.IsZero() {
			continue
		}
		var got []Indicator
		switch in.Type {
		case TypeIP:
			got = m.MatchIP(netip.MustParseAddr(in.Value))
		case TypeCIDR:
			got = m.MatchIP(netip.MustParsePrefix(in.Value).Addr())
		case TypeDomain:
			got = m.MatchDomain(in.Value)
		case TypeURL:
			got = m.MatchURL(in.Value)
		default:
			got = m.MatchHash(in.Value)
		}
		if len(got) == 0 {
			t.Fatalf("indicator %+v does not match itself", in)
		}
	}
}

func addFile(f *testing.F, name string) {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzParseSTIX(f *testing.F) {
	addFile(f, "bundle.json")
	f.Add([]byte(`{"type":"bundle","objects":[{"type":"indicator","id":"indicator--1","pattern_type":"stix","pattern":"[ipv4-addr:value = '10.0.0.0/8']","valid_until":"2030-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := ParseSTIX(bytes.NewReader(b), ParseOptions{MaxBytes: 1 << 20})
		if err == nil {
			checkIndicators(t, res.Indicators)
		}
	})
}

func FuzzParsePattern(f *testing.F) {
	for _, p := range []string{
		"[ipv4-addr:value = '198.51.100.1']",
		"[ipv6-addr:value ISSUBSET '2001:db8::/32'] OR [domain-name:value = 'x.example']",
		"[file:hashes.'SHA-256' = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' OR file:hashes.MD5 = '098f6bcd4621d373cade4e832627b4f6']",
		"([url:value = 'http://x.example/a\\'b'] OR ([domain-name:value = 'y.example']))",
		"[ipv4-addr:value = '1.2.3.4'] WITHIN 300 SECONDS",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		inds, err := ParsePattern(p)
		if err == nil {
			if len(inds) == 0 {
				t.Fatal("no error and no indicators")
			}
			checkIndicators(t, inds)
		}
	})
}

func FuzzParseMISP(f *testing.F) {
	addFile(f, "misp_event.json")
	f.Add([]byte(`{"Event":{"Attribute":[{"type":"ip-dst|port","value":"192.0.2.1|80","to_ids":"1"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := ParseMISP(bytes.NewReader(b), ParseOptions{MaxBytes: 1 << 20})
		if err == nil {
			checkIndicators(t, res.Indicators)
		}
	})
}

func FuzzParseMISPManifest(f *testing.F) {
	addFile(f, "manifest.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := ParseMISPManifest(bytes.NewReader(b), ParseOptions{MaxBytes: 1 << 20})
		if err == nil {
			for _, e := range entries {
				if !uuidRE.MatchString(e.UUID) {
					t.Fatalf("entry with bad uuid %q", e.UUID)
				}
			}
		}
	})
}

func FuzzParseList(f *testing.F) {
	addFile(f, "list.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := ParseList(bytes.NewReader(b), ParseOptions{MaxBytes: 1 << 20})
		if err != nil {
			t.Fatalf("ParseList failed on input under the limits: %v", err)
		}
		checkIndicators(t, res.Indicators)
	})
}

func FuzzMatchDomain(f *testing.F) {
	f.Add("example.com", "A.B.Example.COM.")
	f.Add("a.b", "..")
	f.Fuzz(func(t *testing.T, ind, q string) {
		in, err := New(TypeDomain, ind, "", "", timeZero)
		if err != nil {
			return
		}
		m, err := Build([]Indicator{in}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := m.MatchDomain(q)
		// The query is not validated: any name equal to the indicator or
		// ending in "."+indicator matches, ignoring ASCII case and one
		// trailing dot.
		lq := []byte(strings.TrimSuffix(q, "."))
		for i, c := range lq {
			if 'A' <= c && c <= 'Z' {
				lq[i] = c + 'a' - 'A'
			}
		}
		nq := string(lq)
		want := len(nq) <= 253 && (nq == in.Value || strings.HasSuffix(nq, "."+in.Value))
		if (len(got) > 0) != want {
			t.Fatalf("MatchDomain(%q) with indicator %q = %v, want match %v", q, in.Value, got, want)
		}
	})
}

var timeZero time.Time
