// Package rollout runs staged deployments of releases to device fleets:
// devices are put in a stable pseudo-random order, stages open cumulative
// percentages of them (for example 5% → 25% → 100%), a stage whose failure
// rate passes the threshold halts the deployment, devices that join the
// group later are picked up, and maintenance windows are respected unless
// the deployment is expedited.
//
// All state is in the store, so an Engine is stateless and safe for
// concurrent use, also across server replicas.
package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/store"
)

// Device statuses reported by agents, in the order they usually occur.
var deviceStatuses = map[string]bool{
	"downloading": true, "installing": true, "verifying": true,
	"success": true, "failed": true, "rolled-back": true,
}

// failed statuses count against the stage's failure threshold.
var failedStatus = map[string]bool{"failed": true, "rolled-back": true}

var doneStatus = map[string]bool{"success": true, "failed": true, "rolled-back": true, "cancelled": true}

// Errors callers map to API answers.
var (
	ErrNoRelease   = errors.New("no such release")
	ErrBadRequest  = errors.New("bad deployment request")
	ErrWrongState  = errors.New("the deployment is not in a state that allows this")
	ErrUnknownPair = errors.New("the device is not part of this deployment")
)

// Engine drives deployments.
type Engine struct {
	Store *store.Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// ParseStages parses cumulative percentages such as "5,25,100": strictly
// increasing, each 1..100, ending at 100, at most 10 stages.
func ParseStages(s string) ([]int, error) {
	if s == "" {
		return []int{100}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > 10 {
		return nil, fmt.Errorf("%w: at most 10 stages", ErrBadRequest)
	}
	var out []int
	for _, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "%")))
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("%w: stage %q must be a percentage from 1 to 100", ErrBadRequest, p)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("%w: stages must increase (%d after %d)", ErrBadRequest, n, out[len(out)-1])
		}
		out = append(out, n)
	}
	if out[len(out)-1] != 100 {
		return nil, fmt.Errorf("%w: the last stage must be 100%%", ErrBadRequest)
	}
	return out, nil
}

// stageSize is how many devices (by rank) stage pct of n covers.
func stageSize(pct, n int) int {
	return (n*pct + 99) / 100
}

// Request describes a new deployment.
type Request struct {
	Product, Version string
	Group            string   // target group, or
	Devices          []string // explicit device IDs
	Stages           []int
	HaltFailurePct   int // 0..100: a stage halts when more than this share failed
	Expedited        bool
	AllowDowngrade   bool // set only with a signed downgrade instruction
	CreatedBy        string
	ID               string // set by the caller (random)
}

