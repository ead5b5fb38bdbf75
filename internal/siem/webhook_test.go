package siem

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// webhookReceiver is an httptest server that verifies every request the
// way a real receiver would and records what it accepted; respond decides
// the answer to the n-th request (from 1).
type webhookReceiver struct {
	srv     *httptest.Server
	secret  []byte
	respond func(n int, w http.ResponseWriter) bool // true: answered, do not record

	mu        sync.Mutex
	requests  int
	accepted  [][]byte
	kinds     []string
	deliverys []string // delivery id of every request, accepted or not
}

func newWebhookReceiver(t *testing.T, respond func(n int, w http.ResponseWriter) bool) *webhookReceiver {
	r := &webhookReceiver{secret: NewWebhookSecret(), respond: respond}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests++
		n := r.requests
		r.deliverys = append(r.deliverys, req.Header.Get(DeliveryHeader))
		r.mu.Unlock()
		if err := VerifyWebhook(r.secret, req.Header.Get(SignatureHeader), body, time.Now(), time.Minute); err != nil {
			t.Errorf("request %d: %v", n, err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %d: %s with Content-Type %q", n, req.Method, req.Header.Get("Content-Type"))
		}
		if r.respond != nil && r.respond(n, w) {
			return
		}
		r.mu.Lock()
		r.accepted = append(r.accepted, body)
		r.kinds = append(r.kinds, req.Header.Get(KindHeader))
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *webhookReceiver) webhook(t *testing.T, cfg WebhookConfig) *Webhook {
	cfg.URL, cfg.Secret, cfg.Client = r.srv.URL+"/hook", r.secret, r.srv.Client()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 5 * time.Millisecond
	}
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestWebhookDeliversSignedEvents(t *testing.T) {
	r := newWebhookReceiver(t, nil)
	w := r.webhook(t, WebhookConfig{})
	evs := testEvents(t, "dev-w", 10, 3, 0)
	if err := w.Send(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if len(r.accepted) != 3 {
		t.Fatalf("receiver accepted %d requests, want 3", len(r.accepted))
	}
	ids := map[string]bool{}
	for i, body := range r.accepted {
		got, err := events.Decode(body)
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, &evs[i]) || r.kinds[i] != "event" {
			t.Errorf("body %d (%s) = %+v, want %+v", i, r.kinds[i], got, evs[i])
		}
		ids[r.deliverys[i]] = true
	}
	if len(ids) != 3 {
		t.Errorf("delivery ids not distinct: %v", r.deliverys)
	}
}

func TestWebhookAlert(t *testing.T) {
	r := newWebhookReceiver(t, nil)
	w := r.webhook(t, WebhookConfig{})
	evs := testEvents(t, "dev-w", 1, 2, 0)
	a := Alert{ID: "al-1", Rule: "ssh-bruteforce", Severity: events.SeverityHigh, DeviceID: "dev-w",
		Summary: "5 failed SSH logins for root in 60s", Time: testTime.In(time.FixedZone("X", 3600)),
		Events: []EventRef{Ref(&evs[0]), Ref(&evs[1])}}
	if err := w.SendAlert(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if len(r.accepted) != 1 || r.kinds[0] != "alert" {
		t.Fatalf("accepted %d, kinds %v", len(r.accepted), r.kinds)
	}
	var got Alert
	if err := json.Unmarshal(r.accepted[0], &got); err != nil {
		t.Fatal(err)
	}
	a.Time = a.Time.UTC()
	if !reflect.DeepEqual(got, a) {
		t.Errorf("alert = %+v, want %+v", got, a)
	}
	if !strings.Contains(string(r.accepted[0]), `"time":"2026-11-26T21:04:05.123456789Z"`) {
		t.Errorf("alert JSON: %s", r.accepted[0])
	}
	bad := a
	bad.Summary = ""
	if err := w.SendAlert(context.Background(), bad); err == nil {
		t.Error("alert without summary sent")
	}
}

func TestWebhookRetries(t *testing.T) {
	tests := []struct {
		name       string
		respond    func(n int, w http.ResponseWriter) bool
		wantErr    bool
		wantTries  int
		wantStatus int
	}{
		{"5xx then success", func(n int, w http.ResponseWriter) bool {
			if n <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			}
			return false
		}, false, 3, 0},
		{"429 then success", func(n int, w http.ResponseWriter) bool {
			if n == 1 {
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}
			return false
		}, false, 2, 0},
		{"always 500: gives up", func(n int, w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}, true, 4, 500},
		{"400: no retry", func(n int, w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusBadRequest)
			return true
		}, true, 1, 400},
		{"timeout then success", func(n int, w http.ResponseWriter) bool {
			if n == 1 {
				time.Sleep(700 * time.Millisecond)
			}
			return false
		}, false, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newWebhookReceiver(t, tt.respond)
			w := r.webhook(t, WebhookConfig{MaxAttempts: 4})
			w.cfg.Client.Timeout = 300 * time.Millisecond
			err := w.Send(context.Background(), testEvents(t, "dev-r", 1, 1, 0))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Send = %v", err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.requests != tt.wantTries {
				t.Errorf("%d requests, want %d", r.requests, tt.wantTries)
			}
			for _, id := range r.deliverys {
				if id != r.deliverys[0] || len(id) != 32 {
					t.Errorf("delivery ids %v: want one 32-hex id on every retry", r.deliverys)
				}
			}
			if tt.wantErr {
				var de *DeliveryError
				if !errors.As(err, &de) || de.Attempts != tt.wantTries || de.StatusCode != tt.wantStatus || de.DeliveryID != r.deliverys[0] {
					t.Errorf("error %#v", err)
				}
			} else if len(r.accepted) != 1 {
				t.Errorf("accepted %d", len(r.accepted))
			}
		})
	}
}

