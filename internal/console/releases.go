package console

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/server"
)

// Published releases: product, version, size, fixed vulnerabilities and
// the public SBOM, newest first, filtered by product.

type releasesData struct {
	Product   string
	Products  []string
	Releases  []api.Release
	CanDeploy bool
}

func (c *console) releases(w http.ResponseWriter, r *http.Request, p *server.Principal) error {
	d := releasesData{Product: r.URL.Query().Get("product")}
	groups, err := c.deployGroups(r, p)
	if err != nil {
		return err
	}
	d.CanDeploy = len(groups) > 0
	all, err := c.s.ListReleases(r, "")
	if err != nil {
		return err
	}
	for _, rel := range all {
		if !slices.Contains(d.Products, rel.Product) {
			d.Products = append(d.Products, rel.Product)
		}
	}
	slices.Sort(d.Products)
	v := view{Title: "Releases", Nav: "releases", P: p}
	if d.Product == "" {
		d.Releases = all
	} else if d.Releases, err = c.s.ListReleases(r, d.Product); err != nil {
		status, msg := server.ErrorMessage(err)
		if status != http.StatusBadRequest {
			return err
		}
		v.Error, v.Data = sentence(msg), d
		c.render(w, r, status, "releases", v)
		return nil
	}
	v.Data = d
	c.render(w, r, http.StatusOK, "releases", v)
	return nil
}

// bytesText formats a size as "812 B", "4.2 KiB", "18.0 MiB".
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// severityClass maps a release's severity to a badge colour.
func severityClass(s string) string {
	switch s {
	case "critical", "high":
		return "badge-bad"
	case "medium":
		return "badge-warn"
	case "low":
		return "badge-neutral"
	}
	return "badge-muted"
}
