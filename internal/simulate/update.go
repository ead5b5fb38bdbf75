package simulate

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// updates is the simulated update work of one Run.
type updates struct {
	// ctx ends when the check-in phase does: updates then stop before
	// their next step (reports in flight complete).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	hist                       *histogram // latency of successful reports
	errors                     atomic.Int64
	started, succeeded, failed atomic.Int64
	interrupted                atomic.Int64
}

// startUpdate has d act on the assignment u of a check-in answer, unless
// d is working on it already or has finished it: it simulates the update
// in a goroutine of its own. The caller holds d.busy; startUpdate must not
// be called once s.upd.wg is being waited for.
func (s *sim) startUpdate(d *device, u *api.UpdateAssignment) {
	if u == nil || u.DeploymentID == "" || !d.claimUpdate(u.DeploymentID) {
		return
	}
	s.upd.started.Add(1)
	a := *u
	s.upd.wg.Go(func() { s.simulateUpdate(d, a) })
}

// simulateUpdate reports downloading, installing and then success, or,
// with probability cfg.UpdateFailureRate, failed or rolled-back (half of
// each), waiting cfg.UpdateDelay before each step after the first. A
// report that fails ends the attempt; the device takes the assignment up
// again at a later check-in.
func (s *sim) simulateUpdate(d *device, u api.UpdateAssignment) {
	fail := s.cfg.UpdateFailureRate > 0 && rand.Float64() < s.cfg.UpdateFailureRate
	steps := []api.UpdateStatus{
		{DeploymentID: u.DeploymentID, Status: "downloading", Detail: "simulated: " + u.Target},
		{DeploymentID: u.DeploymentID, Status: "installing", Detail: "simulated: version " + u.Version},
	}
	switch {
	case !fail:
		steps = append(steps, api.UpdateStatus{DeploymentID: u.DeploymentID, Status: "success", Detail: "simulated: version " + u.Version + " running"})
	case rand.IntN(2) == 0:
		steps = append(steps, api.UpdateStatus{DeploymentID: u.DeploymentID, Status: "failed", Detail: "simulated: installation failed"})
	default:
		steps = append(steps, api.UpdateStatus{DeploymentID: u.DeploymentID, Status: "rolled-back", Detail: "simulated: health check failed after install; rolled back"})
	}
	for i, st := range steps {
		if i > 0 && !s.updateSleep() {
			s.upd.interrupted.Add(1)
			d.endUpdate(u.DeploymentID, false, "")
			return
		}
		if !s.report(d, st) {
			d.endUpdate(u.DeploymentID, false, "")
			return
		}
	}
	if fail {
		s.upd.failed.Add(1)
		d.endUpdate(u.DeploymentID, true, "")
	} else {
		s.upd.succeeded.Add(1)
		d.endUpdate(u.DeploymentID, true, u.Target)
	}
}

// updateSleep waits cfg.UpdateDelay, reporting false if the check-in phase
// ended first.
func (s *sim) updateSleep() bool {
	if s.upd.ctx.Err() != nil {
		return false
	}
	if s.cfg.UpdateDelay <= 0 {
		return true
	}
	t := time.NewTimer(s.cfg.UpdateDelay)
	defer t.Stop()
	select {
	case <-s.upd.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// report sends one update status, timing it.
func (s *sim) report(d *device, st api.UpdateStatus) bool {
	t0 := time.Now()
	if err := d.client.ReportUpdate(context.WithoutCancel(s.upd.ctx), st); err != nil {
		s.upd.errors.Add(1)
		s.errs.add("update", err)
		return false
	}
	s.upd.hist.Record(time.Since(t0))
	return true
}
