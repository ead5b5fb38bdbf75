package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/ioc"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// IoCConfig configures indicators of compromise (Code of Practice
// guideline 10.2, docs/ioc.md). The zero value is usable.
type IoCConfig struct {
	// PollInterval is a feed's poll interval when it names none; zero
	// means 1h.
	PollInterval time.Duration
	// MaxIndicators bounds the indicators of one source (an import or a
	// poll yielding more is refused); zero means 2,000,000.
	MaxIndicators int
	// HTTPClient fetches feeds; nil means a client with a 60 s timeout.
	HTTPClient *http.Client
	// Tick is how often due feeds are polled and sources changed by
	// another server sharing the store are reloaded; zero means 30 s.
	Tick time.Duration
	// OnMatch, if set, is called after each indicator hit is stored (the
	// stored ioc.match event is also what the alert rule ioc.match reads).
	// It runs on the ingestion path and must not block.
	OnMatch func(deviceID string, m events.IoCMatch)
	// DeviceAction is what agents do when an event on the device matches
	// the set they fetch (GET /device/v1/ioc): api.IoCActionFlag records
	// an ioc.match event, api.IoCActionBlock also drops traffic to and
	// from IP and CIDR indicators. Empty means flag.
	DeviceAction string
}

// Defaults and bounds of indicator sources.
const (
	defaultIoCPoll     = time.Hour
	minIoCPoll         = time.Minute
	defaultIoCTick     = 30 * time.Second
	iocPruneEvery      = 10 * time.Minute
	iocPollLease       = 15 * time.Minute
	maxIoCBackoff      = 6 * time.Hour
	maxMISPFeedEvents  = 10000
	iocFeedHTTPTimeout = 60 * time.Second
	maxIoCHitLogs      = 10 // per batch; every hit is stored
)

// iocLoaded is one source as held in memory.
type iocLoaded struct {
	version int64
	updated time.Time // with version, tells a source deleted and re-created apart
	inds    []ioc.Indicator
}

// iocState holds the active indicators: a matcher over every source,
// swapped atomically on reload so ingestion never waits for one, and the
// set served to devices. Reloads are serialized by mu.
type iocState struct {
	s       *Server
	matcher atomic.Pointer[ioc.Matcher]
	devSet  atomic.Pointer[iocDeviceSet]
	wake    chan struct{}

	mu      sync.Mutex
	sources map[string]iocLoaded
	dirty   bool // sources changed since the matcher was last built
}

// iocDeviceSet is the encoded answer of GET /device/v1/ioc for one
// version of the indicators, built on first request.
type iocDeviceSet struct {
	version string
	served  string // servedVersion for the configured device action, the ETag
	once    sync.Once
	json    []byte
	gz      []byte
	inds    map[string][]ioc.Indicator
}

func newIoC(ctx context.Context, s *Server) (*iocState, error) {
	switch a := s.cfg.IoC.DeviceAction; a {
	case "", api.IoCActionFlag, api.IoCActionBlock:
	default:
		return nil, fmt.Errorf("server: IoC device action %q: want %q or %q", a, api.IoCActionFlag, api.IoCActionBlock)
	}
	st := &iocState{s: s, wake: make(chan struct{}, 1), sources: map[string]iocLoaded{}}
	m, _ := ioc.Build(nil, s.now)
	st.matcher.Store(m)
	if err := st.reload(ctx); err != nil {
		return nil, fmt.Errorf("server: loading indicators of compromise: %w", err)
	}
	return st, nil
}

func (c *IoCConfig) pollInterval() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval
	}
	return defaultIoCPoll
}

func (c *IoCConfig) maxIndicators() int {
	if c.MaxIndicators > 0 {
		return c.MaxIndicators
	}
	return ioc.DefaultMaxIndicators
}

