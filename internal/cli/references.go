package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest"
)

// releaseReferenceValues is `bulwark release reference-values PRODUCT
// VERSION [FILE]`: with FILE it publishes the reference manifest FILE for
// the release (--replace to replace the one it has); without, it shows
// the release's reference values.
func releaseReferenceValues(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release reference-values", stderr)
	replace := fs.Bool("replace", false, "replace the reference values the release already has (audited)")
	jsonOut := fs.Bool("json", false, "print the reference values as JSON")
	pos, c, err := parseClient(fs, args, -1)
	if err != nil {
		return err
	}
	if len(pos) != 2 && len(pos) != 3 {
		return &usageError{"release reference-values: expected PRODUCT VERSION [FILE]"}
	}
	product, version := pos[0], pos[1]
	path := "/api/v1/releases/" + url.PathEscape(product) + "/" + url.PathEscape(version) + "/reference-values"
	var out api.ReferenceValues
	if len(pos) == 2 {
		if *replace {
			return &usageError{"release reference-values: --replace needs a FILE"}
		}
		if err := c.do(ctx, "GET", path, nil, &out); err != nil {
			return fmt.Errorf("release reference-values: %w", err)
		}
		if *jsonOut {
			return printJSON(stdout, out)
		}
		return printReferenceValues(stdout, &out)
	}
	data, err := readReferenceManifest(pos[2], product, version)
	if err != nil {
		return fmt.Errorf("release reference-values: %w", err)
	}
	if *replace {
		path += "?replace=true"
	}
	if err := uploadReferenceValues(ctx, c, path, data, &out); err != nil {
		return fmt.Errorf("release reference-values: %w", err)
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	verb := "published"
	if out.Replaced != "" {
		verb = "replaced (was sha256 " + out.Replaced + ")"
	}
	fmt.Fprintf(stdout, "reference values of %s %s %s: TUF target %s, sha256 %s\n", out.Product, out.Version, verb, out.Target, out.SHA256)
	return nil
}

// readReferenceManifest reads a manifest file and checks it locally, as
// the server will, so that a mistake is reported before any upload.
func readReferenceManifest(file, product, version string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m, err := attest.DecodeReferenceManifest(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if m.Product != product || m.Version != version {
		return nil, fmt.Errorf("%s is for %s %s, not %s %s", file, m.Product, m.Version, product, version)
	}
	return data, nil
}

func uploadReferenceValues(ctx context.Context, c *apiClient, path string, data []byte, out *api.ReferenceValues) error {
	return c.upload(ctx, path, "application/json", bytes.NewReader(data), int64(len(data)), out)
}

func printReferenceValues(w io.Writer, rv *api.ReferenceValues) error {
	fmt.Fprintf(w, "%s %s: TUF target %s, sha256 %s, by %s at %s\n", rv.Product, rv.Version, rv.Target, rv.SHA256, rv.CreatedBy, rv.CreatedAt.Format("2006-01-02T15:04:05Z07:00"))
	m, err := attest.DecodeReferenceManifest(bytes.NewReader(rv.Manifest))
	if err != nil {
		return err
	}
	idx := make([]int, 0, len(m.PCRs))
	for k := range m.PCRs {
		i, _ := strconv.Atoi(k)
		idx = append(idx, i)
	}
	sort.Ints(idx)
	tw := table(w)
	if len(idx) > 0 {
		fmt.Fprintln(tw, "PCR\tSHA-256")
		for _, i := range idx {
			fmt.Fprintf(tw, "%d\t%s\n", i, m.PCRs[strconv.Itoa(i)])
		}
	}
	if len(m.Files) > 0 {
		fmt.Fprintln(tw, "FILE\tSHA-256")
		for _, f := range m.Files {
			fmt.Fprintf(tw, "%s\t%s\n", f.Path, f.SHA256)
		}
	}
	return tw.Flush()
}
