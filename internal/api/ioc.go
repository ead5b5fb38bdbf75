package api

import "time"

// Indicators of compromise (Code of Practice guideline 10.2, docs/ioc.md).
const (
	// PathIoC is where a device fetches the active indicators.
	PathIoC = "/device/v1/ioc"
	// MaxIoCImport bounds an imported indicator file.
	MaxIoCImport = 64 << 20
	// MaxIoCPage bounds GET /api/v1/ioc/indicators.
	MaxIoCPage = 10000
)

// IoCSource is an indicator source: an imported file or a polled feed.
type IoCSource struct {
	Name string `json:"name"`
	// Kind: stix, misp or list (imported files); taxii or misp-feed (feeds).
	Kind       string `json:"kind"`
	URL        string `json:"url,omitempty"`
	Collection string `json:"collection,omitempty"`
	// Interval is a feed's poll interval (Go duration, e.g. "1h0m0s").
	Interval string `json:"interval,omitempty"`
	// DefaultExpiry is the lifetime given to indicators without their own.
	DefaultExpiry string     `json:"default_expiry,omitempty"`
	Version       int64      `json:"version"`
	Indicators    int        `json:"indicators"`
	Skipped       int        `json:"skipped"`
	CreatedAt     time.Time  `json:"created_at"`
	CreatedBy     string     `json:"created_by,omitempty"`
	UpdatedAt     *time.Time `json:"updated_at,omitempty"`
	// Feeds only: the last poll, the next, consecutive failures and the
	// last failure's message.
	LastPoll  *time.Time `json:"last_poll,omitempty"`
	NextPoll  *time.Time `json:"next_poll,omitempty"`
	Failures  int        `json:"failures,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// IoCSourceList answers GET /api/v1/ioc/sources.
type IoCSourceList struct {
	Sources []IoCSource `json:"sources"`
}

// IoCImportResult answers an import (POST /api/v1/ioc/sources).
type IoCImportResult struct {
	Source IoCSource `json:"source"`
	// Skipped entries carried no usable indicator; Reasons describes the
	// first few.
	Reasons []string `json:"reasons,omitempty"`
}

// IoCFeedCreate adds a polled feed (POST /api/v1/ioc/feeds).
type IoCFeedCreate struct {
	Name string `json:"name"`
	// Kind is "taxii" (URL is the TAXII 2.1 API root, Collection the
	// collection id) or "misp-feed" (URL is a MISP feed: its
	// manifest.json and events are read, or one event's JSON if URL ends
	// in .json).
	Kind       string `json:"kind"`
	URL        string `json:"url"`
	Collection string `json:"collection,omitempty"`
	// Interval between polls, a Go duration; empty means the server's
	// default (1h).
	Interval string `json:"interval,omitempty"`
	// Expires, a Go duration, is the lifetime of indicators without their
	// own expiry; empty means they do not expire.
	Expires string `json:"expires,omitempty"`
}

// IoCIndicator is one indicator.
type IoCIndicator struct {
	Source  string     `json:"source"`
	Type    string     `json:"type"`
	Value   string     `json:"value"`
	Ref     string     `json:"ref,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
}

// IoCIndicatorList answers GET /api/v1/ioc/indicators.
type IoCIndicatorList struct {
	Indicators []IoCIndicator `json:"indicators"`
}

// DeviceIoC is one indicator as sent to devices.
type DeviceIoC struct {
	Type  string `json:"t"`
	Value string `json:"v"`
	// Expires is a Unix time in seconds; absent means never.
	Expires int64 `json:"x,omitempty"`
	// Source names the indicator's source (of duplicates, the one kept).
	Source string `json:"s,omitempty"`
}

// What agents do on a match of the device set (DeviceIoCSet.Action).
const (
	// IoCActionFlag: record an ioc.match event on the device.
	IoCActionFlag = "flag"
	// IoCActionBlock: flag, and drop traffic to and from IP and CIDR
	// indicators (nftables on Linux; docs/ioc.md).
	IoCActionBlock = "block"
)

// DeviceIoCSet answers GET /device/v1/ioc: every active indicator of
// every source, deduplicated by type and value, and the fleet's policy
// for matches. Version (also the ETag) changes whenever the set or the
// action does.
type DeviceIoCSet struct {
	Version     string    `json:"version"`
	GeneratedAt time.Time `json:"generated_at"`
	// Action is IoCActionFlag or IoCActionBlock; absent means flag.
	Action     string      `json:"action,omitempty"`
	Indicators []DeviceIoC `json:"indicators"`
}
