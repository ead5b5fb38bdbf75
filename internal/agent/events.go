package agent

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/forward"
	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/agent/localapi"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// EventsConfig configures the security event journal and its forwarding
// to the server. The zero value is the default.
type EventsConfig struct {
	// Rate caps the records per second forwarded, which paces the replay
	// of a backlog after an outage; zero means 2,000.
	Rate float64
	// ClockThreshold is the clock offset from the server past which a
	// clock.offset event is recorded; zero means 5 s.
	ClockThreshold time.Duration
	// MaxBytes caps the journal on disk; zero means 16 MiB. When
	// unacknowledged events must go, a journal.gap event records it.
	MaxBytes int64
}

// eventsDir is the journal's directory under the state directory; it is
// named for the device, so that a new device identity starts a new chain.
func eventsDir(stateDir, deviceID string) string {
	return filepath.Join(stateDir, "events-"+deviceID)
}

// enrolMarker remembers the certificate serial the journal last recorded
// an enrolment or renewal for.
const enrolMarker = "identity-serial"

// eventsState is the daemon's journal, forwarder and clock.
type eventsState struct {
	j     *journal.Journal
	fwd   *forward.Forwarder
	clock *forward.Clock
	dir   string
	id    string

	// appendMu keeps an event and the ioc.match events it yields
	// together in the journal.
	appendMu  sync.Mutex
	closeOnce sync.Once
}

// openEvents opens the journal and records an enrolment event when the
// identity is new to it.
func (d *daemon) openEvents() error {
	d.mu.Lock()
	id, server, leaf := d.st.DeviceID, d.st.Server, d.id.Certificate().Leaf
	d.mu.Unlock()
	dir := eventsDir(d.dir, id)
	opts := journal.Options{DeviceID: id, MaxBytes: d.cfg.Events.MaxBytes}
	j, err := journal.Open(dir, opts)
	var broken error
	if err != nil {
		// An unreadable journal must not stop the agent (updates and
		// commands still matter): keep it aside for inspection, start a
		// new chain and record why. The new chain's seqs continue past
		// the old one's, so the server stores its records (a resent seq
		// would be dropped as a duplicate) and sees the break: a gap, or
		// a record that does not link.
		aside := fmt.Sprintf("%s.broken-%d", dir, time.Now().Unix())
		d.log.Error("the event journal is unreadable; keeping it aside and starting a new one", "err", err, "kept_in", aside)
		if rerr := os.Rename(dir, aside); rerr != nil {
			return fmt.Errorf("event journal: %w (and moving it aside: %v)", err, rerr)
		}
		opts.After = journal.HighestSeq(aside)
		var err2 error
		if j, err2 = journal.Open(dir, opts); err2 != nil {
			return fmt.Errorf("event journal: %w", err2)
		}
		broken = err
	}
	ev := &eventsState{j: j, dir: dir, id: id}
	ev.clock = &forward.Clock{Threshold: d.cfg.Events.ClockThreshold, Record: func(offset, th time.Duration) {
		d.recordEvent(events.TypeClockOffset, events.SeverityMedium, events.ClockOffset{
			OffsetMS: -offset.Milliseconds(), ThresholdMS: th.Milliseconds(), Reference: "server"})
	}}
	ev.fwd, err = forward.New(forward.Config{
		Journal: j,
		Send: func(ctx context.Context, b *api.EventBatch) (*api.EventBatchResponse, error) {
			return d.currentClient().SendEvents(ctx, b)
		},
		Signer: func() crypto.Signer {
			if id := d.currentIdentity(); id != nil {
				return id.Signer()
			}
			return nil
		},
		Rate:   d.cfg.Events.Rate,
		Logger: d.log,
	})
	if err != nil {
		j.Close()
		return err
	}
	d.ev = ev
	if broken != nil {
		d.recordEvent(events.TypeIntegrityResult, events.SeverityHigh, events.IntegrityResult{Check: "journal", Outcome: "fail", Actual: trim(broken.Error(), 1024)})
	}
	serial := leaf.SerialNumber.Text(16)
	if b, err := os.ReadFile(filepath.Join(dir, enrolMarker)); err != nil || strings.TrimSpace(string(b)) != serial {
		d.recordEvent(events.TypeEnrolment, events.SeverityInformational, events.Enrolment{Outcome: "success", Server: server, CertSerial: serial})
		d.markIdentity(serial)
	}
	d.recordConfigDrift()
	return nil
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (d *daemon) markIdentity(serial string) {
	if d.ev == nil {
		return
	}
	if err := state.WriteFile(filepath.Join(d.ev.dir, enrolMarker), []byte(serial+"\n"), 0o600); err != nil {
		d.log.Warn("recording the identity the event journal knows", "err", err)
	}
}

// runEvents starts the forwarder; the returned function stops it and
// waits for it.
func (d *daemon) runEvents(ctx context.Context) (stop func()) {
	if d.ev == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.ev.fwd.Run(ctx) })
	wg.Go(d.verifyJournal)
	return func() {
		cancel()
		wg.Wait()
	}
}

// verifyJournal checks the journal's hash chain and signed checkpoints as
// found on disk at start. Opening it reads only the newest records, so a
// record altered while the agent was stopped (one the server has already
// received, or one it has not) is found here: it is recorded as a failed
// journal integrity check, which raises an alert on the server.
func (d *daemon) verifyJournal() {
	err := d.ev.j.Verify()
	if err == nil {
		d.log.Debug("the event journal's hash chain verified")
		return
	}
	d.log.Error("the event journal failed verification: records were altered, removed or reordered", "err", err)
	d.recordEvent(events.TypeIntegrityResult, events.SeverityHigh, events.IntegrityResult{Check: "journal", Outcome: "fail", Actual: trim(err.Error(), 1024)})
}

