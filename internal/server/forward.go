package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/siem"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// ForwardConfig forwards every stored security event to a SIEM (Code of
// Practice 10.3), as RFC 5424 syslog over TLS (RFC 5425) and/or a signed
// webhook. The zero value forwards nothing.
type ForwardConfig struct {
	// SyslogAddr is the collector's HOST:PORT; SyslogCAFile the PEM roots
	// its certificate must chain to (empty: the system roots).
	SyslogAddr, SyslogCAFile string
	// WebhookURL receives each event as a signed POST; WebhookSecretFile
	// holds the signing secret as text (at least 32 bytes).
	WebhookURL, WebhookSecretFile string
	// Lag holds back events younger than this, so that an event whose
	// transaction took a lower id but committed later is not skipped; zero
	// means 2 s.
	Lag time.Duration
	// Poll is how often each sink looks for new events; zero means 1 s.
	Poll time.Duration
}

const (
	forwardBatch       = 500
	forwardStatePrefix = "siem-forward/"
)

// forwarder sends stored events to each configured sink in id order,
// keeping a cursor per sink in the store: an event is forwarded at least
// once, and again only if the server stopped between sending it and
// saving the cursor.
type forwarder struct {
	s     *Server
	sinks map[string]siem.Sink
	lag   time.Duration
	poll  time.Duration
}

// newWebhookSink makes a signed-webhook sink from a URL and a secret file
// (text, surrounding white space ignored); what names the feature in
// errors. Both or neither must be set: nil, nil means neither.
func newWebhookSink(what, url, secretFile string, maxAttempts int) (*siem.Webhook, error) {
	switch {
	case url == "" && secretFile == "":
		return nil, nil
	case url == "":
		return nil, fmt.Errorf("server: %s: a webhook secret file without a webhook URL", what)
	case secretFile == "":
		return nil, fmt.Errorf("server: %s: a webhook needs a secret file", what)
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return nil, fmt.Errorf("server: %s: webhook secret: %w", what, err)
	}
	w, err := siem.NewWebhook(siem.WebhookConfig{URL: url, Secret: []byte(strings.TrimSpace(string(secret))), MaxAttempts: maxAttempts})
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", what, err)
	}
	return w, nil
}

// newSyslogSink makes a syslog-over-TLS sink for addr whose certificate
// must chain to the PEM roots in caFile (empty: the system roots); nil,
// nil when addr and caFile are both empty.
func newSyslogSink(what, addr, caFile string) (*siem.Syslog, error) {
	if addr == "" {
		if caFile != "" {
			return nil, fmt.Errorf("server: %s: a syslog CA file without a syslog address", what)
		}
		return nil, nil
	}
	sc := siem.SyslogConfig{Addr: addr}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("server: %s: syslog CA: %w", what, err)
		}
		sc.RootCAs = x509.NewCertPool()
		if !sc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server: %s: syslog CA: no PEM certificate in %s", what, caFile)
		}
	}
	sl, err := siem.NewSyslog(sc)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", what, err)
	}
	return sl, nil
}

func (s *Server) initForward() error {
	cfg := s.cfg.Forward
	f := &forwarder{s: s, sinks: map[string]siem.Sink{}, lag: cfg.Lag, poll: cfg.Poll}
	if f.lag <= 0 {
		f.lag = 2 * time.Second
	}
	if f.poll <= 0 {
		f.poll = time.Second
	}
	sl, err := newSyslogSink("event forwarding", cfg.SyslogAddr, cfg.SyslogCAFile)
	if err != nil {
		return err
	}
	if sl != nil {
		f.sinks["syslog"] = sl
	}
	w, err := newWebhookSink("event forwarding", cfg.WebhookURL, cfg.WebhookSecretFile, 0)
	if err != nil {
		return err
	}
	if w != nil {
		f.sinks["webhook"] = w
	}
	if len(f.sinks) > 0 {
		s.forward = f
	}
	return nil
}

// run forwards until ctx ends, then closes the sinks.
func (f *forwarder) run(ctx context.Context) {
	if f == nil {
		return
	}
	var wg sync.WaitGroup
	for name, sink := range f.sinks {
		wg.Go(func() { f.sendLoop(ctx, name, sink) })
	}
	wg.Wait()
	for _, sink := range f.sinks {
		sink.Close()
	}
}

func (f *forwarder) cursor(ctx context.Context, name string) (int64, error) {
	b, err := f.s.store.GetState(ctx, forwardStatePrefix+name)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// sendLoop sends one sink the events after its cursor, a batch at a time,
// retrying a failed batch with backoff (1 s doubling to 5 min).
func (f *forwarder) sendLoop(ctx context.Context, name string, sink siem.Sink) {
	log := f.s.log.With("component", "siem-forward", "sink", name)
	cur, err := f.cursor(ctx, name)
	if err != nil {
		log.Error("reading the forwarding cursor; starting from the beginning", "err", err)
	}
	backoff := time.Second
	for {
		n, next, err := f.sendBatch(ctx, sink, cur, log)
		if next != cur { // also after a partly delivered batch
			if perr := f.s.store.PutState(context.WithoutCancel(ctx), forwardStatePrefix+name, []byte(strconv.FormatInt(next, 10))); perr != nil {
				log.Error("saving the forwarding cursor", "err", perr)
			}
			cur = next
		}
		wait := f.poll
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			log.Warn("forwarding events failed; retrying", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(backoff*2, 5*time.Minute)
		case n == forwardBatch:
			wait = 0 // more are waiting
			backoff = time.Second
		default:
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// sendBatch sends the events after cur, returning how many it read and
// the new cursor. An event the sink cannot encode is logged and passed
// over, so that it does not hold up every later one.
func (f *forwarder) sendBatch(ctx context.Context, sink siem.Sink, cur int64, log *slog.Logger) (int, int64, error) {
	rows, err := f.s.store.ListEvents(ctx, store.EventFilter{After: cur, Ascending: true, Until: f.s.now().Add(-f.lag), Limit: forwardBatch})
	if err != nil || len(rows) == 0 {
		return 0, cur, err
	}
	evs := make([]events.Event, 0, len(rows))
	ids := make([]int64, 0, len(rows))
	for _, r := range rows {
		e, err := events.Decode(r.Data)
		if err != nil {
			log.Error("stored event does not decode; not forwarded", "id", r.ID, "device", r.DeviceID, "err", err)
			continue
		}
		st := r.ServerTime
		e.ServerTime = &st
		evs = append(evs, *e)
		ids = append(ids, r.ID)
	}
	last := rows[len(rows)-1].ID
	for len(evs) > 0 {
		err := sink.Send(ctx, evs)
		var bad *siem.InvalidEventError
		if errors.As(err, &bad) {
			log.Error("event cannot be encoded for the SIEM; not forwarded", "id", ids[bad.Index], "err", bad.Err)
			evs = append(evs[:bad.Index:bad.Index], evs[bad.Index+1:]...)
			ids = append(ids[:bad.Index:bad.Index], ids[bad.Index+1:]...)
			continue
		}
		var de *siem.DeliveryError
		if errors.As(err, &de) && de.Delivered > 0 {
			// The first Delivered went through: keep them as sent.
			return len(rows), ids[de.Delivered-1], err
		}
		if err != nil {
			return len(rows), cur, err
		}
		break
	}
	return len(rows), last, nil
}