// reload brings the in-memory sources in step with the store, reading
// the indicators only of sources whose version changed, and rebuilds the
// matcher if any did.
func (st *iocState) reload(ctx context.Context) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	srcs, err := st.s.store.IoCSources(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, src := range srcs {
		seen[src.Name] = true
		if cur, ok := st.sources[src.Name]; ok && cur.version == src.Version && cur.updated.Equal(src.UpdatedAt) {
			continue
		}
		rows, err := st.s.store.IoCIndicators(ctx, src.Name, 0)
		if err != nil {
			return err
		}
		inds := make([]ioc.Indicator, 0, len(rows))
		for _, r := range rows {
			in, err := ioc.New(ioc.Type(r.Type), r.Value, src.Name, r.Ref, r.Expires)
			if err != nil {
				st.s.log.Warn("ioc: ignoring an invalid stored indicator", "source", src.Name, "err", err)
				continue
			}
			inds = append(inds, in)
		}
		st.sources[src.Name] = iocLoaded{version: src.Version, updated: src.UpdatedAt, inds: inds}
		st.dirty = true
	}
	for name := range st.sources {
		if !seen[name] {
			delete(st.sources, name)
			st.dirty = true
		}
	}
	if !st.dirty && st.devSet.Load() != nil {
		return nil
	}
	names := make([]string, 0, len(st.sources))
	n := 0
	for name, l := range st.sources {
		names = append(names, name)
		n += len(l.inds)
	}
	slices.Sort(names)
	all := make([]ioc.Indicator, 0, n)
	h := sha256.New()
	bySource := make(map[string][]ioc.Indicator, len(names))
	for _, name := range names {
		l := st.sources[name]
		all = append(all, l.inds...)
		bySource[name] = l.inds
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", name, l.version, l.updated.UnixMicro())
	}
	m, err := ioc.Build(all, st.s.now)
	if err != nil {
		return err
	}
	st.matcher.Store(m)
	st.dirty = false
	d := &iocDeviceSet{version: hex.EncodeToString(h.Sum(nil)[:12]), inds: bySource}
	d.served = d.servedVersion(st.s.cfg.IoC.deviceAction())
	st.devSet.Store(d)
	return nil
}

// run polls due feeds, reloads sources changed elsewhere and prunes
// expired indicators until ctx ends.
func (st *iocState) run(ctx context.Context) {
	tick := st.s.cfg.IoC.Tick
	if tick <= 0 {
		tick = defaultIoCTick
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var lastPrune time.Time
	for {
		st.pollDue(ctx)
		if now := st.s.now(); now.Sub(lastPrune) >= iocPruneEvery {
			lastPrune = now
			if n, err := st.s.store.PruneExpiredIoC(ctx, now); err != nil && ctx.Err() == nil {
				st.s.log.Warn("ioc: pruning expired indicators", "err", err)
			} else if n > 0 {
				st.s.log.Info("ioc: pruned expired indicators", "deleted", n)
			}
		}
		if err := st.reload(ctx); err != nil && ctx.Err() == nil {
			st.s.log.Error("ioc: reloading indicators", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-st.wake:
		}
	}
}

// pollDue polls every feed that is due and that this server claims.
func (st *iocState) pollDue(ctx context.Context) {
	now := st.s.now()
	due, err := st.s.store.DueIoCFeeds(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			st.s.log.Warn("ioc: listing due feeds", "err", err)
		}
		return
	}
	for _, src := range due {
		ok, err := st.s.store.ClaimIoCPoll(ctx, src.Name, now, now.Add(iocPollLease))
		if err != nil || !ok {
			continue
		}
		st.poll(ctx, src)
	}
}

// poll fetches one feed and replaces its indicators, or records the
// failure and backs off: the n-th consecutive failure waits a minute
// times 2^(n-1), at most 6 hours, before the next try.
func (st *iocState) poll(ctx context.Context, src *store.IoCSource) {
	started := st.s.now()
	res, err := st.fetch(ctx, src)
	var inds []store.IoCIndicator
	if err == nil {
		inds, err = st.storedIndicators(res.Indicators, src.DefaultExpiry, started)
	}
	if err == nil {
		upd := &store.IoCSource{Name: src.Name, Kind: src.Kind, Interval: src.Interval, UpdatedAt: started, NextPoll: started.Add(src.Interval)}
		err = st.s.store.ReplaceIoCIndicators(ctx, upd, res.Skipped, inds)
		if err == nil {
			st.s.log.Info("ioc: feed polled", "source", src.Name, "indicators", len(inds), "skipped", res.Skipped)
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			return // deleted while polling
		}
	}
	if ctx.Err() != nil {
		return
	}
	n := src.Failures + 1
	wait := min(time.Minute<<min(n-1, 16), maxIoCBackoff)
	st.s.log.Warn("ioc: feed poll failed", "source", src.Name, "failures", n, "retry_in", wait.String(), "err", err)
	if err := st.s.store.RecordIoCPollFailure(ctx, src.Name, started, started.Add(wait), err.Error()); err != nil && ctx.Err() == nil {
		st.s.log.Warn("ioc: recording poll failure", "source", src.Name, "err", err)
	}
}

func (st *iocState) httpClient() *http.Client {
	if c := st.s.cfg.IoC.HTTPClient; c != nil {
		return c
	}
	return &http.Client{Timeout: iocFeedHTTPTimeout}
}

// fetch reads a feed's current indicators.
func (st *iocState) fetch(ctx context.Context, src *store.IoCSource) (*ioc.Result, error) {
	max := st.s.cfg.IoC.maxIndicators()
	switch src.Kind {
	case "taxii":
		c := &ioc.TAXIIClient{APIRoot: src.URL, Collection: src.Collection, HTTPClient: st.httpClient(), Source: src.Name, MaxIndicators: max}
		r, err := c.Fetch(ctx, time.Time{})
		if err != nil {
			return nil, err
		}
		return &r.Result, nil
	case "misp-feed":
		return st.fetchMISP(ctx, src.URL, src.Name, max)
	}
	return nil, fmt.Errorf("unknown feed kind %q", src.Kind)
}

// fetchMISP reads a MISP feed: one event if the URL ends in .json, else
// the feed's manifest.json and every event it lists.
func (st *iocState) fetchMISP(ctx context.Context, feedURL, name string, max int) (*ioc.Result, error) {
	o := ioc.ParseOptions{Source: name, MaxIndicators: max}
	get := func(u string, parse func(io.Reader) error) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := st.httpClient().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("MISP feed: GET %s: %s", u, resp.Status)
		}
		return parse(resp.Body)
	}
	if strings.HasSuffix(strings.ToLower(feedURL), ".json") {
		var res *ioc.Result
		err := get(feedURL, func(r io.Reader) (err error) { res, err = ioc.ParseMISP(r, o); return err })
		return res, err
	}
	base := strings.TrimSuffix(feedURL, "/") + "/"
	var entries []ioc.ManifestEntry
	if err := get(base+"manifest.json", func(r io.Reader) (err error) { entries, err = ioc.ParseMISPManifest(r, o); return err }); err != nil {
		return nil, err
	}
	if len(entries) > maxMISPFeedEvents {
		return nil, fmt.Errorf("MISP feed: the manifest lists %d events, more than %d", len(entries), maxMISPFeedEvents)
	}
	out := &ioc.Result{}
	for _, e := range entries {
		var res *ioc.Result
		if err := get(base+e.UUID+".json", func(r io.Reader) (err error) { res, err = ioc.ParseMISP(r, o); return err }); err != nil {
			return nil, err
		}
		if len(out.Indicators)+len(res.Indicators) > max {
			return nil, fmt.Errorf("MISP feed: more than %d indicators: %w", max, ioc.ErrTooLarge)
		}
		out.Indicators = append(out.Indicators, res.Indicators...)
		out.Skipped += res.Skipped
		for _, r := range res.Reasons {
			if len(out.Reasons) < 16 {
				out.Reasons = append(out.Reasons, e.UUID+": "+r)
			}
		}
	}
	return out, nil
}

