package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/inventory"
	"github.com/bulwark-iot/bulwark/internal/agent/localapi"
	"github.com/bulwark-iot/bulwark/internal/agent/tufclient"
	"github.com/bulwark-iot/bulwark/internal/agent/update"
	"github.com/bulwark-iot/bulwark/internal/api"
)

// The update loop: a check-in answer may carry an update assignment; the
// agent then refreshes the signed TUF metadata (a new updater per cycle,
// trusting the root.json it keeps), takes the target's length, hashes and
// release metadata from it, downloads and verifies the artifact itself
// (streaming, resumable), installs it through the product's installer,
// runs the health check, and reports each step. This is the only path by
// which the agent changes installed software.

// tufDir is where the agent keeps the TUF metadata it trusts.
const tufDir = "tuf"

var productRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// releaseInfo is the custom metadata the server signs into each target.
type releaseInfo struct {
	Bulwark struct {
		Product   string `json:"product"`
		Version   string `json:"version"`
		Installer string `json:"installer"`
		Kind      string `json:"kind"`
		// Deployment names the deployment of a downgrade instruction.
		Deployment string   `json:"deployment"`
		MinFloor   string   `json:"version_floor"`
		Fixes      []string `json:"fixes"`
		Hardware   []string `json:"hardware"`
	} `json:"bulwark"`
}

// updates runs assignments one at a time and remembers the last outcome.
type updates struct {
	d *daemon

	mu      sync.Mutex
	busy    string // deployment in progress
	last    *localapi.UpdateReport
	lastDep string
	pending *api.UpdateStatus // final report not yet delivered
	wg      sync.WaitGroup
}

// handle starts work on an assignment unless one is running or it was
// just finished here.
func (u *updates) handle(ctx context.Context, a *api.UpdateAssignment) {
	u.mu.Lock()
	if u.busy != "" || (u.lastDep == a.DeploymentID && u.pending == nil) {
		u.mu.Unlock()
		return
	}
	u.busy = a.DeploymentID
	u.mu.Unlock()
	u.wg.Go(func() {
		defer func() {
			u.mu.Lock()
			u.busy = ""
			u.mu.Unlock()
		}()
		u.run(ctx, *a)
	})
}

// flush retries a final report that could not be delivered.
func (u *updates) flush(ctx context.Context) {
	u.mu.Lock()
	p := u.pending
	u.mu.Unlock()
	if p == nil {
		return
	}
	if err := u.d.currentClient().ReportUpdate(ctx, *p); err == nil || isFinalRefusal(err) {
		u.mu.Lock()
		if u.pending == p {
			u.pending = nil
		}
		u.mu.Unlock()
	}
}

func isFinalRefusal(err error) bool {
	status, _ := serverError(err)
	return status == http.StatusConflict || status == http.StatusNotFound || status == http.StatusBadRequest
}

func (u *updates) report(ctx context.Context, depID, status, detail string) {
	if len(detail) > api.MaxStringLen {
		detail = detail[:api.MaxStringLen]
	}
	st := api.UpdateStatus{DeploymentID: depID, Status: status, Detail: detail}
	err := u.d.currentClient().ReportUpdate(ctx, st)
	final := status == "success" || status == "failed" || status == "rolled-back"
	if err != nil && !isFinalRefusal(err) && final {
		u.mu.Lock()
		u.pending = &st
		u.mu.Unlock()
	}
	if err != nil {
		u.d.log.Warn("update status report failed", "deployment", depID, "status", status, "err", err)
	}
}

