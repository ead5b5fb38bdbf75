package collect

import (
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/events"
)

func TestParseLine(t *testing.T) {
	type want struct {
		activity, outcome, service, user, ip string
		port                                 int
	}
	tests := []struct {
		line string
		want *want // nil: not an authentication event
	}{
		// sshd
		{"Nov 26 21:09:46 gw sshd[1234]: Accepted password for alice from 192.0.2.10 port 51022 ssh2",
			&want{"logon", "success", "ssh", "alice", "192.0.2.10", 51022}},
		{"Nov  6 01:02:03 gw sshd[99]: Accepted publickey for deploy from 2001:db8::7 port 40222 ssh2: ED25519 SHA256:mV0pP0lx0b7J9m3yKq1oQq7cZk",
			&want{"logon", "success", "ssh", "deploy", "2001:db8::7", 40222}},
		{"2026-11-26T21:09:46.123456+00:00 gw sshd-session[4321]: Accepted keyboard-interactive/pam for bob from ::ffff:198.51.100.4 port 22022 ssh2",
			&want{"logon", "success", "ssh", "bob", "198.51.100.4", 22022}},
		{"Nov 26 21:09:47 gw sshd[1235]: Failed password for root from 203.0.113.7 port 51023 ssh2",
			&want{"logon", "failure", "ssh", "root", "203.0.113.7", 51023}},
		{"Nov 26 21:09:47 gw sshd[1235]: Failed password for invalid user admin from 203.0.113.7 port 51024 ssh2",
			&want{"logon", "failure", "ssh", "admin", "203.0.113.7", 51024}},
		{"Nov 26 21:09:47 gw sshd[1235]: Failed publickey for git from fe80::1%eth0 port 6000 ssh2: RSA SHA256:abc",
			&want{"logon", "failure", "ssh", "git", "fe80::1%eth0", 6000}},
		{"Nov 26 21:09:47 gw sshd[1235]: Failed none for invalid user  from 203.0.113.9 port 1 ssh2",
			&want{"logon", "failure", "ssh", unknownUser, "203.0.113.9", 1}},
		{"Nov 26 21:09:47 gw sshd[1235]: message repeated 5 times: [ Failed password for root from 203.0.113.7 port 51023 ssh2]",
			&want{"logon", "failure", "ssh", "root", "203.0.113.7", 51023}},
		{"Nov 26 21:09:48 gw sshd[1236]: Invalid user oracle from 203.0.113.8 port 33000",
			&want{"logon", "failure", "ssh", "oracle", "203.0.113.8", 33000}},
		// A user name with spaces, and " from " in it: the last " from " counts.
		{"Nov 26 21:09:48 gw sshd[1236]: Invalid user a from 10.0.0.1 port 2 from 203.0.113.8 port 33001",
			&want{"logon", "failure", "ssh", "a from 10.0.0.1 port 2", "203.0.113.8", 33001}},
		// Old sshd without the port; a host name with UseDNS.
		{"Nov 26 21:09:48 gw sshd[1236]: Invalid user test from 203.0.113.8",
			&want{"logon", "failure", "ssh", "test", "203.0.113.8", 0}},
		{"Nov 26 21:09:48 gw sshd[1236]: Failed password for root from scanner.example.net port 4444 ssh2",
			&want{"logon", "failure", "ssh", "root", "", 0}},
		{"Nov 26 21:09:49 gw sshd[1237]: pam_unix(sshd:session): session closed for user alice",
			&want{"logoff", "success", "ssh", "alice", "", 0}},
		// sshd's PAM lines repeat its own Accepted/Failed lines.
		{"Nov 26 21:09:49 gw sshd[1237]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)", nil},
		{"Nov 26 21:09:49 gw sshd[1237]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.7  user=root", nil},
		{"Nov 26 21:09:49 gw sshd[1237]: Connection closed by authenticating user root 203.0.113.7 port 51023 [preauth]", nil},
		{"Nov 26 21:09:49 gw sshd[1237]: Received disconnect from 203.0.113.7 port 51023:11: Bye Bye [preauth]", nil},
		{"Nov 26 21:09:49 gw sshd[1237]: Server listening on 0.0.0.0 port 22.", nil},
		// sudo
		{"Nov 26 21:10:00 gw sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart sshd",
			&want{"logon", "success", "sudo", "alice", "", 0}},
		{"2026-11-26T21:10:01+01:00 gw sudo[777]:      bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/sh",
			&want{"logon", "failure", "sudo", "bob", "", 0}},
		{"Nov 26 21:10:02 gw sudo:      eve : user NOT in sudoers ; TTY=pts/2 ; PWD=/tmp ; USER=root ; COMMAND=/bin/cat /etc/shadow",
			&want{"logon", "failure", "sudo", "eve", "", 0}},
		{"Nov 26 21:10:03 gw sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1001 euid=0 tty=/dev/pts/1 ruser=bob rhost=  user=bob",
			&want{"logon", "failure", "sudo", "bob", "", 0}},
		{"Nov 26 21:10:03 gw sudo: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)", nil},
		{"Nov 26 21:10:03 gw sudo: pam_unix(sudo:session): session closed for user root", nil},
		{"Nov 26 21:10:03 gw sudo: pam_unix(sudo:auth): conversation failed", nil},
		// su, login and others
		{"Nov 26 21:11:00 gw su[800]: pam_unix(su-l:session): session opened for user root(uid=0) by alice(uid=1000)",
			&want{"logon", "success", "other", "root", "", 0}},
		{"Nov 26 21:11:05 gw su[800]: pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=pts/0 ruser=alice rhost=  user=root",
			&want{"logon", "failure", "other", "root", "", 0}},
		{"Nov 26 21:11:06 gw su[800]: pam_unix(su-l:session): session closed for user root",
			&want{"logoff", "success", "other", "root", "", 0}},
		{"Nov 26 21:12:00 gw login[500]: pam_unix(login:session): session opened for user alice(uid=1000) by LOGIN(uid=0)",
			&want{"logon", "success", "login", "alice", "", 0}},
		{"Nov 26 21:12:00 gw login[500]: pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=/dev/tty1 ruser= rhost=",
			&want{"logon", "failure", "login", unknownUser, "", 0}},
		{"Nov 26 21:12:00 gw vsftpd[600]: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=anna rhost=2001:db8::99",
			&want{"logon", "failure", "other", "anna", "2001:db8::99", 0}},
		{"Nov 26 21:12:00 gw gdm-password][900]: pam_unix(gdm-password:session): session opened for user alice(uid=1000) by (uid=0)",
			&want{"logon", "success", "console", "alice", "", 0}},
		{"Nov 26 21:13:01 gw CRON[1000]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", nil},
		{"Nov 26 21:13:01 gw systemd-logind[300]: New session 4 of user alice.", nil},
		// Not syslog lines at all.
		{"", nil},
		{"Accepted password for alice from 192.0.2.10 port 51022 ssh2", nil},
		{"Nov 26 21:09:46 gw", nil},
		{"Nov 26 21:09:46 gw sshd[1]:Accepted password for x from 1.2.3.4 port 5 ssh2", nil},
		{"2026-11-26 gw sshd: Accepted password for x from 1.2.3.4 port 5 ssh2", nil},
	}
	for _, tt := range tests {
		got, ok := ParseLine(tt.line)
		if tt.want == nil {
			if ok {
				t.Errorf("ParseLine(%q) = %+v, want no event", tt.line, got.Login)
			}
			continue
		}
		if !ok {
			t.Errorf("ParseLine(%q): no event", tt.line)
			continue
		}
		l := got.Login
		g := want{l.Activity, l.Outcome, l.Service, l.User, l.SrcIP, l.SrcPort}
		if g != *tt.want {
			t.Errorf("ParseLine(%q)\n got %+v\nwant %+v", tt.line, g, *tt.want)
		}
		if l.Message != tt.line {
			t.Errorf("ParseLine(%q): message %q", tt.line, l.Message)
		}
		wantSev := events.SeverityInformational
		if l.Outcome == "failure" {
			wantSev = events.SeverityLow
		}
		if got.Severity != wantSev {
			t.Errorf("ParseLine(%q): severity %d, want %d", tt.line, got.Severity, wantSev)
		}
		if _, err := events.New(events.TypeAuthLogin, "dev-1", got.Severity, testTime, l); err != nil {
			t.Errorf("ParseLine(%q): not a valid event: %v", tt.line, err)
		}
	}
}

