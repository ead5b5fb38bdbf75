package collect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// AuthJournald is the AuthConfig.Source that reads journald through
// journalctl.
const AuthJournald = "journald"

// Defaults of AuthConfig.
const DefaultAuthLimit = 120

// Auth log files tried by DetectAuthSource, in order: Debian and Ubuntu,
// then Red Hat and its relatives.
var authLogFiles = []string{"/var/log/auth.log", "/var/log/secure"}

// DetectAuthSource picks where authentication events are read from:
// journald when journalctl is installed and journald runs, else the
// first of /var/log/auth.log and /var/log/secure that exists; "" when
// there is none.
func DetectAuthSource() string {
	if _, err := exec.LookPath("journalctl"); err == nil {
		if fi, err := os.Stat("/run/systemd/journal"); err == nil && fi.IsDir() {
			return AuthJournald
		}
	}
	for _, p := range authLogFiles {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// AuthConfig configures RunAuth. Only Source is required.
type AuthConfig struct {
	// Source is AuthJournald or the path of a syslog authentication log.
	Source string
	// Window is the rate-limit window; zero means DefaultWindow.
	Window time.Duration
	// Limit caps the auth.login events recorded per window; zero means
	// DefaultAuthLimit. The events past it are counted and recorded as
	// one policy.denial note (PolicyAuthRateLimit) at the window's end.
	Limit int
	// Poll is the file polling interval; zero means DefaultPoll.
	Poll time.Duration
	// FromStart reads the lines a file already holds at start; otherwise
	// only new ones (journald: always only new ones).
	FromStart bool
	// Journalctl is the journalctl program; empty looks it up in PATH.
	Journalctl string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger reports a journalctl that exits; nil discards.
	Logger *slog.Logger
}

// RunAuth reads authentication events from cfg.Source and records each
// recognised one as an auth.login event, within the rate limit, until
// ctx ends; it then records the note of the window in progress and
// returns nil.
func RunAuth(ctx context.Context, cfg AuthConfig, rec Recorder) error {
	if cfg.Source == "" {
		return errors.New("collect: AuthConfig.Source is empty")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultAuthLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var read func(context.Context, func(AuthEvent)) error
	if cfg.Source == AuthJournald {
		prog := cfg.Journalctl
		if prog == "" {
			var err error
			if prog, err = exec.LookPath("journalctl"); err != nil {
				return fmt.Errorf("collect: reading journald: %w", err)
			}
		}
		read = func(ctx context.Context, emit func(AuthEvent)) error {
			return followJournal(ctx, prog, cfg.Logger, emit)
		}
	} else {
		fw := &Follower{Path: cfg.Source, Poll: cfg.Poll, FromStart: cfg.FromStart}
		read = func(ctx context.Context, emit func(AuthEvent)) error {
			return fw.Run(ctx, func(line string) {
				if ev, ok := ParseLine(line); ok {
					emit(ev)
				}
			})
		}
	}

	ch := make(chan AuthEvent, 64)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var readErr error
	wg.Go(func() {
		defer close(ch)
		readErr = read(rctx, func(ev AuthEvent) {
			select {
			case ch <- ev:
			case <-rctx.Done():
			}
		})
	})

	lim := authLimiter{window: cfg.Window, limit: cfg.Limit}
	t := time.NewTicker(min(cfg.Window/4, time.Second))
	defer t.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				wg.Wait()
				lim.roll(cfg.Now(), true, rec)
				return readErr
			}
			if lim.admit(cfg.Now(), &ev) {
				rec.Record(events.TypeAuthLogin, ev.Severity, ev.Login)
			}
		case <-t.C:
			lim.roll(cfg.Now(), false, rec)
		}
	}
}

// authLimiter caps the events per window and counts the rest.
type authLimiter struct {
	window time.Duration
	limit  int

	start              time.Time
	recorded, over     int
	overFail           int
	lastUser, lastFrom string
}

func (l *authLimiter) admit(now time.Time, ev *AuthEvent) bool {
	if l.start.IsZero() {
		l.start = now
	}
	if l.recorded < l.limit {
		l.recorded++
		return true
	}
	l.over++
	if ev.Login.Outcome == "failure" {
		l.overFail++
	}
	l.lastUser, l.lastFrom = ev.Login.User+" via "+ev.Login.Service, ev.Login.SrcIP
	return false
}

func (l *authLimiter) roll(now time.Time, final bool, rec Recorder) {
	if l.start.IsZero() || !final && now.Sub(l.start) < l.window {
		return
	}
	if l.over > 0 {
		last := l.lastUser
		if l.lastFrom != "" {
			last += " from " + l.lastFrom
		}
		rec.Record(events.TypePolicyDenial, events.SeverityMedium, events.PolicyDenial{
			Policy: PolicyAuthRateLimit, Action: "record " + events.TypeAuthLogin,
			Reason: clip(fmt.Sprintf("%d authentication events (%d failures) %s not recorded: over the limit of %d auth.login events per window; the last was for %s",
				l.over, l.overFail, span(l.start, now, l.window), l.limit, last), 2048)})
	}
	*l = authLimiter{window: l.window, limit: l.limit}
}

// journalArgs follow the authentication facilities (auth and authpriv,
// what syslog writes to auth.log) from now on, as JSON.
var journalArgs = []string{"-f", "-o", "json", "-n", "0", "--no-pager", "SYSLOG_FACILITY=4", "SYSLOG_FACILITY=10"}

// followJournal runs journalctl and parses its entries until ctx ends,
// starting it again (after a pause growing to a minute) when it exits.
func followJournal(ctx context.Context, prog string, log *slog.Logger, emit func(AuthEvent)) error {
	delay := time.Second
	for {
		started := time.Now()
		err := runJournalctl(ctx, prog, emit)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			delay = time.Second
		}
		log.Warn("journalctl stopped; authentication events are not read until it restarts", "err", err, "restart_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, time.Minute)
	}
}

func runJournalctl(ctx context.Context, prog string, emit func(AuthEvent)) error {
	cmd := exec.CommandContext(ctx, prog, journalArgs...)
	cmd.WaitDelay = 5 * time.Second
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	br := bufio.NewReaderSize(out, 64<<10)
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			break
		}
		if len(line)+len(chunk) <= 1<<20 { // journald caps fields, but bound it anyway
			line = append(line, chunk...)
		}
		if isPrefix {
			continue
		}
		if ev, ok := ParseJournalEntry(line); ok {
			emit(ev)
		}
		line = line[:0]
	}
	err = cmd.Wait()
	if err == nil {
		err = errors.New("exited")
	}
	if s := bytes.TrimSpace(stderr.b); len(s) > 0 {
		err = fmt.Errorf("%w: %s", err, s)
	}
	return err
}

// limitedBuffer keeps the first 1 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 1024 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
