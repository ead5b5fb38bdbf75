package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/alert"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/siem"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// AlertsConfig says where alerts (Code of Practice guideline 10.7,
// docs/alerts.md) are delivered. Every sink is optional: with none, alerts
// are still raised, stored and served by the API.
type AlertsConfig struct {
	// WebhookURL receives each new alert as an HMAC-signed JSON POST
	// (siem.Webhook); https, or http to a loopback address. Empty: none.
	WebhookURL string
	// WebhookSecretFile holds the signing secret, at least 32 bytes
	// (surrounding white space is ignored). Required with WebhookURL.
	WebhookSecretFile string
	// SyslogAddr is a syslog collector's HOST:PORT for RFC 5424 over TLS
	// (siem.Syslog). Empty: none.
	SyslogAddr string
	// SyslogCAFile is a PEM file of CAs for the collector's certificate;
	// empty means the system roots.
	SyslogCAFile string
	// SMTPAddr is an SMTP relay's HOST:PORT (STARTTLS required) that
	// mails each new alert to EmailTo from EmailFrom. Empty: none.
	SMTPAddr  string
	EmailTo   []string
	EmailFrom string
	// RetryMin and RetryMax bound the wait before retrying a failed
	// delivery, which doubles with each failure; zero means 10s and 1h.
	// A delivery is retried until it succeeds.
	RetryMin, RetryMax time.Duration
}

// Sink names, as stored with pending deliveries.
const (
	sinkWebhook = "webhook"
	sinkSyslog  = "syslog"
	sinkEmail   = "email"
)

// alertSender delivers one alert; siem's Webhook, Syslog and Mailer are
// alertSenders.
type alertSender interface {
	SendAlert(ctx context.Context, a siem.Alert) error
}

// alerter runs the rules over events and state changes, stores what fires
// and delivers new alerts in the background. Ingestion never waits for a
// delivery: an alert is stored with one pending delivery per sink in the
// same transaction, and each sink's sender works through them.
type alerter struct {
	s        *Server
	engine   *alert.Engine
	sinks    map[string]alertSender
	names    []string // of sinks, sorted
	retryMin time.Duration
	retryMax time.Duration

	mu      sync.Mutex
	pending map[string]bool   // devices whose new events are to be read
	health  map[string]string // last reported health status by device
	read    chan struct{}     // wakes the reader
	send    map[string]chan struct{}
}

// alertDeliveryLease is how long a claimed delivery is left to its sender
// before another may take it.
const alertDeliveryLease = 2 * time.Minute

// maxHealthCache bounds the remembered health statuses.
const maxHealthCache = 1 << 20

func newAlerter(s *Server) (*alerter, error) {
	cfg := s.cfg.Alerts
	eng, err := alert.New(alert.DefaultRules())
	if err != nil {
		return nil, err
	}
	a := &alerter{s: s, engine: eng, sinks: map[string]alertSender{}, retryMin: cfg.RetryMin, retryMax: cfg.RetryMax,
		pending: map[string]bool{}, health: map[string]string{}, read: make(chan struct{}, 1), send: map[string]chan struct{}{}}
	if a.retryMin <= 0 {
		a.retryMin = 10 * time.Second
	}
	if a.retryMax <= 0 {
		a.retryMax = time.Hour
	}
	a.retryMax = max(a.retryMax, a.retryMin)
	// Each webhook attempt is one POST: retries are the sender's, recorded
	// in the store.
	w, err := newWebhookSink("alerts", cfg.WebhookURL, cfg.WebhookSecretFile, 1)
	if err != nil {
		return nil, err
	}
	if w != nil {
		a.sinks[sinkWebhook] = w
	}
	sl, err := newSyslogSink("alerts", cfg.SyslogAddr, cfg.SyslogCAFile)
	if err != nil {
		return nil, err
	}
	if sl != nil {
		a.sinks[sinkSyslog] = sl
	}
	if cfg.SMTPAddr != "" {
		m, err := siem.NewMailer(siem.MailConfig{Addr: cfg.SMTPAddr, From: cfg.EmailFrom, To: cfg.EmailTo})
		if err != nil {
			return nil, fmt.Errorf("server: alerts: %w", err)
		}
		a.sinks[sinkEmail] = m
	} else if len(cfg.EmailTo) > 0 || cfg.EmailFrom != "" {
		return nil, errors.New("server: alerts: email addresses without an SMTP relay")
	}
	for _, n := range []string{sinkEmail, sinkSyslog, sinkWebhook} {
		if a.sinks[n] != nil {
			a.names = append(a.names, n)
			a.send[n] = make(chan struct{}, 1)
		}
	}
	return a, nil
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run reads events and delivers alerts until ctx ends, then closes the
// sinks.
func (a *alerter) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.readLoop(ctx)
	}()
	for _, n := range a.names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.sendLoop(ctx, n)
		}()
	}
	wg.Wait()
	for _, snd := range a.sinks {
		if c, ok := snd.(interface{ Close() error }); ok {
			c.Close()
		}
	}
}

