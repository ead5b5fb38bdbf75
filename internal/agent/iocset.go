package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/ioc"
)

// Bounds of the indicator set the agent accepts (IoCConfig).
const (
	defaultIoCMaxBytes      = 64 << 20
	defaultIoCMaxIndicators = 1_000_000
)

var (
	iocVersionRE = regexp.MustCompile(`^[0-9A-Za-z._-]{1,64}$`)
	// The server's source names (nameRE in internal/server).
	iocSourceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// iocSourceUnknown names the source of indicators a server sent without
// one (servers before sources were sent to devices).
const iocSourceUnknown = "unknown"

// iocSet is a validated indicator set (GET /device/v1/ioc).
type iocSet struct {
	Version     string
	Action      string // api.IoCActionFlag or api.IoCActionBlock
	GeneratedAt time.Time
	// Indicators are those still live when the set was decoded.
	Indicators []ioc.Indicator
	// Expired counts indicators left out because they had expired;
	// Unknown those of a type this agent does not know (a newer server).
	Expired, Unknown int
}

// iocWire is the set as sent; Indicators is a pointer so that a missing
// list is told apart from an empty one.
type iocWire struct {
	Version     string           `json:"version"`
	GeneratedAt time.Time        `json:"generated_at"`
	Action      string           `json:"action"`
	Indicators  *[]api.DeviceIoC `json:"indicators"`
}

var errIoCSetInvalid = errors.New("invalid indicator set")

// decodeIoCSet decodes and checks an indicator set: at most maxBytes of
// JSON and maxIndicators indicators, a version, a generation time, a known
// action, and every indicator of a known type carrying a valid value in
// its canonical form, with a valid source name and expiry. Anything wrong
// refuses the whole set (the agent keeps the one it has); indicators of
// an unknown type are skipped and counted, and those expired at now are
// dropped. Unknown fields are ignored, so that a newer server can add
// some.
func decodeIoCSet(data []byte, now time.Time, maxBytes int64, maxIndicators int) (*iocSet, error) {
	fail := func(format string, args ...any) (*iocSet, error) {
		return nil, fmt.Errorf("%w: %s", errIoCSetInvalid, fmt.Sprintf(format, args...))
	}
	if int64(len(data)) > maxBytes {
		return fail("%d bytes, over the limit of %d", len(data), maxBytes)
	}
	var w iocWire
	if err := json.Unmarshal(data, &w); err != nil {
		return fail("%v", err)
	}
	if !iocVersionRE.MatchString(w.Version) {
		return fail("version %q is not 1-64 letters, digits, '.', '_' or '-'", clip(w.Version))
	}
	if w.GeneratedAt.IsZero() {
		return fail("no generated_at")
	}
	set := &iocSet{Version: w.Version, GeneratedAt: w.GeneratedAt, Action: w.Action}
	switch w.Action {
	case "":
		set.Action = api.IoCActionFlag
	case api.IoCActionFlag, api.IoCActionBlock:
	default:
		return fail("action %q is neither %s nor %s", clip(w.Action), api.IoCActionFlag, api.IoCActionBlock)
	}
	if w.Indicators == nil {
		return fail("no indicators list")
	}
	list := *w.Indicators
	if len(list) > maxIndicators {
		return fail("%d indicators, over the limit of %d", len(list), maxIndicators)
	}
	sources := map[string]string{} // interned source names
	set.Indicators = make([]ioc.Indicator, 0, len(list))
	for i, d := range list {
		typ := ioc.Type(d.Type)
		switch typ {
		case ioc.TypeIP, ioc.TypeCIDR, ioc.TypeDomain, ioc.TypeURL, ioc.TypeSHA256, ioc.TypeSHA1, ioc.TypeMD5:
		default:
			if len(d.Type) == 0 || len(d.Type) > 32 {
				return fail("indicator %d: type %q", i, clip(d.Type))
			}
			set.Unknown++
			continue
		}
		if d.Expires < 0 {
			return fail("indicator %d: expiry %d is negative", i, d.Expires)
		}
		src := d.Source
		if src == "" {
			src = iocSourceUnknown
		} else if !iocSourceRE.MatchString(src) {
			return fail("indicator %d: source %q is not a source name", i, clip(src))
		}
		if s, ok := sources[src]; ok {
			src = s
		} else {
			sources[src] = src
		}
		var exp time.Time
		if d.Expires > 0 {
			exp = time.Unix(d.Expires, 0)
		}
		in, err := ioc.New(typ, d.Value, src, "", exp)
		if err != nil {
			return fail("indicator %d: %v", i, err)
		}
		if in.Type != typ || in.Value != d.Value {
			return fail("indicator %d: %s %q is not in canonical form (%s %q)", i, typ, clip(d.Value), in.Type, clip(in.Value))
		}
		if in.Expired(now) {
			set.Expired++
			continue
		}
		set.Indicators = append(set.Indicators, in)
	}
	return set, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
