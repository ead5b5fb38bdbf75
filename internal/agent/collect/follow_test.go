package collect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// lineLog collects what a follower delivers.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *lineLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// waitFor waits until n lines were delivered.
func (l *lineLog) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(l.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d lines, want %d: %q", len(l.snapshot()), n, l.snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// firstPass returns a channel closed when fw has made its first pass.
func firstPass(fw *Follower) <-chan struct{} {
	ch := make(chan struct{})
	var once sync.Once
	fw.passed = func() { once.Do(func() { close(ch) }) }
	return ch
}

func appendTo(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFollowerRotation appends to a log, rotates it by rename (with the
// writer still appending to the old file for a while, as syslog does
// until it reopens) and by copytruncate, and checks that every line is
// delivered exactly once, in order, and that the lines present before the
// follower started are not.
func TestFollowerRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	appendTo(t, path, "old 1\n", "old 2\n")

	var got lineLog
	ctx, cancel := context.WithCancel(context.Background())
	fw := &Follower{Path: path, Poll: 10 * time.Millisecond}
	first := firstPass(fw)
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx, got.add) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-first // the follower has opened the file at its end

	var want []string
	add := func(p string, lines ...string) {
		for _, l := range lines {
			appendTo(t, p, l+"\n")
			want = append(want, l)
		}
	}
	add(path, "a 1", "a 2")
	// A line written in two parts is delivered once, whole.
	appendTo(t, path, "a 3 first half,")
	time.Sleep(30 * time.Millisecond)
	appendTo(t, path, " second half\n")
	want = append(want, "a 3 first half, second half")
	got.waitFor(t, len(want))

	// Rename rotation; the writer keeps its old file open for a while.
	old, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		fmt.Fprintf(old, "b %d\n", i)
		want = append(want, fmt.Sprintf("b %d", i))
	}
	time.Sleep(30 * time.Millisecond) // no new file yet: the old one is still read
	fmt.Fprintf(old, "b last\n")
	want = append(want, "b last")
	old.Close()
	add(path, "c 1", "c 2") // the new file
	got.waitFor(t, len(want))

	// copytruncate: the file is copied away and truncated in place.
	add(path, "d 1")
	got.waitFor(t, len(want))
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	add(path, "e 1", "e 2")
	got.waitFor(t, len(want))

	// Rotated away with no successor for a while, then created again.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	add(path, "f 1")
	got.waitFor(t, len(want))

	time.Sleep(50 * time.Millisecond) // nothing more arrives
	lines := got.snapshot()
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("lines\n got %q\nwant %q", lines, want)
	}
}

func TestFollowerLongLinesAndMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secure")
	var got lineLog
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fw := &Follower{Path: path, Poll: 10 * time.Millisecond, MaxLine: 8}
	first := firstPass(fw)
	go fw.Run(ctx, got.add)
	<-first // the follower found no file
	// The file appears after the start: it is read from its start.
	appendTo(t, path, "0123456789abcdef\nshort\n")
	got.waitFor(t, 2)
	if l := got.snapshot(); l[0] != "01234567" || l[1] != "short" {
		t.Errorf("lines %q", l)
	}
}

// recorder is a Recorder that keeps what it was given.
type recorder struct {
	mu  sync.Mutex
	evs []recorded
}

type recorded struct {
	typ      string
	severity int
	details  any
}

func (r *recorder) Record(typ string, severity int, details any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, recorded{typ, severity, details})
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.evs...)
}

