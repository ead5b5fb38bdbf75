package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/rollout"
	"github.com/bulwark-iot/bulwark/internal/semver"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// Releases and deployments for the admin API and the console: both call
// these helpers, so authorisation, validation and auditing are the same.
// Errors are classified for ErrorMessage.

// ListReleases returns the published releases, of product when it is
// set, newest first.
func (s *Server) ListReleases(r *http.Request, product string) ([]api.Release, error) {
	if product != "" && !nameRE.MatchString(product) {
		return nil, badRequest("product must be 1-64 letters, digits, '.', '_' or '-'")
	}
	rels, err := s.store.ListReleases(r.Context(), product)
	if err != nil {
		return nil, internal(err)
	}
	out := []api.Release{}
	for _, rel := range rels {
		out = append(out, releaseView(rel))
	}
	return out, nil
}

// ListDeployments returns the deployments p may see, in state when it
// is set, newest first, without their devices and history.
func (s *Server) ListDeployments(r *http.Request, p *Principal, state string) ([]api.Deployment, error) {
	switch state {
	case "", store.DeployRunning, store.DeployPaused, store.DeployHalted, store.DeployAborted, store.DeployCompleted:
	default:
		return nil, badRequest("state must be running, paused, halted, aborted or completed")
	}
	deps, err := s.store.ListDeployments(r.Context(), state)
	if err != nil {
		return nil, internal(err)
	}
	out := []api.Deployment{}
	for _, d := range deps {
		if !deploymentAllows(p, d, api.RoleAuditor) {
			continue
		}
		v, err := s.deploymentView(r.Context(), d, false)
		if err != nil {
			return nil, internal(err)
		}
		out = append(out, v)
	}
	return out, nil
}

// ShowDeployment returns a deployment p may see, with its devices and
// history; one p may not see is not found.
func (s *Server) ShowDeployment(r *http.Request, p *Principal, id string) (api.Deployment, error) {
	d, err := s.visibleDeployment(r, p, id, api.RoleAuditor)
	if err != nil {
		return api.Deployment{}, err
	}
	// ?devices=false asks for the summary only (counts, no device list or
	// history): what a dashboard polling a large deployment wants.
	detail := r.URL.Query().Get("devices") != "false"
	v, err := s.deploymentView(r.Context(), d, detail)
	if err != nil {
		return api.Deployment{}, internal(err)
	}
	return v, nil
}

// CanOperateDeployment reports whether p may pause, resume or abort
// deployments of group ("" for one that names its devices).
func CanOperateDeployment(p *Principal, group string) bool {
	if group == "" {
		return p.Global(api.RoleOperator)
	}
	return p.Can(api.RoleOperator, group)
}

// deploymentAllows reports whether p holds role over d's devices.
func deploymentAllows(p *Principal, d *store.Deployment, role string) bool {
	if d.Group == "" {
		return p.Global(role)
	}
	return p.Can(role, d.Group)
}

// Deployment actions.
const (
	DeploymentPause  = "pause"
	DeploymentResume = "resume"
	DeploymentAbort  = "abort"
)

// DeploymentAction pauses, resumes or aborts a deployment (operators of
// its group), recording reason (or, when empty, who did it) and auditing
// it. It returns the deployment afterwards, without devices and history.
func (s *Server) DeploymentAction(r *http.Request, p *Principal, id, action, reason string) (api.Deployment, error) {
	switch action {
	case DeploymentPause, DeploymentResume, DeploymentAbort:
	default:
		return api.Deployment{}, badRequest("the action must be pause, resume or abort")
	}
	if len(reason) > 512 {
		return api.Deployment{}, badRequest("reason is longer than 512 characters")
	}
	d, err := s.visibleDeployment(r, p, id, api.RoleOperator)
	if err != nil {
		return api.Deployment{}, err
	}
	why := reason
	if why == "" {
		why = action + " by " + p.Actor()
	}
	switch action {
	case DeploymentPause:
		err = s.rollout.Pause(r.Context(), d.ID, why)
	case DeploymentResume:
		err = s.rollout.Resume(r.Context(), d.ID, why)
	case DeploymentAbort:
		err = s.rollout.Abort(r.Context(), d.ID, why)
	}
	if errors.Is(err, rollout.ErrWrongState) {
		return api.Deployment{}, errf(http.StatusConflict, "conflict", fmt.Sprintf("cannot %s a deployment that is %s", action, d.State))
	} else if err != nil {
		return api.Deployment{}, internal(err)
	}
	s.invalidateRunning()
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "deployment." + action, target: "deployment:" + d.ID, remote: ClientIP(r), detail: why, outcome: "ok"})
	d, err = s.store.GetDeployment(r.Context(), d.ID)
	if err != nil {
		return api.Deployment{}, internal(err)
	}
	v, err := s.deploymentView(r.Context(), d, false)
	if err != nil {
		return api.Deployment{}, internal(err)
	}
	return v, nil
}