// storedIndicators converts parsed indicators for the store, giving
// those without an expiry now+expiry when expiry is positive.
func (st *iocState) storedIndicators(inds []ioc.Indicator, expiry time.Duration, now time.Time) ([]store.IoCIndicator, error) {
	if len(inds) > st.s.cfg.IoC.maxIndicators() {
		return nil, fmt.Errorf("more than %d indicators: %w", st.s.cfg.IoC.maxIndicators(), ioc.ErrTooLarge)
	}
	out := make([]store.IoCIndicator, len(inds))
	for i, in := range inds {
		exp := in.Expires
		if exp.IsZero() && expiry > 0 {
			exp = now.Add(expiry)
		}
		out[i] = store.IoCIndicator{Type: string(in.Type), Value: in.Value, Ref: in.Ref, Expires: exp.UTC().Truncate(time.Microsecond)}
	}
	return out, nil
}

// iocFields are the fields of a device event that are matched.
type iocFields struct {
	Details struct {
		Direction string `json:"direction"`
		SrcIP     string `json:"src_ip"`
		DstIP     string `json:"dst_ip"`
		SHA256    string `json:"sha256"`
		Process   struct {
			SHA256 string `json:"sha256"`
		} `json:"process"`
		// dns.query: the queried name and the answer records (an
		// array, as encoding/json fills it: at most the events
		// package's bound, which Decode enforced on receipt).
		Hostname string                             `json:"hostname"`
		Answers  [events.MaxDNSAnswers]iocDNSAnswer `json:"answers"`
	} `json:"details"`
}

// iocDNSAnswer is the matched part of a dns.query answer.
type iocDNSAnswer struct {
	Type  string `json:"type"`
	RData string `json:"rdata"`
}

