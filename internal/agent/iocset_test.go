package agent

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/ioc"
)

var iocTestNow = time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)

const goodIoCSet = `{"version":"3f1c0e5a9b7d2c4e6f8a0b1c","generated_at":"2026-11-26T21:00:00Z","action":"block","indicators":[
{"t":"cidr","v":"203.0.113.0/24","s":"cert"},
{"t":"domain","v":"evil.example.com","s":"cert"},
{"t":"ip","v":"198.51.100.66","x":1796083200,"s":"blocklist"},
{"t":"ip","v":"198.51.100.67","x":1700000000,"s":"blocklist"},
{"t":"ip","v":"2001:db8::66"},
{"t":"sha256","v":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","s":"cert"},
{"t":"email","v":"x@example.com","s":"future"}]}`

func TestDecodeIoCSet(t *testing.T) {
	set, err := decodeIoCSet([]byte(goodIoCSet), iocTestNow, 1<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	if set.Version != "3f1c0e5a9b7d2c4e6f8a0b1c" || set.Action != api.IoCActionBlock || len(set.Indicators) != 5 || set.Expired != 1 || set.Unknown != 1 {
		t.Fatalf("set %+v", set)
	}
	m, err := ioc.Build(set.Indicators, func() time.Time { return iocTestNow })
	if err != nil {
		t.Fatal(err)
	}
	if hits := m.MatchDomain("a.evil.example.com"); len(hits) != 1 || hits[0].Source != "cert" {
		t.Errorf("domain hits %+v", hits)
	}
	if hits := m.MatchIP(netip.MustParseAddr("2001:db8::66")); len(hits) != 1 || hits[0].Source != iocSourceUnknown {
		t.Errorf("ipv6 hits %+v", hits)
	}
	// No action: flag.
	set, err = decodeIoCSet([]byte(`{"version":"v1","generated_at":"2026-11-26T21:00:00Z","indicators":[]}`), iocTestNow, 1<<20, 100)
	if err != nil || set.Action != api.IoCActionFlag || len(set.Indicators) != 0 {
		t.Fatalf("empty set: %+v %v", set, err)
	}
}

// TestDecodeIoCSetRefuses: anything wrong refuses the whole set, with an
// error naming the problem.
func TestDecodeIoCSetRefuses(t *testing.T) {
	const head = `{"version":"v1","generated_at":"2026-11-26T21:00:00Z","indicators":[`
	for _, tc := range []struct {
		name, body, want string
		maxBytes         int64
		maxInds          int
	}{
		{"empty", ``, "unexpected end", 0, 0},
		{"not JSON", `<html>`, "invalid character", 0, 0},
		{"array", `[]`, "cannot unmarshal", 0, 0},
		{"trailing data", head + `]} {}`, "invalid character", 0, 0},
		{"too large", head + `]}`, "over the limit of 10", 10, 0},
		{"too many", head + `{"t":"ip","v":"192.0.2.1"},{"t":"ip","v":"192.0.2.2"}]}`, "2 indicators, over the limit of 1", 0, 1},
		{"no version", `{"generated_at":"2026-11-26T21:00:00Z","indicators":[]}`, "version", 0, 0},
		{"bad version", `{"version":"a b","generated_at":"2026-11-26T21:00:00Z","indicators":[]}`, `version "a b"`, 0, 0},
		{"no time", `{"version":"v1","indicators":[]}`, "generated_at", 0, 0},
		{"bad action", `{"version":"v1","generated_at":"2026-11-26T21:00:00Z","action":"drop","indicators":[]}`, `action "drop"`, 0, 0},
		{"no indicators", `{"version":"v1","generated_at":"2026-11-26T21:00:00Z"}`, "no indicators list", 0, 0},
		{"null indicators", `{"version":"v1","generated_at":"2026-11-26T21:00:00Z","indicators":null}`, "no indicators list", 0, 0},
		{"bad ip", head + `{"t":"ip","v":"300.1.2.3"}]}`, "indicator 0: ioc: invalid IP", 0, 0},
		{"ip with zone", head + `{"t":"ip","v":"fe80::1%eth0"}]}`, "indicator 0", 0, 0},
		{"cidr not masked", head + `{"t":"cidr","v":"203.0.113.9/24"}]}`, "canonical", 0, 0},
		{"full-length cidr", head + `{"t":"cidr","v":"203.0.113.9/32"}]}`, "canonical", 0, 0},
		{"upper-case domain", head + `{"t":"domain","v":"Evil.Example.com"}]}`, "canonical", 0, 0},
		{"bad domain", head + `{"t":"domain","v":"evil..example"}]}`, "indicator 0", 0, 0},
		{"short hash", head + `{"t":"sha256","v":"abcd"}]}`, "indicator 0", 0, 0},
		{"negative expiry", head + `{"t":"ip","v":"192.0.2.1","x":-5}]}`, "negative", 0, 0},
		{"bad source", head + `{"t":"ip","v":"192.0.2.1","s":"a b"}]}`, "source", 0, 0},
		{"empty type", head + `{"t":"","v":"192.0.2.1"}]}`, "type", 0, 0},
		{"wrong value type", head + `{"t":"ip","v":7}]}`, "cannot unmarshal", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mb, mi := tc.maxBytes, tc.maxInds
			if mb == 0 {
				mb = 1 << 20
			}
			if mi == 0 {
				mi = 100
			}
			set, err := decodeIoCSet([]byte(tc.body), iocTestNow, mb, mi)
			if err == nil || !errors.Is(err, errIoCSetInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode %q: %+v, %v; want an error containing %q", tc.body, set, err, tc.want)
			}
		})
	}
}

