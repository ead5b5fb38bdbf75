package collect

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// Bounds of what an auth.login event keeps of a log line.
const (
	maxMessage = 1024
	maxUser    = 256
	// unknownUser stands for a user name the line does not give (the
	// event requires one).
	unknownUser = "(unknown)"
)

// AuthEvent is one recognised authentication log line.
type AuthEvent struct {
	Login    events.AuthLogin
	Severity int // events.Severity*: failures Low, the rest Informational
}

// ParseLine parses one line of a syslog authentication log
// (/var/log/auth.log, /var/log/secure): a timestamp, either "Jan  2
// 15:04:05" or RFC 3339, the host name, the tag "ident[pid]:" and the
// message. It reports false for lines that are not authentication events
// it knows, or not syslog lines at all; it never fails otherwise.
func ParseLine(line string) (AuthEvent, bool) {
	line = strings.TrimRight(line, "\r\n")
	rest := line
	if isBSDStamp(rest) {
		rest = rest[15:]
	} else {
		i := strings.IndexByte(rest, ' ')
		if i < 0 || !isRFC3339ish(rest[:i]) {
			return AuthEvent{}, false
		}
		rest = rest[i:]
	}
	rest = strings.TrimLeft(rest, " ")
	i := strings.IndexByte(rest, ' ') // after the host name
	if i < 0 {
		return AuthEvent{}, false
	}
	rest = rest[i+1:]
	i = strings.Index(rest, ": ")
	if i <= 0 || strings.IndexByte(rest[:i], ' ') >= 0 {
		return AuthEvent{}, false
	}
	ident := rest[:i]
	if j := strings.IndexByte(ident, '['); j >= 0 {
		ident = ident[:j]
	}
	return ParseMessage(ident, rest[i+2:], line)
}

var months = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// isBSDStamp reports whether s starts with "Mmm dd hh:mm:ss ".
func isBSDStamp(s string) bool {
	if len(s) < 16 || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':' || s[15] != ' ' {
		return false
	}
	for _, m := range months {
		if s[:3] == m {
			return true
		}
	}
	return false
}

// isRFC3339ish reports whether s looks like "2006-01-02T15:04:05...".
func isRFC3339ish(s string) bool {
	return len(s) >= 19 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':'
}

// ParseJournalEntry parses one entry of `journalctl -o json`: its
// SYSLOG_IDENTIFIER (else _COMM) and MESSAGE, which journald gives as a
// string, or as an array of bytes when it is not UTF-8.
func ParseJournalEntry(data []byte) (AuthEvent, bool) {
	var e struct {
		Ident   string          `json:"SYSLOG_IDENTIFIER"`
		Comm    string          `json:"_COMM"`
		Message json.RawMessage `json:"MESSAGE"`
	}
	if json.Unmarshal(data, &e) != nil {
		return AuthEvent{}, false
	}
	var msg string
	if json.Unmarshal(e.Message, &msg) != nil {
		var b []int
		if json.Unmarshal(e.Message, &b) != nil || len(b) > 1<<16 {
			return AuthEvent{}, false
		}
		buf := make([]byte, len(b))
		for i, c := range b {
			buf[i] = byte(c)
		}
		msg = string(buf)
	}
	ident := e.Ident
	if ident == "" {
		ident = e.Comm
	}
	if ident == "" {
		return AuthEvent{}, false
	}
	return ParseMessage(ident, msg, ident+": "+msg)
}

