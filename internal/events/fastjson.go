package events

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"sync"
	"time"
)

// scanInto decodes data, one JSON object, into v (a struct) as a strict
// json.Decoder (DisallowUnknownFields, nothing but white space after
// the value) would, without reflection-heavy scanning: it is most of the
// cost of ingesting an event. It handles only the common, unambiguous
// forms: member names spelt exactly as the field's json name, each at
// most once; no null; strings, integers, floats, booleans, time.Time,
// nested structs, pointers to them and slices. On anything else it
// returns false with v in an unspecified state, and the caller falls
// back to encoding/json. Whatever it accepts, encoding/json accepts with
// the same result (FuzzDecodeFast checks it through decodeFast).
func scanInto(data []byte, v reflect.Value) bool {
	s := scanner{data: data}
	s.space()
	if !s.object(v, 0) {
		return false
	}
	s.space()
	return s.i == len(s.data)
}

type scanner struct {
	data []byte
	i    int
}

// maxScanDepth bounds nesting; deeper values go to encoding/json.
const maxScanDepth = 16

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object decodes a JSON object into the struct v.
func (s *scanner) object(v reflect.Value, depth int) bool {
	if depth > maxScanDepth || !s.byte('{') {
		return false
	}
	fields, ok := scanFields(v.Type())
	if !ok {
		return false
	}
	var seen uint64
	s.space()
	if s.byte('}') {
		return true
	}
	for {
		f, ok := s.key(fields)
		if !ok || f.custom || seen&(1<<f.bit) != 0 {
			return false // unknown (or not spelt exactly), or repeated
		}
		seen |= 1 << f.bit
		s.space()
		if !s.byte(':') {
			return false
		}
		s.space()
		if !s.value(v.Field(f.index), depth) {
			return false
		}
		s.space()
		if s.byte('}') {
			return true
		}
		if !s.byte(',') {
			return false
		}
		s.space()
	}
}

// key reads a member name without escapes and finds its field.
func (s *scanner) key(fields *scanFieldSet) (scanField, bool) {
	if !s.byte('"') {
		return scanField{}, false
	}
	start := s.i
	for s.i < len(s.data) {
		c := s.data[s.i]
		if c == '"' {
			f, ok := fields.byName[string(s.data[start:s.i])]
			s.i++
			return f, ok
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return scanField{}, false
		}
		s.i++
	}
	return scanField{}, false
}

var (
	timeType            = reflect.TypeFor[time.Time]()
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value decodes one JSON value into v.
func (s *scanner) value(v reflect.Value, depth int) bool {
	if s.i >= len(s.data) || s.data[s.i] == 'n' {
		return false // null (or nothing) is left to encoding/json
	}
	t := v.Type()
	if t == timeType {
		start := s.i
		if !s.skipString() {
			return false
		}
		return v.Addr().Interface().(*time.Time).UnmarshalJSON(s.data[start:s.i]) == nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if customDecoding(t.Elem()) {
			return false
		}
		p := reflect.New(t.Elem())
		if !s.value(p.Elem(), depth+1) {
			return false
		}
		v.Set(p)
		return true
	case reflect.Struct:
		return s.object(v, depth+1)
	case reflect.String:
		str, ok := s.string()
		if ok {
			v.SetString(str)
		}
		return ok
	case reflect.Bool:
		switch {
		case s.lit("true"):
			v.SetBool(true)
		case s.lit("false"):
			v.SetBool(false)
		default:
			return false
		}
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		lit, ok := s.number(true)
		if !ok {
			return false
		}
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return false
		}
		v.SetInt(n)
		return true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		lit, ok := s.number(true)
		if !ok {
			return false
		}
		n, err := strconv.ParseUint(lit, 10, 64)
		if err != nil || v.OverflowUint(n) {
			return false
		}
		v.SetUint(n)
		return true
	case reflect.Float32, reflect.Float64:
		lit, ok := s.number(false)
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(lit, t.Bits())
		if err != nil || v.OverflowFloat(f) {
			return false
		}
		v.SetFloat(f)
		return true
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 || depth > maxScanDepth || !s.byte('[') {
			return false // []byte is base64 in JSON
		}
		if customDecoding(t.Elem()) {
			return false
		}
		out := reflect.MakeSlice(t, 0, 0)
		s.space()
		if s.byte(']') {
			v.Set(out)
			return true
		}
		for {
			out = reflect.Append(out, reflect.Zero(t.Elem()))
			if !s.value(out.Index(out.Len()-1), depth+1) {
				return false
			}
			s.space()
			if s.byte(']') {
				v.Set(out)
				return true
			}
			if !s.byte(',') {
				return false
			}
			s.space()
		}
	}
	return false // maps, interfaces, arrays, …
}