// closeEvents closes the journal (after the forwarder stopped).
func (d *daemon) closeEvents() {
	if d.ev == nil {
		return
	}
	d.ev.closeOnce.Do(func() {
		if err := d.ev.j.Close(); err != nil {
			d.log.Error("closing the event journal", "err", err)
		}
	})
}

// recordEvent appends one of the agent's own security events to the
// journal (durably) and wakes the forwarder. An event that matches the
// active indicators of compromise (ioc.go) is followed in the journal by
// an ioc.match event per hit. A failure is logged: the event is lost, and
// the log says so.
func (d *daemon) recordEvent(typ string, severity int, details any) {
	if d.ev == nil {
		return
	}
	hits := d.iocMatches(typ, details)
	// One event and its hits are appended together, so that the hits
	// follow it in the journal.
	d.ev.appendMu.Lock()
	seq, ok := d.appendEvent(typ, severity, details)
	if ok {
		for i := range hits {
			hits[i].EventSeq = seq
			d.appendEvent(events.TypeIoCMatch, events.SeverityHigh, hits[i])
		}
	}
	d.ev.appendMu.Unlock()
	if ok && len(hits) > 0 {
		d.log.Warn("ioc: an event matched an indicator of compromise", "type", typ, "seq", seq,
			"indicator", hits[0].Indicator, "field", hits[0].Field, "observed", hits[0].Observed, "hits", len(hits))
	}
	if ok {
		d.ev.fwd.Notify()
	}
}

func (d *daemon) appendEvent(typ string, severity int, details any) (uint64, bool) {
	ev, err := events.New(typ, d.ev.id, severity, time.Now(), details)
	var seq uint64
	if err == nil {
		seq, err = d.ev.j.Append(ev)
	}
	if err != nil {
		d.log.Error("recording a security event failed", "type", typ, "err", err)
		return 0, false
	}
	return seq, true
}

// observeClock measures the clock offset at a successful check-in that was
// sent at start and answered with server time.
func (d *daemon) observeClock(start, server time.Time) {
	if d.ev != nil {
		d.ev.clock.Observe(start, time.Now(), server)
	}
}

// ClockOffset is the device clock's offset from the server's at the last
// successful check-in: server time minus device time (positive: the device
// is behind), the round trip it was measured over and when; ok is false
// before the first check-in. It is what the "clock" health check reads.
func (d *daemon) ClockOffset() (offset, rtt time.Duration, at time.Time, ok bool) {
	if d.ev == nil {
		return 0, 0, time.Time{}, false
	}
	return d.ev.clock.Offset()
}

// recordRenewal records a certificate renewal (old is the certificate
// before it) when the certificate changed.
func (d *daemon) recordRenewal(old *x509.Certificate) {
	cur := d.currentIdentity().Certificate().Leaf
	if cur == nil || old == nil || cur.SerialNumber.Cmp(old.SerialNumber) == 0 {
		return
	}
	serial := cur.SerialNumber.Text(16)
	d.recordEvent(events.TypeConfigChange, events.SeverityInformational, events.ConfigChange{
		Setting: "device_certificate", Old: old.SerialNumber.Text(16), New: serial, Source: "server"})
	d.markIdentity(serial)
}

// recordUpdate records how an update ended (status as reported to the
// server: success, failed or rolled-back).
func (d *daemon) recordUpdate(version, status, detail string) {
	if len(detail) > 1024 {
		detail = detail[:1024]
	}
	st := events.UpdateStep{Version: version, Error: detail}
	sev := events.SeverityInformational
	switch status {
	case "success":
		st.Step, st.Outcome, st.Error = "commit", "success", ""
	case "rolled-back":
		st.Step, st.Outcome, sev = "rollback", "success", events.SeverityMedium
	case "failed":
		st.Step, st.Outcome, sev = "install", "failure", events.SeverityMedium
	default:
		return
	}
	if st.Version == "" {
		st.Version = "unknown"
	}
	d.recordEvent(events.TypeUpdateStep, sev, st)
}

// Events implements localapi.EventsProvider: the journal's records after
// seq after (or the newest limit when after is negative).
func (d *daemon) Events(after int64, limit int) (localapi.EventsPage, error) {
	if d.ev == nil {
		return localapi.EventsPage{}, errors.New("the event journal is not open")
	}
	j := d.ev.j
	page := localapi.EventsPage{Events: []json.RawMessage{}, FirstSeq: j.FirstSeq(), LastSeq: j.LastSeq(), AckedSeq: j.Acked()}
	st := d.ev.fwd.Stats()
	page.Forwarding = &localapi.ForwardingStatus{Forwarded: st.Forwarded, LastError: st.LastError, Failures: st.Failures}
	if !st.LastSuccess.IsZero() {
		page.Forwarding.LastSuccess = &st.LastSuccess
	}
	from := uint64(1)
	if after < 0 {
		if page.LastSeq > uint64(limit) {
			from = page.LastSeq - uint64(limit) + 1
		}
	} else {
		from = uint64(after) + 1
	}
	recs, err := j.Read(from, limit)
	if err != nil {
		return page, err
	}
	page.Next = uint64(max(after, 0))
	if after < 0 && len(recs) == 0 {
		page.Next = page.LastSeq
	}
	for _, r := range recs {
		page.Events = append(page.Events, r.Event)
		page.Next = r.Seq
	}
	return page, nil
}