// eventsStored tells the reader that a device has new events.
func (a *alerter) eventsStored(deviceID string) {
	a.mu.Lock()
	a.pending[deviceID] = true
	a.mu.Unlock()
	wake(a.read)
}

// readLoop runs the rules over stored events: of devices it is told about
// at once, and of every device with unread events at start and each
// minute (which catches what a crash or a shutdown left unread).
func (a *alerter) readLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	sweep := true
	var pruned time.Time
	for {
		if now := a.s.now(); now.Sub(pruned) >= time.Hour {
			pruned = now
			n, err := a.s.store.PruneAlerts(ctx, now.Add(-a.s.eventRetention()))
			switch {
			case err != nil && ctx.Err() == nil:
				a.s.log.Warn("alerts: pruning resolved alerts", "err", err)
			case n > 0:
				a.s.log.Info("pruned resolved alerts past the event retention", "deleted", n)
			}
		}
		if sweep {
			devs, err := a.s.store.DevicesWithUnreadEvents(ctx, 10000)
			if err != nil && ctx.Err() == nil {
				a.s.log.Warn("alerts: listing devices with unread events", "err", err)
			}
			a.mu.Lock()
			for _, d := range devs {
				a.pending[d] = true
			}
			a.mu.Unlock()
		}
		a.mu.Lock()
		devs := make([]string, 0, len(a.pending))
		for d := range a.pending {
			devs = append(devs, d)
		}
		clear(a.pending)
		a.mu.Unlock()
		for _, d := range devs {
			if err := a.readDevice(ctx, d); err != nil && ctx.Err() == nil {
				a.s.log.Error("alerts: reading device events (retried within a minute)", "device", d, "err", err)
			}
		}
		sweep = false
		select {
		case <-ctx.Done():
			return
		case <-a.read:
		case <-t.C:
			sweep = true
		}
	}
}

// readDevice runs the rules over a device's events past its cursor, in
// order, moving the cursor after each page. An alert that cannot be stored
// stops it before the cursor passes the event, which is read again later.
func (a *alerter) readDevice(ctx context.Context, deviceID string) error {
	cur, err := a.s.store.AlertCursor(ctx, deviceID)
	if err != nil {
		return err
	}
	const page = 500
	// Only events of types a rule looks at are read (most are connection
	// logs, which none does), up to the newest id stored now; the cursor
	// then moves past the rest.
	hi, err := a.s.store.MaxEventID(ctx)
	if err != nil || hi <= cur {
		return err
	}
	wanted := a.engine.SignalTypes()
	for {
		evs, err := a.s.store.ListEvents(ctx, store.EventFilter{DeviceID: deviceID, Types: wanted, After: cur, AtMost: hi, Ascending: true, Limit: page})
		if err != nil {
			return err
		}
		var ferr error
		for i := range evs {
			e := &evs[i]
			sig, err := alert.FromEvent(e.ID, e.Data, e.ServerTime)
			if err != nil {
				a.s.log.Warn("alerts: skipping an event that does not parse", "device", deviceID, "event_id", e.ID, "err", err)
			} else if err := a.apply(ctx, sig); err != nil {
				ferr = err
				break
			}
			cur = e.ID
		}
		if ferr != nil {
			if len(evs) > 0 {
				if err := a.s.store.SetAlertCursor(ctx, deviceID, cur); err != nil {
					return err
				}
			}
			return ferr
		}
		if len(evs) < page {
			// Every event of a wanted type up to hi is read.
			return a.s.store.SetAlertCursor(ctx, deviceID, hi)
		}
		if err := a.s.store.SetAlertCursor(ctx, deviceID, cur); err != nil {
			return err
		}
	}
}

