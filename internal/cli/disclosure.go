package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/disclosure"
)

// bulwark disclosures list|show|transition and bulwark products list|set:
// clients of the disclosure and product admin API.

func runDisclosures(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "list":
		return disclosuresList(ctx, args, stdout, stderr)
	case "show":
		return disclosuresShow(ctx, args, stdout, stderr)
	case "transition":
		return disclosuresTransition(ctx, args, stdout, stderr)
	case "":
		return &usageError{"disclosures needs a subcommand: list, show or transition"}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for disclosures (see bulwark help)", sub)}
}

func disclosuresList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("disclosures list", stderr)
	state := fs.String("state", "", "only reports in this state ("+strings.Join(disclosure.States, ", ")+")")
	jsonOut := fs.Bool("json", false, "print JSON")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	path := "/api/v1/disclosures"
	if *state != "" {
		path += "?state=" + url.QueryEscape(*state)
	}
	var out disclosure.ReportList
	if err := c.do(ctx, "GET", path, nil, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "ID\tSTATE\tPRODUCT\tRECEIVED\tSUMMARY")
	for _, r := range out.Reports {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Product, r.ReceivedAt.Format(time.RFC3339), r.Summary)
	}
	tw.Flush()
	if out.Total > len(out.Reports) {
		fmt.Fprintf(stdout, "(%d of %d shown)\n", len(out.Reports), out.Total)
	}
	return nil
}

func printReport(w io.Writer, r disclosure.Report) {
	fmt.Fprintf(w, "%s  [%s]  %s\n", r.ID, r.State, r.Summary)
	fmt.Fprintf(w, "Product:   %s %s\n", r.Product, r.AffectedVersion)
	fmt.Fprintf(w, "Received:  %s\n", r.ReceivedAt.Format(time.RFC3339))
	if r.Email != "" || r.AcknowledgeAs != "" {
		fmt.Fprintf(w, "Reporter:  %s (credit: %q)\n", r.Email, r.AcknowledgeAs)
	}
	if r.Advisory != "" {
		fmt.Fprintf(w, "Advisory:  %s\n", r.Advisory)
	}
	if len(r.Allowed) > 0 {
		fmt.Fprintf(w, "Next:      %s\n", strings.Join(r.Allowed, ", "))
	}
	if r.Details != "" {
		fmt.Fprintf(w, "\n%s\n", r.Details)
	}
	if len(r.Timeline) > 0 {
		fmt.Fprintln(w)
		tw := table(w)
		fmt.Fprintln(tw, "TIME\tACTOR\tSTEP\tADVISORY\tNOTE")
		for _, e := range r.Timeline {
			step := e.To
			if e.From != "" {
				step = e.From + " -> " + e.To
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Actor, step, e.Advisory, strings.ReplaceAll(e.Note, "\n", " "))
		}
		tw.Flush()
	}
}

func disclosuresShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("disclosures show", stderr)
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	var out disclosure.Report
	if err := c.do(ctx, "GET", "/api/v1/disclosures/"+url.PathEscape(pos[0]), nil, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	printReport(stdout, out)
	return nil
}

func disclosuresTransition(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("disclosures transition", stderr)
	to := fs.String("to", "", "the new state ("+strings.Join(disclosure.States, ", ")+")")
	note := fs.String("note", "", "note for the timeline (the reporter can read it)")
	advisory := fs.String("advisory", "", "advisory ID or https URL to link (required to publish)")
	jsonOut := fs.Bool("json", false, "print JSON")
	var cf clientFlags
	cf.register(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *to == "" {
		return &usageError{"disclosures transition: --to STATE is required"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out disclosure.Report
	req := disclosure.TransitionRequest{To: *to, Note: *note, Advisory: *advisory}
	if err := c.do(ctx, "POST", "/api/v1/disclosures/"+url.PathEscape(pos[0])+"/transition", req, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "%s is now %s\n", out.ID, out.State)
	return nil
}

func runProducts(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "list":
		return apiList(ctx, args, stdout, stderr, "/api/v1/products", &[]disclosure.Product{}, func(w io.Writer, ps []disclosure.Product) {
			tw := table(w)
			fmt.Fprintln(tw, "NAME\tSUPPORT UNTIL\tSUPPORTED\tCADENCE\tCRITICAL FIX TARGET")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", p.Name, p.SupportUntil, p.Supported, p.UpdateCadence, p.CriticalFixTarget)
			}
			tw.Flush()
		})
	case "set":
		return productsSet(ctx, args, stdout, stderr)
	case "":
		return &usageError{"products needs a subcommand: list or set"}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for products (see bulwark help)", sub)}
}

func productsSet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("products set", stderr)
	var p disclosure.Product
	fs.StringVar(&p.Name, "name", "", "product name")
	fs.StringVar(&p.Description, "description", "", "description")
	fs.StringVar(&p.SupportUntil, "support-until", "", "last day of guaranteed security updates, YYYY-MM-DD (UTC)")
	fs.StringVar(&p.UpdateCadence, "cadence", "", `how often security updates ship, e.g. "monthly"`)
	fs.StringVar(&p.CriticalFixTarget, "critical-fix", "", `target time to fix a critical vulnerability, e.g. "14 days"`)
	jsonOut := fs.Bool("json", false, "print JSON")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if p.Name == "" || p.SupportUntil == "" || p.UpdateCadence == "" || p.CriticalFixTarget == "" {
		return &usageError{"products set: --name, --support-until, --cadence and --critical-fix are required"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out disclosure.Product
	if err := c.do(ctx, "POST", "/api/v1/products", p, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "%s: security updates until %s; %s; critical fixes within %s\n", out.Name, out.SupportUntil, out.UpdateCadence, out.CriticalFixTarget)
	return nil
}