func TestParseJournalEntry(t *testing.T) {
	tests := []struct {
		entry   string
		user    string
		outcome string
		ip      string
		message string
	}{
		{`{"__CURSOR":"s=1","SYSLOG_IDENTIFIER":"sshd-session","_COMM":"sshd-session","_PID":"41","MESSAGE":"Failed password for invalid user pi from 2001:db8::66 port 50000 ssh2","SYSLOG_FACILITY":"4"}`,
			"pi", "failure", "2001:db8::66", "sshd-session: Failed password for invalid user pi from 2001:db8::66 port 50000 ssh2"},
		{`{"_COMM":"sudo","MESSAGE":"  alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id"}`,
			"alice", "success", "", "sudo:   alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id"},
		// Not UTF-8: journald sends the bytes. "Invalid user \xff from 192.0.2.1 port 7"
		{`{"SYSLOG_IDENTIFIER":"sshd","MESSAGE":[73,110,118,97,108,105,100,32,117,115,101,114,32,255,32,102,114,111,109,32,49,57,50,46,48,46,50,46,49,32,112,111,114,116,32,55]}`,
			"\uFFFD", "failure", "192.0.2.1", "sshd: Invalid user \uFFFD from 192.0.2.1 port 7"},
	}
	for _, tt := range tests {
		ev, ok := ParseJournalEntry([]byte(tt.entry))
		if !ok {
			t.Errorf("ParseJournalEntry(%s): no event", tt.entry)
			continue
		}
		l := ev.Login
		if l.User != tt.user || l.Outcome != tt.outcome || l.SrcIP != tt.ip || l.Message != tt.message {
			t.Errorf("ParseJournalEntry(%s) = %+v", tt.entry, l)
		}
		if _, err := events.New(events.TypeAuthLogin, "dev-1", ev.Severity, testTime, l); err != nil {
			t.Errorf("ParseJournalEntry(%s): not a valid event: %v", tt.entry, err)
		}
	}
	for _, bad := range []string{``, `null`, `[]`, `{"MESSAGE":"Accepted password for a from 1.2.3.4 port 1 ssh2"}`, `{"_COMM":"sshd","MESSAGE":null}`,
		`{"_COMM":"sshd","MESSAGE":{"x":1}}`, `{"_COMM":"sshd","MESSAGE":"Server listening on :: port 22."}`} {
		if ev, ok := ParseJournalEntry([]byte(bad)); ok {
			t.Errorf("ParseJournalEntry(%s) = %+v, want no event", bad, ev.Login)
		}
	}
}

func TestParseClipsLongLines(t *testing.T) {
	user := strings.Repeat("é", 2000) // 4000 bytes
	line := "Nov 26 21:09:48 gw sshd[1]: Invalid user " + user + " from 203.0.113.8 port 1"
	ev, ok := ParseLine(line)
	if !ok {
		t.Fatal("no event")
	}
	if len(ev.Login.User) > maxUser || len(ev.Login.Message) > maxMessage || !strings.HasPrefix(user, ev.Login.User) {
		t.Errorf("user %d bytes, message %d bytes", len(ev.Login.User), len(ev.Login.Message))
	}
	if _, err := events.New(events.TypeAuthLogin, "dev-1", ev.Severity, testTime, ev.Login); err != nil {
		t.Error(err)
	}
}
