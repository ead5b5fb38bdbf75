package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// DefaultDNSLimit is DNSConfig.Limit when zero.
const DefaultDNSLimit = 300

// Policies named in the policy.denial notes of the DNS collector.
const (
	// PolicyDNSCoalesce: repeats of a query already recorded in the
	// window (same process, name, type, outcome and answers) were
	// counted, not recorded one by one.
	PolicyDNSCoalesce = "dns-log-coalesce"
	// PolicyDNSRateLimit: new queries past the per-window limit.
	PolicyDNSRateLimit = "dns-log-rate-limit"
	// PolicyDNSCaptureLoss: DNS packets that were seen (or dropped by the
	// kernel) but could not be turned into dns.query events: IP
	// fragments, malformed messages, other opcodes.
	PolicyDNSCaptureLoss = "dns-capture-loss"
)

// DNSSource reports DNS queries to a handler until ctx ends;
// *dnsmon.Monitor is one.
type DNSSource interface {
	Run(ctx context.Context, h dnsmon.Handler) error
}

// DNSConfig configures RunDNS. Only Source is required.
type DNSConfig struct {
	// Source captures the queries.
	Source DNSSource
	// Window is the rate-limit window; zero means DefaultWindow.
	Window time.Duration
	// Limit caps the dns.query events recorded per window; zero means
	// DefaultDNSLimit. Within a window a query that repeats one already
	// recorded (same process, name, type, response code and answers) is
	// counted, not recorded, and at the end of the window one
	// policy.denial note (PolicyDNSCoalesce) gives the count; new queries
	// past Limit are counted in one PolicyDNSRateLimit note.
	Limit int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger reports a failed capture; nil discards.
	Logger *slog.Logger
}

// dnsItem is a query or a loss report passed from the source's goroutine.
type dnsItem struct {
	q      *dnsmon.Query
	reason string
	lost   uint64
}

type dnsHandler chan<- dnsItem

func (h dnsHandler) Query(q *dnsmon.Query)              { h <- dnsItem{q: q} }
func (h dnsHandler) Lost(reason string, packets uint64) { h <- dnsItem{reason: reason, lost: packets} }