func (r *recorder) waitFor(t *testing.T, n int) []recorded {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := r.all()
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events, want %d: %+v", len(evs), n, evs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunAuthFile follows a syslog file through a rotation and records
// each authentication line once as a valid auth.login event.
func TestRunAuthFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.log")
	appendTo(t, path, "Nov 26 21:00:00 gw sshd[1]: Failed password for root from 203.0.113.1 port 1 ssh2\n") // before the start: not read
	var rec recorder
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunAuth(ctx, AuthConfig{Source: path, Poll: 10 * time.Millisecond}, &rec)
	}()
	// Probe until the follower reads the file (it opened it at its end);
	// the probes are left out below.
	const probe = "Nov 26 21:00:01 gw sshd[1]: Accepted password for probe from 192.0.2.1 port 1 ssh2\n"
	for i := 0; len(rec.all()) == 0; i++ {
		if i == 1000 {
			t.Fatal("the auth log is not read")
		}
		appendTo(t, path, probe)
		time.Sleep(10 * time.Millisecond)
	}
	appendTo(t, path,
		"Nov 26 21:09:47 gw sshd[2]: Failed password for invalid user admin from 203.0.113.7 port 51024 ssh2\n",
		"Nov 26 21:09:48 gw sshd[2]: Connection closed by invalid user admin 203.0.113.7 port 51024 [preauth]\n")
	var evs []recorded
	wait := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			evs = evs[:0]
			for _, e := range rec.all() {
				if l, ok := e.details.(events.AuthLogin); !ok || l.User != "probe" {
					evs = append(evs, e)
				}
			}
			if len(evs) >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("got %d events, want %d: %+v", len(evs), n, evs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(1)
	os.Rename(path, path+".1")
	appendTo(t, path, "Nov 26 21:10:00 gw sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id\n")
	wait(2)
	time.Sleep(30 * time.Millisecond) // nothing more arrives
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunAuth: %v", err)
	}
	wait(2)
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	for i, want := range []events.AuthLogin{
		{Activity: "logon", Outcome: "failure", Service: "ssh", User: "admin", SrcIP: "203.0.113.7", SrcPort: 51024},
		{Activity: "logon", Outcome: "success", Service: "sudo", User: "alice"},
	} {
		l, ok := evs[i].details.(events.AuthLogin)
		if !ok || evs[i].typ != events.TypeAuthLogin {
			t.Fatalf("event %d: %s %T", i, evs[i].typ, evs[i].details)
		}
		l.Message = ""
		if l != want {
			t.Errorf("event %d: %+v, want %+v", i, l, want)
		}
	}
}

// TestRunAuthJournald runs RunAuth over a stand-in journalctl that prints
// JSON entries, exits, and is started again.
func TestRunAuthJournald(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "journalctl")
	script := `#!/bin/sh
echo '{"SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Accepted publickey for deploy from 2001:db8::7 port 40222 ssh2: ED25519 SHA256:x"}'
echo '{"SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Server listening on :: port 22."}'
echo 'not json'
echo '{"SYSLOG_IDENTIFIER":"su","MESSAGE":"pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)"}'
echo "args: $*" >&2
exit 3
`
	if err := os.WriteFile(prog, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunAuth(ctx, AuthConfig{Source: AuthJournald, Journalctl: prog}, &rec)
	}()
	// The second run starts a second later.
	evs := rec.waitFor(t, 4)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunAuth: %v", err)
	}
	for i, want := range []string{"deploy logon ssh 2001:db8::7", "root logon other ", "deploy logon ssh 2001:db8::7", "root logon other "} {
		l := evs[i].details.(events.AuthLogin)
		if got := l.User + " " + l.Activity + " " + l.Service + " " + l.SrcIP; got != want {
			t.Errorf("event %d: %q, want %q", i, got, want)
		}
	}
}

// TestRunAuthRateLimit floods RunAuth past its limit: the excess is
// counted in one policy.denial note per window, not dropped silently.
func TestRunAuthRateLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.log")
	for i := range 25 {
		appendTo(t, path, fmt.Sprintf("Nov 26 21:09:47 gw sshd[2]: Failed password for root from 203.0.113.7 port %d ssh2\n", 1000+i))
	}
	var rec recorder
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunAuth(ctx, AuthConfig{Source: path, FromStart: true, Poll: 10 * time.Millisecond, Limit: 10, Window: time.Hour}, &rec)
	}()
	rec.waitFor(t, 10)
	time.Sleep(100 * time.Millisecond)
	if n := len(rec.all()); n != 10 {
		t.Errorf("%d events recorded within the window, want the limit of 10", n)
	}
	cancel() // ends the window: the note is recorded
	if err := <-done; err != nil {
		t.Errorf("RunAuth: %v", err)
	}
	evs := rec.all()
	if len(evs) != 11 {
		t.Fatalf("%d events, want 10 and a note", len(evs))
	}
	note, ok := evs[10].details.(events.PolicyDenial)
	if !ok || note.Policy != PolicyAuthRateLimit || evs[10].severity != events.SeverityMedium {
		t.Fatalf("last event %+v", evs[10])
	}
	if want := "15 authentication events (15 failures)"; !strings.HasPrefix(note.Reason, want) {
		t.Errorf("note reason %q, want it to start %q", note.Reason, want)
	}
	if _, err := events.New(events.TypePolicyDenial, "dev-1", evs[10].severity, testTime, note); err != nil {
		t.Error(err)
	}
}
