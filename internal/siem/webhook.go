package siem

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// Webhook headers.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
	// t + "." + body)>". A receiver checks it with VerifyWebhook.
	SignatureHeader = "Bulwark-Signature"
	// DeliveryHeader carries a random id, the same on every retry of one
	// delivery, so a receiver can drop repeats.
	DeliveryHeader = "Bulwark-Delivery"
	// KindHeader says what the body is: "event" (an events.Event) or
	// "alert" (an Alert).
	KindHeader = "Bulwark-Kind"
)

// MinWebhookSecret is the shortest secret NewWebhook accepts, in bytes.
const MinWebhookSecret = 32

// DefaultWebhookTolerance is the replay window VerifyWebhook uses when given
// a tolerance of zero.
const DefaultWebhookTolerance = 5 * time.Minute

// NewWebhookSecret returns a fresh 32-byte secret from crypto/rand.
func NewWebhookSecret() []byte {
	b := make([]byte, MinWebhookSecret)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return b
}

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// URL receives the POSTs; it must be https, or http to a loopback
	// address.
	URL string
	// Secret keys the signatures; at least MinWebhookSecret bytes.
	Secret []byte
	// Client sends the requests; nil means a client with a 10s timeout per
	// attempt.
	Client *http.Client
	// MaxAttempts bounds the tries per delivery; zero means 5.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the pause between tries, which doubles
	// (with ±25% jitter); zero means 500ms and 30s. A 429 or 503 answer's
	// Retry-After (in seconds) is honoured up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock used to sign; nil means time.Now.
	Now func() time.Time
}

// Webhook is a Sink that POSTs each event, and each alert given to
// SendAlert, as JSON to a URL, signed with HMAC-SHA256. A delivery succeeds
// on any 2xx answer; 5xx, 408, 429 and transport errors (including
// timeouts) are retried with backoff up to MaxAttempts; any other answer
// fails the delivery at once. It is safe for concurrent use.
type Webhook struct {
	cfg WebhookConfig
}

// DeliveryError reports a delivery that was given up.
type DeliveryError struct {
	Delivered  int    // events of the batch delivered before this one
	DeliveryID string // the Bulwark-Delivery id of the failed delivery
	Attempts   int    // tries made
	StatusCode int    // the last HTTP status, 0 if there was no answer
	Err        error  // the last transport error, if any
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "siem: webhook delivery %s failed after %d attempt", e.DeliveryID, e.Attempts)
	if e.Attempts != 1 {
		b.WriteByte('s')
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// NewWebhook checks the configuration.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("siem: webhook URL: %w", err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("siem: webhook URL %q: must be https (or http to a loopback address)", cfg.URL)
	}
	if len(cfg.Secret) < MinWebhookSecret {
		return nil, fmt.Errorf("siem: webhook secret is %d bytes, want at least %d", len(cfg.Secret), MinWebhookSecret)
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Webhook{cfg: cfg}, nil
}

// Send posts the events one by one, in order. It stops at the first event
// it could not deliver and returns a *DeliveryError whose Delivered field
// counts the events before it, which the caller may drop from its queue.
func (w *Webhook) Send(ctx context.Context, evs []events.Event) error {
	bodies := make([][]byte, len(evs))
	for i := range evs {
		b, err := evs[i].Marshal()
		if err != nil {
			return &InvalidEventError{Index: i, Err: err}
		}
		bodies[i] = b
	}
	for i, body := range bodies {
		if err := w.deliver(ctx, "event", body); err != nil {
			err.Delivered = i
			return err
		}
	}
	return nil
}

// SendAlert posts one alert. A failure is a *DeliveryError.
func (w *Webhook) SendAlert(ctx context.Context, a Alert) error {
	if err := a.Validate(); err != nil {
		return err
	}
	a.Time = a.Time.UTC()
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("siem: encode alert: %w", err)
	}
	if err := w.deliver(ctx, "alert", body); err != nil {
		return err
	}
	return nil
}

// Close releases idle connections of the client.
func (w *Webhook) Close() error {
	w.cfg.Client.CloseIdleConnections()
	return nil
}

func (w *Webhook) deliver(ctx context.Context, kind string, body []byte) *DeliveryError {
	var id [16]byte
	rand.Read(id[:])
	derr := &DeliveryError{DeliveryID: hex.EncodeToString(id[:])}
	backoff := w.cfg.MinBackoff
	for {
		derr.Attempts++
		status, retryAfter, err := w.post(ctx, kind, derr.DeliveryID, body)
		if err == nil && status/100 == 2 {
			return nil
		}
		derr.StatusCode, derr.Err = status, err
		retry := err != nil || status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
		if !retry || derr.Attempts >= w.cfg.MaxAttempts || ctx.Err() != nil {
			if ctx.Err() != nil && derr.Err == nil {
				derr.Err = ctx.Err()
			}
			return derr
		}
		pause := time.Duration(float64(backoff) * (0.75 + 0.5*mrand.Float64()))
		if retryAfter > pause {
			pause = min(retryAfter, w.cfg.MaxBackoff)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if derr.Err == nil {
				derr.Err = ctx.Err()
			}
			return derr
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

func (w *Webhook) post(ctx context.Context, kind, id string, body []byte) (status int, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bulwark-webhook/1")
	req.Header.Set(SignatureHeader, SignWebhook(w.cfg.Secret, w.cfg.Now(), body))
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(KindHeader, kind)
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, nil
}

// SignWebhook returns the Bulwark-Signature header value for body sent at t.
func SignWebhook(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors from VerifyWebhook.
var (
	ErrSignatureMalformed = errors.New("siem: malformed webhook signature header")
	ErrSignatureExpired   = errors.New("siem: webhook signature timestamp outside the tolerance")
	ErrSignatureMismatch  = errors.New("siem: webhook signature does not match")
)

// VerifyWebhook checks a Bulwark-Signature header against the body as
// received, for a receiver: the timestamp must be within tolerance of now
// (either way; zero means DefaultWebhookTolerance), and one of the v1
// signatures (a sender rotating secrets may send several) must be the
// HMAC-SHA256 of "t.body" under secret. The tolerance is the replay window;
// a receiver that must not act twice also remembers the Bulwark-Delivery
// ids it saw within that window.
func VerifyWebhook(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrSignatureMalformed
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrSignatureMalformed
			}
			sigs = append(sigs, sig)
		}
		// Other schemes are ignored, so a later v2 can be added beside v1.
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 || sec <= 0 {
		return ErrSignatureMalformed
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureExpired
	}
	want := webhookMAC(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}

// isLoopback reports whether host is a loopback IP address or "localhost".
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