func (u *updates) run(ctx context.Context, a api.UpdateAssignment) {
	log := u.d.log.With("deployment", a.DeploymentID, "target", a.Target, "version", a.Version)
	log.Info("update assigned")
	u.report(ctx, a.DeploymentID, "downloading", "")
	rep, err := u.install(ctx, a, log)
	status, detail := "success", ""
	switch {
	case rep == nil:
		status, detail = "failed", fmt.Sprint(err)
	case rep.Outcome == update.OutcomeFailed:
		status, detail = "failed", rep.Reason
		if detail == "" && err != nil {
			detail = err.Error()
		}
	case rep.Outcome == update.OutcomeRolledBack:
		status, detail = "rolled-back", rep.Reason
		if detail == "" && err != nil {
			detail = err.Error()
		}
	case rep.Outcome == update.OutcomeUnchanged:
		detail = "already running " + rep.To
	default:
		detail = "installed " + rep.To
	}
	if ctx.Err() != nil {
		return // stopping; the journal lets the next run finish or undo
	}
	u.mu.Lock()
	u.last = &localapi.UpdateReport{Deployment: a.DeploymentID, Version: a.Version, Status: status, Detail: detail, At: time.Now().UTC()}
	u.lastDep = a.DeploymentID
	u.mu.Unlock()
	log.Info("update finished", "status", status, "detail", detail)
	u.d.recordUpdate(a.Version, status, detail)
	u.report(ctx, a.DeploymentID, status, detail)
}

// install verifies the assignment against signed metadata and installs it.
func (u *updates) install(ctx context.Context, a api.UpdateAssignment, log interface{ Info(string, ...any) }) (*update.Report, error) {
	u.d.mu.Lock()
	server, caPEM := u.d.st.Server, u.d.caPEM
	u.d.mu.Unlock()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()

	info, err := u.trustedTarget(ctx, server, hc, a.Target)
	if err != nil {
		return nil, err
	}
	var rel releaseInfo
	if info.Custom != nil {
		json.Unmarshal(*info.Custom, &rel)
	}
	b := rel.Bulwark
	if b.Kind != "artifact" || b.Version != a.Version || !productRE.MatchString(b.Product) {
		return nil, fmt.Errorf("the signed metadata of %s does not describe release %s", a.Target, a.Version)
	}
	if b.MinFloor != "" {
		if c, err := update.CompareVersions(b.Version, b.MinFloor); err != nil || c < 0 {
			return nil, fmt.Errorf("release %s is below the version floor %s of %s", b.Version, b.MinFloor, b.Product)
		}
	}
	if len(b.Hardware) > 0 && !slices.Contains(b.Hardware, u.d.cfg.Hardware) {
		hw := u.d.cfg.Hardware
		if hw == "" {
			hw = "not set (bulwark-agent run --hardware)"
		}
		return nil, fmt.Errorf("release %s is for hardware %s; this device's hardware is %s", b.Version, strings.Join(b.Hardware, ", "), hw)
	}
	if b.Installer != "" && b.Installer != "app" {
		return nil, fmt.Errorf("installer %q is not available on this device", b.Installer)
	}
	// A downgrade is allowed only by a signed instruction naming this
	// deployment, product and version; anything else is refused.
	allowDowngrade := false
	if a.Downgrade != "" {
		if err := u.verifyDowngrade(ctx, server, hc, a, b.Product); err != nil {
			return nil, err
		}
		allowDowngrade = true
	}
	want := update.Target{Length: info.Length, Hashes: map[string][]byte{}}
	for alg, h := range info.Hashes {
		want.Hashes[alg] = h
	}
	if len(info.Hashes["sha256"]) == 0 {
		return nil, errors.New("the signed metadata gives no sha256 for the target")
	}
	url := info.URL
	root := filepath.Join(u.d.cfg.InstallRoot, b.Product)
	up, err := update.New(update.Config{
		Root:        root,
		Installer:   &update.AppInstaller{Root: root},
		Client:      hc,
		HealthCheck: u.d.cfg.HealthCheck,
		// The agent must come back: a check-in after the switch proves
		// the device still reaches its server with its identity.
		Reachable: u.d.checkinProbe,
	})
	if err != nil {
		return nil, err
	}
	log.Info("installing", "product", b.Product, "length", info.Length)
	return up.Update(ctx, url, want, update.Release{Product: b.Product, Version: b.Version, AllowDowngrade: allowDowngrade})
}

