package ioc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TAXIIMediaType is the media type of TAXII 2.1 responses.
const TAXIIMediaType = "application/taxii+json;version=2.1"

// Defaults for TAXIIClient.
const (
	DefaultTAXIIMaxPages = 1000
	defaultTAXIITimeout  = 60 * time.Second
)

// TAXIIClient fetches STIX indicators from one TAXII 2.1 collection without
// discovery: the API root URL and collection id are configured. The zero
// value is not usable: set APIRoot and Collection. Methods are safe for
// concurrent use if the fields are not changed.
type TAXIIClient struct {
	// APIRoot is the API root URL, e.g. https://taxii.example.com/api1/.
	APIRoot string
	// Collection is the collection id.
	Collection string
	// Username and Password, if Username is set, are sent with basic auth.
	Username, Password string
	// Token, if set, is sent as a bearer token (instead of basic auth).
	Token string
	// HTTPClient makes the requests; nil means a client with a 60 s timeout.
	HTTPClient *http.Client
	// Source is copied into every indicator; empty means the collection URL.
	Source string
	// MaxPages bounds the pages followed per Fetch; 0 means
	// DefaultTAXIIMaxPages.
	MaxPages int
	// Limit, if positive, is sent as the limit parameter (objects per page).
	Limit int
	// MaxBytes and MaxIndicators bound each page and the whole fetch, as
	// in ParseOptions.
	MaxBytes      int64
	MaxIndicators int
}

// TAXIIError is returned when the server answers with an unexpected status.
type TAXIIError struct {
	StatusCode int
	Title      string // from the TAXII error message, if any
}

func (e *TAXIIError) Error() string {
	if e.Title != "" {
		return fmt.Sprintf("TAXII server: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Title)
	}
	return fmt.Sprintf("TAXII server: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// FetchResult is what one Fetch returned.
type FetchResult struct {
	Result
	// AddedLast is the latest X-TAXII-Date-Added-Last seen; pass it as
	// addedAfter to the next Fetch to get only newer objects. It is
	// addedAfter unchanged if the server sent none.
	AddedLast time.Time
	// Pages is the number of pages fetched.
	Pages int
}

func (c *TAXIIClient) objectsURL() (string, error) {
	root := c.APIRoot
	if root == "" || c.Collection == "" {
		return "", errors.New("APIRoot and Collection must be set")
	}
	u, err := url.Parse(root)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("invalid API root %q", clip(root))
	}
	if !strings.HasSuffix(root, "/") {
		root += "/"
	}
	return root + "collections/" + url.PathEscape(c.Collection) + "/objects/", nil
}

// Fetch gets the indicators added to the collection after addedAfter (all
// of them if it is zero), following "more"/"next" pagination.
func (c *TAXIIClient) Fetch(ctx context.Context, addedAfter time.Time) (*FetchResult, error) {
	base, err := c.objectsURL()
	if err != nil {
		return nil, fmt.Errorf("ioc: TAXII fetch: %w", err)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: defaultTAXIITimeout}
	}
	maxPages := c.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultTAXIIMaxPages
	}
	o := ParseOptions{Source: c.Source, MaxBytes: c.MaxBytes, MaxIndicators: c.MaxIndicators}
	if o.Source == "" {
		o.Source = "taxii:" + base
	}
	out := &FetchResult{AddedLast: addedAfter}
	next := ""
	for {
		if out.Pages >= maxPages {
			return nil, fmt.Errorf("ioc: TAXII fetch %s: more than %d pages: %w", base, maxPages, ErrTooLarge)
		}
		q := url.Values{}
		if !addedAfter.IsZero() {
			q.Set("added_after", addedAfter.UTC().Format(time.RFC3339Nano))
		}
		if next != "" {
			q.Set("next", next)
		}
		if c.Limit > 0 {
			q.Set("limit", fmt.Sprint(c.Limit))
		}
		u := base
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		env, last, err := c.page(ctx, hc, u, o)
		if err != nil {
			return nil, fmt.Errorf("ioc: TAXII fetch %s: %w", base, err)
		}
		out.Pages++
		if last.After(out.AddedLast) {
			out.AddedLast = last
		}
		if err := parseSTIXObjects(env.Objects, o, &out.Result); err != nil {
			return nil, fmt.Errorf("ioc: TAXII fetch %s: %w", base, err)
		}
		if !env.More {
			return out, nil
		}
		if env.Next == "" {
			// TAXII 2.1 lets a server page by added_after alone.
			if last.IsZero() || !last.After(addedAfter) {
				return nil, fmt.Errorf("ioc: TAXII fetch %s: more is true but the server gave neither next nor a newer X-TAXII-Date-Added-Last", base)
			}
			addedAfter = last
		}
		next = env.Next
	}
}

type taxiiEnvelope struct {
	More    bool              `json:"more"`
	Next    string            `json:"next"`
	Objects []json.RawMessage `json:"objects"`
}

func (c *TAXIIClient) page(ctx context.Context, hc *http.Client, u string, o ParseOptions) (*taxiiEnvelope, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Accept", TAXIIMediaType)
	switch {
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	case c.Username != "":
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer resp.Body.Close()
	body, err := readAll(resp.Body, o.maxBytes())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &TAXIIError{StatusCode: resp.StatusCode}
		var msg struct {
			Title string `json:"title"`
		}
		if json.Unmarshal(body, &msg) == nil {
			e.Title = clip(msg.Title)
		}
		return nil, time.Time{}, e
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "application/taxii+json" || (params["version"] != "" && params["version"] != "2.1") {
		return nil, time.Time{}, fmt.Errorf("response Content-Type %q, want %s", clip(resp.Header.Get("Content-Type")), TAXIIMediaType)
	}
	var env taxiiEnvelope
	if err := decodeStrict(body, &env); err != nil {
		return nil, time.Time{}, fmt.Errorf("envelope: %w", err)
	}
	var last time.Time
	if h := resp.Header.Get("X-TAXII-Date-Added-Last"); h != "" {
		t, err := time.Parse(time.RFC3339Nano, h)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("invalid X-TAXII-Date-Added-Last %q", clip(h))
		}
		last = t.UTC()
	}
	return &env, last, nil
}
