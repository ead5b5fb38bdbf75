package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/netmon"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// Defaults of NetConfig.
const (
	DefaultNetInterval = time.Second
	DefaultNetLimit    = 300
	// maxCoalesceNotes is how many flows per window get a coalescing note
	// of their own; the repeats of the others share one note.
	maxCoalesceNotes = 10
)

// FlowSource lists the flows that are new since its previous call;
// *netmon.Monitor is one.
type FlowSource interface {
	Poll() ([]netmon.Flow, error)
}

// NetConfig configures RunNet. Only Source is required.
type NetConfig struct {
	// Source reports new flows.
	Source FlowSource
	// Interval between polls of Source; zero means DefaultNetInterval.
	Interval time.Duration
	// Window is the rate-limit window; zero means DefaultWindow.
	Window time.Duration
	// Limit caps the net.connection events recorded per window; zero
	// means DefaultNetLimit. Within a window a flow that repeats one
	// already recorded (same process, protocol, direction, remote address
	// and service port) is counted, not recorded, and at the end of the
	// window one policy.denial note (PolicyNetCoalesce) gives the count;
	// new flows past Limit are counted in one PolicyNetRateLimit note.
	Limit int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger reports failed polls; nil discards.
	Logger *slog.Logger
}

// RunNet polls cfg.Source every Interval and records each new flow as a
// net.connection event, within the rate limit, until ctx ends; it then
// records the notes of the window in progress and returns nil. A failed
// poll is logged and retried at the next tick; if Source is unsupported
// on this system RunNet returns netmon.ErrUnsupported at once.
func RunNet(ctx context.Context, cfg NetConfig, rec Recorder) error {
	if cfg.Source == nil {
		return errors.New("collect: NetConfig.Source is nil")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultNetInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lim := newNetLimiter(cfg.Window, cfg.Limit)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	failures := 0
	for {
		flows, err := cfg.Source.Poll()
		now := cfg.Now()
		switch {
		case errors.Is(err, netmon.ErrUnsupported):
			return err
		case err != nil:
			failures++
			// The first failure and then one in a hundred, so that a
			// persistent problem does not flood the log.
			if failures%100 == 1 {
				cfg.Logger.Warn("listing network connections failed", "err", err, "failures", failures)
			}
		default:
			if failures > 0 {
				cfg.Logger.Info("listing network connections works again", "failures", failures)
				failures = 0
			}
		}
		for i := range flows {
			if lim.admit(now, &flows[i]) {
				rec.Record(events.TypeNetConnection, events.SeverityInformational, netConnection(&flows[i]))
			}
		}
		lim.roll(now, false, rec)
		select {
		case <-ctx.Done():
			lim.roll(cfg.Now(), true, rec)
			return nil
		case <-t.C:
		}
	}
}

// netConnection converts a flow to the event details.
func netConnection(f *netmon.Flow) events.NetConnection {
	src, dst := f.Src(), f.Dst()
	nc := events.NetConnection{
		Protocol: f.Protocol, Direction: f.Direction,
		SrcIP: src.Addr().String(), SrcPort: int(src.Port()),
		DstIP: dst.Addr().String(), DstPort: int(dst.Port()),
		CommunityID: f.CommunityID,
	}
	if f.PID != 0 || f.Exe != "" || f.User != "" {
		nc.Process = &events.ProcessRef{PID: f.PID, Path: clip(f.Exe, 1024), SHA256: f.ExeSHA256, User: clip(f.User, 256)}
	}
	return nc
}

// flowKey is what makes two flows repeats of each other: the same
// process, protocol and direction, the same remote address, and the same
// service port (the remote port of an outbound flow, the local port of an
// inbound one); the ephemeral port does not count.
type flowKey struct {
	exe, proto, dir string
	remote          netip.Addr
	port            uint16
}

func keyOf(f *netmon.Flow) flowKey {
	k := flowKey{exe: f.Exe, proto: f.Protocol, dir: f.Direction, remote: f.RemoteIP, port: f.RemotePort}
	if f.Direction == netmon.Inbound {
		k.port = f.LocalPort
	}
	return k
}

func (k flowKey) String() string {
	exe := k.exe
	if exe == "" {
		exe = "unknown process"
	}
	if k.dir == netmon.Inbound {
		return fmt.Sprintf("%s %s %s <- %s to port %d", k.proto, k.dir, exe, k.remote, k.port)
	}
	return fmt.Sprintf("%s %s %s -> %s", k.proto, k.dir, exe, netip.AddrPortFrom(k.remote, k.port))
}

// netLimiter applies the coalescing (by flowKey) and the per-window limit
// to new flows.
type netLimiter struct{ coalescer[flowKey] }

func newNetLimiter(window time.Duration, limit int) *netLimiter {
	if limit <= 0 {
		limit = DefaultNetLimit
	}
	return &netLimiter{newCoalescer[flowKey](window, limit, coalesceText{
		eventType: events.TypeNetConnection, coalesce: PolicyNetCoalesce, rateLimit: PolicyNetRateLimit,
		repeatsOfThis:   "repeated connections of this flow",
		repeatsOfOthers: "repeated connections of %d other flows already recorded",
		newOnes:         "new connections",
	})}
}

// admit reports whether f is to be recorded, and counts it if not.
func (l *netLimiter) admit(now time.Time, f *netmon.Flow) bool {
	return l.coalescer.admit(now, keyOf(f))
}

// roll ends the window if it is over (or final is set), recording a note
// for what it kept out of the journal, and starts the next.
func (l *netLimiter) roll(now time.Time, final bool, rec Recorder) {
	if l.due(now, final) {
		l.notes(span(l.start, now, l.window), rec)
	}
}