var customCache sync.Map // reflect.Type -> bool

// customDecoding reports whether encoding/json would decode into a value
// of type t (other than time.Time or a pointer to one) with a method of
// its own.
func customDecoding(t reflect.Type) bool {
	if c, ok := customCache.Load(t); ok {
		return c.(bool)
	}
	pt := reflect.PointerTo(t)
	custom := t != timeType && (pt.Implements(jsonUnmarshalerType) || pt.Implements(textUnmarshalerType))
	if t.Kind() == reflect.Pointer && t.Elem() != timeType {
		custom = custom || t.Implements(jsonUnmarshalerType) || t.Implements(textUnmarshalerType)
	}
	customCache.Store(t, custom)
	return custom
}

func (s *scanner) lit(l string) bool {
	if len(s.data)-s.i >= len(l) && string(s.data[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

// skipString moves past a JSON string made of printable ASCII without
// escapes (time values).
func (s *scanner) skipString() bool {
	if !s.byte('"') {
		return false
	}
	for s.i < len(s.data) {
		c := s.data[s.i]
		s.i++
		if c == '"' {
			return true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return false
}

// string reads a JSON string. Escapes and non-ASCII bytes are decoded
// by encoding/json itself, so that they mean exactly what they mean
// there (invalid UTF-8 and lone surrogates become U+FFFD).
func (s *scanner) string() (string, bool) {
	if !s.byte('"') {
		return "", false
	}
	start := s.i
	plain := true
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			if plain {
				return string(s.data[start : s.i-1]), true
			}
			var str string
			if json.Unmarshal(s.data[start-1:s.i], &str) != nil {
				return "", false
			}
			return str, true
		case c < 0x20:
			return "", false
		case c == '\\':
			plain = false
			s.i++ // the escaped character; checked by json.Unmarshal
		case c >= 0x80:
			plain = false
		}
		s.i++
	}
	return "", false
}

// number reads a JSON number literal; integer limits it to an optional
// minus sign and digits.
func (s *scanner) number(integer bool) (string, bool) {
	start := s.i
	s.byte('-')
	if s.byte('0') {
		// no further digits may follow a leading zero
	} else if s.digits() == 0 {
		return "", false
	}
	if !integer {
		if s.byte('.') && s.digits() == 0 {
			return "", false
		}
		if s.byte('e') || s.byte('E') {
			if !s.byte('+') {
				s.byte('-')
			}
			if s.digits() == 0 {
				return "", false
			}
		}
	}
	if s.i < len(s.data) {
		switch s.data[s.i] {
		case '.', 'e', 'E', '-', '+', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return "", false // not a plain integer (or not a number)
		}
	}
	return string(s.data[start:s.i]), true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// scanFieldSet is how scanInto finds a struct's fields by member name.
type scanFieldSet struct {
	byName map[string]scanField
}

type scanField struct {
	index  int
	bit    uint
	custom bool // customDecoding of the field's type
}

var scanFieldCache sync.Map // reflect.Type -> *scanFieldSet (nil: unsupported)

// scanFields maps the exported fields of t by json name. Structs with
// embedded fields, ",string" options or more than 64 fields are left to
// encoding/json.
func scanFields(t reflect.Type) (*scanFieldSet, bool) {
	if c, ok := scanFieldCache.Load(t); ok {
		fs := c.(*scanFieldSet)
		return fs, fs != nil
	}
	fs := &scanFieldSet{byName: map[string]scanField{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous || i >= 64 || tag == "-," {
			fs = nil
			break
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts := tag, ""
		for j := 0; j < len(tag); j++ {
			if tag[j] == ',' {
				name, opts = tag[:j], tag[j+1:]
				break
			}
		}
		if name == "" {
			name = f.Name
		}
		if opts != "" && opts != "omitempty" && opts != "omitzero" && opts != "omitempty,omitzero" && opts != "omitzero,omitempty" {
			fs = nil
			break
		}
		if _, dup := fs.byName[name]; dup {
			fs = nil
			break
		}
		fs.byName[name] = scanField{index: i, bit: uint(i), custom: customDecoding(f.Type)}
	}
	scanFieldCache.Store(t, fs)
	return fs, fs != nil
}
