package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/iocblock"
	"github.com/bulwark-iot/bulwark/internal/agent/localapi"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/ioc"
)

// Indicators of compromise on the device (docs/ioc.md, "On the device"):
// the agent fetches the fleet's active indicator set from the server
// (GET /device/v1/ioc, If-None-Match with the version it has), keeps the
// last valid one in the state directory so that a restarted agent without
// network still has it, matches every event it records against it and
// journals each hit as an ioc.match event (matched_by agent) right after
// the matched event. When the server's policy is "block", IP and CIDR
// indicators are also dropped by nftables (internal/agent/iocblock).

// IoCConfig configures the agent's use of the fleet's indicators of
// compromise. The zero value fetches the set every 5 minutes, flags
// matches, and blocks with nft when the server's policy says so.
type IoCConfig struct {
	// Off turns the feature off: no set is fetched, nothing is matched
	// or blocked (a table left by an earlier run is not removed).
	Off bool
	// Interval is how often the set is fetched (a 304 answer when it has
	// not changed); zero means 5 minutes. A ±10 % jitter is applied.
	Interval time.Duration
	// BlockOff never blocks, whatever the server's policy: matches are
	// only flagged. The device maker's choice for devices whose network
	// must not be filtered by the agent.
	BlockOff bool
	// NFT is the nft command and any leading arguments ("-f -" is
	// appended), e.g. {"ip", "netns", "exec", "ns1", "nft"}; empty means
	// {"nft"} from $PATH.
	NFT []string
	// MaxBytes bounds the set's JSON (uncompressed); zero means 64 MiB.
	MaxBytes int64
	// MaxIndicators bounds the indicators of a set; zero means
	// 1,000,000. A larger set is refused (the previous one stays).
	MaxIndicators int
	// MaxBlocked bounds the prefixes installed in nftables; zero means
	// iocblock.DefaultMaxPrefixes (200,000). Those past it are flagged
	// only.
	MaxBlocked int
}

const (
	defaultIoCInterval = 5 * time.Minute
	// iocCacheFile holds the last valid set, as the server sent it.
	iocCacheFile = "ioc-set.json"
	// iocBlockMarker exists while the agent's nftables table is
	// installed, so that a start under the flag policy removes a table
	// left behind, and runs no nft when there is none.
	iocBlockMarker = "ioc-block-installed"
	// maxIoCHitsPerEvent bounds the ioc.match events one event yields.
	maxIoCHitsPerEvent = 8
)

func (c IoCConfig) interval() time.Duration {
	if c.Interval > 0 {
		return c.Interval
	}
	return defaultIoCInterval
}

func (c IoCConfig) maxBytes() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return defaultIoCMaxBytes
}

func (c IoCConfig) maxIndicators() int {
	if c.MaxIndicators > 0 {
		return c.MaxIndicators
	}
	return defaultIoCMaxIndicators
}

// iocActive is the set in use: swapped whole, read without locks by
// recordEvent.
type iocActive struct {
	m       *ioc.Matcher
	version string
	action  string
}

// iocState is the agent's indicator set and what it enforces. active is
// read by any goroutine; the rest belongs to the IoC loop.
type iocState struct {
	active  atomic.Pointer[iocActive]
	blocker *iocblock.Blocker
	// blocking is what status shows of the block rules: "off",
	// "installed" or "failed: <reason>".
	blocking atomic.Pointer[string]

	// Loop-owned.
	etag      string        // version of the set held, for If-None-Match
	action    string        // action last enforced ("" before the first)
	block     []blockPrefix // IP and CIDR indicators of the set held
	exempt    []netip.Addr  // the server's addresses, never blocked
	installed bool          // the table was installed by this run
	blockErr  string        // the last block failure recorded, to record each once
	expiry    time.Time     // earliest expiry of an installed prefix; zero: none
	fetched   chan struct{} // closed after the first fetch attempt (tests)
	fetchOnce sync.Once

	// now wakes the loop to fetch at once: a check-in answer named a
	// version other than the one held (want).
	now  chan struct{}
	want atomic.Pointer[string]
}

// hint tells the loop the version the server serves now (from a check-in
// answer); the loop fetches at once when it differs from the one held.
func (st *iocState) hint(version string) {
	if version == "" {
		return
	}
	if a := st.active.Load(); a != nil && a.version == version {
		return
	}
	st.want.Store(&version)
	select {
	case st.now <- struct{}{}:
	default:
	}
}

// blockPrefix is an IP or CIDR indicator to block, with its expiry.
type blockPrefix struct {
	p       netip.Prefix
	expires time.Time
}