// ParseMessage recognises the message of an authentication log line
// written by ident (the program's syslog tag without the pid); line is
// the whole line, kept (clipped) as the event's message.
//
// Recognised, one event per line:
//   - sshd (and sshd-session): "Accepted <method> for", "Failed <method>
//     for" (also "for invalid user"), "Invalid user", and
//     "pam_unix(sshd:session): session closed" (logoff). sshd's PAM
//     "authentication failure" lines and "session opened" lines are
//     skipped: sshd's own Failed and Accepted lines report the same
//     attempts, with the port.
//   - sudo: "user : TTY=... ; COMMAND=..." (success) and the lines sudo
//     writes in its place when refusing ("3 incorrect password attempts",
//     "user NOT in sudoers", ...); PAM "authentication failure" lines of
//     the sudo service. Its PAM session lines repeat the COMMAND line and
//     are skipped.
//   - any program's PAM lines "pam_X(service:auth): authentication
//     failure" and "pam_X(service:session): session opened/closed for
//     user", for login, su and other services; cron, systemd-user and
//     runuser sessions are routine and skipped.
//
// A line rsyslog collapsed ("message repeated N times: [ ...]") gives one
// event for the message it repeats.
func ParseMessage(ident, msg, line string) (AuthEvent, bool) {
	msg = strings.TrimSpace(msg)
	// rsyslog's RepeatedMsgReduction: "message repeated 3 times: [ X]".
	// One event stands for them; the message keeps the count.
	if rest, ok := strings.CutPrefix(msg, "message repeated "); ok {
		if _, inner, ok := strings.Cut(rest, ": ["); ok {
			msg = strings.TrimSpace(strings.TrimSuffix(inner, "]"))
		}
	}
	var ev AuthEvent
	var ok bool
	switch {
	case strings.HasPrefix(msg, "pam_"):
		ev, ok = parsePAM(msg)
	case strings.HasPrefix(ident, "sshd"):
		ev, ok = parseSSHD(msg)
	case ident == "sudo":
		ev, ok = parseSudo(msg)
	}
	if !ok {
		return AuthEvent{}, false
	}
	l := &ev.Login
	l.User = clip(strings.TrimSpace(l.User), maxUser)
	if l.User == "" {
		l.User = unknownUser
	}
	l.Message = clip(line, maxMessage)
	ev.Severity = events.SeverityInformational
	if l.Outcome == "failure" {
		ev.Severity = events.SeverityLow
	}
	return ev, true
}

func parseSSHD(msg string) (AuthEvent, bool) {
	var outcome, rest string
	switch {
	case strings.HasPrefix(msg, "Accepted "):
		outcome, rest = "success", msg[len("Accepted "):]
	case strings.HasPrefix(msg, "Failed "):
		outcome, rest = "failure", msg[len("Failed "):]
	case strings.HasPrefix(msg, "Invalid user "):
		l := events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh"}
		l.User, l.SrcIP, l.SrcPort = fromPort(msg[len("Invalid user "):])
		return AuthEvent{Login: l}, true
	default:
		return AuthEvent{}, false
	}
	// rest is "<method> for [invalid user ]<user> from <host> port <n> ..."
	method, rest, ok := strings.Cut(rest, " ")
	if !ok || method == "" || !strings.HasPrefix(rest, "for ") {
		return AuthEvent{}, false
	}
	rest = strings.TrimPrefix(rest[len("for "):], "invalid user ")
	l := events.AuthLogin{Activity: "logon", Outcome: outcome, Service: "ssh"}
	l.User, l.SrcIP, l.SrcPort = fromPort(rest)
	return AuthEvent{Login: l}, true
}

// fromPort splits "<user> from <host>[ port <n>[ ...]]". A user name may
// hold spaces (sshd logs what the client sent), so the host is after the
// last " from ". The host is returned only if it is an IP address (sshd
// logs a name with UseDNS).
func fromPort(s string) (user, ip string, port int) {
	head := s
	if i := strings.LastIndex(s, " port "); i >= 0 {
		p := s[i+len(" port "):]
		j := 0
		for j < len(p) && j < 6 && p[j] >= '0' && p[j] <= '9' {
			j++
		}
		if n, err := strconv.Atoi(p[:j]); err == nil && n <= 65535 && (j == len(p) || p[j] == ' ' || p[j] == ':') {
			port, head = n, s[:i]
		}
	}
	i := strings.LastIndex(head, " from ")
	if i < 0 {
		return s, "", 0
	}
	user = head[:i]
	if a, err := netip.ParseAddr(head[i+len(" from "):]); err == nil {
		return user, a.Unmap().String(), port
	}
	return user, "", 0
}

