package siem

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// A strict RFC 5424 parser, used to check what the collector received. It
// accepts exactly the ABNF of RFC 5424 section 6 (VERSION 1 only).

type syslogMsg struct {
	Pri       int
	Timestamp string // as sent, "-" for NILVALUE
	Time      time.Time
	Hostname  string
	AppName   string
	ProcID    string
	MsgID     string
	SD        []sdElement // nil for NILVALUE
	HasMsg    bool
	BOM       bool
	Msg       []byte // after the BOM
}

type sdElement struct {
	ID     string
	Params []sdParam
}

type sdParam struct{ Name, Value string }

func (m *syslogMsg) param(id, name string) (string, bool) {
	for _, e := range m.SD {
		if e.ID == id {
			for _, p := range e.Params {
				if p.Name == name {
					return p.Value, true
				}
			}
		}
	}
	return "", false
}

var timestampRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$`)

type msgParser struct {
	b   []byte
	pos int
}

func (p *msgParser) errf(format string, args ...any) error {
	return fmt.Errorf("rfc5424: at byte %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *msgParser) sp() error {
	if p.pos >= len(p.b) || p.b[p.pos] != ' ' {
		return p.errf("want SP")
	}
	p.pos++
	return nil
}

// token reads 1..max PRINTUSASCII characters (NILVALUE "-" included).
func (p *msgParser) token(name string, max int) (string, error) {
	start := p.pos
	for p.pos < len(p.b) && p.b[p.pos] >= 33 && p.b[p.pos] <= 126 {
		p.pos++
	}
	n := p.pos - start
	if n == 0 {
		return "", p.errf("empty %s", name)
	}
	if n > max {
		return "", p.errf("%s longer than %d", name, max)
	}
	return string(p.b[start:p.pos]), nil
}

func parseRFC5424(b []byte) (*syslogMsg, error) {
	p := &msgParser{b: b}
	m := &syslogMsg{}
	// PRI
	if len(b) < 1 || b[0] != '<' {
		return nil, p.errf("want '<'")
	}
	p.pos = 1
	start := p.pos
	for p.pos < len(b) && b[p.pos] >= '0' && b[p.pos] <= '9' {
		p.pos++
	}
	digits := string(b[start:p.pos])
	if len(digits) < 1 || len(digits) > 3 || (len(digits) > 1 && digits[0] == '0') {
		return nil, p.errf("bad PRIVAL %q", digits)
	}
	m.Pri, _ = strconv.Atoi(digits)
	if m.Pri > 191 {
		return nil, p.errf("PRIVAL %d over 191", m.Pri)
	}
	if p.pos >= len(b) || b[p.pos] != '>' {
		return nil, p.errf("want '>'")
	}
	p.pos++
	// VERSION
	if p.pos+1 > len(b) || b[p.pos] != '1' {
		return nil, p.errf("want VERSION 1")
	}
	p.pos++
	if err := p.sp(); err != nil {
		return nil, err
	}
	// TIMESTAMP
	ts, err := p.token("TIMESTAMP", 32)
	if err != nil {
		return nil, err
	}
	m.Timestamp = ts
	if ts != "-" {
		if !timestampRE.MatchString(ts) {
			return nil, p.errf("bad TIMESTAMP %q", ts)
		}
		if m.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, p.errf("bad TIMESTAMP %q: %v", ts, err)
		}
	}
	for _, f := range []struct {
		name string
		max  int
		dst  *string
	}{{"HOSTNAME", 255, &m.Hostname}, {"APP-NAME", 48, &m.AppName}, {"PROCID", 128, &m.ProcID}, {"MSGID", 32, &m.MsgID}} {
		if err := p.sp(); err != nil {
			return nil, err
		}
		if *f.dst, err = p.token(f.name, f.max); err != nil {
			return nil, err
		}
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	// STRUCTURED-DATA
	if p.pos < len(b) && b[p.pos] == '-' {
		p.pos++
	} else {
		m.SD = []sdElement{}
		for p.pos < len(b) && b[p.pos] == '[' {
			e, err := p.element()
			if err != nil {
				return nil, err
			}
			for _, prev := range m.SD {
				if prev.ID == e.ID {
					return nil, p.errf("SD-ID %q repeated", e.ID)
				}
			}
			m.SD = append(m.SD, e)
		}
		if len(m.SD) == 0 {
			return nil, p.errf("want STRUCTURED-DATA")
		}
	}
	// MSG
	if p.pos == len(b) {
		return m, nil
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	m.HasMsg = true
	rest := b[p.pos:]
	if bytes.HasPrefix(rest, []byte("\xEF\xBB\xBF")) {
		m.BOM = true
		rest = rest[3:]
		if !utf8.Valid(rest) {
			return nil, p.errf("MSG-UTF8 is not valid UTF-8")
		}
	}
	m.Msg = rest
	return m, nil
}

func (p *msgParser) sdName(what string) (string, error) {
	start := p.pos
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			break
		}
		p.pos++
	}
	n := p.pos - start
	if n == 0 || n > 32 {
		return "", p.errf("%s must be 1..32 characters", what)
	}
	return string(p.b[start:p.pos]), nil
}

func (p *msgParser) element() (sdElement, error) {
	var e sdElement
	p.pos++ // '['
	id, err := p.sdName("SD-ID")
	if err != nil {
		return e, err
	}
	e.ID = id
	for {
		if p.pos >= len(p.b) {
			return e, p.errf("unterminated SD-ELEMENT")
		}
		if p.b[p.pos] == ']' {
			p.pos++
			return e, nil
		}
		if err := p.sp(); err != nil {
			return e, err
		}
		name, err := p.sdName("PARAM-NAME")
		if err != nil {
			return e, err
		}
		if p.pos+1 >= len(p.b) || p.b[p.pos] != '=' || p.b[p.pos+1] != '"' {
			return e, p.errf("want '=\"'")
		}
		p.pos += 2
		var v []byte
		for {
			if p.pos >= len(p.b) {
				return e, p.errf("unterminated PARAM-VALUE")
			}
			c := p.b[p.pos]
			if c == '"' {
				p.pos++
				break
			}
			if c == ']' {
				return e, p.errf("unescaped ']' in PARAM-VALUE")
			}
			if c == '\\' && p.pos+1 < len(p.b) {
				if n := p.b[p.pos+1]; n == '"' || n == '\\' || n == ']' {
					v = append(v, n)
					p.pos += 2
					continue
				}
			}
			v = append(v, c)
			p.pos++
		}
		if !utf8.Valid(v) {
			return e, p.errf("PARAM-VALUE is not UTF-8")
		}
		e.Params = append(e.Params, sdParam{name, string(v)})
	}
}

// format writes m back in RFC 5424 form; parse(format(m)) == m for every m
// parse returns.
func (m *syslogMsg) format() []byte {
	var b []byte
	b = fmt.Appendf(b, "<%d>1 %s %s %s %s %s ", m.Pri, m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID)
	if m.SD == nil {
		b = append(b, '-')
	}
	for _, e := range m.SD {
		b = append(b, '[')
		b = append(b, e.ID...)
		for _, p := range e.Params {
			b = appendParam(b, p.Name, p.Value)
		}
		b = append(b, ']')
	}
	if m.HasMsg {
		b = append(b, ' ')
		if m.BOM {
			b = append(b, "\xEF\xBB\xBF"...)
		}
		b = append(b, m.Msg...)
	}
	return b
}

var errNoFrame = errors.New("incomplete frame")

// splitFrame splits one RFC 5425 frame "LEN SP MSG" off b.
func splitFrame(b []byte) (msg, rest []byte, err error) {
	i := bytes.IndexByte(b, ' ')
	if i <= 0 || i > 10 {
		return nil, nil, errNoFrame
	}
	n, err := strconv.Atoi(string(b[:i]))
	if err != nil || n <= 0 || b[0] == '0' {
		return nil, nil, fmt.Errorf("bad MSG-LEN %q", b[:i])
	}
	if len(b) < i+1+n {
		return nil, nil, errNoFrame
	}
	return b[i+1 : i+1+n], b[i+1+n:], nil
}

// FuzzParseRFC5424 checks the test parser itself: no panics, and whatever
// it accepts it can write back and parse again to the same fields.
func FuzzParseRFC5424(f *testing.F) {
	f.Add([]byte(`<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - ` + "\xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8"))
	f.Add([]byte(`<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.`))
	f.Add([]byte(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]`))
	f.Add([]byte(`<0>1 - - - - - [a b="\]\"\\\x"]`))
	f.Add([]byte(`<191>1 - - - - - -`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseRFC5424(b)
		if err != nil {
			return
		}
		again, err := parseRFC5424(m.format())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", m.format(), err)
		}
		if fmt.Sprintf("%+v", again) != fmt.Sprintf("%+v", m) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, again)
		}
	})
}

