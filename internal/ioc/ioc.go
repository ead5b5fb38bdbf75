// Package ioc parses indicators of compromise (STIX 2.1 bundles and TAXII
// 2.1 collections, MISP JSON feeds, plain lists) and matches network and file
// observations against them (guideline 10.2: apply IoCs to traffic).
//
// Parsers read at most ParseOptions.MaxBytes and never panic on hostile
// input; indicators they cannot use are skipped and counted in Result rather
// than failing the whole feed. A Matcher is an immutable snapshot built from
// a set of indicators and is safe for concurrent use; a Set holds indicators
// per source and publishes a rebuilt Matcher on every change. A Batch, which
// gathers observations to match together, is not safe for concurrent use.
package ioc

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Type is the kind of value an indicator carries.
type Type string

// Indicator types.
const (
	TypeIP     Type = "ip"     // one IPv4 or IPv6 address
	TypeCIDR   Type = "cidr"   // an IPv4 or IPv6 prefix
	TypeDomain Type = "domain" // a domain; matches its subdomains too
	TypeURL    Type = "url"    // a normalized absolute URL
	TypeSHA256 Type = "sha256" // file hash, lower-case hex
	TypeSHA1   Type = "sha1"
	TypeMD5    Type = "md5"
)

// Indicator is one indicator of compromise.
type Indicator struct {
	Type  Type
	Value string // normalized: see Normalize
	// Source names the feed the indicator came from.
	Source string
	// Ref identifies the indicator in its source: the STIX indicator id or
	// the MISP attribute uuid; empty for plain lists.
	Ref string
	// Expires is when the indicator stops being valid; zero means never.
	Expires time.Time
}

// Expired reports whether the indicator is no longer valid at now.
func (in Indicator) Expired(now time.Time) bool {
	return !in.Expires.IsZero() && !now.Before(in.Expires)
}

// New returns an indicator with its value validated and normalized.
func New(typ Type, value, source, ref string, expires time.Time) (Indicator, error) {
	v, err := Normalize(typ, value)
	if err != nil {
		return Indicator{}, err
	}
	if typ == TypeCIDR && !strings.Contains(v, "/") {
		typ = TypeIP // a full-length prefix is one address
	}
	return Indicator{Type: typ, Value: v, Source: source, Ref: ref, Expires: expires}, nil
}

// Normalize validates value as an indicator of type typ and returns its
// canonical form: addresses in netip form (IPv4-mapped IPv6 unmapped),
// prefixes masked (a full-length prefix becomes an address), domains
// lower-case without a trailing dot, URLs as by NormalizeURL, hashes
// lower-case hex.
func Normalize(typ Type, value string) (string, error) {
	value = strings.TrimSpace(value)
	switch typ {
	case TypeIP:
		a, err := netip.ParseAddr(value)
		if err != nil || a.Zone() != "" {
			return "", fmt.Errorf("ioc: invalid IP address %q", clip(value))
		}
		return a.Unmap().String(), nil
	case TypeCIDR:
		p, err := parsePrefix(value)
		if err != nil {
			return "", err
		}
		if p.IsSingleIP() {
			return p.Addr().String(), nil
		}
		return p.String(), nil
	case TypeDomain:
		d, ok := normalizeDomain(value)
		if !ok {
			return "", fmt.Errorf("ioc: invalid domain %q", clip(value))
		}
		return d, nil
	case TypeURL:
		return NormalizeURL(value)
	case TypeSHA256, TypeSHA1, TypeMD5:
		n := map[Type]int{TypeSHA256: 64, TypeSHA1: 40, TypeMD5: 32}[typ]
		if len(value) != n || !isHex(value) {
			return "", fmt.Errorf("ioc: invalid %s hash %q: want %d hex digits", typ, clip(value), n)
		}
		return strings.ToLower(value), nil
	}
	return "", fmt.Errorf("ioc: unknown indicator type %q", clip(string(typ)))
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("ioc: invalid CIDR %q", clip(s))
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// normalizeDomain lower-cases d, drops one trailing dot and checks it is a
// syntactically valid DNS name (letters, digits, '-', '_'; labels of 1–63
// bytes; at most 253 bytes). Non-ASCII names must be given in punycode.
func normalizeDomain(d string) (string, bool) {
	d = strings.TrimSuffix(d, ".")
	if len(d) == 0 || len(d) > 253 {
		return "", false
	}
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 {
				return "", false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
		default:
			return "", false
		}
		label++
		if label > 63 {
			return "", false
		}
	}
	if label == 0 {
		return "", false
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "", false
	}
	return strings.ToLower(d), true
}