// CreateDeployment starts a staged rollout of a published release to a
// group or a list of devices that p operates, and audits it. Only an
// admin may expedite one past maintenance windows.
func (s *Server) CreateDeployment(r *http.Request, p *Principal, req api.DeploymentCreate) (api.Deployment, error) {
	stages, err := rollout.ParseStages(req.Stages)
	if err != nil {
		return api.Deployment{}, badRequest(err.Error())
	}
	if req.Expedited && !p.Global(api.RoleAdmin) {
		return api.Deployment{}, errf(http.StatusForbidden, "forbidden", "only an admin may expedite a deployment past maintenance windows")
	}
	if req.Group != "" {
		if ok, err := s.store.GroupExists(r.Context(), req.Group); err != nil {
			return api.Deployment{}, internal(err)
		} else if !ok {
			return api.Deployment{}, badRequest(fmt.Sprintf("group %q does not exist", req.Group))
		}
	}
	if err := s.canDeploy(r, p, req.Group, req.Devices); err != nil {
		return api.Deployment{}, err
	}
	if v, err := semver.Parse(req.Version); err != nil {
		return api.Deployment{}, badRequest(err.Error())
	} else if floor, err := s.floorOf(r.Context(), req.Product); err != nil {
		return api.Deployment{}, internal(err)
	} else if floor != nil && semver.Compare(v, *floor) < 0 {
		return api.Deployment{}, errf(http.StatusConflict, "below_floor", fmt.Sprintf("version %s is below the version floor %s of %s", req.Version, floor, req.Product))
	}
	if req.AllowDowngrade && !p.Global(api.RoleAdmin) {
		return api.Deployment{}, errf(http.StatusForbidden, "forbidden", "only an admin may allow a downgrade")
	}
	halt := 10
	if req.HaltFailurePct != nil {
		halt = *req.HaltFailurePct
	}
	id := newID("dep")
	if req.AllowDowngrade {
		// The instruction is signed before the deployment exists, so no
		// device can be told of it before it can verify it.
		if _, err := s.store.GetRelease(r.Context(), req.Product, req.Version); errors.Is(err, store.ErrNotFound) {
			return api.Deployment{}, errf(http.StatusNotFound, "not_found", fmt.Sprintf("%s %s has not been published", req.Product, req.Version))
		}
		if err := s.signDowngrade(r.Context(), id, req.Product, req.Version); err != nil {
			return api.Deployment{}, err
		}
	}
	d, err := s.rollout.Create(r.Context(), rollout.Request{ID: id, Product: req.Product, Version: req.Version, Group: req.Group,
		Devices: req.Devices, Stages: stages, HaltFailurePct: halt, Expedited: req.Expedited, AllowDowngrade: req.AllowDowngrade, CreatedBy: p.Actor()})
	switch {
	case errors.Is(err, rollout.ErrNoRelease):
		return api.Deployment{}, errf(http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, rollout.ErrBadRequest):
		return api.Deployment{}, badRequest(err.Error())
	case err != nil:
		return api.Deployment{}, internal(err)
	}
	s.invalidateRunning()
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "deployment.create", target: "deployment:" + d.ID, remote: ClientIP(r),
		detail: fmt.Sprintf("release=%s@%s group=%s devices=%d stages=%v halt=%d%% expedited=%v allow_downgrade=%v", d.Product, d.Version, d.Group, len(req.Devices), stages, halt, d.Expedited, d.AllowDowngrade), outcome: "ok"})
	v, err := s.deploymentView(r.Context(), d, false)
	if err != nil {
		return api.Deployment{}, internal(err)
	}
	return v, nil
}
