package collect

import (
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// testTime is the device time of the events the tests build.
var testTime = time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)

// checkAuthEvent fails unless a parsed event is a valid auth.login event
// within the parser's bounds.
func checkAuthEvent(t *testing.T, in string, ev AuthEvent) {
	t.Helper()
	l := ev.Login
	if len(l.Message) > maxMessage || len(l.User) > maxUser || l.User == "" {
		t.Fatalf("%q: message %d bytes, user %q", in, len(l.Message), l.User)
	}
	if _, err := events.New(events.TypeAuthLogin, "dev-1", ev.Severity, testTime, l); err != nil {
		t.Fatalf("%q: %+v is not a valid event: %v", in, l, err)
	}
}

// FuzzParseLine feeds arbitrary lines to the syslog parser: it must not
// panic, and what it accepts must be a valid event. Seeds are in
// testdata/fuzz/FuzzParseLine.
func FuzzParseLine(f *testing.F) {
	f.Add("Nov 26 21:09:47 gw sshd[1235]: Failed password for invalid user admin from 203.0.113.7 port 51024 ssh2")
	f.Fuzz(func(t *testing.T, line string) {
		if ev, ok := ParseLine(line); ok {
			checkAuthEvent(t, line, ev)
		}
	})
}

// FuzzParseJournalEntry does the same for journald entries. Seeds are in
// testdata/fuzz/FuzzParseJournalEntry.
func FuzzParseJournalEntry(f *testing.F) {
	f.Add([]byte(`{"SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Accepted publickey for a from 2001:db8::1 port 2 ssh2"}`))
	f.Fuzz(func(t *testing.T, entry []byte) {
		if ev, ok := ParseJournalEntry(entry); ok {
			checkAuthEvent(t, string(entry), ev)
		}
	})
}
