package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func runRelease(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "publish":
		return releasePublish(ctx, args, stdout, stderr)
	case "list":
		return releaseList(ctx, args, stdout, stderr)
	case "floor":
		return releaseFloor(ctx, args, stdout, stderr)
	case "reference-values":
		return releaseReferenceValues(ctx, args, stdout, stderr)
	case "floors":
		return apiList(ctx, args, stdout, stderr, "/api/v1/version-floors", &[]api.VersionFloor{}, func(w io.Writer, fs []api.VersionFloor) {
			tw := table(w)
			fmt.Fprintln(tw, "PRODUCT\tMIN VERSION\tSET BY\tSET AT")
			for _, f := range fs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Product, f.MinVersion, f.UpdatedBy, f.UpdatedAt.Format(time.RFC3339))
			}
			tw.Flush()
		})
	case "":
		return &usageError{"release needs a subcommand: publish, list, floor, floors or reference-values"}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for release (see bulwark help)", sub)}
}

// progressReader reports upload progress on long transfers.
type progressReader struct {
	r    io.Reader
	n    atomic.Int64
	size int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n.Add(int64(n))
	return n, err
}

func releasePublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release publish", stderr)
	product := fs.String("product", "", "product name")
	version := fs.String("version", "", "semantic version, higher than every published one")
	file := fs.String("file", "", "the artifact (.tar.gz for the app installer, an image for ab)")
	installer := fs.String("installer", "app", "app or ab")
	fixes := fs.String("fixes", "", "comma-separated vulnerability IDs this release fixes (CVE-…)")
	severity := fs.String("severity", "", "low, medium, high or critical (required with --fixes)")
	hardware := fs.String("hardware", "", "comma-separated compatible hardware (empty: any)")
	sbom := fs.String("sbom", "", "CycloneDX JSON SBOM to attach")
	refValues := fs.String("reference-values", "", "attestation reference manifest (JSON: product, version, pcrs, files) to publish with the release")
	jsonOut := fs.Bool("json", false, "print the release as JSON")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *product == "" || *version == "" || *file == "" {
		return &usageError{"release publish: --product, --version and --file are required"}
	}
	f, err := os.Open(*file)
	if err != nil {
		return fmt.Errorf("release publish: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("release publish: %s is not a regular file", *file)
	}
	var sbomData []byte
	if *sbom != "" {
		if sbomData, err = os.ReadFile(*sbom); err != nil {
			return fmt.Errorf("release publish: %w", err)
		}
	}
	var refData []byte
	if *refValues != "" {
		// Checked before the upload: a release that changes measurements
		// must not go out without its reference values.
		if refData, err = readReferenceManifest(*refValues, *product, *version); err != nil {
			return fmt.Errorf("release publish: %w", err)
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{"product": {*product}, "version": {*version}, "filename": {filepath.Base(*file)}, "installer": {*installer}}
	for k, v := range map[string]string{"fixes": *fixes, "severity": *severity, "hardware": *hardware} {
		if v != "" {
			q.Set(k, v)
		}
	}
	pr := &progressReader{r: f, size: fi.Size()}
	done := make(chan struct{})
	if fi.Size() > 64<<20 {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					fmt.Fprintf(stderr, "uploading %s: %d%% (%d of %d MiB)\n", filepath.Base(*file), pr.n.Load()*100/pr.size, pr.n.Load()>>20, pr.size>>20)
				}
			}
		}()
	}
	var rel api.Release
	err = c.upload(ctx, "/api/v1/releases?"+q.Encode(), "application/octet-stream", pr, fi.Size(), &rel)
	close(done)
	if err != nil {
		return fmt.Errorf("release publish: %w", err)
	}
	if sbomData != nil {
		if err := c.upload(ctx, "/api/v1/releases/"+url.PathEscape(*product)+"/"+url.PathEscape(*version)+"/sbom", "application/json",
			strings.NewReader(string(sbomData)), int64(len(sbomData)), &rel); err != nil {
			return fmt.Errorf("release published, but attaching the SBOM failed: %w", err)
		}
	}
	var rv api.ReferenceValues
	if refData != nil {
		path := "/api/v1/releases/" + url.PathEscape(*product) + "/" + url.PathEscape(*version) + "/reference-values"
		if err := uploadReferenceValues(ctx, c, path, refData, &rv); err != nil {
			return fmt.Errorf("release published, but publishing its reference values failed (retry with bulwark release reference-values): %w", err)
		}
	}
	if *jsonOut {
		return printJSON(stdout, rel)
	}
	fmt.Fprintf(stdout, "published %s %s as %s (%d bytes, sha256 %s)\n", rel.Product, rel.Version, rel.Target, rel.Length, rel.SHA256)
	if rv.Target != "" {
		fmt.Fprintf(stdout, "published its reference values as %s (sha256 %s)\n", rv.Target, rv.SHA256)
	}
	return nil
}

func releaseList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release list", stderr)
	product := fs.String("product", "", "only this product")
	jsonOut := fs.Bool("json", false, "print JSON")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	path := "/api/v1/releases"
	if *product != "" {
		path += "?product=" + url.QueryEscape(*product)
	}
	var out []api.Release
	if err := c.do(ctx, "GET", path, nil, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "PRODUCT\tVERSION\tINSTALLER\tSIZE\tFIXES\tSEVERITY\tSBOM\tPUBLISHED")
	for _, r := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%v\t%s\n", r.Product, r.Version, r.Installer, r.Length, strings.Join(r.Fixes, ","), r.Severity, r.SBOM != "", r.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func releaseFloor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release floor", stderr)
	product := fs.String("product", "", "product name")
	min := fs.String("min-version", "", "the lowest version devices may run from now on")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *product == "" || *min == "" {
		return &usageError{"release floor: --product and --min-version are required"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out api.VersionFloor
	if err := c.do(ctx, "POST", "/api/v1/version-floors", api.VersionFloor{Product: *product, MinVersion: *min}, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "version floor of %s is now %s\n", out.Product, out.MinVersion)
	return nil
}

// upload sends a raw body and decodes the JSON answer.
func (c *apiClient) upload(ctx context.Context, path, contentType string, body io.Reader, size int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+path, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", contentType)
	hc := *c.hc
	hc.Timeout = 0 // large artifacts; the context bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", strings.SplitN(path, "?", 2)[0], err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return fmt.Errorf("server refused (%d %s): %s", resp.StatusCode, e.Code, e.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