// scanIoCFields fills f from an event envelope without decoding all of
// it (a full decode costs several times the lookups). It reports false,
// for the caller to decode in full, on anything unusual: invalid JSON, a
// key or wanted value with an escape, a non-ASCII key.
func scanIoCFields(data []byte, f *iocFields) bool {
	s := jscan{b: data}
	return s.object(func(key []byte) bool {
		if !bytes.EqualFold(key, []byte("details")) {
			return s.skipValue()
		}
		if s.peek() != '{' {
			return s.skipValue()
		}
		d := &f.Details
		return s.object(func(key []byte) bool {
			var dst *string
			switch {
			case bytes.EqualFold(key, []byte("direction")):
				dst = &d.Direction
			case bytes.EqualFold(key, []byte("src_ip")):
				dst = &d.SrcIP
			case bytes.EqualFold(key, []byte("dst_ip")):
				dst = &d.DstIP
			case bytes.EqualFold(key, []byte("sha256")):
				dst = &d.SHA256
			case bytes.EqualFold(key, []byte("hostname")):
				dst = &d.Hostname
			case bytes.EqualFold(key, []byte("answers")):
				return s.answers(&d.Answers)
			case bytes.EqualFold(key, []byte("process")):
				if s.peek() != '{' {
					return s.skipValue()
				}
				return s.object(func(key []byte) bool {
					if bytes.EqualFold(key, []byte("sha256")) {
						return s.stringInto(&d.Process.SHA256)
					}
					return s.skipValue()
				})
			default:
				return s.skipValue()
			}
			return s.stringInto(dst)
		})
	})
}

// answers fills a as encoding/json fills an array: elements are decoded
// into in place (null leaves one, or the whole array, as it was),
// elements past its end are skipped and those the JSON array does not
// reach are zeroed. Anything but an array of objects or nulls declines.
func (s *jscan) answers(a *[events.MaxDNSAnswers]iocDNSAnswer) bool {
	if s.peek() != '[' {
		return s.peek() == 'n' && s.skipValue()
	}
	s.i++
	n := 0
	for {
		switch s.peek() {
		case ']':
			s.i++
			for i := n; i < len(a); i++ {
				a[i] = iocDNSAnswer{}
			}
			return true
		case ',':
			if n == 0 {
				return false
			}
			s.i++
		}
		switch c := s.peek(); {
		case n >= len(a):
			if c != '{' && c != 'n' {
				return false
			}
			if !s.skipValue() {
				return false
			}
		case c == 'n':
			if !s.skipValue() {
				return false
			}
		case c == '{':
			e := &a[n]
			if !s.object(func(key []byte) bool {
				switch {
				case bytes.EqualFold(key, []byte("type")):
					return s.stringInto(&e.Type)
				case bytes.EqualFold(key, []byte("rdata")):
					return s.stringInto(&e.RData)
				}
				return s.skipValue()
			}) {
				return false
			}
		default:
			return false
		}
		n++
	}
}

// jscan walks JSON known to be valid, just enough for scanIoCFields.
type jscan struct {
	b []byte
	i int
}

func (s *jscan) ws() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *jscan) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads the string at s.i, returning its raw contents and whether it
// has an escape.
func (s *jscan) str() (raw []byte, esc, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.i + 1
	for j := start; ; {
		k := bytes.IndexByte(s.b[j:], '"')
		if k < 0 {
			return nil, false, false
		}
		end := j + k
		if bytes.IndexByte(s.b[j:end], '\\') >= 0 {
			esc = true
			n := 0 // backslashes right before the quote
			for p := end - 1; p >= start && s.b[p] == '\\'; p-- {
				n++
			}
			if n%2 == 1 { // an escaped quote: go on
				j = end + 1
				continue
			}
		}
		s.i = end + 1
		return s.b[start:end], esc, true
	}
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// stringInto stores a string value without escapes in dst; null and
// other values are skipped.
func (s *jscan) stringInto(dst *string) bool {
	if s.peek() != '"' {
		return s.skipValue()
	}
	raw, esc, ok := s.str()
	if !ok || esc || !ascii(raw) {
		return false
	}
	*dst = string(raw)
	return true
}

func (s *jscan) skipValue() bool {
	switch s.peek() {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	case 0:
		return false
	}
	for s.i < len(s.b) { // number, true, false, null
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return true
		}
		s.i++
	}
	return false
}