// FuzzSyslogMessage feeds arbitrary device IDs, hostnames and free text
// through the sink's encoder: every message must parse as strict RFC 5424,
// and the structured data and MSG must carry the event unchanged.
func FuzzSyslogMessage(f *testing.F) {
	f.Add("dev-1", "", "reason", uint64(1), 3)
	f.Add(`d"e]v\`, "host name", "\x00\xff]\"\\", uint64(1<<63), 6)
	f.Add("é", "\u2028", "\xEF\xBB\xBF", uint64(42), 0)
	f.Fuzz(func(t *testing.T, device, hostname, reason string, seq uint64, sev int) {
		e, err := events.New(events.TypePolicyDenial, device, sev, testTime, events.PolicyDenial{
			Policy: "p", Action: "a", Reason: reason})
		if err != nil || seq == 0 {
			return // not a valid event: the sink would refuse it
		}
		e.Seq = seq
		s, err := NewSyslog(SyslogConfig{Addr: "127.0.0.1:6514", Hostname: func(string) string { return hostname }})
		if err != nil {
			t.Fatal(err)
		}
		frame, err := s.appendFrame(nil, e)
		if err != nil {
			return // e.g. invalid UTF-8 that JSON cannot carry unchanged
		}
		raw, rest, err := splitFrame(frame)
		if err != nil || len(rest) != 0 {
			t.Fatalf("frame %q: %v", frame, err)
		}
		m, err := parseRFC5424(raw)
		if err != nil {
			t.Fatalf("%v\n%q", err, raw)
		}
		if got, _ := m.param(SDID, "device"); got != strings.ToValidUTF8(device, "\uFFFD") {
			t.Errorf("device %q, want %q", got, device)
		}
		if got, _ := m.param(SDID, "seq"); got != strconv.FormatUint(seq, 10) {
			t.Errorf("seq %q", got)
		}
		if m.Pri != 16*8+syslogSeverity(sev) || m.MsgID != events.TypePolicyDenial || !m.BOM {
			t.Errorf("header %+v", m)
		}
		if _, err := events.Decode(m.Msg); err != nil {
			t.Fatalf("MSG: %v", err)
		}
		if want, _ := e.Marshal(); !bytes.Equal(m.Msg, want) {
			t.Errorf("MSG is not the event's JSON:\n%s\n%s", m.Msg, want)
		}
	})
}