// parseSudo parses sudo's own lines: "user : TTY=pts/0 ; PWD=/ ;
// USER=root ; COMMAND=/usr/bin/id", or with a reason first when sudo
// refused ("user : 3 incorrect password attempts ; TTY=...").
func parseSudo(msg string) (AuthEvent, bool) {
	user, rest, ok := strings.Cut(msg, " : ")
	if !ok || !strings.Contains(rest, "COMMAND=") {
		return AuthEvent{}, false
	}
	first, _, _ := strings.Cut(rest, " ; ")
	l := events.AuthLogin{Activity: "logon", Outcome: "success", Service: "sudo", User: user}
	if k, _, ok := strings.Cut(first, "="); !ok || strings.ContainsAny(k, " ") {
		l.Outcome = "failure" // a reason, not TTY=
	}
	return AuthEvent{Login: l}, true
}

// parsePAM parses "pam_unix(service:type): text" lines of PAM modules.
func parsePAM(msg string) (AuthEvent, bool) {
	open := strings.IndexByte(msg, '(')
	end := strings.Index(msg, "): ")
	if open < 0 || end < open {
		return AuthEvent{}, false
	}
	svc, typ, ok := strings.Cut(msg[open+1:end], ":")
	if !ok {
		return AuthEvent{}, false
	}
	text := msg[end+3:]
	service := pamService(svc)
	switch typ {
	case "auth":
		if !strings.HasPrefix(text, "authentication failure") || service == "ssh" {
			return AuthEvent{}, false
		}
		l := events.AuthLogin{Activity: "logon", Outcome: "failure", Service: service}
		kv := pamFields(text)
		l.User = kv["user"]
		if l.User == "" {
			l.User = kv["ruser"]
		}
		if a, err := netip.ParseAddr(kv["rhost"]); err == nil {
			l.SrcIP = a.Unmap().String()
		}
		return AuthEvent{Login: l}, true
	case "session":
		if routineSession(svc) {
			return AuthEvent{}, false
		}
		var activity string
		switch {
		case strings.HasPrefix(text, "session opened for user "):
			if service == "ssh" {
				return AuthEvent{}, false
			}
			activity, text = "logon", text[len("session opened for user "):]
		case strings.HasPrefix(text, "session closed for user "):
			activity, text = "logoff", text[len("session closed for user "):]
		default:
			return AuthEvent{}, false
		}
		// "alice(uid=1000) by (uid=0)", "root by alice(uid=1000)", "alice"
		user := text
		if i := strings.IndexAny(user, "( "); i >= 0 {
			user = user[:i]
		}
		return AuthEvent{Login: events.AuthLogin{Activity: activity, Outcome: "success", Service: service, User: user}}, true
	}
	return AuthEvent{}, false
}

// pamFields parses the "key=value" words after "authentication failure;"
// (a value may be empty: "rhost=  user=alice").
func pamFields(s string) map[string]string {
	_, s, _ = strings.Cut(s, ";")
	kv := map[string]string{}
	for _, w := range strings.Fields(s) {
		if k, v, ok := strings.Cut(w, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// pamService maps a PAM service name to the event's service.
func pamService(svc string) string {
	switch {
	case strings.HasPrefix(svc, "sshd"):
		return "ssh"
	case svc == "sudo" || svc == "sudo-i":
		return "sudo"
	case svc == "login":
		return "login"
	case strings.HasPrefix(svc, "gdm") || svc == "lightdm" || svc == "sddm" || svc == "xdm" || svc == "kde":
		return "console" // graphical logins at the device's console
	}
	return "other"
}

// routineSession reports PAM sessions that are not logins: sudo's (its
// COMMAND line is the event), and those services open by themselves.
func routineSession(svc string) bool {
	switch svc {
	case "sudo", "sudo-i", "cron", "crond", "systemd-user", "runuser", "runuser-l", "atd":
		return true
	}
	return false
}