// object calls field with each key of the object at s.i (keys with an
// escape or non-ASCII byte fail the scan); field consumes the value.
func (s *jscan) object(field func(key []byte) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	for {
		switch s.peek() {
		case '}':
			s.i++
			return true
		case ',':
			s.i++
		}
		key, esc, ok := s.str()
		if !ok || esc || !ascii(key) || s.peek() != ':' {
			return false
		}
		s.i++
		if !field(key) {
			return false
		}
	}
}

// iocHit is an indicator hit in a device's batch: the match and the
// ioc.match event that records it.
type iocHit struct {
	match events.IoCMatch
	event store.Event
}

// match matches a batch's records against the active indicators
// (net.connection: the remote address and the process hash; auth.login:
// the remote address; file.activity: the file hash; process.activity: the
// executable hash; dns.query: the queried name and each CNAME target, with
// their parent domains, and each answer address) and returns the hits
// with their high-severity ioc.match events (server events; the
// envelope's seq is the matched record's, the stored row's is 0). It runs
// before the batch's transaction, outside the single writer; the events
// of the hits on newly stored records are stored in that transaction, so a
// hit is never lost to a crash after the batch is acknowledged.
func (st *iocState) match(deviceID string, rows []store.Event, now time.Time) []iocHit {
	m := st.matcher.Load()
	if m == nil || m.Len() == 0 || len(rows) == 0 {
		return nil
	}
	var hits []events.IoCMatch
	var buf []ioc.Indicator
	var f iocFields
	add := func(row *store.Event, field, observed string, found []ioc.Indicator) {
		for _, in := range found {
			hits = append(hits, events.IoCMatch{Indicator: in.Value, IndicatorType: string(in.Type), Source: in.Source, Ref: in.Ref,
				Field: field, Observed: observed, EventSeq: row.Seq, EventType: row.Type})
		}
	}
	ip := func(row *store.Event, field, v string) {
		if v == "" {
			return
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return
		}
		buf = m.AppendIP(buf[:0], a)
		add(row, field, v, buf)
	}
	domain := func(row *store.Event, field, v string) {
		if v == "" {
			return
		}
		buf = m.AppendDomain(buf[:0], v)
		add(row, field, v, buf)
	}
	hash := func(row *store.Event, field, v string) {
		if v == "" {
			return
		}
		buf = m.AppendHash(buf[:0], v)
		add(row, field, v, buf)
	}
	for i := range rows {
		row := &rows[i]
		switch row.Type {
		case events.TypeNetConnection, events.TypeAuthLogin, events.TypeFileActivity, events.TypeProcessActivity, events.TypeDNSQuery:
		default:
			continue
		}
		f = iocFields{}
		if !scanIoCFields(row.Data, &f) {
			f = iocFields{}
			if err := json.Unmarshal(row.Data, &f); err != nil {
				continue // validated on receipt; cannot happen
			}
		}
		d := &f.Details
		switch row.Type {
		case events.TypeNetConnection:
			if d.Direction == "inbound" {
				ip(row, "src_ip", d.SrcIP)
			} else {
				ip(row, "dst_ip", d.DstIP)
			}
			hash(row, "process.sha256", d.Process.SHA256)
		case events.TypeAuthLogin:
			ip(row, "src_ip", d.SrcIP)
		case events.TypeFileActivity:
			hash(row, "sha256", d.SHA256)
		case events.TypeProcessActivity:
			hash(row, "process.sha256", d.Process.SHA256)
		case events.TypeDNSQuery:
			domain(row, "hostname", d.Hostname)
			for _, a := range d.Answers {
				switch a.Type {
				case "CNAME":
					domain(row, "answers.rdata", a.RData)
				case "A", "AAAA":
					ip(row, "answers.rdata", a.RData)
				}
			}
		}
	}
	if len(hits) == 0 {
		return nil
	}
	out := make([]iocHit, 0, len(hits))
	for _, h := range hits {
		ev, err := events.New(events.TypeIoCMatch, deviceID, events.SeverityHigh, now, h)
		if err != nil {
			st.s.log.Error("ioc: building ioc.match event", "device", deviceID, "err", err)
			continue
		}
		ev.Seq = h.EventSeq // the matched record; the stored row has seq 0
		data, err := ev.Marshal()
		if err != nil {
			st.s.log.Error("ioc: encoding ioc.match event", "device", deviceID, "err", err)
			continue
		}
		out = append(out, iocHit{match: h, event: store.Event{DeviceID: deviceID, Source: store.EventFromServer, Type: events.TypeIoCMatch,
			SeverityID: ev.SeverityID, DeviceTime: now, ServerTime: now, Data: data}})
	}
	return out
}

