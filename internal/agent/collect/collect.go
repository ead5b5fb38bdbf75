// Package collect holds the agent's security event collectors: new
// network connections (net.connection, from internal/agent/netmon), DNS
// queries (dns.query, from internal/agent/dnsmon) and system
// authentication events (auth.login, from the auth log file or
// journald). Each collector turns what it sees into events and hands them
// to a Recorder, the daemon's tamper-evident journal, within a bounded
// rate: what a limit keeps out of the journal is counted and recorded as a
// policy.denial note, never dropped silently.
//
// The parsers (ParseLine, ParseMessage, ParseJournalEntry) are pure
// functions, safe for concurrent use. RunNet, RunDNS, RunAuth and
// Follower.Run each block until their context ends; a Follower is used by one
// goroutine at a time.
package collect

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Recorder receives the events a collector produces; details is the
// events package's details struct of typ. The daemon's journal implements
// it. Record is called from the collector's goroutine.
type Recorder interface {
	Record(typ string, severity int, details any)
}

// RecordFunc adapts a function to a Recorder.
type RecordFunc func(typ string, severity int, details any)

// Record calls f.
func (f RecordFunc) Record(typ string, severity int, details any) { f(typ, severity, details) }

// DefaultWindow is the rate-limit window when a Config's Window is zero.
const DefaultWindow = time.Minute

// Policies named in the policy.denial notes that account for events a
// limit kept out of the journal.
const (
	// PolicyNetCoalesce: repeats of a flow already recorded in the window
	// (same process, protocol, direction, remote address and service
	// port) were counted, not recorded one by one.
	PolicyNetCoalesce = "net-log-coalesce"
	// PolicyNetRateLimit: new flows past the per-window limit.
	PolicyNetRateLimit = "net-log-rate-limit"
	// PolicyAuthRateLimit: authentication events past the per-window
	// limit.
	PolicyAuthRateLimit = "auth-log-rate-limit"
)

// clip returns s as valid UTF-8 of at most n bytes, cut at a rune
// boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// span formats a window for a note.
func span(from, to time.Time, window time.Duration) string {
	return fmt.Sprintf("between %s and %s (limit window %v)",
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), window)
}
