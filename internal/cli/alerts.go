package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func runAlerts(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "list":
		return alertsList(ctx, args, stdout, stderr)
	case "ack":
		return alertsAck(ctx, args, stdout, stderr)
	case "":
		return &usageError{"alerts needs a subcommand: list or ack"}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for alerts (see bulwark help)", sub)}
}

func alertsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("alerts list", stderr)
	open := fs.Bool("open", false, "only open alerts (same as --status open)")
	status := fs.String("status", "", "only alerts in this `state`: open, acknowledged or resolved (empty: all)")
	device := fs.String("device", "", "only this device `ID`")
	limit := fs.Int("limit", 100, "show at most `N` alerts, most recently seen first")
	asJSON := fs.Bool("json", false, "print JSON")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	if *open {
		if *status != "" && *status != api.AlertOpen {
			return &usageError{"alerts list: --open and --status " + *status + " contradict each other"}
		}
		*status = api.AlertOpen
	}
	if *limit < 1 || *limit > api.MaxAlertPage {
		return &usageError{fmt.Sprintf("alerts list: --limit must be from 1 to %d", api.MaxAlertPage)}
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(*limit))
	if *status != "" {
		q.Set("status", *status)
	}
	if *device != "" {
		q.Set("device", *device)
	}
	var list api.AlertList
	if err := c.do(ctx, http.MethodGet, "/api/v1/alerts?"+q.Encode(), nil, &list); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, list.Alerts)
	}
	printAlerts(stdout, list.Alerts)
	return nil
}

func printAlerts(w io.Writer, list []api.Alert) {
	tw := table(w)
	fmt.Fprintln(tw, "ID\tSTATUS\tSEVERITY\tRULE\tDEVICE\tCOUNT\tLAST SEEN\tSUMMARY")
	for _, a := range list {
		summary := a.Summary
		if len(summary) > 100 {
			summary = summary[:97] + "..."
		}
		ls := a.LastSeen
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.ID, a.Status, a.Severity, a.Rule, a.DeviceID, a.Count, ago(&ls), summary)
	}
	tw.Flush()
}

func alertsAck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("alerts ack", stderr)
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	var a api.Alert
	if err := c.do(ctx, http.MethodPost, "/api/v1/alerts/"+url.PathEscape(pos[0])+"/ack", nil, &a); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "acknowledged alert %s (%s on %s) as %s\n", a.ID, a.Rule, a.DeviceID, a.AckedBy)
	return nil
}