// reportHits logs the hits stored with a batch and passes them to the
// configured callback.
func (st *iocState) reportHits(deviceID string, hits []iocHit) {
	for i, h := range hits {
		if i == maxIoCHitLogs {
			st.s.log.Warn("ioc: more indicator hits in the batch (stored, not logged one by one)", "device", deviceID, "hits", len(hits), "logged", maxIoCHitLogs)
			break
		}
		m := h.match
		st.s.log.Warn("ioc: indicator matched", "device", deviceID, "seq", m.EventSeq, "event_type", m.EventType, "field", m.Field,
			"observed", m.Observed, "indicator", m.Indicator, "indicator_type", m.IndicatorType, "source", m.Source)
	}
	if on := st.s.cfg.IoC.OnMatch; on != nil {
		for _, h := range hits {
			on(deviceID, h.match)
		}
	}
}

// IoCSourceView converts a stored source for the API.
func IoCSourceView(src *store.IoCSource) api.IoCSource {
	v := api.IoCSource{Name: src.Name, Kind: src.Kind, URL: src.URL, Collection: src.Collection, Version: src.Version,
		Indicators: src.Indicators, Skipped: src.Skipped, CreatedAt: src.CreatedAt, CreatedBy: src.CreatedBy,
		Failures: src.Failures, LastError: src.LastError}
	if src.Interval > 0 {
		v.Interval = src.Interval.String()
	}
	if src.DefaultExpiry > 0 {
		v.DefaultExpiry = src.DefaultExpiry.String()
	}
	for _, t := range []struct {
		in  time.Time
		out **time.Time
	}{{src.UpdatedAt, &v.UpdatedAt}, {src.LastPoll, &v.LastPoll}, {src.NextPoll, &v.NextPoll}} {
		if !t.in.IsZero() {
			tt := t.in
			*t.out = &tt
		}
	}
	return v
}

// detectIoCFormat tells a STIX bundle, a MISP event and a plain list
// apart.
func detectIoCFormat(b []byte) (string, bool) {
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(t) == 0 || t[0] != '{' {
		return "list", true
	}
	var probe struct {
		Type     string          `json:"type"`
		Objects  json.RawMessage `json:"objects"`
		Event    json.RawMessage `json:"Event"`
		Response json.RawMessage `json:"response"`
	}
	if json.Unmarshal(t, &probe) != nil {
		return "", false
	}
	switch {
	case probe.Type == "bundle" || probe.Objects != nil:
		return "stix", true
	case probe.Event != nil || probe.Response != nil:
		return "misp", true
	}
	return "", false
}

// parseDurationParam parses an optional Go duration of at least min.
func parseDurationParam(name, v string, min time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < min {
		return 0, badRequest(fmt.Sprintf("%s must be a duration of at least %s, e.g. 720h", name, min))
	}
	return d, nil
}

