package ioc

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		typ     Type
		in      string
		want    string
		wantErr bool
	}{
		{TypeIP, "198.51.100.7", "198.51.100.7", false},
		{TypeIP, " ::ffff:198.51.100.7 ", "198.51.100.7", false},
		{TypeIP, "2001:DB8::1", "2001:db8::1", false},
		{TypeIP, "fe80::1%eth0", "", true},
		{TypeIP, "198.51.100.256", "", true},
		{TypeCIDR, "10.1.2.3/8", "10.0.0.0/8", false},
		{TypeCIDR, "10.1.2.3/32", "10.1.2.3", false},
		{TypeCIDR, "2001:db8:1::/48", "2001:db8:1::/48", false},
		{TypeCIDR, "::ffff:10.0.0.0/104", "10.0.0.0/8", false},
		{TypeCIDR, "10.0.0.0/33", "", true},
		{TypeDomain, "Evil.Example.COM.", "evil.example.com", false},
		{TypeDomain, "_dmarc.example.com", "_dmarc.example.com", false},
		{TypeDomain, "a..b", "", true},
		{TypeDomain, "exa mple.com", "", true},
		{TypeDomain, "1.2.3.4", "", true},
		{TypeDomain, strings.Repeat("a", 64) + ".com", "", true},
		{TypeDomain, "bücher.example", "", true},
		{TypeURL, "HTTP://Evil.Example.com:80/a/b?x=1#frag", "http://evil.example.com/a/b?x=1", false},
		{TypeURL, "https://example.com:8443", "https://example.com:8443/", false},
		{TypeURL, "example.com/dl", "http://example.com/dl", false},
		{TypeURL, "https://user:pw@[2001:DB8::1]:443/x", "https://[2001:db8::1]/x", false},
		{TypeURL, "http://", "", true},
		{TypeSHA256, "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", false},
		{TypeSHA256, "9f86d0", "", true},
		{TypeMD5, "098f6bcd4621d373cade4e832627b4fz", "", true},
		{"email", "x@example.com", "", true},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.typ, tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Normalize(%s, %q) = %q, %v; want %q, err %v", tt.typ, tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		in   string
		want Type
	}{
		{"198.51.100.7", TypeIP},
		{"2001:db8::1", TypeIP},
		{"10.0.0.0/8", TypeCIDR},
		{"https://example.com/x", TypeURL},
		{"example.com", TypeDomain},
		{"098f6bcd4621d373cade4e832627b4f6", TypeMD5},
		{"a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", TypeSHA1},
		{"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", TypeSHA256},
		{"localhost", ""},
		{"not an indicator", ""},
	}
	for _, tt := range tests {
		got, ok := Detect(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Detect(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestParsePattern(t *testing.T) {
	tests := []struct {
		pattern     string
		want        []string // type=value
		unsupported bool
		wantErr     bool
	}{
		{"[ipv4-addr:value = '198.51.100.1']", []string{"ip=198.51.100.1"}, false, false},
		{"[ipv4-addr:value = '198.51.100.0/24']", []string{"cidr=198.51.100.0/24"}, false, false},
		{"[ ipv6-addr:value ISSUBSET '2001:db8::/32' ]", []string{"cidr=2001:db8::/32"}, false, false},
		{"[domain-name:value = 'a.example' OR domain-name:value = 'b.example']", []string{"domain=a.example", "domain=b.example"}, false, false},
		{"([url:value = 'http://x.example/a'] OR ([file:hashes.'SHA-256' = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08']))",
			[]string{"url=http://x.example/a", "sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}, false, false},
		{"[file:hashes.MD5 = '098F6BCD4621D373CADE4E832627B4F6' or (file:hashes.'SHA1' = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3')]",
			[]string{"md5=098f6bcd4621d373cade4e832627b4f6", "sha1=a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"}, false, false},
		{`[domain-name:value = 'it\'s.example']`, nil, false, true}, // invalid domain
		{"[ipv4-addr:value = '1.2.3.4' AND ipv4-addr:value = '5.6.7.8']", nil, true, false},
		{"[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'x.example']", nil, true, false},
		{"[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [domain-name:value = 'x.example']", nil, true, false},
		{"[ipv4-addr:value = '1.2.3.4'] WITHIN 300 SECONDS", nil, true, false},
		{"[ipv4-addr:value != '1.2.3.4']", nil, true, false},
		{"[ipv4-addr:value NOT = '1.2.3.4']", nil, true, false},
		{"[network-traffic:dst_port = 443]", nil, true, false},
		{"[email-addr:value = 'a@example.com']", nil, true, false},
		{"[file:hashes.'SHA-512' = 'abc']", nil, true, false},
		{"[domain-name:value LIKE '%.example']", nil, true, false},
		{"[ipv4-addr:value = '2001:db8::1']", nil, false, true},
		{"[ipv4-addr:value = '1.2.3.4'", nil, false, true},
		{"ipv4-addr:value = '1.2.3.4'", nil, false, true},
		{"[ipv4-addr:value = '1.2.3.4]", nil, false, true},
		{"[ipv4-addr:value = '1.2.3.4'] extra", nil, false, true},
		{"[]", nil, false, true},
		{"", nil, false, true},
		{strings.Repeat("(", 100) + "[ipv4-addr:value = '1.2.3.4']" + strings.Repeat(")", 100), nil, false, true},
	}
	for _, tt := range tests {
		inds, err := ParsePattern(tt.pattern)
		var got []string
		for _, in := range inds {
			got = append(got, string(in.Type)+"="+in.Value)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("ParsePattern(%q) = %v, want %v", tt.pattern, got, tt.want)
		}
		if errors.Is(err, ErrUnsupportedPattern) != tt.unsupported || (err != nil) != (tt.unsupported || tt.wantErr) {
			t.Errorf("ParsePattern(%q) err = %v; want unsupported=%v err=%v", tt.pattern, err, tt.unsupported, tt.wantErr)
		}
	}
}

func openTestdata(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func summarize(inds []Indicator) []string {
	var out []string
	for _, in := range inds {
		s := string(in.Type) + "=" + in.Value + " ref=" + in.Ref + " src=" + in.Source
		if !in.Expires.IsZero() {
			s += " exp=" + in.Expires.Format(time.RFC3339)
		}
		out = append(out, s)
	}
	return out
}

func checkLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseSTIX(t *testing.T) {
	res, err := ParseSTIX(openTestdata(t, "bundle.json"), ParseOptions{Source: "cert"})
	if err != nil {
		t.Fatal(err)
	}
	const p = "indicator--a1000000-0000-4000-8000-00000000000"
	checkLines(t, summarize(res.Indicators), []string{
		"ip=198.51.100.7 ref=" + p + "1 src=cert exp=2030-01-01T00:00:00Z",
		"cidr=2001:db8:bad::/48 ref=" + p + "2 src=cert",
		"cidr=203.0.113.0/24 ref=" + p + "2 src=cert",
		"domain=evil.example.com ref=" + p + "2 src=cert",
		"sha256=aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f ref=" + p + "3 src=cert",
		"md5=098f6bcd4621d373cade4e832627b4f6 ref=" + p + "3 src=cert",
		"sha1=a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 ref=" + p + "3 src=cert",
		"url=http://evil.example.com/dl?x=1 ref=" + p + "4 src=cert",
		"domain=old.example.net ref=" + p + "9 src=cert exp=2021-01-01T00:00:00Z",
	})
	// Revoked (5), AND (6), snort (7), email (8).
	if res.Skipped != 4 || len(res.Reasons) != 4 {
		t.Errorf("Skipped = %d, Reasons = %q; want 4", res.Skipped, res.Reasons)
	}
	if !strings.Contains(res.Reasons[0], "revoked") || !strings.Contains(res.Reasons[1], "AND") {
		t.Errorf("Reasons = %q", res.Reasons)
	}
}

func TestParseSTIXErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{``, "empty input"},
		{`{"type":"bundle","objects":[]} {}`, "data after the top-level value"},
		{`{"type":"report","objects":[]}`, `type is "report"`},
		{`{"type":"bundle","objects":{}}`, "invalid JSON"},
		{`[1,2]`, "invalid JSON"},
	}
	for _, tt := range tests {
		_, err := ParseSTIX(strings.NewReader(tt.in), ParseOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "ioc: parse STIX bundle: ") {
			t.Errorf("ParseSTIX(%q) err = %v; want %q", tt.in, err, tt.want)
		}
	}
	// A malformed object is skipped, not fatal.
	res, err := ParseSTIX(strings.NewReader(`{"type":"bundle","objects":[{"type":"indicator","revoked":"yes"}, 7, {"type":"indicator","id":"indicator--1","pattern_type":"stix","pattern":"[ipv4-addr:value = '1.2.3.4']","valid_until":"soon"}]}`), ParseOptions{})
	if err != nil || res.Skipped != 3 || len(res.Indicators) != 0 {
		t.Errorf("malformed objects: %+v, %v", res, err)
	}
}

func TestParseLimits(t *testing.T) {
	big := `{"type":"bundle","objects":[` + strings.Repeat(`{"type":"x"},`, 100) + `{"type":"x"}]}`
	if _, err := ParseSTIX(strings.NewReader(big), ParseOptions{MaxBytes: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ParseSTIX over MaxBytes: err = %v, want ErrTooLarge", err)
	}
	if _, err := ParseList(strings.NewReader("1.2.3.4\n5.6.7.8\n9.9.9.9\n"), ParseOptions{MaxIndicators: 2}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ParseList over MaxIndicators: err = %v, want ErrTooLarge", err)
	}
	if _, err := ParseMISP(strings.NewReader(strings.Repeat(" ", 200)+"{}"), ParseOptions{MaxBytes: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ParseMISP over MaxBytes: err = %v, want ErrTooLarge", err)
	}
}

func TestParseMISP(t *testing.T) {
	res, err := ParseMISP(openTestdata(t, "misp_event.json"), ParseOptions{Source: "misp"})
	if err != nil {
		t.Fatal(err)
	}
	const p = "00000000-0000-4000-8000-00000000"
	checkLines(t, summarize(res.Indicators), []string{
		"ip=198.51.100.23 ref=" + p + "a001 src=misp",
		"cidr=203.0.113.0/25 ref=" + p + "a002 src=misp",
		"ip=2001:db8::66 ref=" + p + "a003 src=misp",
		"domain=c2.example.org ref=" + p + "a004 src=misp",
		"domain=update.bad.example ref=" + p + "a005 src=misp",
		"url=https://c2.example.org/gate.php ref=" + p + "a006 src=misp",
		"sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 ref=" + p + "a007 src=misp",
		"sha256=2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae ref=" + p + "a009 src=misp",
		"sha1=a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 ref=" + p + "b001 src=misp",
	})
	// md5 without to_ids, email-src, bad sha1, filename without to_ids.
	if res.Skipped != 4 {
		t.Errorf("Skipped = %d (%q), want 4", res.Skipped, res.Reasons)
	}

	// The REST API wraps events in "response".
	res, err = ParseMISP(strings.NewReader(`{"response":[{"Event":{"uuid":"u","Attribute":[{"type":"ip-dst","value":"192.0.2.1","to_ids":true,"uuid":"a"}]}},{"Event":{"Attribute":[{"type":"domain","value":"x.example","to_ids":"1","uuid":"b"}]}}]}`), ParseOptions{})
	if err != nil || len(res.Indicators) != 2 {
		t.Fatalf("response form: %+v, %v", res, err)
	}
	for _, bad := range []string{`{}`, `{"Event":{"Attribute":[{"to_ids":"maybe"}]}}`, `[]`, `null`} {
		if _, err := ParseMISP(strings.NewReader(bad), ParseOptions{}); err == nil || !strings.HasPrefix(err.Error(), "ioc: parse MISP event: ") {
			t.Errorf("ParseMISP(%s) err = %v", bad, err)
		}
	}
}

func TestParseMISPManifest(t *testing.T) {
	entries, err := ParseMISPManifest(openTestdata(t, "manifest.json"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 ||
		entries[0].UUID != "0a1b2c3d-0000-4000-8000-000000000001" || !entries[0].Timestamp.Equal(time.Unix(1706745600, 0)) || entries[0].Info != "Phishing kit" ||
		entries[1].UUID != "5b9f3c2e-1d2c-4e6a-9f0e-0a1b2c3d4e5f" || !entries[1].Timestamp.Equal(time.Unix(1709251200, 0)) {
		t.Errorf("entries = %+v", entries)
	}
	for _, bad := range []string{`[]`, `null`, `{"not-a-uuid":{"timestamp":1}}`, `{"5b9f3c2e-1d2c-4e6a-9f0e-0a1b2c3d4e5f":{"timestamp":"x"}}`} {
		if _, err := ParseMISPManifest(strings.NewReader(bad), ParseOptions{}); err == nil || !strings.HasPrefix(err.Error(), "ioc: parse MISP manifest: ") {
			t.Errorf("ParseMISPManifest(%s) err = %v", bad, err)
		}
	}
}

func TestParseList(t *testing.T) {
	res, err := ParseList(openTestdata(t, "list.txt"), ParseOptions{Source: "list"})
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, summarize(res.Indicators), []string{
		"ip=198.51.100.7 ref= src=list",
		"ip=2001:db8::1 ref= src=list",
		"cidr=10.66.0.0/16 ref= src=list",
		"domain=bad.example.com ref= src=list",
		"url=https://phish.example.net/login ref= src=list",
		"sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 ref= src=list",
		"md5=098f6bcd4621d373cade4e832627b4f6 ref= src=list",
	})
	if res.Skipped != 2 || !strings.Contains(res.Reasons[0], "line 10") {
		t.Errorf("Skipped = %d, Reasons = %q", res.Skipped, res.Reasons)
	}
}
