package ioc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ParseSTIX reads a STIX 2.1 bundle and returns the indicators of its
// "indicator" objects whose pattern_type is "stix" and whose pattern can be
// matched: comparisons with = (or ISSUBSET, for CIDRs) on ipv4-addr:value,
// ipv6-addr:value, domain-name:value, url:value and file:hashes with
// SHA-256, SHA-1 or MD5, combined with OR inside or between observation
// expressions. Patterns using AND, FOLLOWEDBY, qualifiers or other objects
// are skipped and counted, as are revoked indicators; valid_until becomes
// Expires. Other object types are ignored.
func ParseSTIX(r io.Reader, o ParseOptions) (*Result, error) {
	b, err := readAll(r, o.maxBytes())
	if err != nil {
		return nil, fmt.Errorf("ioc: parse STIX bundle: %w", err)
	}
	var bundle struct {
		Type    string            `json:"type"`
		ID      string            `json:"id"`
		Objects []json.RawMessage `json:"objects"`
	}
	if err := decodeStrict(b, &bundle); err != nil {
		return nil, fmt.Errorf("ioc: parse STIX bundle: %w", err)
	}
	if bundle.Type != "bundle" {
		return nil, fmt.Errorf("ioc: parse STIX bundle: type is %q, want \"bundle\"", clip(bundle.Type))
	}
	res := &Result{}
	if err := parseSTIXObjects(bundle.Objects, o, res); err != nil {
		return nil, fmt.Errorf("ioc: parse STIX bundle: %w", err)
	}
	return res, nil
}

// decodeStrict decodes exactly one JSON value from b into v.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty input")
		}
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("invalid JSON: data after the top-level value at offset %d", dec.InputOffset())
	}
	return nil
}

type stixIndicator struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	Pattern     string `json:"pattern"`
	PatternType string `json:"pattern_type"`
	ValidUntil  string `json:"valid_until"`
	Revoked     bool   `json:"revoked"`
}

func parseSTIXObjects(objs []json.RawMessage, o ParseOptions, res *Result) error {
	for i, raw := range objs {
		var obj stixIndicator
		if err := json.Unmarshal(raw, &obj); err != nil {
			res.skip("object %d: %v", i, err)
			continue
		}
		if obj.Type != "indicator" {
			continue
		}
		if !strings.HasPrefix(obj.ID, "indicator--") {
			res.skip("object %d: indicator id %q does not start with indicator--", i, clip(obj.ID))
			continue
		}
		if obj.Revoked {
			res.skip("%s: revoked", obj.ID)
			continue
		}
		if obj.PatternType != "stix" {
			res.skip("%s: pattern_type %q not supported", obj.ID, clip(obj.PatternType))
			continue
		}
		var expires time.Time
		if obj.ValidUntil != "" {
			t, err := time.Parse(time.RFC3339Nano, obj.ValidUntil)
			if err != nil {
				res.skip("%s: invalid valid_until %q", obj.ID, clip(obj.ValidUntil))
				continue
			}
			expires = t.UTC()
		}
		inds, err := ParsePattern(obj.Pattern)
		if err != nil {
			res.skip("%s: %v", obj.ID, err)
			continue
		}
		for _, in := range inds {
			in.Ref, in.Expires = obj.ID, expires
			if err := res.add(o, in); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrUnsupportedPattern is returned (wrapped) by ParsePattern for a valid
// pattern that cannot be reduced to a list of alternatives.
var ErrUnsupportedPattern = errors.New("unsupported pattern")

// maxPatternLen bounds a STIX pattern.
const maxPatternLen = 64 << 10

// ParsePattern parses a STIX 2.1 pattern and returns one indicator (Type and
// Value only) per comparison, any of which matching means the pattern
// matches. Syntax errors and constructs other than OR-combined equality
// comparisons on the supported object paths are errors; the latter wrap
// ErrUnsupportedPattern.
func ParsePattern(pattern string) ([]Indicator, error) {
	if len(pattern) > maxPatternLen {
		return nil, fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
	}
	p := &patternParser{s: pattern}
	p.next()
	var out []Indicator
	if err := p.observations(&out, 0); err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.errorf("unexpected %s", p.tok)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pattern has no comparisons")
	}
	return out, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokLBrack
	tokRBrack
	tokLParen
	tokRParen
	tokString // quoted literal; text is the unescaped value
	tokWord   // keyword, operator, path or other literal
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of pattern"
	case tokString:
		return fmt.Sprintf("string %q", clip(t.text))
	}
	return fmt.Sprintf("%q", clip(t.text))
}

type patternParser struct {
	s   string
	i   int
	tok token
	err error
}

const maxPatternDepth = 32

func (p *patternParser) errorf(format string, args ...any) error {
	return fmt.Errorf("pattern offset %d: %s", p.tok.pos, fmt.Sprintf(format, args...))
}

func (p *patternParser) unsupported(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrUnsupportedPattern, what, p.tok.pos)
}

