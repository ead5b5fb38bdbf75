package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func runIoC(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "import":
		return iocImport(ctx, args, stdout, stderr)
	case "list":
		return iocList(ctx, args, stdout, stderr)
	case "indicators":
		return iocIndicators(ctx, args, stdout, stderr)
	case "delete":
		return iocDelete(ctx, args, stdout, stderr)
	case "feed":
		if len(args) == 0 || args[0] != "add" {
			return &usageError{"ioc feed needs a subcommand: add"}
		}
		return iocFeedAdd(ctx, args[1:], stdout, stderr)
	case "":
		return &usageError{"ioc needs a subcommand: import, list, indicators, delete or feed add"}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for ioc (see bulwark help)", sub)}
}

var iocNameUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// iocDefaultName derives a source name from a file name: its base name
// without extension, with other characters replaced by '-'.
func iocDefaultName(file string) string {
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	name := strings.Trim(iocNameUnsafe.ReplaceAllString(base, "-"), "-._")
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

func iocImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ioc import", stderr)
	name := fs.String("name", "", "source `name` (default: the file's base name); importing again under a name replaces its indicators")
	format := fs.String("format", "", "file format: stix, misp or list (empty: detected by the server)")
	expires := fs.String("expires", "", "lifetime (e.g. 720h) of indicators without their own expiry (empty: they do not expire)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	switch *format {
	case "", "stix", "misp", "list":
	default:
		return &usageError{"ioc import: --format must be stix, misp or list"}
	}
	if *expires != "" {
		if d, err := time.ParseDuration(*expires); err != nil || d < time.Minute {
			return &usageError{"ioc import: --expires must be a duration of at least 1m, e.g. 720h"}
		}
	}
	if *name == "" {
		*name = iocDefaultName(pos[0])
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	if len(data) > api.MaxIoCImport {
		return fmt.Errorf("%s is larger than the server accepts (%d bytes)", pos[0], api.MaxIoCImport)
	}
	q := url.Values{"name": {*name}}
	if *format != "" {
		q.Set("format", *format)
	}
	if *expires != "" {
		q.Set("expires", *expires)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v1/ioc/sources?"+q.Encode(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if *format == "list" {
		req.Header.Set("Content-Type", "text/plain")
	} else if *format != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := *c.hc
	hc.Timeout = 10 * time.Minute // a large feed takes a while to store
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("importing %s: %w", pos[0], err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(body, &e) == nil && e.Message != "" {
			return fmt.Errorf("server refused (%d %s): %s", resp.StatusCode, e.Code, e.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	var res api.IoCImportResult
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	if *asJSON {
		return printJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "Imported %d indicators into source %s (%s, version %d); %d entries skipped.\n",
		res.Source.Indicators, res.Source.Name, res.Source.Kind, res.Source.Version, res.Source.Skipped)
	for _, r := range res.Reasons {
		fmt.Fprintf(stdout, "  skipped: %s\n", r)
	}
	return nil
}

func iocList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ioc list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	var list api.IoCSourceList
	if err := c.do(ctx, http.MethodGet, "/api/v1/ioc/sources", nil, &list); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, list.Sources)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "NAME\tKIND\tINDICATORS\tSKIPPED\tVERSION\tUPDATED\tNEXT POLL\tFAILURES\tLAST ERROR")
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format(time.RFC3339)
	}
	for _, s := range list.Sources {
		next, fails := "-", "-"
		if s.Interval != "" {
			next, fails = at(s.NextPoll), strconv.Itoa(s.Failures)
		}
		lastErr := s.LastError
		if len(lastErr) > 80 {
			lastErr = lastErr[:77] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.Indicators, s.Skipped, s.Version, at(s.UpdatedAt), next, fails, lastErr)
	}
	return tw.Flush()
}

func iocIndicators(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ioc indicators", stderr)
	source := fs.String("source", "", "only this source's indicators (empty: all)")
	limit := fs.Int("limit", 100, fmt.Sprintf("show at most `N` (at most %d)", api.MaxIoCPage))
	asJSON := fs.Bool("json", false, "print JSON")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > api.MaxIoCPage {
		return &usageError{fmt.Sprintf("ioc indicators: --limit must be 1..%d", api.MaxIoCPage)}
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *source != "" {
		q.Set("source", *source)
	}
	var list api.IoCIndicatorList
	if err := c.do(ctx, http.MethodGet, "/api/v1/ioc/indicators?"+q.Encode(), nil, &list); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, list.Indicators)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "SOURCE\tTYPE\tVALUE\tEXPIRES\tREF")
	for _, in := range list.Indicators {
		exp := "never"
		if in.Expires != nil {
			exp = in.Expires.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Source, in.Type, in.Value, exp, in.Ref)
	}
	return tw.Flush()
}

func iocDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ioc delete", stderr)
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, "/api/v1/ioc/sources/"+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Deleted source %s and its indicators.\n", pos[0])
	return nil
}

func iocFeedAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ioc feed add", stderr)
	name := fs.String("name", "", "source `name` (required)")
	taxii := fs.String("taxii", "", "TAXII 2.1 API root `URL`, with --collection")
	collection := fs.String("collection", "", "TAXII collection `ID`")
	misp := fs.String("misp", "", "MISP feed `URL` (its manifest.json is read), or one event's .json URL")
	interval := fs.String("interval", "", "poll interval, at least 1m (empty: the server's default, 1h)")
	expires := fs.String("expires", "", "lifetime (e.g. 720h) of indicators without their own expiry (empty: they do not expire)")
	asJSON := fs.Bool("json", false, "print JSON")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	req := api.IoCFeedCreate{Name: *name, Collection: *collection, Interval: *interval, Expires: *expires}
	switch {
	case *name == "":
		return &usageError{"ioc feed add: --name is required"}
	case (*taxii == "") == (*misp == ""):
		return &usageError{"ioc feed add: give one of --taxii URL --collection ID or --misp URL"}
	case *taxii != "":
		if *collection == "" {
			return &usageError{"ioc feed add: --taxii needs --collection"}
		}
		req.Kind, req.URL = "taxii", *taxii
	default:
		if *collection != "" {
			return &usageError{"ioc feed add: --collection is only for --taxii"}
		}
		req.Kind, req.URL = "misp-feed", *misp
	}
	var src api.IoCSource
	if err := c.do(ctx, http.MethodPost, "/api/v1/ioc/feeds", req, &src); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, src)
	}
	fmt.Fprintf(stdout, "Added feed %s (%s, every %s); the first poll is under way: see bulwark ioc list.\n", src.Name, src.Kind, src.Interval)
	return nil
}