// FuzzDecodeIoCSet: the decoder of the server's indicator set never
// panics, and what it accepts is valid: a version, a known action, and
// indicators the matcher builds from, each in canonical form, which
// survive a round trip.
func FuzzDecodeIoCSet(f *testing.F) {
	f.Add([]byte(goodIoCSet))
	f.Add([]byte(`{"version":"v1","generated_at":"2026-11-26T21:00:00Z","indicators":[]}`))
	f.Add([]byte(`{"version":"v1","generated_at":"2026-11-26T21:00:00Z","action":"flag","indicators":[{"t":"url","v":"http://evil.example.com/x"},{"t":"md5","v":"d41d8cd98f00b204e9800998ecf8427e"},{"t":"sha1","v":"da39a3ee5e6b4b0d3255bfef95601890afd80709"}]}`))
	f.Add([]byte(`{"version":"v1","generated_at":"2026-11-26T21:00:00Z","indicators":[{"t":"cidr","v":"2001:db8::/32","x":1}]}`))
	f.Add([]byte(`{"version":"v1","generated_at":"2026-11-26T21:00:00Z","indicators":[{"t":"ip","v":"::ffff:1.2.3.4"}]}`))
	f.Add([]byte(`{"version":"v1","generated_at":"2026-11-26T21:00:00Z","indicators":null}`))
	f.Add([]byte(`{"version":"","indicators":[{"t":"ip","v":"1.2.3.4"}],"version":"v2","generated_at":"2026-11-26T21:00:00Z"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := decodeIoCSet(data, iocTestNow, 1<<20, 1000)
		if err != nil {
			if !errors.Is(err, errIoCSetInvalid) {
				t.Fatalf("error %v does not wrap errIoCSetInvalid", err)
			}
			return
		}
		if !iocVersionRE.MatchString(set.Version) || (set.Action != api.IoCActionFlag && set.Action != api.IoCActionBlock) || set.GeneratedAt.IsZero() {
			t.Fatalf("accepted set %+v", set)
		}
		out := api.DeviceIoCSet{Version: set.Version, GeneratedAt: set.GeneratedAt, Action: set.Action, Indicators: []api.DeviceIoC{}}
		for _, in := range set.Indicators {
			v, err := ioc.Normalize(in.Type, in.Value)
			if err != nil || v != in.Value || in.Expired(iocTestNow) || in.Source == "" {
				t.Fatalf("accepted indicator %+v (%q, %v)", in, v, err)
			}
			d := api.DeviceIoC{Type: string(in.Type), Value: in.Value, Source: in.Source}
			if !in.Expires.IsZero() {
				d.Expires = in.Expires.Unix()
			}
			out.Indicators = append(out.Indicators, d)
		}
		if _, err := ioc.Build(set.Indicators, nil); err != nil {
			t.Fatalf("matcher refuses an accepted set: %v", err)
		}
		again, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		set2, err := decodeIoCSet(again, iocTestNow, 1<<20, 1000)
		if err != nil || len(set2.Indicators) != len(set.Indicators) || set2.Version != set.Version || set2.Action != set.Action {
			t.Fatalf("round trip of %s: %+v, %v", again, set2, err)
		}
	})
}
