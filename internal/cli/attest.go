package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

const attestUsage = `attest needs a device ID or a subcommand:
  bulwark attest ID [--wait 90s] [--json]        ask the device to attest now and print the result
  bulwark attest history ID [--limit N] [--json]  the device's attestation results
  bulwark attest approve-baseline ID              approve the boot state captured at enrolment as the reference
  bulwark attest trust ID trusted|untrusted|quarantined [--reason TEXT]`

func runAttest(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "":
		return &usageError{attestUsage}
	case "history":
		return attestHistory(ctx, args, stdout, stderr)
	case "approve-baseline":
		return attestApproveBaseline(ctx, args, stdout, stderr)
	case "trust":
		return attestTrust(ctx, args, stdout, stderr)
	}
	return attestNow(ctx, append([]string{sub}, args...), stdout, stderr)
}

// attestNow asks a device for a fresh attestation and waits for a result
// newer than the request.
func attestNow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("attest", stderr)
	wait := fs.Duration("wait", 90*time.Second, "how long to wait for the device's result")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	id := pos[0]
	var req api.AttestRequest
	if err := c.do(ctx, "POST", "/api/v1/devices/"+url.PathEscape(id)+"/attest", nil, &req); err != nil {
		return err
	}
	if !*jsonOut {
		fmt.Fprintf(stderr, "asked %s to attest; waiting up to %s for its evidence…\n", id, *wait)
	}
	deadline := time.Now().Add(*wait)
	for {
		var list api.AttestationList
		if err := c.do(ctx, "GET", "/api/v1/devices/"+url.PathEscape(id)+"/attestations?limit=1", nil, &list); err != nil {
			return err
		}
		if len(list.Results) > 0 && !list.Results[0].Time.Before(req.RequestedAt) {
			r := list.Results[0]
			if *jsonOut {
				if err := printJSON(stdout, r); err != nil {
					return err
				}
			} else {
				printAttestation(stdout, r)
			}
			if r.Status == api.AttestContraindicated {
				return errors.New("attestation failed: " + strings.Join(r.Problems, "; "))
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no attestation from %s within %s (is the device online? `bulwark devices show %s`)", id, *wait, id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printAttestation(w io.Writer, r api.AttestationResult) {
	tw := table(w)
	v := r.Vector
	fmt.Fprintf(tw, "Result\t%s\nStatus\t%s\nReason\t%s\nTime\t%s\nSecure Boot\t%s\n", r.ID, r.Status, r.Reason, r.Time.Format(time.RFC3339), r.SecureBoot)
	fmt.Fprintf(tw, "Trust vector\tinstance-identity=%d configuration=%d executables=%d file-system=%d hardware=%d runtime-opaque=%d storage-opaque=%d sourced-data=%d\n",
		v.InstanceIdentity, v.Configuration, v.Executables, v.FileSystem, v.Hardware, v.RuntimeOpaque, v.StorageOpaque, v.SourcedData)
	for _, p := range r.Problems {
		fmt.Fprintf(tw, "Problem\t%s\n", p)
	}
	tw.Flush()
}

func attestHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("attest history", stderr)
	limit := fs.Int("limit", 20, "how many results")
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	var list api.AttestationList
	if err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/devices/%s/attestations?limit=%d", url.PathEscape(pos[0]), *limit), nil, &list); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, list)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "TIME\tSTATUS\tREASON\tPROBLEMS")
	for _, r := range list.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Time.Format(time.RFC3339), r.Status, r.Reason, strings.Join(r.Problems, "; "))
	}
	return tw.Flush()
}

func attestApproveBaseline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("attest approve-baseline", stderr)
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "POST", "/api/v1/devices/"+url.PathEscape(pos[0])+"/attestation/approve-baseline", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "approved the baseline of %s: its measurements are now compared with it\n", pos[0])
	return nil
}

func attestTrust(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("attest trust", stderr)
	reason := fs.String("reason", "", "why (recorded in the audit log)")
	pos, c, err := parseClient(fs, args, 2)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "PUT", "/api/v1/devices/"+url.PathEscape(pos[0])+"/trust", api.TrustUpdate{Trust: pos[1], Reason: *reason}, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is now %s\n", pos[0], pos[1])
	return nil
}

const ekUsage = `ek needs a subcommand:
  bulwark ek register --group G HASH... | --file FILE   pre-register TPM endorsement keys (hex SHA-256 of the EK public key) for zero-touch enrolment
  bulwark ek list [--json]`

func runEK(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "register":
		fs := newFlags("ek register", stderr)
		group := fs.String("group", "", "the group the devices join (required)")
		file := fs.String("file", "", "a file with one EK hash per line (# comments allowed)")
		pos, c, err := parseClient(fs, args, -1)
		if err != nil {
			return err
		}
		if *group == "" {
			return &usageError{"ek register: --group is required"}
		}
		hashes := pos
		if *file != "" {
			b, err := os.ReadFile(*file)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					hashes = append(hashes, line)
				}
			}
		}
		if len(hashes) == 0 {
			return &usageError{"ek register: give EK hashes or --file"}
		}
		req := api.EKRegistrationCreate{}
		for _, h := range hashes {
			req.Registrations = append(req.Registrations, api.EKRegistration{EKHash: h, Group: *group})
		}
		if err := c.do(ctx, "POST", "/api/v1/ek-registrations", req, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "registered %d endorsement key(s) for zero-touch enrolment into %s\n", len(hashes), *group)
		return nil
	case "list":
		fs := newFlags("ek list", stderr)
		jsonOut := fs.Bool("json", false, "print JSON")
		_, c, err := parseClient(fs, args, 0)
		if err != nil {
			return err
		}
		var list api.EKRegistrationList
		if err := c.do(ctx, "GET", "/api/v1/ek-registrations", nil, &list); err != nil {
			return err
		}
		if *jsonOut {
			return printJSON(stdout, list)
		}
		tw := table(stdout)
		fmt.Fprintln(tw, "EK HASH\tGROUP\tDEVICE\tREGISTERED")
		for _, g := range list.Registrations {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.EKHash, g.Group, g.DeviceID, g.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "":
		return &usageError{ekUsage}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for ek", sub)}
}
