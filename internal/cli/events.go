package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func runEvents(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "list":
		return eventsList(ctx, args, stdout, stderr)
	case "export":
		return eventsExport(ctx, args, stdout, stderr)
	case "":
		return &usageError{"events needs a subcommand: list or export"}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for events (see bulwark help)", sub)}
}

// eventFilterFlags are the filters list and export share.
type eventFilterFlags struct {
	device, group, typ, severity, since, until string
}

func (f *eventFilterFlags) register(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&f.device, "device", "", "only this device `ID`")
	fs.StringVar(&f.group, "group", "", "only devices of this `group`")
	fs.StringVar(&f.typ, "type", "", "only this event `type`, e.g. auth.login (see docs/events.md)")
	fs.StringVar(&f.severity, "severity", "", "minimum `severity`: informational, low, medium, high, critical or fatal")
	fs.StringVar(&f.since, "since", "", "received since `T`: a duration back from now (24h, 7d) or an RFC 3339 time; empty: no bound")
	fs.StringVar(&f.until, "until", "", "received before `T` (same forms as --since); empty: no bound")
}

// query builds the filter query string, resolving relative times against
// now.
func (f *eventFilterFlags) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	for k, v := range map[string]string{"device": f.device, "group": f.group, "type": f.typ, "severity": f.severity} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, t := range []struct{ name, v string }{{"since", f.since}, {"until", f.until}} {
		if t.v == "" {
			continue
		}
		at, err := parseSince(t.v, now)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("--%s: %v", t.name, err)}
		}
		q.Set(t.name, at.UTC().Format(time.RFC3339))
	}
	return q, nil
}

// parseSince reads "24h", "90m", "7d" (back from now) or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d) nor an RFC 3339 time", v)
}

func eventsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("events list", stderr)
	var ff eventFilterFlags
	ff.register(fs)
	limit := fs.Int("limit", 100, "show at most `N` events, newest first")
	asJSON := fs.Bool("json", false, "print JSON (the stored events with their envelopes)")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	if *limit < 1 {
		return &usageError{"events list: --limit must be at least 1"}
	}
	q, err := ff.query(time.Now())
	if err != nil {
		return err
	}
	var all []api.StoredEvent
	cursor := ""
	for len(all) < *limit {
		q.Set("limit", strconv.Itoa(min(*limit-len(all), api.MaxEventPage)))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page api.EventPage
		if err := c.do(ctx, http.MethodGet, "/api/v1/events?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		all = append(all, page.Events...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if *asJSON {
		if all == nil {
			all = []api.StoredEvent{}
		}
		return printJSON(stdout, all)
	}
	printEvents(stdout, all)
	return nil
}

func printEvents(w io.Writer, list []api.StoredEvent) {
	tw := table(w)
	fmt.Fprintln(tw, "DEVICE TIME\tRECEIVED\tDEVICE\tSEQ\tSEVERITY\tTYPE\tDETAILS")
	for _, se := range list {
		var env struct {
			Type       string          `json:"type"`
			Severity   string          `json:"severity"`
			DeviceTime time.Time       `json:"device_time"`
			ServerTime time.Time       `json:"server_time"`
			Details    json.RawMessage `json:"details"`
		}
		json.Unmarshal(se.Event, &env)
		seq := strconv.FormatUint(se.Seq, 10)
		if se.Source == "server" {
			seq = "server"
		}
		details := string(env.Details)
		if len(details) > 100 {
			details = details[:97] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", env.DeviceTime.Local().Format(time.RFC3339), env.ServerTime.Local().Format(time.RFC3339),
			se.DeviceID, seq, env.Severity, env.Type, details)
	}
	tw.Flush()
}

// eventsExport streams the matching events as JSON lines to stdout.
func eventsExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("events export", stderr)
	var ff eventFilterFlags
	ff.register(fs)
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	q, err := ff.query(time.Now())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/events/export?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := *c.hc
	hc.Timeout = 0 // an export may take long; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("exporting events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e) == nil && e.Message != "" {
			return fmt.Errorf("server refused (%d %s): %s", resp.StatusCode, e.Code, e.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return fmt.Errorf("exporting events: the stream was cut short: %w", err)
	}
	return nil
}