// next advances to the next token; a lexical error becomes p.err and an
// EOF token.
func (p *patternParser) next() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
	start := p.i
	if p.i >= len(p.s) {
		p.tok = token{kind: tokEOF, pos: start}
		return
	}
	c := p.s[p.i]
	switch c {
	case '[':
		p.i++
		p.tok = token{tokLBrack, "[", start}
		return
	case ']':
		p.i++
		p.tok = token{tokRBrack, "]", start}
		return
	case '(':
		p.i++
		p.tok = token{tokLParen, "(", start}
		return
	case ')':
		p.i++
		p.tok = token{tokRParen, ")", start}
		return
	case '\'':
		v, n, ok := unquote(p.s[p.i:])
		if !ok {
			p.err = fmt.Errorf("pattern offset %d: unterminated or badly escaped string", start)
			p.tok = token{kind: tokEOF, pos: start}
			p.i = len(p.s)
			return
		}
		p.i += n
		p.tok = token{tokString, v, start}
		return
	case '=', '!', '<', '>':
		p.i++
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
		}
		p.tok = token{tokWord, p.s[start:p.i], start}
		return
	}
	// A word: keyword, number, path. Paths may contain quoted segments
	// after a dot (file:hashes.'SHA-256').
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '\'' && p.i > start && p.s[p.i-1] == '.' {
			_, n, ok := unquote(p.s[p.i:])
			if !ok {
				p.err = fmt.Errorf("pattern offset %d: unterminated string in path", p.i)
				p.tok = token{kind: tokEOF, pos: start}
				p.i = len(p.s)
				return
			}
			p.i += n
			continue
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '[' || c == ']' || c == '(' || c == ')' ||
			c == '\'' || c == '=' || c == '!' || c == '<' || c == '>' {
			break
		}
		p.i++
	}
	p.tok = token{tokWord, p.s[start:p.i], start}
}

// unquote reads a single-quoted STIX string at the start of s (escapes \'
// and \\ only) and returns its value and length.
func unquote(s string) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '\'' && s[i+1] != '\\') {
				return "", 0, false
			}
			i++
			b.WriteByte(s[i])
		case '\'':
			return b.String(), i + 1, true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, false
}

func (p *patternParser) keyword(w string) bool {
	return p.tok.kind == tokWord && strings.EqualFold(p.tok.text, w)
}

// observations: obs { OR obs }
func (p *patternParser) observations(out *[]Indicator, depth int) error {
	if depth > maxPatternDepth {
		return p.errorf("nested too deeply")
	}
	for {
		if err := p.observation(out, depth); err != nil {
			return err
		}
		if p.err != nil {
			return p.err
		}
		switch {
		case p.keyword("OR"):
			p.next()
		case p.keyword("AND"), p.keyword("FOLLOWEDBY"):
			return p.unsupported(strings.ToUpper(p.tok.text) + " between observations")
		case p.keyword("WITHIN"), p.keyword("REPEATS"), p.keyword("START"), p.keyword("STOP"):
			return p.unsupported("qualifier " + strings.ToUpper(p.tok.text))
		default:
			return nil
		}
	}
}

// observation: '[' comparisons ']' | '(' observations ')'
func (p *patternParser) observation(out *[]Indicator, depth int) error {
	switch p.tok.kind {
	case tokLBrack:
		p.next()
		if err := p.comparisons(out, depth+1); err != nil {
			return err
		}
		if p.err != nil {
			return p.err
		}
		if p.tok.kind != tokRBrack {
			return p.errorf("expected ] but found %s", p.tok)
		}
		p.next()
		return nil
	case tokLParen:
		p.next()
		if err := p.observations(out, depth+1); err != nil {
			return err
		}
		if p.tok.kind != tokRParen {
			return p.errorf("expected ) but found %s", p.tok)
		}
		p.next()
		return nil
	}
	if p.err != nil {
		return p.err
	}
	return p.errorf("expected [ or ( but found %s", p.tok)
}