func TestWebhookPartialBatch(t *testing.T) {
	r := newWebhookReceiver(t, func(n int, w http.ResponseWriter) bool {
		if n >= 3 {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	w := r.webhook(t, WebhookConfig{MaxAttempts: 2})
	err := w.Send(context.Background(), testEvents(t, "dev-p", 1, 4, 0))
	var de *DeliveryError
	if !errors.As(err, &de) || de.Delivered != 2 || de.Attempts != 2 || de.StatusCode != http.StatusBadGateway {
		t.Fatalf("Send = %#v, want 2 delivered then a 502 twice", err)
	}
	if !strings.Contains(err.Error(), "failed after 2 attempts: HTTP 502") {
		t.Errorf("error text %q", err)
	}
}

func TestWebhookContextEndsRetries(t *testing.T) {
	r := newWebhookReceiver(t, func(n int, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	w := r.webhook(t, WebhookConfig{MaxAttempts: 100, MinBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := w.Send(ctx, testEvents(t, "dev-c", 1, 1, 0))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Send took %v after its context ended", d)
	}
}

func TestNewWebhookChecks(t *testing.T) {
	secret := NewWebhookSecret()
	if len(secret) != 32 || bytes.Equal(secret, NewWebhookSecret()) {
		t.Fatalf("NewWebhookSecret: %x", secret)
	}
	tests := []struct {
		url    string
		secret []byte
		ok     bool
	}{
		{"https://siem.example.com/hook", secret, true},
		{"http://127.0.0.1:8080/hook", secret, true},
		{"http://[::1]/hook", secret, true},
		{"http://localhost/hook", secret, true},
		{"http://siem.example.com/hook", secret, false},
		{"ftp://siem.example.com/", secret, false},
		{"https://siem.example.com/hook", secret[:31], false},
	}
	for _, tt := range tests {
		_, err := NewWebhook(WebhookConfig{URL: tt.url, Secret: tt.secret})
		if (err == nil) != tt.ok {
			t.Errorf("NewWebhook(%s, %d-byte secret) = %v", tt.url, len(tt.secret), err)
		}
	}
}

func TestVerifyWebhook(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	body := []byte(`{"id":"al-1"}`)
	now := time.Unix(1_800_000_000, 0)
	good := SignWebhook(secret, now, body)
	otherSig := SignWebhook(other, now, body)
	tests := []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		tol    time.Duration
		want   error
	}{
		{"valid", good, body, now, time.Minute, nil},
		{"valid at the edge of the window", good, body, now.Add(time.Minute), time.Minute, nil},
		{"too old", good, body, now.Add(time.Minute + time.Second), time.Minute, ErrSignatureExpired},
		{"from the future", good, body, now.Add(-2 * time.Minute), time.Minute, ErrSignatureExpired},
		{"default tolerance 5m", good, body, now.Add(4 * time.Minute), 0, nil},
		{"default tolerance exceeded", good, body, now.Add(6 * time.Minute), 0, ErrSignatureExpired},
		{"body changed", good, []byte(`{"id":"al-2"}`), now, time.Minute, ErrSignatureMismatch},
		{"other secret", otherSig, body, now, time.Minute, ErrSignatureMismatch},
		{"rotation: one of two matches", otherSig + "," + good[strings.Index(good, "v1="):], body, now, time.Minute, nil},
		{"timestamp changed", "t=1800000001," + good[strings.Index(good, "v1="):], body, now, time.Minute, ErrSignatureMismatch},
		{"unknown scheme ignored", good + ",v0=abc", body, now, time.Minute, nil},
		{"empty", "", body, now, time.Minute, ErrSignatureMalformed},
		{"no v1", "t=1800000000", body, now, time.Minute, ErrSignatureMalformed},
		{"no t", good[strings.Index(good, "v1="):], body, now, time.Minute, ErrSignatureMalformed},
		{"two t", "t=1," + good, body, now, time.Minute, ErrSignatureMalformed},
		{"short v1", "t=1800000000,v1=abcd", body, now, time.Minute, ErrSignatureMalformed},
		{"non-hex v1", "t=1800000000,v1=" + strings.Repeat("zz", 32), body, now, time.Minute, ErrSignatureMalformed},
		{"non-numeric t", "t=soon,v1=" + strings.Repeat("00", 32), body, now, time.Minute, ErrSignatureMalformed},
	}
	for _, tt := range tests {
		if err := VerifyWebhook(secret, tt.header, tt.body, tt.now, tt.tol); err != tt.want {
			t.Errorf("%s: VerifyWebhook = %v, want %v", tt.name, err, tt.want)
		}
	}
	if !strings.HasPrefix(good, "t=1800000000,v1=") || len(good) != len("t=1800000000,v1=")+64 {
		t.Errorf("signature header %q", good)
	}
}

func FuzzVerifyWebhook(f *testing.F) {
	secret := bytes.Repeat([]byte{7}, 32)
	now := time.Unix(1_800_000_000, 0)
	f.Add(SignWebhook(secret, now, []byte("x")), []byte("x"))
	f.Add("t=1,v1=,v1=00", []byte(""))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := VerifyWebhook(secret, header, body, now, time.Minute)
		if err == nil && VerifyWebhook(bytes.Repeat([]byte{9}, 32), header, body, now, time.Minute) == nil {
			t.Fatalf("header %q verifies under two secrets", header)
		}
		// A header we produce always verifies.
		if err := VerifyWebhook(secret, SignWebhook(secret, now, body), body, now, time.Minute); err != nil {
			t.Fatal(err)
		}
	})
}