// apply runs the rules over one signal and stores the outcome.
func (a *alerter) apply(ctx context.Context, sig *alert.Signal) error {
	res := a.engine.Evaluate(sig)
	for _, c := range res.Cleared {
		n, err := a.s.store.ResolveAlerts(ctx, c.Rule, c.DeviceID, c.Time)
		if err != nil {
			return err
		}
		if n > 0 {
			a.s.log.Info("alerts resolved", "rule", c.Rule, "device", c.DeviceID, "count", n)
		}
	}
	for _, f := range res.Fired {
		st := &store.Alert{ID: newID("alr"), Rule: f.Rule, SeverityID: f.Severity, DeviceID: f.DeviceID, DedupKey: f.Key,
			Summary: f.Summary, FirstSeen: f.Time, LastSeen: f.Time}
		for _, r := range f.Refs {
			st.Refs = append(st.Refs, store.AlertRef{EventID: r.EventID, DeviceID: r.DeviceID, Seq: r.Seq, Type: r.Type})
		}
		created, err := a.s.store.RaiseAlert(ctx, st, a.names)
		if err != nil {
			return fmt.Errorf("storing a %s alert: %w", f.Rule, err)
		}
		if created {
			a.s.log.Warn("alert raised", "alert", st.ID, "rule", st.Rule, "severity", events.SeverityName(st.SeverityID), "device", st.DeviceID, "summary", st.Summary)
			for _, n := range a.names {
				wake(a.send[n])
			}
		}
	}
	return nil
}

// stateChange runs the rules over a change the server saw itself. It is
// called from request handlers after the change is stored: it stores the
// alert before returning (a failure is logged, never the caller's), and
// delivery happens in the background.
func (a *alerter) stateChange(ctx context.Context, typ, deviceID string, fields map[string]string) {
	sig := &alert.Signal{Type: typ, DeviceID: deviceID, Time: a.s.now().UTC(), Fields: fields}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := a.apply(ctx, sig); err != nil {
		a.s.log.Error("ALERT NOT STORED", "signal", typ, "device", deviceID, "fields", fields, "err", err)
	}
}

// sendLoop delivers a sink's due alerts until ctx ends.
func (a *alerter) sendLoop(ctx context.Context, name string) {
	snd := a.sinks[name]
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			ds, err := a.s.store.ClaimAlertDeliveries(ctx, name, a.s.now(), alertDeliveryLease, 20)
			if err != nil {
				if ctx.Err() == nil {
					a.s.log.Warn("alerts: claiming deliveries", "sink", name, "err", err)
				}
				break
			}
			for _, d := range ds {
				a.deliver(ctx, name, snd, d)
			}
			if len(ds) < 20 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-a.send[name]:
		case <-t.C:
		}
	}
}

func (a *alerter) deliver(ctx context.Context, name string, snd alertSender, d store.AlertDelivery) {
	sa := siem.Alert{ID: d.Alert.ID, Rule: d.Alert.Rule, Severity: d.Alert.SeverityID, DeviceID: d.Alert.DeviceID,
		Summary: d.Alert.Summary, Time: d.Alert.FirstSeen}
	for _, r := range d.Alert.Refs {
		sa.Events = append(sa.Events, siem.EventRef{DeviceID: r.DeviceID, Seq: r.Seq, Type: r.Type})
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	err := snd.SendAlert(sctx, sa)
	cancel()
	// Record the outcome even when shutting down.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err == nil {
		if err := a.s.store.AlertDelivered(wctx, d.Alert.ID, name, a.s.now()); err != nil {
			a.s.log.Warn("alerts: recording a delivery (it may be sent again)", "alert", d.Alert.ID, "sink", name, "err", err)
		}
		return
	}
	backoff := a.retryMin << min(d.Attempts, 20)
	if backoff <= 0 || backoff > a.retryMax {
		backoff = a.retryMax
	}
	backoff = time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
	next := a.s.now().Add(backoff)
	a.s.log.Warn("alert delivery failed; will retry", "alert", d.Alert.ID, "sink", name, "attempt", d.Attempts+1, "retry_at", next, "err", err)
	if err := a.s.store.AlertDeliveryFailed(wctx, d.Alert.ID, name, next, err.Error()); err != nil {
		a.s.log.Warn("alerts: recording a failed delivery (retried after the lease)", "alert", d.Alert.ID, "sink", name, "err", err)
	}
}

// Hooks called by the handlers that change device state.

// alertEnrolled: a device enrolled (or re-enrolled).
func (s *Server) alertEnrolled(ctx context.Context, d *store.Device, reenrol bool) {
	action := "enroll"
	if reenrol {
		action = "reenroll"
	}
	group := d.Group
	if group == "" {
		group = "(none)"
	}
	s.alerts.stateChange(ctx, alert.SignalEnrolled, d.ID, map[string]string{"group": group, "action": action})
}

// alertRevoked: a device was revoked.
func (s *Server) alertRevoked(ctx context.Context, deviceID, actor, reason string) {
	s.alerts.stateChange(ctx, alert.SignalRevoked, deviceID, map[string]string{"actor": actor, "reason": reason})
}