// comparisons: cmp { OR cmp }
func (p *patternParser) comparisons(out *[]Indicator, depth int) error {
	if depth > maxPatternDepth {
		return p.errorf("nested too deeply")
	}
	for {
		if err := p.comparison(out, depth); err != nil {
			return err
		}
		if p.err != nil {
			return p.err
		}
		switch {
		case p.keyword("OR"):
			p.next()
		case p.keyword("AND"):
			return p.unsupported("AND between comparisons")
		default:
			return nil
		}
	}
}

// comparison: '(' comparisons ')' | path op literal
func (p *patternParser) comparison(out *[]Indicator, depth int) error {
	if p.tok.kind == tokLParen {
		p.next()
		if err := p.comparisons(out, depth+1); err != nil {
			return err
		}
		if p.tok.kind != tokRParen {
			return p.errorf("expected ) but found %s", p.tok)
		}
		p.next()
		return nil
	}
	if p.tok.kind != tokWord || !strings.Contains(p.tok.text, ":") {
		if p.err != nil {
			return p.err
		}
		return p.errorf("expected an object path but found %s", p.tok)
	}
	path := p.tok.text
	p.next()
	if p.keyword("NOT") {
		return p.unsupported("NOT")
	}
	if p.tok.kind != tokWord {
		return p.errorf("expected an operator but found %s", p.tok)
	}
	op := strings.ToUpper(p.tok.text)
	switch op {
	case "=", "ISSUBSET":
	case "!=", "<", ">", "<=", ">=", "IN", "LIKE", "MATCHES", "ISSUPERSET", "EXISTS":
		return p.unsupported("operator " + op)
	default:
		return p.errorf("expected an operator but found %s", p.tok)
	}
	p.next()
	if p.tok.kind != tokString {
		if p.err != nil {
			return p.err
		}
		if p.tok.kind == tokWord {
			return p.unsupported("non-string literal " + clip(p.tok.text))
		}
		return p.errorf("expected a literal but found %s", p.tok)
	}
	value := p.tok.text
	in, err := comparisonIndicator(path, op, value)
	if err != nil {
		return err
	}
	*out = append(*out, in)
	p.next()
	return nil
}

// comparisonIndicator turns one path/op/value comparison into an indicator.
func comparisonIndicator(path, op, value string) (Indicator, error) {
	objType, prop, _ := strings.Cut(path, ":")
	var typ Type
	switch {
	case (objType == "ipv4-addr" || objType == "ipv6-addr") && prop == "value":
		typ = TypeIP
		if strings.Contains(value, "/") {
			typ = TypeCIDR
		}
		in, err := New(typ, value, "", "", time.Time{})
		if err != nil {
			return Indicator{}, err
		}
		if is4 := strings.Contains(in.Value, "."); is4 != (objType == "ipv4-addr") {
			return Indicator{}, fmt.Errorf("%s value %q is not of that family", objType, clip(value))
		}
		return in, nil
	case op != "=":
		return Indicator{}, fmt.Errorf("%w: operator %s on %s", ErrUnsupportedPattern, op, clip(path))
	case objType == "domain-name" && prop == "value":
		typ = TypeDomain
	case objType == "url" && prop == "value":
		typ = TypeURL
	case objType == "file" && strings.HasPrefix(prop, "hashes."):
		name := strings.Trim(strings.TrimPrefix(prop, "hashes."), "'\"")
		switch strings.ReplaceAll(strings.ToUpper(name), "-", "") {
		case "SHA256":
			typ = TypeSHA256
		case "SHA1":
			typ = TypeSHA1
		case "MD5":
			typ = TypeMD5
		default:
			return Indicator{}, fmt.Errorf("%w: hash %s", ErrUnsupportedPattern, clip(name))
		}
	default:
		return Indicator{}, fmt.Errorf("%w: object path %s", ErrUnsupportedPattern, clip(path))
	}
	return New(typ, value, "", "", time.Time{})
}
