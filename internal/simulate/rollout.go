package simulate

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// RolloutResult is the outcome of a --rollout simulation: a staged
// deployment of a freshly published release to the simulated devices.
type RolloutResult struct {
	DeploymentID string `json:"deployment_id"`
	Group        string `json:"group"`
	Product      string `json:"product"`
	Version      string `json:"version"`
	// State is the deployment's state, except that a group deployment
	// whose last stage is open with every device final (which the server
	// keeps running for devices joining the group later) is "completed".
	// "running" means the check-in phase ended first.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Stage is the 1-based number of the open stage; Stages the stages'
	// cumulative percentages.
	Stage  int   `json:"stage"`
	Stages []int `json:"stages"`
	// Counts are the deployment's devices by status at the end.
	Counts map[string]int `json:"counts"`
	// Success counts devices whose update succeeded; Failed those that
	// failed or rolled back.
	Success int `json:"success"`
	Failed  int `json:"failed"`
	// Took is the time from the deployment's creation until it was seen
	// completed or halted (or the check-in phase ended).
	Took time.Duration `json:"took_ns"`
	// StageTimes[i] is how long stage i+1 was open as seen by the
	// once-a-second poll: from when it was first seen open until the
	// next one was, or the deployment finished. Resolution: one second.
	StageTimes []time.Duration `json:"stage_times_ns"`
	// PollErrors counts failed reads of the deployment.
	PollErrors int `json:"poll_errors"`
}

// FormatRollout is the last result line of `bulwark simulate --rollout`:
//
//	rollout=completed stages=3/3 success=10000 failed=0 took=1m2s
func FormatRollout(r RolloutResult) string {
	return fmt.Sprintf("rollout=%s stages=%d/%d success=%d failed=%d took=%s",
		r.State, r.Stage, len(r.Stages), r.Success, r.Failed, r.Took.Round(100*time.Millisecond))
}

// finalStatus are the deployment device statuses after which nothing more
// happens.
var finalStatus = map[string]bool{"success": true, "failed": true, "rolled-back": true, "cancelled": true}

// rolloutDone says whether the deployment is over for the simulator, and
// the state to report: completed, halted or aborted; or a running group
// deployment at its last stage with every device final, which counts as
// completed.
func rolloutDone(d api.Deployment) (string, bool) {
	switch d.State {
	case "completed", "halted", "aborted":
		return d.State, true
	case "running":
		if d.Stage < len(d.Stages) {
			return d.State, false
		}
		total := 0
		for st, n := range d.Counts {
			if !finalStatus[st] {
				return d.State, false
			}
			total += n
		}
		if total > 0 {
			return "completed", true
		}
	}
	return d.State, false
}

// rollout tracks one deployment during the check-in phase.
type rollout struct {
	s       *sim
	adm     *admin
	created time.Time

	mu     sync.Mutex
	res    RolloutResult
	opened []time.Duration // since created, when each stage was first seen open
	last   api.Deployment
	seen   bool
}

// startRollout creates the group's deployment: it publishes a small
// release of a product named after the time and deploys it with the
// configured stages.
func (s *sim) startRollout(ctx context.Context, a *admin) (*rollout, error) {
	product := "sim-" + time.Now().UTC().Format("20060102T150405.000Z")
	product = strings.ReplaceAll(product, ".", "-")
	const version = "1.0.0"
	artifact := make([]byte, 4096)
	rand.Read(artifact)
	rel, err := s.publishRelease(ctx, a, product, version, artifact)
	if err != nil {
		return nil, err
	}
	dep, err := s.createDeployment(ctx, a, rel.Product, rel.Version, s.cfg.Group, s.cfg.Stages)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(s.out, "deployment %s: %s %s (target %s, %d bytes) to group %s, stages %v, halt above %d%% failures\n",
		dep.ID, rel.Product, rel.Version, rel.Target, rel.Length, s.cfg.Group, dep.Stages, dep.HaltFailurePct)
	r := &rollout{s: s, adm: a, created: time.Now()}
	r.res = RolloutResult{DeploymentID: dep.ID, Group: s.cfg.Group, Product: rel.Product, Version: rel.Version,
		State: dep.State, Stage: dep.Stage, Stages: dep.Stages, Counts: dep.Counts}
	r.observe(dep, 0)
	return r, nil
}

// observe records a reading of the deployment taken at el after its
// creation, and reports whether the deployment is over.
func (r *rollout) observe(d api.Deployment, el time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.seen = d, true
	for len(r.opened) < d.Stage {
		r.opened = append(r.opened, el)
	}
	state, done := rolloutDone(d)
	r.res.State, r.res.Reason, r.res.Stage, r.res.Stages, r.res.Counts = state, d.Reason, d.Stage, d.Stages, d.Counts
	r.res.Success = d.Counts["success"]
	r.res.Failed = d.Counts["failed"] + d.Counts["rolled-back"]
	if done && r.res.Took == 0 {
		r.res.Took = el
	}
	return done
}

// poll reads the deployment once a second until it is over, then calls
// stop; it returns when ctx ends.
func (r *rollout) poll(ctx context.Context, stop func()) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.pollOnce(ctx) {
			stop()
			return
		}
	}
}

func (r *rollout) pollOnce(ctx context.Context) bool {
	d, err := r.s.getDeployment(ctx, r.adm, r.res.DeploymentID)
	el := time.Since(r.created)
	if err != nil {
		if ctx.Err() == nil {
			r.mu.Lock()
			r.res.PollErrors++
			r.mu.Unlock()
			r.s.errs.add("rollout", err)
		}
		return false
	}
	return r.observe(d, el)
}

// status is the rollout part of a progress line.
func (r *rollout) status() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.last
	busy, waiting := 0, d.Counts["waiting"]
	for st, n := range d.Counts {
		if !finalStatus[st] && st != "waiting" {
			busy += n
		}
	}
	return fmt.Sprintf("deployment=%s stage=%d/%d success=%d failed=%d busy=%d waiting=%d",
		r.res.State, d.Stage, len(d.Stages), r.res.Success, r.res.Failed, busy, waiting)
}

// finish takes a last reading and fills in the result.
func (r *rollout) finish(ctx context.Context) RolloutResult {
	r.pollOnce(ctx)
	el := time.Since(r.created)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.res.Took == 0 {
		r.res.Took = el
	}
	r.res.StageTimes = make([]time.Duration, len(r.opened))
	for i, at := range r.opened {
		end := r.res.Took
		if i+1 < len(r.opened) {
			end = r.opened[i+1]
		}
		r.res.StageTimes[i] = max(end-at, 0)
	}
	return r.res
}