// RunDNS runs cfg.Source and records each query it reports as a dns.query
// event, within the rate limit, until ctx ends; it then records the
// queries still waiting for a response (unanswered) and the notes of the
// window in progress, and returns nil. If the source cannot capture on
// this system RunDNS returns its error, which wraps
// dnsmon.ErrUnsupported; if the capture fails it is logged and retried.
func RunDNS(ctx context.Context, cfg DNSConfig, rec Recorder) error {
	if cfg.Source == nil {
		return errors.New("collect: DNSConfig.Source is nil")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lim := newDNSLimiter(cfg.Window, cfg.Limit)
	items := make(chan dnsItem, 256)
	done := make(chan error, 1)
	go func() {
		defer close(items)
		backoff := time.Second
		for {
			err := cfg.Source.Run(ctx, dnsHandler(items))
			if err == nil || errors.Is(err, dnsmon.ErrUnsupported) || ctx.Err() != nil {
				done <- err
				return
			}
			cfg.Logger.Warn("capturing DNS failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
		}
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case it, ok := <-items:
			if !ok {
				err := <-done
				lim.roll(cfg.Now(), true, rec)
				return err
			}
			now := cfg.Now()
			if it.q == nil {
				lim.lose(now, it.reason, it.lost)
			} else if lim.admit(now, it.q) {
				rec.Record(events.TypeDNSQuery, events.SeverityInformational, dnsQuery(it.q))
			}
			lim.roll(now, false, rec)
		case <-t.C:
			lim.roll(cfg.Now(), false, rec)
		}
	}
}

// dnsQuery converts a query to the event details.
func dnsQuery(q *dnsmon.Query) events.DNSQuery {
	d := events.DNSQuery{
		Hostname: clip(q.Name, 1024), QueryType: dnsmon.TypeName(q.Type), TransactionID: int(q.ID),
		Protocol: "udp",
		SrcIP:    q.Client.Addr().String(), SrcPort: int(q.Client.Port()),
		DstIP: q.Server.Addr().String(), DstPort: int(q.Server.Port()),
		CommunityID: q.CommunityID,
	}
	if d.CommunityID == "" {
		d.CommunityID = "unknown" // not a valid IP pair; cannot happen for captured packets
	}
	if q.Answered {
		d.RCode = dnsmon.RCodeName(q.RCode)
		d.AnswerCount = q.AnswerCount
		for _, a := range q.Answers {
			if len(d.Answers) == events.MaxDNSAnswers {
				break
			}
			ans := events.DNSAnswer{Type: dnsmon.TypeName(a.Type), TTL: int(a.TTL)}
			if a.Type == dnsmon.TypeCNAME {
				ans.RData = clip(a.Target, 1024)
			} else {
				ans.RData = a.Addr.String()
			}
			d.Answers = append(d.Answers, ans)
		}
	}
	p := q.Process
	if p.PID != 0 || p.Exe != "" || p.User != "" {
		d.Process = &events.ProcessRef{PID: p.PID, Path: clip(p.Exe, 1024), SHA256: p.ExeSHA256, User: clip(p.User, 256)}
	}
	return d
}

// dnsKey is what makes two queries repeats of each other.
type dnsKey struct {
	exe, name string
	qtype     uint16
	answered  bool
	rcode     uint8
	answers   string // the answers' data, in order
}

func dnsKeyOf(q *dnsmon.Query) dnsKey {
	k := dnsKey{exe: q.Process.Exe, name: q.Name, qtype: q.Type, answered: q.Answered, rcode: q.RCode}
	if len(q.Answers) > 0 {
		var b strings.Builder
		for _, a := range q.Answers {
			if a.Type == dnsmon.TypeCNAME {
				b.WriteString(a.Target)
			} else {
				b.WriteString(a.Addr.String())
			}
			b.WriteByte(' ')
		}
		k.answers = b.String()
	}
	return k
}

func (k dnsKey) String() string {
	exe := k.exe
	if exe == "" {
		exe = "unknown process"
	}
	outcome := "no response"
	if k.answered {
		outcome = dnsmon.RCodeName(k.rcode)
		if k.answers != "" {
			outcome += " " + strings.TrimSpace(k.answers)
		}
	}
	return fmt.Sprintf("%s %s %s: %s", exe, dnsmon.TypeName(k.qtype), k.name, outcome)
}

// dnsLimiter applies the coalescing (by dnsKey) and the per-window limit,
// like netLimiter, and counts lost packets.
type dnsLimiter struct {
	coalescer[dnsKey]
	lost map[string]uint64
}

func newDNSLimiter(window time.Duration, limit int) *dnsLimiter {
	if limit <= 0 {
		limit = DefaultDNSLimit
	}
	return &dnsLimiter{coalescer: newCoalescer[dnsKey](window, limit, coalesceText{
		eventType: events.TypeDNSQuery, coalesce: PolicyDNSCoalesce, rateLimit: PolicyDNSRateLimit,
		repeatsOfThis:   "repeats of this DNS query",
		repeatsOfOthers: "repeats of %d other DNS queries already recorded",
		newOnes:         "new DNS queries",
	}), lost: map[string]uint64{}}
}

// admit reports whether q is to be recorded, and counts it if not.
func (l *dnsLimiter) admit(now time.Time, q *dnsmon.Query) bool {
	return l.coalescer.admit(now, dnsKeyOf(q))
}

// lose counts packets that did not become queries.
func (l *dnsLimiter) lose(now time.Time, reason string, n uint64) {
	l.begin(now)
	l.lost[reason] += n
}

// roll ends the window if it is over (or final is set), recording notes
// for what it kept out of the journal, and starts the next.
func (l *dnsLimiter) roll(now time.Time, final bool, rec Recorder) {
	if !l.due(now, final) {
		return
	}
	when := span(l.start, now, l.window)
	l.notes(when, rec)
	reasons := make([]string, 0, len(l.lost))
	for r := range l.lost {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		rec.Record(events.TypePolicyDenial, events.SeverityLow, events.PolicyDenial{
			Policy: PolicyDNSCaptureLoss, Action: "record " + events.TypeDNSQuery, Target: r,
			Reason: fmt.Sprintf("%d DNS packets %s not recorded: %s", l.lost[r], when, r)})
	}
	clear(l.lost)
}