// alertAttestation: an attestation was recorded; a failure raises
// attestation.failed (and device.revoked when that is the failure
// action), a pass resolves it.
func (s *Server) alertAttestation(ctx context.Context, deviceID string, failed bool, problems []string) {
	if !failed {
		s.alerts.stateChange(ctx, alert.SignalAttestationPassed, deviceID, nil)
		return
	}
	action := s.cfg.Attestation.FailureAction
	s.alerts.stateChange(ctx, alert.SignalAttestationFailed, deviceID, map[string]string{"action": action, "problems": strings.Join(problems, "; ")})
	if action == ActionRevoke {
		s.alertRevoked(ctx, deviceID, "system", "failed attestation")
	}
}

// alertUpdateStatus: a device reported on an update assignment.
func (s *Server) alertUpdateStatus(ctx context.Context, deviceID string, st *api.UpdateStatus) {
	if st.Status != "failed" && st.Status != "rolled-back" {
		return
	}
	s.alerts.stateChange(ctx, alert.SignalUpdateStatus, deviceID, map[string]string{"status": st.Status, "deployment_id": st.DeploymentID, "detail": st.Detail})
}

// alertHealth: a device checked in with a health status. Called before
// the check-in is stored, so that the stored status is the previous one
// the first time a device is seen after a start.
func (s *Server) alertHealth(ctx context.Context, deviceID, status string) {
	if st, ok := api.NormalizeHealthStatus(status); ok {
		status = st
	}
	a := s.alerts
	a.mu.Lock()
	prev, known := a.health[deviceID]
	a.mu.Unlock()
	if !known {
		d, err := s.store.GetDevice(ctx, deviceID)
		if err != nil {
			return // the next check-in tries again
		}
		prev = d.HealthStatus
	}
	if known && prev == status {
		return
	}
	a.mu.Lock()
	if len(a.health) >= maxHealthCache {
		clear(a.health)
	}
	a.health[deviceID] = status
	a.mu.Unlock()
	if prev != status {
		a.stateChange(ctx, alert.SignalHealthChanged, deviceID, map[string]string{"status": status, "previous": orDash(prev)})
	}
}

func orDash(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// afterEvents wraps the event ingestion handler: once a batch is stored,
// the reader runs the rules over it.
func (s *Server) afterEvents(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		if err == nil {
			s.alerts.eventsStored(deviceFrom(r).id)
		}
		return err
	}
}

// AlertView converts a stored alert for the API.
func AlertView(a *store.Alert) api.Alert {
	out := api.Alert{ID: a.ID, Rule: a.Rule, SeverityID: a.SeverityID, Severity: events.SeverityName(a.SeverityID), DeviceID: a.DeviceID,
		Key: a.DedupKey, Summary: a.Summary, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, Count: a.Count, Status: a.Status,
		AckedBy: a.AckedBy, Events: make([]api.AlertEventRef, 0, len(a.Refs))}
	if !a.AckedAt.IsZero() {
		t := a.AckedAt
		out.AckedAt = &t
	}
	if !a.ResolvedAt.IsZero() {
		t := a.ResolvedAt
		out.ResolvedAt = &t
	}
	for _, r := range a.Refs {
		out.Events = append(out.Events, api.AlertEventRef{EventID: r.EventID, DeviceID: r.DeviceID, Seq: r.Seq, Type: r.Type})
	}
	return out
}

// handleListAlerts answers GET /api/v1/alerts: the alerts of the devices
// the caller may see (auditor or above), most recently seen first.
func (s *Server) handleListAlerts(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	q := r.URL.Query()
	f := store.AlertFilter{Scope: p.Scope(api.RoleAuditor), Status: q.Get("status")}
	switch f.Status {
	case "", api.AlertOpen, api.AlertAcknowledged, api.AlertResolved:
	default:
		return badRequest("status must be open, acknowledged or resolved")
	}
	if dev := q.Get("device"); dev != "" {
		if _, err := s.VisibleDevice(r, p, dev, api.RoleAuditor); err != nil {
			return err
		}
		f.DeviceID = dev
	}
	var err error
	if f.Limit, err = intParam(r, "limit", 100, api.MaxAlertPage); err != nil {
		return err
	}
	list, err := s.store.ListAlerts(r.Context(), f)
	if err != nil {
		return internal(err)
	}
	out := api.AlertList{Alerts: make([]api.Alert, 0, len(list))}
	for _, a := range list {
		out.Alerts = append(out.Alerts, AlertView(a))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleAckAlert acknowledges an alert (operator or above over its
// device's group), auditing it.
func (s *Server) handleAckAlert(w http.ResponseWriter, r *http.Request) error {
	a, err := s.AckAlert(r, PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}