// handleImportIoC answers POST /api/v1/ioc/sources: the body is a STIX
// 2.1 bundle, a MISP event or a plain list, replacing the indicators of
// source ?name= (created if new) in one transaction.
func (s *Server) handleImportIoC(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	q := r.URL.Query()
	name := q.Get("name")
	if !nameRE.MatchString(name) {
		return badRequest("name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	format := q.Get("format")
	switch format {
	case "", "stix", "misp", "list":
	default:
		return badRequest("format must be stix, misp or list (or absent to detect it)")
	}
	expiry, err := parseDurationParam("expires", q.Get("expires"), time.Minute)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxIoCImport+1))
	if err != nil || len(body) > api.MaxIoCImport {
		return errf(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the file is larger than %d bytes", api.MaxIoCImport))
	}
	if format == "" {
		f, ok := detectIoCFormat(body)
		if !ok {
			return badRequest("cannot tell the file's format (JSON that is neither a STIX bundle nor a MISP event): pass ?format=stix, misp or list")
		}
		format = f
	}
	o := ioc.ParseOptions{Source: name, MaxBytes: api.MaxIoCImport, MaxIndicators: s.cfg.IoC.maxIndicators()}
	parse := map[string]func(io.Reader, ioc.ParseOptions) (*ioc.Result, error){"stix": ioc.ParseSTIX, "misp": ioc.ParseMISP, "list": ioc.ParseList}[format]
	res, err := parse(bytes.NewReader(body), o)
	if errors.Is(err, ioc.ErrTooLarge) {
		return errf(http.StatusRequestEntityTooLarge, "too_large", strings.TrimPrefix(err.Error(), "ioc: "))
	} else if err != nil {
		return badRequest(fmt.Sprintf("not a valid %s file: %s", format, strings.TrimPrefix(err.Error(), "ioc: ")))
	}
	if len(res.Indicators) == 0 {
		msg := fmt.Sprintf("the %s file holds no usable indicator", format)
		if res.Skipped > 0 {
			msg += fmt.Sprintf(" (%d entries skipped; first: %s)", res.Skipped, res.Reasons[0])
		}
		return errf(http.StatusBadRequest, "no_indicators", msg)
	}
	now := s.now()
	inds, err := s.ioc.storedIndicators(res.Indicators, expiry, now)
	if err != nil {
		return errf(http.StatusRequestEntityTooLarge, "too_large", err.Error())
	}
	src := &store.IoCSource{Name: name, Kind: format, DefaultExpiry: expiry, CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now}
	err = s.store.ReplaceIoCIndicators(r.Context(), src, res.Skipped, inds)
	if errors.Is(err, store.ErrConflict) {
		return errf(http.StatusConflict, "conflict", fmt.Sprintf("source %q is a feed: its indicators come from polling (delete it first to import a file under this name)", name))
	} else if err != nil {
		return internal(err)
	}
	if err := s.ioc.reload(r.Context()); err != nil {
		s.log.Error("ioc: reloading after an import (retried by the background loop)", "err", err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "ioc.import", target: "ioc-source:" + name, remote: ClientIP(r),
		detail: fmt.Sprintf("format=%s indicators=%d skipped=%d version=%d", format, len(inds), res.Skipped, src.Version), outcome: "ok"})
	writeJSON(w, http.StatusOK, api.IoCImportResult{Source: IoCSourceView(src), Reasons: res.Reasons})
	return nil
}

// handleCreateIoCFeed answers POST /api/v1/ioc/feeds.
func (s *Server) handleCreateIoCFeed(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	var req api.IoCFeedCreate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return badRequest("name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	switch req.Kind {
	case "taxii":
		if req.Collection == "" || len(req.Collection) > 256 {
			return badRequest("collection (the TAXII collection id, at most 256 characters) is required for a taxii feed")
		}
	case "misp-feed":
		if req.Collection != "" {
			return badRequest("collection is only for taxii feeds")
		}
	default:
		return badRequest(`kind must be "taxii" or "misp-feed"`)
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(req.URL) > 2048 {
		return badRequest("url must be an absolute http or https URL without credentials, at most 2048 characters")
	}
	interval, err := parseDurationParam("interval", req.Interval, minIoCPoll)
	if err != nil {
		return err
	}
	if interval == 0 {
		interval = s.cfg.IoC.pollInterval()
	}
	expiry, err := parseDurationParam("expires", req.Expires, time.Minute)
	if err != nil {
		return err
	}
	now := s.now()
	src := &store.IoCSource{Name: req.Name, Kind: req.Kind, URL: req.URL, Collection: req.Collection, Interval: interval,
		DefaultExpiry: expiry, CreatedAt: now, CreatedBy: p.Actor(), NextPoll: now}
	if err := s.store.CreateIoCFeed(r.Context(), src); errors.Is(err, store.ErrConflict) {
		return errf(http.StatusConflict, "conflict", fmt.Sprintf("a source named %q exists", req.Name))
	} else if err != nil {
		return internal(err)
	}
	select { // poll it now
	case s.ioc.wake <- struct{}{}:
	default:
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "ioc.feed.create", target: "ioc-source:" + req.Name, remote: ClientIP(r),
		detail: fmt.Sprintf("kind=%s url=%s collection=%s interval=%s", req.Kind, req.URL, req.Collection, interval), outcome: "ok"})
	writeJSON(w, http.StatusCreated, IoCSourceView(src))
	return nil
}

// handleListIoCSources answers GET /api/v1/ioc/sources.
func (s *Server) handleListIoCSources(w http.ResponseWriter, r *http.Request) error {
	srcs, err := s.store.IoCSources(r.Context())
	if err != nil {
		return internal(err)
	}
	out := api.IoCSourceList{Sources: []api.IoCSource{}}
	for _, src := range srcs {
		out.Sources = append(out.Sources, IoCSourceView(src))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleListIoCIndicators answers GET /api/v1/ioc/indicators.
func (s *Server) handleListIoCIndicators(w http.ResponseWriter, r *http.Request) error {
	limit, err := intParam(r, "limit", 100, api.MaxIoCPage)
	if err != nil {
		return err
	}
	source := r.URL.Query().Get("source")
	if source != "" {
		if _, err := s.store.GetIoCSource(r.Context(), source); errors.Is(err, store.ErrNotFound) {
			return errf(http.StatusNotFound, "not_found", fmt.Sprintf("no indicator source named %q", source))
		} else if err != nil {
			return internal(err)
		}
	}
	rows, err := s.store.IoCIndicators(r.Context(), source, limit)
	if err != nil {
		return internal(err)
	}
	out := api.IoCIndicatorList{Indicators: make([]api.IoCIndicator, 0, len(rows))}
	for _, in := range rows {
		v := api.IoCIndicator{Source: in.Source, Type: in.Type, Value: in.Value, Ref: in.Ref}
		if !in.Expires.IsZero() {
			e := in.Expires
			v.Expires = &e
		}
		out.Indicators = append(out.Indicators, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleDeleteIoCSource answers DELETE /api/v1/ioc/sources/{name}.
func (s *Server) handleDeleteIoCSource(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	name := r.PathValue("name")
	if err := s.store.DeleteIoCSource(r.Context(), name); errors.Is(err, store.ErrNotFound) {
		return errf(http.StatusNotFound, "not_found", fmt.Sprintf("no indicator source named %q", name))
	} else if err != nil {
		return internal(err)
	}
	if err := s.ioc.reload(r.Context()); err != nil {
		s.log.Error("ioc: reloading after a deletion (retried by the background loop)", "err", err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "ioc.source.delete", target: "ioc-source:" + name, remote: ClientIP(r), outcome: "ok"})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// encode builds the device answer of the set once, for the fleet's
// device action.
func (d *iocDeviceSet) encode(now time.Time, action string) {
	d.once.Do(func() {
		type key struct{ t, v string }
		type entry struct {
			exp int64 // Unix seconds; 0 = never
			src string
		}
		best := map[key]entry{}
		for src, inds := range d.inds {
			for _, in := range inds {
				if in.Expired(now) {
					continue
				}
				k := key{string(in.Type), in.Value}
				var exp int64
				if !in.Expires.IsZero() {
					exp = in.Expires.Unix()
				}
				cur, ok := best[k]
				switch {
				case !ok, cur.exp != 0 && (exp == 0 || exp > cur.exp):
				case cur.exp == exp && src < cur.src: // ties: the same source whatever the map order
				default:
					continue
				}
				best[k] = entry{exp, src}
			}
		}
		set := api.DeviceIoCSet{Version: d.served, GeneratedAt: now.UTC().Truncate(time.Second), Action: action,
			Indicators: make([]api.DeviceIoC, 0, len(best))}
		for k, e := range best {
			set.Indicators = append(set.Indicators, api.DeviceIoC{Type: k.t, Value: k.v, Expires: e.exp, Source: e.src})
		}
		slices.SortFunc(set.Indicators, func(a, b api.DeviceIoC) int {
			if c := strings.Compare(a.Type, b.Type); c != 0 {
				return c
			}
			return strings.Compare(a.Value, b.Value)
		})
		d.json, _ = json.Marshal(set)
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		zw.Write(d.json)
		zw.Close()
		d.gz = gz.Bytes()
		d.inds = nil
	})
}

// deviceVersion is the version of the set GET /device/v1/ioc serves now,
// told to devices in check-in answers so that a new set reaches them
// within a check-in interval.
func (st *iocState) deviceVersion() string {
	d := st.devSet.Load()
	if d == nil {
		return ""
	}
	return d.served
}

// servedVersion is the version devices see: the indicators' version
// bound to the device action, so that a change of either changes the
// ETag.
func (d *iocDeviceSet) servedVersion(action string) string {
	h := sha256.Sum256([]byte(d.version + "\x00" + action))
	return hex.EncodeToString(h[:12])
}

// deviceAction is the action agents are told to take on a match.
func (c *IoCConfig) deviceAction() string {
	if c.DeviceAction == "" {
		return api.IoCActionFlag
	}
	return c.DeviceAction
}

// handleDeviceIoC answers GET /device/v1/ioc: the active indicators and
// the device action, with the version as ETag (If-None-Match answers
// 304), gzip-compressed when the device accepts it.
func (s *Server) handleDeviceIoC(w http.ResponseWriter, r *http.Request) error {
	d := s.ioc.devSet.Load()
	action := s.cfg.IoC.deviceAction()
	version := d.served
	etag := `"` + version + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == version) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	d.encode(s.now(), action)
	w.Header().Set("Content-Type", "application/json")
	body := d.json
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		body = d.gz
	}
	w.Write(body)
	return nil
}