// startIoC loads the cached set, so that matching works from the first
// event, and starts the loop that enforces it and fetches new ones; the
// returned function stops the loop and waits for it. The journal must be
// open; call it before the collectors start.
func (d *daemon) startIoC(ctx context.Context) (stop func()) {
	cfg := d.cfg.IoC
	if cfg.Off || d.ev == nil {
		return func() {}
	}
	st := &iocState{
		blocker: &iocblock.Blocker{Command: cfg.NFT, MaxPrefixes: cfg.MaxBlocked},
		fetched: make(chan struct{}),
		now:     make(chan struct{}, 1),
	}
	set, err := d.loadIoCCache()
	switch {
	case err == nil && set != nil:
		st.use(set)
		d.log.Info("ioc: loaded the cached indicator set", "version", set.Version, "indicators", len(set.Indicators), "action", set.Action)
	case err != nil:
		d.log.Error("ioc: the cached indicator set is unusable; waiting for the server's", "err", err)
	}
	_, err = os.Stat(filepath.Join(d.dir, iocBlockMarker))
	st.installed = err == nil
	d.mu.Lock() // Status reads it under d.mu; recordEvent's readers start later
	d.iocs = st
	d.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.iocLoop(ctx, st, set) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// loadIoCCache reads the cached set; nil without error when there is none.
func (d *daemon) loadIoCCache() (*iocSet, error) {
	path := filepath.Join(d.dir, iocCacheFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	max := d.cfg.IoC.maxBytes()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	set, err := decodeIoCSet(data, time.Now(), max, d.cfg.IoC.maxIndicators())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}

// use makes set the active one.
func (st *iocState) use(set *iocSet) {
	m, err := ioc.Build(set.Indicators, nil)
	if err != nil { // decodeIoCSet validated every indicator: cannot happen
		m, _ = ioc.Build(nil, nil)
	}
	st.active.Store(&iocActive{m: m, version: set.Version, action: set.Action})
	st.etag = set.Version
	st.block = st.block[:0]
	for _, in := range set.Indicators {
		switch in.Type {
		case ioc.TypeIP:
			a, _ := netip.ParseAddr(in.Value)
			st.block = append(st.block, blockPrefix{netip.PrefixFrom(a, a.BitLen()), in.Expires})
		case ioc.TypeCIDR:
			p, _ := netip.ParsePrefix(in.Value)
			st.block = append(st.block, blockPrefix{p, in.Expires})
		}
	}
}

// iocLoop enforces the cached set, then fetches the server's at once and
// every interval, re-installing the block rules when a blocked indicator
// expires.
func (d *daemon) iocLoop(ctx context.Context, st *iocState, cached *iocSet) {
	prev := api.IoCActionFlag
	if cached != nil {
		prev = cached.Action
	}
	d.enforceIoC(ctx, st, prev, true)
	failures := 0
	for {
		changed, err := d.fetchIoC(ctx, st)
		if ctx.Err() != nil {
			return
		}
		delay := jitter(d.cfg.IoC.interval())
		switch {
		case err != nil:
			if status, _ := serverError(err); status/100 == 4 || errors.Is(err, errIoCSetInvalid) {
				// Refused (a quarantined device, a server without
				// the set) or invalid: asking sooner will not help.
				break
			}
			failures++
			delay = min(delay, d.backoff(failures))
		case changed:
			failures = 0
			d.enforceIoC(ctx, st, st.active.Load().action, false)
		default:
			failures = 0
		}
		st.fetchOnce.Do(func() { close(st.fetched) })
		d.iocWait(ctx, st, delay)
		if ctx.Err() != nil {
			return
		}
	}
}

// iocWait waits delay before the next fetch, installing the block rules
// again whenever a blocked indicator expires, and ends early when a
// check-in answer names a version other than the one held.
func (d *daemon) iocWait(ctx context.Context, st *iocState, delay time.Duration) {
	for delay > 0 {
		wait := delay
		if !st.expiry.IsZero() {
			wait = min(wait, max(time.Until(st.expiry), time.Second))
		}
		t := time.NewTimer(wait)
		start := time.Now()
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-st.now:
			t.Stop()
			if w := st.want.Load(); w != nil && *w != st.etag {
				d.log.Info("ioc: the server serves a new indicator set; fetching it now", "version", *w)
				return
			}
			delay -= time.Since(start)
			continue
		case <-t.C:
		}
		delay -= wait
		if !st.expiry.IsZero() && !time.Now().Before(st.expiry) {
			// A blocked indicator expired: install the rest.
			d.enforceIoC(ctx, st, st.active.Load().action, false)
		}
	}
}

// fetchIoC fetches the set; it reports whether a new valid one is now in
// use. A set that fails validation is logged and refused: the current one
// stays.
func (d *daemon) fetchIoC(ctx context.Context, st *iocState) (bool, error) {
	if revoked, _ := d.isRevoked(); revoked {
		return false, nil
	}
	body, _, err := d.currentClient().FetchIoC(ctx, st.etag, d.cfg.IoC.maxBytes())
	switch {
	case errors.Is(err, deviceclient.ErrNotModified):
		return false, nil
	case err != nil:
		if ctx.Err() == nil {
			d.log.Warn("ioc: fetching the indicator set failed; keeping the one held", "err", err, "version", st.etag)
		}
		return false, err
	}
	set, err := decodeIoCSet(body, time.Now(), d.cfg.IoC.maxBytes(), d.cfg.IoC.maxIndicators())
	if err != nil {
		d.log.Error("ioc: the server's indicator set is invalid; keeping the one held", "err", err, "version", st.etag)
		return false, err
	}
	if err := state.WriteFile(filepath.Join(d.dir, iocCacheFile), body, 0o600); err != nil {
		// Matching goes on with the new set; a restart falls back to the
		// previous cache.
		d.log.Error("ioc: caching the indicator set failed", "err", err)
	}
	st.use(set)
	d.log.Info("ioc: new indicator set", "version", set.Version, "indicators", len(set.Indicators), "action", set.Action,
		"expired", set.Expired, "unknown_types", set.Unknown)
	return true, nil
}

// enforceIoC installs or removes the block rules for action. At start,
// prev is the action of the cached set; later, the one last enforced.
func (d *daemon) enforceIoC(ctx context.Context, st *iocState, action string, start bool) {
	prev := st.action
	if start {
		prev = action
	}
	st.action = action
	if !start && prev != action {
		d.recordEvent(events.TypeConfigChange, events.SeverityMedium, events.ConfigChange{
			Setting: "ioc_action", Old: prev, New: action, Source: "server"})
	}
	if action != api.IoCActionBlock || d.cfg.IoC.BlockOff {
		st.expiry = time.Time{}
		st.setBlocking("off")
		if !st.installed {
			return // nothing of ours to remove
		}
		// Also at start: a table left by an earlier run (the policy
		// changed while the agent was down) must go.
		switch err := st.blocker.Remove(ctx); {
		case err == nil, errors.Is(err, iocblock.ErrNoNFT):
			d.log.Info("ioc: block rules removed", "table", "inet "+iocblock.Table)
			d.markBlockInstalled(st, false)
		default:
			d.log.Error("ioc: removing the block rules failed", "err", err)
		}
		return
	}
	now := time.Now()
	var ps []netip.Prefix
	st.expiry = time.Time{}
	for _, b := range st.block {
		if !b.expires.IsZero() {
			if !now.Before(b.expires) {
				continue
			}
			if st.expiry.IsZero() || b.expires.Before(st.expiry) {
				st.expiry = b.expires
			}
		}
		ps = append(ps, b.p)
	}
	st.exempt = d.serverAddrs(ctx, st.exempt)
	res, err := st.blocker.Apply(ctx, ps, st.exempt)
	if err != nil && ctx.Err() != nil {
		return // stopping: nft was cut short (its transaction is all or nothing)
	}
	if err != nil {
		st.expiry = time.Time{}
		d.log.Error("ioc: installing the block rules failed; matches are flagged only", "err", err)
		st.setBlocking(trim("failed: "+err.Error(), 256))
		if msg := err.Error(); msg != st.blockErr {
			st.blockErr = msg
			d.recordEvent(events.TypeConfigChange, events.SeverityMedium, events.ConfigChange{
				Setting: "ioc_block", Old: "", New: trim("failed: "+msg, 1024), Source: "server"})
		}
		return
	}
	if st.blockErr != "" {
		d.recordEvent(events.TypeConfigChange, events.SeverityInformational, events.ConfigChange{
			Setting: "ioc_block", Old: "failed", New: "installed", Source: "server"})
		st.blockErr = ""
	}
	d.markBlockInstalled(st, true)
	st.setBlocking("installed")
	d.log.Info("ioc: block rules installed", "table", "inet "+iocblock.Table, "prefixes", res.Prefixes, "exempt", len(st.exempt))
	if res.Omitted > 0 {
		d.log.Warn("ioc: more prefixes than the block limit; the rest are flagged only", "omitted", res.Omitted)
	}
}

func (st *iocState) setBlocking(v string) { st.blocking.Store(&v) }

// status reports the set in use and the state of the block rules.
func (st *iocState) status() *localapi.IoCStatus {
	out := &localapi.IoCStatus{Blocking: "off"}
	if b := st.blocking.Load(); b != nil {
		out.Blocking = *b
	}
	if a := st.active.Load(); a != nil {
		out.Version, out.Action = a.version, a.action
		if a.m != nil {
			out.Indicators = a.m.Len()
		}
	}
	return out
}

// markBlockInstalled records whether the table is installed.
func (d *daemon) markBlockInstalled(st *iocState, on bool) {
	st.installed = on
	path := filepath.Join(d.dir, iocBlockMarker)
	var err error
	if on {
		err = state.WriteFile(path, []byte("table inet "+iocblock.Table+"\n"), 0o600)
	} else if err = os.Remove(path); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err != nil {
		d.log.Warn("ioc: recording whether block rules are installed", "err", err)
	}
}

// serverAddrs returns the addresses of the server (exempt from blocking so
// that a block can always be lifted); on a lookup failure, the previous
// ones.
func (d *daemon) serverAddrs(ctx context.Context, prev []netip.Addr) []netip.Addr {
	d.mu.Lock()
	server := d.st.Server
	d.mu.Unlock()
	u, err := url.Parse(server)
	if err != nil {
		return prev
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		d.log.Warn("ioc: resolving the server's name to exempt it from blocking failed; using the addresses known", "host", host, "err", err, "known", len(prev))
		return prev
	}
	return addrs
}

// iocMatches matches the fields of an event about to be recorded against
// the active set (the fields the server matches on ingest, docs/ioc.md);
// EventSeq is left for the caller.
func (d *daemon) iocMatches(typ string, details any) []events.IoCMatch {
	st := d.iocs
	if st == nil {
		return nil
	}
	act := st.active.Load()
	if act == nil || act.m.Len() == 0 {
		return nil
	}
	var hits []events.IoCMatch
	var buf []ioc.Indicator
	add := func(field, observed string) {
		for _, in := range buf {
			if len(hits) >= maxIoCHitsPerEvent {
				return
			}
			hits = append(hits, events.IoCMatch{Indicator: in.Value, IndicatorType: string(in.Type), Source: in.Source,
				Field: field, Observed: observed, EventType: typ, MatchedBy: "agent"})
		}
	}
	ip := func(field, v string) {
		if a, err := netip.ParseAddr(v); err == nil {
			buf = act.m.AppendIP(buf[:0], a)
			add(field, v)
		}
	}
	domain := func(field, v string) {
		if v != "" {
			buf = act.m.AppendDomain(buf[:0], v)
			add(field, v)
		}
	}
	hash := func(field, v string) {
		if v != "" {
			buf = act.m.AppendHash(buf[:0], v)
			add(field, v)
		}
	}
	proc := func(p *events.ProcessRef) {
		if p != nil {
			hash("process.sha256", p.SHA256)
		}
	}
	switch v := details.(type) {
	case events.NetConnection:
		netConnMatch(&v, ip, proc)
	case *events.NetConnection:
		netConnMatch(v, ip, proc)
	case events.DNSQuery:
		dnsMatch(&v, ip, domain)
	case *events.DNSQuery:
		dnsMatch(v, ip, domain)
	case events.AuthLogin:
		ip("src_ip", v.SrcIP)
	case *events.AuthLogin:
		ip("src_ip", v.SrcIP)
	case events.FileActivity:
		hash("sha256", v.SHA256)
	case *events.FileActivity:
		hash("sha256", v.SHA256)
	case events.ProcessActivity:
		proc(&v.Process)
	case *events.ProcessActivity:
		proc(&v.Process)
	}
	return hits
}

func netConnMatch(c *events.NetConnection, ip func(field, v string), proc func(*events.ProcessRef)) {
	if c == nil {
		return
	}
	if c.Direction == "inbound" {
		ip("src_ip", c.SrcIP)
	} else {
		ip("dst_ip", c.DstIP)
	}
	proc(c.Process)
}

func dnsMatch(q *events.DNSQuery, ip, domain func(field, v string)) {
	if q == nil {
		return
	}
	domain("hostname", q.Hostname)
	for _, a := range q.Answers {
		switch a.Type {
		case "CNAME":
			domain("answers.rdata", a.RData)
		case "A", "AAAA":
			ip("answers.rdata", a.RData)
		}
	}
}
