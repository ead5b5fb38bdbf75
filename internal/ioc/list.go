package ioc

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// ParseList reads a plain list: one indicator per line, its type detected
// as by Detect. Blank lines and everything from a '#' that starts a line or
// follows a space or tab are ignored. Lines that are not an indicator are
// skipped and counted.
func ParseList(r io.Reader, o ParseOptions) (*Result, error) {
	b, err := readAll(r, o.maxBytes())
	if err != nil {
		return nil, fmt.Errorf("ioc: parse list: %w", err)
	}
	res := &Result{}
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if i := commentStart(line); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(line) > maxValueLen {
			res.skip("line %d: longer than %d bytes", n, maxValueLen)
			continue
		}
		v := string(line)
		typ, ok := Detect(v)
		if !ok {
			res.skip("line %d: %q is not an IP, CIDR, domain, URL or hash", n, clip(v))
			continue
		}
		in, err := New(typ, v, "", "", time.Time{})
		if err != nil {
			res.skip("line %d: %v", n, err)
			continue
		}
		if err := res.add(o, in); err != nil {
			return nil, fmt.Errorf("ioc: parse list: line %d: %w", n, err)
		}
	}
	return res, nil
}

func commentStart(line []byte) int {
	for i, c := range line {
		if c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return i
		}
	}
	return -1
}