// NormalizeURL returns the canonical form of an absolute URL used for
// matching: scheme and host lower-case, the host's trailing dot and a
// default port (80 for http, 443 for https) removed, user information and
// fragment dropped, an empty path written "/". A URL without a scheme is
// taken as http.
func NormalizeURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxValueLen {
		return "", fmt.Errorf("ioc: URL longer than %d bytes", maxValueLen)
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("ioc: invalid URL %q", clip(s))
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("ioc: invalid URL %q: want scheme://host/...", clip(s))
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := u.Hostname(), u.Port()
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return "", fmt.Errorf("ioc: invalid URL %q: empty host", clip(s))
	}
	if !strings.Contains(host, ":") && (strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || strings.Contains(host, "..")) {
		// An empty label: "a..b", ".a", "a.." (one trailing dot is
		// dropped above; a second would be dropped by a second pass).
		return "", fmt.Errorf("ioc: invalid URL %q: empty label in the host name", clip(s))
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	out := scheme + "://" + host + path
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// hashType returns the hash type for a hex digest of length n.
func hashType(s string) (Type, bool) {
	if !isHex(s) {
		return "", false
	}
	switch len(s) {
	case 64:
		return TypeSHA256, true
	case 40:
		return TypeSHA1, true
	case 32:
		return TypeMD5, true
	}
	return "", false
}

// Detect guesses the type of a bare value as found in plain lists: an IP
// address, a CIDR prefix, a URL (contains "://"), an MD5/SHA-1/SHA-256 hex
// digest, or a domain with at least one dot.
func Detect(value string) (Type, bool) {
	value = strings.TrimSpace(value)
	if _, err := netip.ParseAddr(value); err == nil {
		return TypeIP, true
	}
	if _, err := netip.ParsePrefix(value); err == nil {
		return TypeCIDR, true
	}
	if strings.Contains(value, "://") {
		return TypeURL, true
	}
	if t, ok := hashType(value); ok {
		return t, true
	}
	if d, ok := normalizeDomain(value); ok && strings.Contains(d, ".") {
		return TypeDomain, true
	}
	return "", false
}

// Limits and defaults for parsers.
const (
	// DefaultMaxBytes bounds the input a parser reads when
	// ParseOptions.MaxBytes is zero.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxIndicators bounds the indicators one parse returns when
	// ParseOptions.MaxIndicators is zero.
	DefaultMaxIndicators = 2_000_000
	maxValueLen          = 8192
	maxReasons           = 16
)

// ErrTooLarge is returned (wrapped) when input exceeds ParseOptions.MaxBytes
// or yields more than ParseOptions.MaxIndicators indicators.
var ErrTooLarge = errors.New("input too large")

// ParseOptions configures a parser. The zero value is usable.
type ParseOptions struct {
	// Source is copied into every indicator's Source.
	Source string
	// MaxBytes bounds the input read; 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxIndicators bounds the indicators returned; 0 means
	// DefaultMaxIndicators.
	MaxIndicators int
}

func (o ParseOptions) maxBytes() int64 {
	if o.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return o.MaxBytes
}

func (o ParseOptions) maxIndicators() int {
	if o.MaxIndicators <= 0 {
		return DefaultMaxIndicators
	}
	return o.MaxIndicators
}

// Result is what a parser extracted from one feed.
type Result struct {
	Indicators []Indicator
	// Skipped counts entries that carried no usable indicator: unsupported
	// STIX patterns or MISP types, invalid values, attributes without
	// to_ids, revoked or deleted entries.
	Skipped int
	// Reasons describes the first few skipped entries, for diagnostics.
	Reasons []string
}

func (r *Result) skip(format string, args ...any) {
	r.Skipped++
	if len(r.Reasons) < maxReasons {
		r.Reasons = append(r.Reasons, fmt.Sprintf(format, args...))
	}
}

func (r *Result) add(o ParseOptions, in Indicator) error {
	if len(r.Indicators) >= o.maxIndicators() {
		return fmt.Errorf("more than %d indicators: %w", o.maxIndicators(), ErrTooLarge)
	}
	in.Source = o.Source
	r.Indicators = append(r.Indicators, in)
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// decodeHex decodes a hex digest (either case) into dst without
// allocating; it reports false unless s is exactly 2*len(dst) hex digits.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	i := len(dst) &^ 3
	if !decodeHex8(dst[:i], s[:2*i]) {
		return false
	}
	bad := byte(0)
	for ; i < len(dst); i++ {
		hi, lo := hexVal[s[2*i]], hexVal[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
	}
	return bad&0xf0 == 0
}

// hexVal maps a hex digit to its value and anything else to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

// readAll reads r up to max bytes and fails if there is more.
func readAll(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("more than %d bytes: %w", max, ErrTooLarge)
	}
	return b, nil
}