// Create starts a deployment and opens its first stage.
func (e *Engine) Create(ctx context.Context, req Request) (*store.Deployment, error) {
	if (req.Group == "") == (len(req.Devices) == 0) {
		return nil, fmt.Errorf("%w: give a group or a list of devices", ErrBadRequest)
	}
	if req.HaltFailurePct < 0 || req.HaltFailurePct > 100 {
		return nil, fmt.Errorf("%w: the halt threshold must be from 0%% to 100%%", ErrBadRequest)
	}
	if len(req.Stages) == 0 {
		req.Stages = []int{100}
	}
	rel, err := e.Store.GetRelease(ctx, req.Product, req.Version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s %s has not been published", ErrNoRelease, req.Product, req.Version)
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	if req.Group != "" {
		for off := 0; ; off += 1000 {
			devs, total, err := e.Store.ListDevices(ctx, store.DeviceFilter{Group: req.Group, Status: "active", Limit: 1000, Offset: off})
			if err != nil {
				return nil, err
			}
			for _, d := range devs {
				ids = append(ids, d.ID)
			}
			if off+1000 >= total {
				break
			}
		}
	} else {
		if len(req.Devices) > 10000 {
			return nil, fmt.Errorf("%w: at most 10,000 devices by ID; use a group", ErrBadRequest)
		}
		seen := map[string]bool{}
		for _, id := range req.Devices {
			if seen[id] {
				continue
			}
			seen[id] = true
			a, err := e.Store.GetDeviceAuth(ctx, id)
			if errors.Is(err, store.ErrNotFound) || (err == nil && a.Status != "active") {
				return nil, fmt.Errorf("%w: device %s is not an active device", ErrBadRequest, id)
			}
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
	}
	// A stable pseudo-random order, different for each deployment, so the
	// same devices are not always first.
	key := func(id string) string {
		h := sha256.Sum256([]byte(req.ID + "/" + id))
		return string(h[:])
	}
	sort.Slice(ids, func(i, j int) bool { return key(ids[i]) < key(ids[j]) })
	devs := make([]store.DeploymentDevice, len(ids))
	for i, id := range ids {
		devs[i] = store.DeploymentDevice{DeviceID: id, Rank: i, Status: "waiting"}
	}
	stages, _ := json.Marshal(req.Stages)
	now := e.now()
	d := &store.Deployment{ID: req.ID, Product: rel.Product, Version: rel.Version, Target: rel.Target, Group: req.Group,
		Stages: string(stages), HaltFailurePct: req.HaltFailurePct, State: store.DeployRunning, Expedited: req.Expedited, AllowDowngrade: req.AllowDowngrade,
		CreatedAt: now, CreatedBy: req.CreatedBy, UpdatedAt: now}
	if err := e.Store.CreateDeployment(ctx, d, devs); err != nil {
		return nil, err
	}
	if err := e.Store.OpenStage(ctx, d.ID, 0, stageSize(req.Stages[0], len(ids)), now); err != nil {
		return nil, err
	}
	return e.Store.GetDeployment(ctx, d.ID)
}

// Stages decodes a deployment's stages.
func Stages(d *store.Deployment) []int {
	var st []int
	if json.Unmarshal([]byte(d.Stages), &st) != nil || len(st) == 0 {
		return []int{100}
	}
	return st
}

// Evaluate advances a running deployment: when every device of the open
// stage has finished, it halts the deployment if the stage's failure rate
// is above the threshold, and otherwise opens the next stage or completes.
func (e *Engine) Evaluate(ctx context.Context, id string) error {
	for range 12 { // one stage per round; a stage may finish at once
		d, err := e.Store.GetDeployment(ctx, id)
		if err != nil {
			return err
		}
		if d.State != store.DeployRunning {
			return nil
		}
		stages := Stages(d)
		if d.Stage >= len(stages) {
			d.Stage = len(stages) - 1
		}
		// While the open stage has devices at work, there is nothing to
		// decide: a cheap check, since this runs on every final report.
		n, err := e.Store.DeploymentSize(ctx, id)
		if err != nil {
			return err
		}
		if busy, err := e.Store.StageBusy(ctx, id, stageSize(stages[d.Stage], n)); err != nil {
			return err
		} else if busy && !e.hasWaiting(ctx, id, stageSize(stages[d.Stage], n)) {
			return nil
		}
		devs, err := e.Store.DeploymentDevices(ctx, id)
		if err != nil {
			return err
		}
		upTo := stageSize(stages[d.Stage], len(devs))
		failed, waiting, busy := 0, 0, 0
		for _, dd := range devs[:upTo] {
			switch {
			case dd.Status == "waiting":
				waiting++
			case failedStatus[dd.Status]:
				failed++
			case !doneStatus[dd.Status]:
				busy++
			}
		}
		now := e.now()
		if waiting > 0 { // devices that joined late, inside the open stage
			if err := e.Store.OpenStage(ctx, id, d.Stage, upTo, now); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			return nil
		}
		if busy > 0 {
			return nil
		}
		if upTo > 0 && failed*100 > d.HaltFailurePct*upTo {
			reason := fmt.Sprintf("stage %d (%d%%): %d of %d devices failed (%d%%), above the %d%% threshold",
				d.Stage+1, stages[d.Stage], failed, upTo, failed*100/upTo, d.HaltFailurePct)
			err := e.Store.SetDeploymentState(ctx, id, []string{store.DeployRunning}, store.DeployHalted, reason, now)
			if errors.Is(err, store.ErrConflict) {
				return nil
			}
			return err
		}
		if d.Stage+1 < len(stages) {
			if err := e.Store.OpenStage(ctx, id, d.Stage+1, stageSize(stages[d.Stage+1], len(devs)), now); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			continue
		}
		if d.Group == "" {
			err := e.Store.SetDeploymentState(ctx, id, []string{store.DeployRunning}, store.DeployCompleted,
				fmt.Sprintf("%d devices done, %d failed", len(devs), failed), now)
			if errors.Is(err, store.ErrConflict) {
				return nil
			}
			return err
		}
		// A group deployment stays running at its last stage, with every
		// device done, so that devices joining the group later still get
		// the release; abort it to end it.
		return nil
	}
	return nil
}

// hasWaiting reports whether devices below upTo are still waiting (they
// joined late inside the open stage and must be opened).
func (e *Engine) hasWaiting(ctx context.Context, id string, upTo int) bool {
	w, err := e.Store.WaitingBelow(ctx, id, upTo)
	return err == nil && w
}

// Report records a device's progress and advances the deployment.
func (e *Engine) Report(ctx context.Context, depID, deviceID, status, reason string) error {
	if !deviceStatuses[status] {
		return fmt.Errorf("%w: status must be one of downloading, installing, verifying, success, failed, rolled-back", ErrBadRequest)
	}
	err := e.Store.ReportDeploymentStatus(ctx, depID, deviceID, status, reason, e.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrUnknownPair
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: the device's status in this deployment is final or not yet open", ErrWrongState)
	case err != nil:
		return err
	}
	if doneStatus[status] {
		return e.Evaluate(ctx, depID)
	}
	return nil
}

// Pause, Resume and Abort change a deployment's state.
func (e *Engine) Pause(ctx context.Context, id, why string) error {
	return e.setState(ctx, id, []string{store.DeployRunning}, store.DeployPaused, why)
}

// Resume continues a paused or halted deployment. Resuming a halted one
// accepts the failures of the stage that halted it and opens the next.
func (e *Engine) Resume(ctx context.Context, id, why string) error {
	d, err := e.Store.GetDeployment(ctx, id)
	if err != nil {
		return err
	}
	if err := e.setState(ctx, id, []string{store.DeployPaused, store.DeployHalted}, store.DeployRunning, why); err != nil {
		return err
	}
	if d.State == store.DeployHalted {
		stages := Stages(d)
		if d.Stage+1 < len(stages) {
			devs, err := e.Store.DeploymentDevices(ctx, id)
			if err != nil {
				return err
			}
			if err := e.Store.OpenStage(ctx, id, d.Stage+1, stageSize(stages[d.Stage+1], len(devs)), e.now()); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		} else if d.Group == "" {
			return e.setState(ctx, id, []string{store.DeployRunning}, store.DeployCompleted, "resumed after the last stage: "+why)
		} else {
			return nil
		}
	}
	return e.Evaluate(ctx, id)
}

// Abort stops a deployment for good.
func (e *Engine) Abort(ctx context.Context, id, why string) error {
	return e.setState(ctx, id, []string{store.DeployRunning, store.DeployPaused, store.DeployHalted}, store.DeployAborted, why)
}

func (e *Engine) setState(ctx context.Context, id string, from []string, to, why string) error {
	err := e.Store.SetDeploymentState(ctx, id, from, to, why, e.now())
	if errors.Is(err, store.ErrConflict) {
		if _, gerr := e.Store.GetDeployment(ctx, id); errors.Is(gerr, store.ErrNotFound) {
			return store.ErrNotFound
		}
		return fmt.Errorf("%w: it must be %s", ErrWrongState, strings.Join(from, " or "))
	}
	return err
}

// JoinGroup adds a device to the running deployments of its group that
// it is not yet part of (it joined the group, or enrolled, later).
func (e *Engine) JoinGroup(ctx context.Context, deviceID, group string, running []*store.Deployment) error {
	for _, d := range running {
		if d.Group == "" || d.Group != group || d.State != store.DeployRunning {
			continue
		}
		in, err := e.Store.InDeployment(ctx, d.ID, deviceID)
		if err != nil {
			return err
		}
		if in {
			continue
		}
		added, err := e.Store.JoinDeployment(ctx, d.ID, deviceID, e.now())
		if err != nil {
			return err
		}
		if added {
			if err := e.Evaluate(ctx, d.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// Assignment returns the deployment a device should work on now, or nil:
// its first running deployment with work left, unless the group's
// maintenance window is closed and the deployment is not expedited.
func (e *Engine) Assignment(ctx context.Context, deviceID, group string) (*store.Deployment, error) {
	deps, err := e.Store.ActiveAssignments(ctx, deviceID)
	if err != nil || len(deps) == 0 {
		return nil, err
	}
	var windows []Window
	if group != "" {
		raw, err := e.Store.MaintenanceWindows(ctx, group)
		if err != nil {
			return nil, err
		}
		if raw != "" {
			if err := json.Unmarshal([]byte(raw), &windows); err != nil {
				return nil, fmt.Errorf("maintenance windows of %s: %w", group, err)
			}
		}
	}
	open := InWindow(windows, e.now())
	for _, d := range deps {
		if open || d.Expedited {
			return d, nil
		}
	}
	return nil, nil
}
