package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The RFC 5424 parser the security events test reads the syslog
// collector's output with, and its tests.

// syslogMsg is an RFC 5424 message.
type syslogMsg struct {
	Pri                              int
	Timestamp                        time.Time
	Hostname, AppName, ProcID, MsgID string
	SDID                             string
	Params                           map[string]string
	Msg                              []byte // after the BOM
}

// parseSyslog parses one RFC 5424 message (section 6) with one
// structured-data element and a MSG that starts with a UTF-8 BOM, as
// Bulwark sends them; it refuses anything else.
func parseSyslog(line string) (*syslogMsg, error) {
	var m syslogMsg
	rest, ok := strings.CutPrefix(line, "<")
	if !ok {
		return nil, fmt.Errorf("no PRI")
	}
	pri, rest, ok := strings.Cut(rest, ">")
	if !ok || len(pri) < 1 || len(pri) > 3 || (len(pri) > 1 && pri[0] == '0') {
		return nil, fmt.Errorf("bad PRI")
	}
	n, err := strconv.Atoi(pri)
	if err != nil || n < 0 || n > 191 {
		return nil, fmt.Errorf("bad PRI %q", pri)
	}
	m.Pri = n
	rest, ok = strings.CutPrefix(rest, "1 ")
	if !ok {
		return nil, fmt.Errorf("VERSION is not 1")
	}
	var fields [5]string
	for i, max := range []int{32, 255, 48, 128, 32} {
		f, r, ok := strings.Cut(rest, " ")
		if !ok || f == "" || len(f) > max {
			return nil, fmt.Errorf("header field %d missing or too long", i+1)
		}
		for j := 0; j < len(f); j++ {
			if f[j] < 33 || f[j] > 126 {
				return nil, fmt.Errorf("header field %d has a byte outside PRINTUSASCII", i+1)
			}
		}
		fields[i], rest = f, r
	}
	if fields[0] == "-" || strings.Count(fields[0], ".") > 1 {
		return nil, fmt.Errorf("bad TIMESTAMP %q", fields[0])
	}
	if m.Timestamp, err = time.Parse(time.RFC3339Nano, fields[0]); err != nil {
		return nil, fmt.Errorf("bad TIMESTAMP: %v", err)
	}
	if _, frac, ok := strings.Cut(strings.TrimRight(fields[0], "Z"), "."); ok && len(frac) > 6 {
		return nil, fmt.Errorf("TIMESTAMP has more than 6 fraction digits")
	}
	m.Hostname, m.AppName, m.ProcID, m.MsgID = fields[1], fields[2], fields[3], fields[4]
	// STRUCTURED-DATA: one element.
	rest, ok = strings.CutPrefix(rest, "[")
	if !ok {
		return nil, fmt.Errorf("no structured data")
	}
	id, rest, ok := strings.Cut(rest, " ")
	if !ok || id == "" || len(id) > 32 || strings.ContainsAny(id, "=]\" ") {
		return nil, fmt.Errorf("bad SD-ID")
	}
	m.SDID, m.Params = id, map[string]string{}
	for {
		name, r, ok := strings.Cut(rest, "=\"")
		if !ok || name == "" || len(name) > 32 || strings.ContainsAny(name, "=]\" ") {
			return nil, fmt.Errorf("bad SD-PARAM name")
		}
		var v strings.Builder
		i := 0
		for ; i < len(r) && r[i] != '"'; i++ {
			if r[i] == '\\' && i+1 < len(r) && strings.IndexByte(`"\]`, r[i+1]) >= 0 {
				i++
			} else if r[i] == ']' {
				return nil, fmt.Errorf("unescaped ] in SD-PARAM %s", name)
			}
			v.WriteByte(r[i])
		}
		if i == len(r) {
			return nil, fmt.Errorf("unterminated SD-PARAM %s", name)
		}
		m.Params[name] = v.String()
		rest = r[i+1:]
		if r, ok := strings.CutPrefix(rest, "]"); ok {
			rest = r
			break
		}
		if rest, ok = strings.CutPrefix(rest, " "); !ok {
			return nil, fmt.Errorf("no space between SD-PARAMs")
		}
	}
	rest, ok = strings.CutPrefix(rest, " \xEF\xBB\xBF")
	if !ok {
		return nil, fmt.Errorf("MSG does not start with a UTF-8 BOM")
	}
	if !utf8.ValidString(rest) {
		return nil, fmt.Errorf("MSG is not UTF-8")
	}
	m.Msg = []byte(rest)
	return &m, nil
}

