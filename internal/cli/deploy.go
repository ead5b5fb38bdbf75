package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func runDeploy(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "create":
		return deployCreate(ctx, args, stdout, stderr)
	case "list":
		return apiList(ctx, args, stdout, stderr, "/api/v1/deployments", &[]api.Deployment{}, func(w io.Writer, ds []api.Deployment) {
			tw := table(w)
			fmt.Fprintln(tw, "ID\tRELEASE\tTARGET\tSTATE\tSTAGE\tPROGRESS\tCREATED")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s@%s\t%s\t%s\t%d/%d\t%s\t%s\n", d.ID, d.Product, d.Version, deployTarget(d), d.State, d.Stage, len(d.Stages), progress(d.Counts), d.CreatedAt.Format(time.RFC3339))
			}
			tw.Flush()
		})
	case "show":
		return deployShow(ctx, args, stdout, stderr)
	case "pause", "resume", "abort":
		return deployAction(ctx, sub, args, stdout, stderr)
	case "windows":
		return deployWindows(ctx, args, stdout, stderr)
	case "":
		return &usageError{"deploy needs a subcommand: create, list, show, pause, resume, abort or windows"}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for deploy (see bulwark help)", sub)}
}

func deployTarget(d api.Deployment) string {
	if d.Group != "" {
		return "group " + d.Group
	}
	return "device list"
}

func progress(counts map[string]int) string {
	total, done, failed := 0, 0, 0
	for st, n := range counts {
		total += n
		switch st {
		case "success":
			done += n
		case "failed", "rolled-back":
			failed += n
		}
	}
	return fmt.Sprintf("%d ok, %d failed of %d", done, failed, total)
}

func deployCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("deploy create", stderr)
	release := fs.String("release", "", "PRODUCT@VERSION to deploy")
	group := fs.String("group", "", "deploy to this device group")
	var devices multiFlag
	fs.Var(&devices, "device", "deploy to this device (repeatable)")
	stages := fs.String("stages", "100", "cumulative percentages per stage, e.g. 5,25,100")
	halt := fs.String("halt-failures", "10%", "halt when more than this share of a stage fails")
	expedite := fs.Bool("expedite", false, "critical fix: ignore maintenance windows (admins only)")
	downgrade := fs.Bool("allow-downgrade", false, "let devices install this release over a newer version (admins only; signed)")
	jsonOut := fs.Bool("json", false, "print JSON")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	product, version, ok := strings.Cut(*release, "@")
	if !ok || product == "" || version == "" {
		return &usageError{"deploy create: --release must be PRODUCT@VERSION"}
	}
	if (*group == "") == (len(devices) == 0) {
		return &usageError{"deploy create: give --group or --device (not both)"}
	}
	var haltPct int
	if _, err := fmt.Sscanf(strings.TrimSuffix(*halt, "%"), "%d", &haltPct); err != nil || haltPct < 0 || haltPct > 100 {
		return &usageError{fmt.Sprintf("deploy create: --halt-failures %q must be a percentage such as 10%%", *halt)}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	req := api.DeploymentCreate{Product: product, Version: version, Group: *group, Devices: devices, Stages: *stages, HaltFailurePct: &haltPct, Expedited: *expedite, AllowDowngrade: *downgrade}
	var out api.Deployment
	if err := c.do(ctx, "POST", "/api/v1/deployments", req, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "%s\n", out.ID)
	return nil
}

func deployShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("deploy show", stderr)
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	var d api.Deployment
	if err := c.do(ctx, "GET", "/api/v1/deployments/"+url.PathEscape(pos[0]), nil, &d); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, d)
	}
	tw := table(stdout)
	fmt.Fprintf(tw, "ID\t%s\nRelease\t%s@%s (%s)\nTarget\t%s\nState\t%s\nStage\t%d of %v\nHalt above\t%d%% failed per stage\nExpedited\t%v\n",
		d.ID, d.Product, d.Version, d.Target, deployTarget(d), d.State, d.Stage, d.Stages, d.HaltFailurePct, d.Expedited)
	if d.Reason != "" {
		fmt.Fprintf(tw, "Reason\t%s\n", d.Reason)
	}
	var sts []string
	for st := range d.Counts {
		sts = append(sts, st)
	}
	sort.Strings(sts)
	for _, st := range sts {
		fmt.Fprintf(tw, "  %s\t%d\n", st, d.Counts[st])
	}
	tw.Flush()
	tw = table(stdout)
	fmt.Fprintln(tw, "\nDEVICE\tSTATUS\tREASON\tUPDATED")
	for _, dd := range d.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", dd.DeviceID, dd.Status, dd.Reason, dd.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func deployAction(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("deploy "+action, stderr)
	reason := fs.String("reason", "", "why (recorded in the history and the audit log)")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	var d api.Deployment
	if err := c.do(ctx, "POST", "/api/v1/deployments/"+url.PathEscape(pos[0])+"/"+action, api.DeploymentAction{Reason: *reason}, &d); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deployment %s is %s\n", d.ID, d.State)
	return nil
}

func deployWindows(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("deploy windows", stderr)
	group := fs.String("group", "", "device group")
	var specs multiFlag
	fs.Var(&specs, "window", "DAYS/HH:MM-HH:MM in UTC, e.g. mon,tue,wed/01:00-04:00 (repeatable; none clears)")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *group == "" {
		return &usageError{"deploy windows: --group is required"}
	}
	ws := []api.MaintenanceWindow{}
	for _, spec := range specs {
		days, span, ok := strings.Cut(spec, "/")
		start, end, ok2 := strings.Cut(span, "-")
		if !ok || !ok2 {
			return &usageError{fmt.Sprintf("deploy windows: --window %q must look like mon,tue/01:00-04:00", spec)}
		}
		ws = append(ws, api.MaintenanceWindow{Days: strings.Split(days, ","), Start: start, End: end})
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if err := c.do(ctx, "PUT", "/api/v1/groups/"+url.PathEscape(*group)+"/maintenance-windows", ws, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "maintenance windows of %s: %d\n", *group, len(ws))
	return nil
}