// verifyDowngrade checks the signed downgrade instruction of an
// assignment: a target of kind "downgrade" for this deployment, product
// and version.
func (u *updates) verifyDowngrade(ctx context.Context, server string, hc *http.Client, a api.UpdateAssignment, product string) error {
	if a.Downgrade != "downgrades/"+a.DeploymentID+".json" {
		return fmt.Errorf("downgrade instruction %q does not belong to deployment %s", a.Downgrade, a.DeploymentID)
	}
	t, err := u.trustedTarget(ctx, server, hc, a.Downgrade)
	if err != nil {
		return fmt.Errorf("downgrade not allowed: %w", err)
	}
	var inst releaseInfo
	if t.Custom != nil {
		json.Unmarshal(*t.Custom, &inst)
	}
	b := inst.Bulwark
	if b.Kind != "downgrade" || b.Deployment != a.DeploymentID || b.Product != product || b.Version != a.Version {
		return fmt.Errorf("downgrade not allowed: the signed instruction %s is for another release", a.Downgrade)
	}
	return nil
}

// trustedTarget refreshes the TUF metadata with a new updater and returns
// the target's signed description. The root it starts from is the
// root.json kept in the state directory: the one fetched over the
// authenticated channel at first use, then every root it has verified.
// `bulwark-agent tuf-client` verifies through the same package.
func (u *updates) trustedTarget(ctx context.Context, server string, hc *http.Client, target string) (*tufclient.Target, error) {
	base := strings.TrimRight(server, "/") + "/tuf"
	t, err := tufclient.TrustedTarget(ctx, tufclient.Config{
		MetadataDir:  filepath.Join(u.d.dir, tufDir),
		MetadataURL:  base + "/metadata/",
		TargetsURL:   base + "/targets/",
		FirstRootURL: base + "/metadata/1.root.json",
		HTTP:         hc,
	}, target)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	return t, nil
}

// installed lists the active version of each product the agent manages.
func (u *updates) installed() []localapi.Installed {
	entries, err := os.ReadDir(u.d.cfg.InstallRoot)
	if err != nil {
		return nil
	}
	var out []localapi.Installed
	for _, e := range entries {
		if !e.IsDir() || !productRE.MatchString(e.Name()) {
			continue
		}
		v, err := (&update.AppInstaller{Root: filepath.Join(u.d.cfg.InstallRoot, e.Name())}).Current(context.Background())
		if err != nil || v == "" {
			continue
		}
		out = append(out, localapi.Installed{Product: e.Name(), Version: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Product < out[j].Product })
	return out
}

// resume finishes or undoes an update interrupted by a crash or power
// loss, for every product, before the loops start.
func (u *updates) resume(ctx context.Context) {
	entries, err := os.ReadDir(u.d.cfg.InstallRoot)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !productRE.MatchString(e.Name()) {
			continue
		}
		root := filepath.Join(u.d.cfg.InstallRoot, e.Name())
		up, err := update.New(update.Config{Root: root, Installer: &update.AppInstaller{Root: root}, HealthCheck: u.d.cfg.HealthCheck})
		if err != nil {
			continue
		}
		if rep, err := up.Resume(ctx); err != nil {
			u.d.log.Error("resuming an interrupted update", "product", e.Name(), "err", err)
		} else if rep != nil {
			u.d.log.Info("resumed an interrupted update", "product", e.Name(), "outcome", rep.Outcome, "version", rep.To)
		}
	}
}

// lastReport returns the outcome of the last update this run.
func (u *updates) lastReport() *localapi.UpdateReport {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		return nil
	}
	r := *u.last
	return &r
}

// checkinProbe checks in once (inventory and health, no acks) and
// reports whether the server answered.
func (d *daemon) checkinProbe(ctx context.Context) error {
	_, err := d.currentClient().Checkin(ctx, &api.CheckinRequest{Inventory: d.inventory(), Health: d.Health()})
	return err
}

// inventory is the check-in inventory: the system's, with the releases
// the agent installed, against whose published reference values the
// server appraises the device's attestation.
func (d *daemon) inventory() api.Inventory {
	inv := inventory.Collect(Version())
	if d.updates == nil {
		return inv
	}
	for _, r := range d.updates.installed() {
		ir := api.InstalledRelease{Product: r.Product, Version: r.Version}
		if ir.Valid() && len(inv.Installed) < api.MaxInstalled {
			inv.Installed = append(inv.Installed, ir)
		}
	}
	return inv
}