func TestParseSyslog(t *testing.T) {
	good := "<131>1 2026-11-26T21:04:05.123456Z dev_abc bulwark - alert [bulwark@32473 alert=\"alr_1\" rule=\"ioc.match\" summary=\"a \\\"b\\\" \\] c\"] \xEF\xBB\xBF{\"id\":\"alr_1\"}"
	m, err := parseSyslog(good)
	if err != nil {
		t.Fatal(err)
	}
	if m.Pri != 131 || m.Hostname != "dev_abc" || m.AppName != "bulwark" || m.ProcID != "-" || m.MsgID != "alert" ||
		m.SDID != "bulwark@32473" || m.Params["alert"] != "alr_1" || m.Params["summary"] != `a "b" ] c` || string(m.Msg) != `{"id":"alr_1"}` ||
		!m.Timestamp.Equal(time.Date(2026, 11, 26, 21, 4, 5, 123456000, time.UTC)) {
		t.Fatalf("parsed %+v", m)
	}
	for _, bad := range []string{
		"",
		"<131>2 2026-11-26T21:04:05Z h a - m [x@1 a=\"b\"] \xEF\xBB\xBFx",        // version
		"<192>1 2026-11-26T21:04:05Z h a - m [x@1 a=\"b\"] \xEF\xBB\xBFx",        // PRI
		"<013>1 2026-11-26T21:04:05Z h a - m [x@1 a=\"b\"] \xEF\xBB\xBFx",        // leading zero
		"<13>1 2026-11-26T21:04:05.1234567Z h a - m [x@1 a=\"b\"] \xEF\xBB\xBFx", // 7 fraction digits
		"<13>1 Nov 26 21:04:05 h a - m [x@1 a=\"b\"] \xEF\xBB\xBFx",              // BSD time
		"<13>1 2026-11-26T21:04:05Z h a - m [x@1 a=\"b]\"] \xEF\xBB\xBFx",        // unescaped ]
		"<13>1 2026-11-26T21:04:05Z h a - m [x@1 a=\"b\"] x",                     // no BOM
		"<13>1 2026-11-26T21:04:05Z h a - m [x@1 a=\"b\"] \xEF\xBB\xBF\xff",      // not UTF-8
		"<13>1 2026-11-26T21:04:05Z h\x01 a - m [x@1 a=\"b\"] \xEF\xBB\xBFx",     // control byte
		"<13>1 2026-11-26T21:04:05Z h a - m - \xEF\xBB\xBFx",                     // no SD
	} {
		if m, err := parseSyslog(bad); err == nil {
			t.Errorf("parseSyslog(%q) accepted: %+v", bad, m)
		}
	}
}

// FuzzParseSyslog: any input is refused with an error or parsed into a
// message whose fields are what RFC 5424 allows.
func FuzzParseSyslog(f *testing.F) {
	f.Add("<131>1 2026-11-26T21:04:05.123456Z dev_abc bulwark - alert [bulwark@32473 alert=\"alr_1\" rule=\"ioc.match\"] \xEF\xBB\xBF{}")
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseSyslog(line)
		if err != nil {
			if m != nil {
				t.Fatal("a message with an error")
			}
			return
		}
		if m.Pri < 0 || m.Pri > 191 || m.SDID == "" || len(m.Params) == 0 || !utf8.Valid(m.Msg) {
			t.Fatalf("accepted %q as %+v", line, m)
		}
		for _, h := range []string{m.Hostname, m.AppName, m.ProcID, m.MsgID} {
			if h == "" || strings.ContainsFunc(h, func(r rune) bool { return r < 33 || r > 126 }) {
				t.Fatalf("accepted header field %q", h)
			}
		}
	})
}
