package ioc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// taxiiServer is a fake TAXII 2.1 API root serving one collection of
// indicators, two per page, with "next" cursors and added_after filtering.
type taxiiServer struct {
	t        *testing.T
	mu       sync.Mutex
	objects  []map[string]any // ordered by date added
	added    []time.Time
	requests []string
	auth     func(*http.Request) bool
}

func (s *taxiiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.URL.RequestURI())
	if !s.auth(r) {
		w.Header().Set("Content-Type", TAXIIMediaType)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"title":"authentication required"}`)
		return
	}
	if r.URL.Path != "/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/objects/" {
		http.NotFound(w, r)
		return
	}
	if a := r.Header.Get("Accept"); a != TAXIIMediaType {
		w.WriteHeader(http.StatusNotAcceptable)
		return
	}
	var after time.Time
	if v := r.URL.Query().Get("added_after"); v != "" {
		var err error
		if after, err = time.Parse(time.RFC3339Nano, v); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	start := 0
	if v := r.URL.Query().Get("next"); v != "" {
		fmt.Sscan(v, &start)
	}
	var objs []map[string]any
	var last time.Time
	i := start
	for ; i < len(s.objects) && len(objs) < 2; i++ {
		if s.added[i].After(after) {
			objs = append(objs, s.objects[i])
			last = s.added[i]
		}
	}
	env := map[string]any{"objects": objs}
	if i < len(s.objects) {
		env["more"] = true
		env["next"] = fmt.Sprint(i)
	}
	w.Header().Set("Content-Type", TAXIIMediaType)
	if !last.IsZero() {
		w.Header().Set("X-TAXII-Date-Added-Last", last.Format(time.RFC3339Nano))
	}
	json.NewEncoder(w).Encode(env)
}

func indicatorObject(n int, pattern string) map[string]any {
	return map[string]any{
		"type": "indicator", "spec_version": "2.1",
		"id":      fmt.Sprintf("indicator--00000000-0000-4000-8000-%012d", n),
		"created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z",
		"pattern": pattern, "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z",
	}
}

func newTAXIIServer(t *testing.T, auth func(*http.Request) bool) (*taxiiServer, *httptest.Server) {
	s := &taxiiServer{t: t, auth: auth}
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		s.objects = append(s.objects, indicatorObject(i, fmt.Sprintf("[ipv4-addr:value = '192.0.2.%d']", i)))
		s.added = append(s.added, base.Add(time.Duration(i)*time.Hour))
	}
	s.objects = append(s.objects, map[string]any{"type": "malware", "id": "malware--1", "name": "x"})
	s.added = append(s.added, base.Add(6*time.Hour))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func TestTAXIIFetch(t *testing.T) {
	s, srv := newTAXIIServer(t, func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer s3cret"
	})
	c := &TAXIIClient{
		APIRoot: srv.URL + "/api1", Collection: "91a7b528-80eb-42ed-a74d-c6fbd5a26116",
		Token: "s3cret", Source: "taxii-test", HTTPClient: srv.Client(),
	}
	res, err := c.Fetch(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Indicators) != 5 || res.Pages != 3 || res.Indicators[4].Value != "192.0.2.5" || res.Indicators[0].Source != "taxii-test" ||
		res.Indicators[0].Ref != "indicator--00000000-0000-4000-8000-000000000001" {
		t.Fatalf("Fetch = %d indicators, %d pages: %+v", len(res.Indicators), res.Pages, res.Indicators)
	}
	if want := time.Date(2024, 5, 1, 6, 0, 0, 0, time.UTC); !res.AddedLast.Equal(want) {
		t.Errorf("AddedLast = %v, want %v", res.AddedLast, want)
	}
	if got := s.requests[1]; !strings.Contains(got, "next=2") {
		t.Errorf("second request %q does not follow next", got)
	}

	// Incremental fetch.
	res, err = c.Fetch(context.Background(), time.Date(2024, 5, 1, 3, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Indicators) != 2 || res.Indicators[0].Value != "192.0.2.4" {
		t.Errorf("incremental Fetch = %+v", res.Indicators)
	}
	if got := s.requests[len(s.requests)-1]; !strings.Contains(got, "added_after=2024-05-01T03%3A00%3A00Z") {
		t.Errorf("request %q lacks added_after", got)
	}

	// Wrong token: the server's error title is reported.
	c.Token = "wrong"
	_, err = c.Fetch(context.Background(), time.Time{})
	var te *TAXIIError
	if !errors.As(err, &te) || te.StatusCode != 401 || te.Title != "authentication required" {
		t.Errorf("bad token: err = %v", err)
	}
}

func TestTAXIIBasicAuthAndErrors(t *testing.T) {
	_, srv := newTAXIIServer(t, func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "feed" && p == "pw"
	})
	c := &TAXIIClient{APIRoot: srv.URL + "/api1/", Collection: "91a7b528-80eb-42ed-a74d-c6fbd5a26116", Username: "feed", Password: "pw", HTTPClient: srv.Client()}
	res, err := c.Fetch(context.Background(), time.Time{})
	if err != nil || len(res.Indicators) != 5 {
		t.Fatalf("basic auth: %v, %+v", err, res)
	}
	if !strings.HasPrefix(res.Indicators[0].Source, "taxii:"+srv.URL) {
		t.Errorf("default Source = %q", res.Indicators[0].Source)
	}
	c.MaxPages = 2
	if _, err := c.Fetch(context.Background(), time.Time{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxPages: err = %v", err)
	}
	c.MaxPages = 0
	c.Collection = "other"
	if _, err := c.Fetch(context.Background(), time.Time{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown collection: err = %v", err)
	}
	if _, err := (&TAXIIClient{APIRoot: "ftp://x", Collection: "c"}).Fetch(context.Background(), time.Time{}); err == nil {
		t.Error("ftp API root accepted")
	}

	// A server that answers with the wrong media type is refused.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>")
	}))
	defer plain.Close()
	_, err = (&TAXIIClient{APIRoot: plain.URL, Collection: "c", HTTPClient: plain.Client()}).Fetch(context.Background(), time.Time{})
	if err == nil || !strings.Contains(err.Error(), "Content-Type") {
		t.Errorf("text/html: err = %v", err)
	}
	// A cancelled context stops the fetch.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Fetch(ctx, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}
