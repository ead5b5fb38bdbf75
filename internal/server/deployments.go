package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/rollout"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// runningCache keeps the list of running deployments for a moment, so
// that check-ins do not each query it.
type runningCache struct {
	mu   sync.Mutex
	at   time.Time
	list []*store.Deployment
}

const runningCacheTTL = 2 * time.Second

func (s *Server) runningDeployments(ctx context.Context) ([]*store.Deployment, error) {
	c := &s.running
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < runningCacheTTL {
		return c.list, nil
	}
	list, err := s.store.ListDeployments(ctx, store.DeployRunning)
	if err != nil {
		return nil, err
	}
	c.list, c.at = list, time.Now()
	return list, nil
}

func (s *Server) invalidateRunning() {
	s.running.mu.Lock()
	s.running.at = time.Time{}
	s.running.mu.Unlock()
}

// updateAssignment is the check-in's update work for a device: it first
// adds the device to running deployments of its group it is not part of,
// then returns the deployment it should work on, if any.
func (s *Server) updateAssignment(ctx context.Context, dc *deviceCtx) (*api.UpdateAssignment, error) {
	running, err := s.runningDeployments(ctx)
	if err != nil || len(running) == 0 {
		return nil, err
	}
	if dc.group != "" {
		if err := s.rollout.JoinGroup(ctx, dc.id, dc.group, running); err != nil {
			return nil, err
		}
	}
	d, err := s.rollout.Assignment(ctx, dc.id, dc.group)
	if err != nil || d == nil {
		return nil, err
	}
	a := &api.UpdateAssignment{DeploymentID: d.ID, Target: d.Target, Version: d.Version}
	if d.AllowDowngrade {
		a.Downgrade = DowngradeTarget(d.ID)
	}
	return a, nil
}

// handleUpdateStatus records a device's progress on its assignment.
func (s *Server) handleUpdateStatus(w http.ResponseWriter, r *http.Request) error {
	dc := deviceFrom(r)
	var req api.UpdateStatus
	if err := decode(r, api.MaxEnrollBody, &req); err != nil {
		return err
	}
	if req.DeploymentID == "" || len(req.DeploymentID) > 64 {
		return badRequest("deployment_id is required")
	}
	if len(req.Detail) > api.MaxStringLen {
		return badRequest(fmt.Sprintf("detail is longer than %d bytes", api.MaxStringLen))
	}
	err := s.rollout.Report(r.Context(), req.DeploymentID, dc.id, req.Status, req.Detail)
	switch {
	case errors.Is(err, rollout.ErrBadRequest):
		return badRequest(err.Error())
	case errors.Is(err, rollout.ErrUnknownPair):
		return errf(http.StatusNotFound, "not_found", "this device is not part of that deployment")
	case errors.Is(err, rollout.ErrWrongState):
		return errf(http.StatusConflict, "conflict", err.Error())
	case err != nil:
		return internal(err)
	}
	s.alertUpdateStatus(r.Context(), dc.id, &req)
	// The running-deployments cache may lag a halt or completion by a
	// moment; assignments are read from the store, so that is harmless.
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deploymentView(ctx context.Context, d *store.Deployment, detail bool) (api.Deployment, error) {
	out := api.Deployment{ID: d.ID, Product: d.Product, Version: d.Version, Target: d.Target, Group: d.Group, Stages: rollout.Stages(d),
		Stage: d.Stage + 1, HaltFailurePct: d.HaltFailurePct, State: d.State, Reason: d.Reason, Expedited: d.Expedited, AllowDowngrade: d.AllowDowngrade,
		Counts: map[string]int{}, CreatedAt: d.CreatedAt, CreatedBy: d.CreatedBy, UpdatedAt: d.UpdatedAt}
	counts, err := s.store.DeploymentCounts(ctx, d.ID)
	if err != nil {
		return out, err
	}
	out.Counts = counts
	if detail {
		devs, err := s.store.DeploymentDevices(ctx, d.ID)
		if err != nil {
			return out, err
		}
		for _, dd := range devs {
			out.Devices = append(out.Devices, api.DeploymentDevice{DeviceID: dd.DeviceID, Rank: dd.Rank, Status: dd.Status, Reason: dd.Reason, UpdatedAt: dd.UpdatedAt})
		}
		evs, err := s.store.DeploymentEvents(ctx, d.ID, "", 1000)
		if err != nil {
			return out, err
		}
		for _, e := range evs {
			out.Events = append(out.Events, api.DeploymentEvent{DeviceID: e.DeviceID, Status: e.Status, Reason: e.Reason, At: e.At})
		}
	}
	return out, nil
}

// canDeploy checks p may deploy to the request's group or devices.
func (s *Server) canDeploy(r *http.Request, p *Principal, group string, devices []string) error {
	if group != "" {
		if !p.Can(api.RoleOperator, group) {
			return errForbidden
		}
		return nil
	}
	for _, id := range devices {
		if _, err := s.VisibleDevice(r, p, id, api.RoleOperator); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) handleCreateDeployment(w http.ResponseWriter, r *http.Request) error {
	var req api.DeploymentCreate
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	v, err := s.CreateDeployment(r, PrincipalFrom(r.Context()), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// visibleDeployment returns deployment id if p may see it (404
// otherwise) and holds role over it (403 otherwise).
func (s *Server) visibleDeployment(r *http.Request, p *Principal, id, role string) (*store.Deployment, error) {
	d, err := s.store.GetDeployment(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, internal(err)
	}
	if !deploymentAllows(p, d, api.RoleAuditor) {
		return nil, errNotFound
	}
	if !deploymentAllows(p, d, role) {
		return nil, errForbidden
	}
	return d, nil
}

func (s *Server) handleListDeployments(w http.ResponseWriter, r *http.Request) error {
	out, err := s.ListDeployments(r, PrincipalFrom(r.Context()), r.URL.Query().Get("state"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleShowDeployment(w http.ResponseWriter, r *http.Request) error {
	v, err := s.ShowDeployment(r, PrincipalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) handleDeploymentAction(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req api.DeploymentAction
		if r.ContentLength != 0 {
			if err := decode(r, api.MaxAdminBody, &req); err != nil {
				return err
			}
		}
		v, err := s.DeploymentAction(r, PrincipalFrom(r.Context()), r.PathValue("id"), action, req.Reason)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}

func (s *Server) handleSetWindows(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	group := r.PathValue("name")
	if !p.Can(api.RoleOperator, group) {
		return errForbidden
	}
	if ok, err := s.store.GroupExists(r.Context(), group); err != nil {
		return internal(err)
	} else if !ok {
		return errNotFound
	}
	var req []api.MaintenanceWindow
	if err := decode(r, api.MaxAdminBody, &req); err != nil {
		return err
	}
	if len(req) > 32 {
		return badRequest("at most 32 maintenance windows")
	}
	ws := make([]rollout.Window, len(req))
	for i, mw := range req {
		ws[i] = rollout.Window{Days: mw.Days, Start: mw.Start, End: mw.End}
		if err := ws[i].Validate(); err != nil {
			return badRequest(err.Error())
		}
	}
	raw := ""
	if len(ws) > 0 {
		b, _ := json.Marshal(ws)
		raw = string(b)
	}
	if err := s.store.SetMaintenanceWindows(r.Context(), group, raw); err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "group.maintenance_windows", target: "group:" + group, remote: ClientIP(r), detail: raw, outcome: "ok"})
	if req == nil {
		req = []api.MaintenanceWindow{}
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}
