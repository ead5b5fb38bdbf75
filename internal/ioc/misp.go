package ioc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// mispTypes maps the MISP attribute types used for matching to indicator
// types; "" means an address that may be a CIDR.
var mispTypes = map[string]Type{
	"ip-src":          "",
	"ip-dst":          "",
	"ip-src|port":     "",
	"ip-dst|port":     "",
	"domain":          TypeDomain,
	"hostname":        TypeDomain,
	"url":             TypeURL,
	"sha256":          TypeSHA256,
	"sha1":            TypeSHA1,
	"md5":             TypeMD5,
	"filename|sha256": TypeSHA256,
	"filename|sha1":   TypeSHA1,
	"filename|md5":    TypeMD5,
}

// flexBool decodes MISP's booleans, which older exports write as "1"/"0".
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	switch s {
	case "true", "1":
		*b = true
	case "false", "0", "", "null":
		*b = false
	default:
		return fmt.Errorf("invalid boolean %s", clip(string(data)))
	}
	return nil
}

type mispAttribute struct {
	Type    string   `json:"type"`
	Value   string   `json:"value"`
	UUID    string   `json:"uuid"`
	ToIDS   flexBool `json:"to_ids"`
	Deleted flexBool `json:"deleted"`
}

type mispEvent struct {
	UUID      string          `json:"uuid"`
	Attribute []mispAttribute `json:"Attribute"`
	Object    []struct {
		Attribute []mispAttribute `json:"Attribute"`
		Deleted   flexBool        `json:"deleted"`
	} `json:"Object"`
}

// ParseMISP reads a MISP event in JSON, as served by a MISP feed
// ({"Event": {...}}) or the REST API ({"response": [{"Event": {...}}, ...]}),
// and returns the indicators of its attributes (including those inside
// objects) that have to_ids set and one of the types ip-src, ip-dst (an
// address or CIDR), ip-src|port, ip-dst|port, domain, hostname, url, sha256,
// sha1, md5, filename|sha256, filename|sha1, filename|md5. Other attributes
// are skipped and counted. Ref is the attribute uuid.
func ParseMISP(r io.Reader, o ParseOptions) (*Result, error) {
	b, err := readAll(r, o.maxBytes())
	if err != nil {
		return nil, fmt.Errorf("ioc: parse MISP event: %w", err)
	}
	var doc struct {
		Event    *mispEvent `json:"Event"`
		Response []struct {
			Event *mispEvent `json:"Event"`
		} `json:"response"`
	}
	if err := decodeStrict(b, &doc); err != nil {
		return nil, fmt.Errorf("ioc: parse MISP event: %w", err)
	}
	var evs []*mispEvent
	if doc.Event != nil {
		evs = append(evs, doc.Event)
	}
	for _, r := range doc.Response {
		if r.Event != nil {
			evs = append(evs, r.Event)
		}
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("ioc: parse MISP event: no \"Event\" object")
	}
	res := &Result{}
	for _, ev := range evs {
		attrs := ev.Attribute
		for _, obj := range ev.Object {
			if !obj.Deleted {
				attrs = append(attrs, obj.Attribute...)
			}
		}
		for _, a := range attrs {
			in, why := mispIndicator(a)
			if why != "" {
				res.skip("attribute %s (%s): %s", clip(a.UUID), clip(a.Type), why)
				continue
			}
			if err := res.add(o, in); err != nil {
				return nil, fmt.Errorf("ioc: parse MISP event %s: %w", clip(ev.UUID), err)
			}
		}
	}
	return res, nil
}

func mispIndicator(a mispAttribute) (Indicator, string) {
	if a.Deleted {
		return Indicator{}, "deleted"
	}
	if !a.ToIDS {
		return Indicator{}, "to_ids not set"
	}
	typ, ok := mispTypes[a.Type]
	if !ok {
		return Indicator{}, "type not supported"
	}
	v := a.Value
	switch a.Type {
	case "ip-src|port", "ip-dst|port":
		i := strings.LastIndexByte(v, '|')
		if i < 0 {
			return Indicator{}, "value is not address|port"
		}
		v = v[:i]
	case "filename|sha256", "filename|sha1", "filename|md5":
		i := strings.LastIndexByte(v, '|')
		if i < 0 {
			return Indicator{}, "value is not filename|hash"
		}
		v = v[i+1:]
	}
	if typ == "" {
		typ = TypeIP
		if strings.Contains(v, "/") {
			typ = TypeCIDR
		}
	}
	in, err := New(typ, v, "", a.UUID, time.Time{})
	if err != nil {
		return Indicator{}, err.Error()
	}
	return in, ""
}

// ManifestEntry is one event listed in a MISP feed's manifest.json; the
// event itself is at <feed URL>/<UUID>.json.
type ManifestEntry struct {
	UUID      string
	Info      string
	Timestamp time.Time // last change of the event
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ParseMISPManifest reads a MISP feed manifest (an object mapping event
// uuids to event summaries) and returns its entries ordered by uuid. A key
// that is not a uuid or an entry without a valid timestamp is an error.
func ParseMISPManifest(r io.Reader, o ParseOptions) ([]ManifestEntry, error) {
	b, err := readAll(r, o.maxBytes())
	if err != nil {
		return nil, fmt.Errorf("ioc: parse MISP manifest: %w", err)
	}
	var m map[string]struct {
		Info      string          `json:"info"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if err := decodeStrict(b, &m); err != nil {
		return nil, fmt.Errorf("ioc: parse MISP manifest: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("ioc: parse MISP manifest: not a JSON object")
	}
	out := make([]ManifestEntry, 0, len(m))
	for id, e := range m {
		if !uuidRE.MatchString(id) {
			return nil, fmt.Errorf("ioc: parse MISP manifest: key %q is not a uuid", clip(id))
		}
		ts := string(bytes.Trim(e.Timestamp, `"`))
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || sec < 0 {
			return nil, fmt.Errorf("ioc: parse MISP manifest: event %s: invalid timestamp %q", id, clip(string(e.Timestamp)))
		}
		out = append(out, ManifestEntry{UUID: strings.ToLower(id), Info: e.Info, Timestamp: time.Unix(sec, 0).UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out, nil
}
