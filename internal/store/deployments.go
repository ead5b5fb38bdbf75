package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Deployment states.
const (
	DeployRunning   = "running"
	DeployPaused    = "paused"
	DeployHalted    = "halted"
	DeployAborted   = "aborted"
	DeployCompleted = "completed"
)

// Deployment is a staged rollout of one release.
type Deployment struct {
	ID             string
	Product        string
	Version        string
	Target         string
	Group          string // "" when the deployment names its devices
	Stages         string // JSON list of cumulative percentages, e.g. [5,25,100]
	HaltFailurePct int
	Stage          int // index into Stages of the open stage
	State          string
	Expedited      bool // may bypass maintenance windows
	AllowDowngrade bool // an admin allowed installing over a newer version
	Reason         string
	CreatedAt      time.Time
	CreatedBy      string
	UpdatedAt      time.Time
}

// DeploymentDevice is a device's place and status in a deployment.
type DeploymentDevice struct {
	DeploymentID string
	DeviceID     string
	Rank         int
	Status       string
	Reason       string
	UpdatedAt    time.Time
}

// DeploymentEvent is one entry of a deployment's history.
type DeploymentEvent struct {
	DeviceID string // "" for events of the deployment itself
	Status   string
	Reason   string
	At       time.Time
}

const deploymentCols = `id, product, version, target, grp, stages, halt_failure_pct, stage, state, expedited, reason, created_at, created_by, updated_at, allow_downgrade`

func scanDeployment(row interface{ Scan(...any) error }) (*Deployment, error) {
	var d Deployment
	var exp, created, updated, down int64
	err := row.Scan(&d.ID, &d.Product, &d.Version, &d.Target, &d.Group, &d.Stages, &d.HaltFailurePct, &d.Stage, &d.State, &exp, &d.Reason, &created, &d.CreatedBy, &updated, &down)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	d.Expedited, d.CreatedAt, d.UpdatedAt, d.AllowDowngrade = exp != 0, fromTS(created), fromTS(updated), down != 0
	return &d, nil
}

func (tx *Tx) event(ctx context.Context, depID, devID, status, reason string, at time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO deployment_events (deployment_id, device_id, status, reason, at) VALUES (?, ?, ?, ?, ?)`, depID, devID, status, reason, ts(at))
	return err
}

// CreateDeployment records a deployment with its devices in one
// transaction.
func (s *Store) CreateDeployment(ctx context.Context, d *Deployment, devices []DeploymentDevice) error {
	return s.inTx(ctx, func(tx *Tx) error {
		if _, err := tx.exec(ctx, `INSERT INTO deployments (`+deploymentCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Product, d.Version, d.Target, d.Group, d.Stages, d.HaltFailurePct, d.Stage, d.State, boolInt(d.Expedited), d.Reason,
			ts(d.CreatedAt), d.CreatedBy, ts(d.UpdatedAt), boolInt(d.AllowDowngrade)); err != nil {
			return err
		}
		for _, dd := range devices {
			if _, err := tx.exec(ctx, `INSERT INTO deployment_devices (deployment_id, device_id, rank, status, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
				d.ID, dd.DeviceID, dd.Rank, dd.Status, dd.Reason, ts(d.CreatedAt)); err != nil {
				return err
			}
		}
		return tx.event(ctx, d.ID, "", "created", d.Reason, d.CreatedAt)
	})
}

// GetDeployment returns a deployment.
func (s *Store) GetDeployment(ctx context.Context, id string) (*Deployment, error) {
	return scanDeployment(s.queryRow(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = ?`, id))
}

// ListDeployments returns deployments, newest first; state filters when set.
func (s *Store) ListDeployments(ctx context.Context, state string) ([]*Deployment, error) {
	q := `SELECT ` + deploymentCols + ` FROM deployments`
	var args []any
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, state)
	}
	rows, err := s.query(ctx, q+` ORDER BY created_at DESC, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeploymentDevices returns a deployment's devices in rollout order.
func (s *Store) DeploymentDevices(ctx context.Context, id string) ([]DeploymentDevice, error) {
	rows, err := s.query(ctx, `SELECT deployment_id, device_id, rank, status, reason, updated_at FROM deployment_devices WHERE deployment_id = ? ORDER BY rank`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeploymentDevice
	for rows.Next() {
		var dd DeploymentDevice
		var at int64
		if err := rows.Scan(&dd.DeploymentID, &dd.DeviceID, &dd.Rank, &dd.Status, &dd.Reason, &at); err != nil {
			return nil, err
		}
		dd.UpdatedAt = fromTS(at)
		out = append(out, dd)
	}
	return out, rows.Err()
}

// DeploymentEvents returns a deployment's history (of one device when
// deviceID is set), oldest first.
func (s *Store) DeploymentEvents(ctx context.Context, id, deviceID string, limit int) ([]DeploymentEvent, error) {
	q := `SELECT device_id, status, reason, at FROM deployment_events WHERE deployment_id = ?`
	args := []any{id}
	if deviceID != "" {
		q += ` AND device_id = ?`
		args = append(args, deviceID)
	}
	rows, err := s.query(ctx, q+` ORDER BY at, status LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeploymentEvent
	for rows.Next() {
		var e DeploymentEvent
		var at int64
		if err := rows.Scan(&e.DeviceID, &e.Status, &e.Reason, &at); err != nil {
			return nil, err
		}
		e.At = fromTS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SetDeploymentState moves a deployment to state `to` if it is in one of
// `from`, recording why; ErrConflict otherwise.
func (s *Store) SetDeploymentState(ctx context.Context, id string, from []string, to, reason string, at time.Time) error {
	return s.inTx(ctx, func(tx *Tx) error {
		args := []any{to, reason, ts(at), id}
		for _, f := range from {
			args = append(args, f)
		}
		res, err := tx.exec(ctx, `UPDATE deployments SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state IN (?`+strings.Repeat(", ?", len(from)-1)+`)`, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrConflict
		}
		return tx.event(ctx, id, "", to, reason, at)
	})
}

// OpenStage opens stage index `stage` of a running deployment: devices
// ranked below upTo that are still waiting become pending.
func (s *Store) OpenStage(ctx context.Context, id string, stage, upTo int, at time.Time) error {
	return s.inTx(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE deployments SET stage = ?, updated_at = ? WHERE id = ? AND state = 'running' AND stage <= ?`, stage, ts(at), id, stage)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrConflict
		}
		if _, err := tx.exec(ctx, `UPDATE deployment_devices SET status = 'pending', updated_at = ? WHERE deployment_id = ? AND status = 'waiting' AND rank < ?`, ts(at), id, upTo); err != nil {
			return err
		}
		return tx.event(ctx, id, "", "stage", "opened stage "+strconv.Itoa(stage+1), at)
	})
}

// ActiveAssignments returns the deployment rows of a device that still
// need work, in deployments that are running (expedited ones first).
func (s *Store) ActiveAssignments(ctx context.Context, deviceID string) ([]*Deployment, error) {
	rows, err := s.query(ctx, `SELECT d.id, d.product, d.version, d.target, d.grp, d.stages, d.halt_failure_pct, d.stage, d.state, d.expedited, d.reason, d.created_at, d.created_by, d.updated_at, d.allow_downgrade
		FROM deployment_devices dd JOIN deployments d ON d.id = dd.deployment_id
		WHERE dd.device_id = ? AND d.state = 'running' AND dd.status IN ('pending', 'downloading', 'installing', 'verifying')
		ORDER BY d.expedited DESC, d.created_at`, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// terminal device statuses.
var terminal = map[string]bool{"success": true, "failed": true, "rolled-back": true, "cancelled": true}

// ReportDeploymentStatus records a device's progress in a deployment. A
// device that has reached a final status cannot move again
// (ErrConflict); an unknown pair is ErrNotFound.
func (s *Store) ReportDeploymentStatus(ctx context.Context, depID, deviceID, status, reason string, at time.Time) error {
	return s.inTx(ctx, func(tx *Tx) error {
		var cur string
		if err := tx.queryRow(ctx, `SELECT status FROM deployment_devices WHERE deployment_id = ? AND device_id = ?`, depID, deviceID).Scan(&cur); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if terminal[cur] || cur == "waiting" {
			return ErrConflict
		}
		if _, err := tx.exec(ctx, `UPDATE deployment_devices SET status = ?, reason = ?, updated_at = ? WHERE deployment_id = ? AND device_id = ?`,
			status, reason, ts(at), depID, deviceID); err != nil {
			return err
		}
		return tx.event(ctx, depID, deviceID, status, reason, at)
	})
}

// InDeployment reports whether a device is part of a deployment (a read,
// so that the check-in path writes only for devices that must join).
func (s *Store) InDeployment(ctx context.Context, depID, deviceID string) (bool, error) {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM deployment_devices WHERE deployment_id = ? AND device_id = ?`, depID, deviceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// StageBusy reports whether any device ranked below upTo has not reached
// a final status (waiting devices count as busy). It stops at the first
// one, so it is cheap while a stage is in progress.
func (s *Store) StageBusy(ctx context.Context, depID string, upTo int) (bool, error) {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM deployment_devices WHERE deployment_id = ? AND rank < ? AND status IN ('waiting', 'pending', 'downloading', 'installing', 'verifying') LIMIT 1`, depID, upTo).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// WaitingBelow reports whether a device ranked below upTo is waiting.
func (s *Store) WaitingBelow(ctx context.Context, depID string, upTo int) (bool, error) {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM deployment_devices WHERE deployment_id = ? AND rank < ? AND status = 'waiting' LIMIT 1`, depID, upTo).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// DeploymentCounts counts a deployment's devices by status.
func (s *Store) DeploymentCounts(ctx context.Context, depID string) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT status, COUNT(*) FROM deployment_devices WHERE deployment_id = ? GROUP BY status`, depID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// DeploymentSize is the number of devices in a deployment.
func (s *Store) DeploymentSize(ctx context.Context, depID string) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM deployment_devices WHERE deployment_id = ?`, depID).Scan(&n)
	return n, err
}

// JoinDeployment adds a device to a deployment after it started (it
// joined the group later), at the end of the rollout order. It reports
// whether it was added (false if it was already there).
func (s *Store) JoinDeployment(ctx context.Context, depID, deviceID string, at time.Time) (bool, error) {
	added := false
	err := s.inTx(ctx, func(tx *Tx) error {
		var one int
		err := tx.queryRow(ctx, `SELECT 1 FROM deployment_devices WHERE deployment_id = ? AND device_id = ?`, depID, deviceID).Scan(&one)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var next int
		if err := tx.queryRow(ctx, `SELECT COALESCE(MAX(rank), -1) + 1 FROM deployment_devices WHERE deployment_id = ?`, depID).Scan(&next); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO deployment_devices (deployment_id, device_id, rank, status, reason, updated_at) VALUES (?, ?, ?, 'waiting', 'joined the group after the deployment started', ?)`,
			depID, deviceID, next, ts(at)); err != nil {
			return err
		}
		added = true
		return tx.event(ctx, depID, deviceID, "waiting", "joined the group after the deployment started", at)
	})
	return added, err
}

// SetMaintenanceWindows stores a group's windows (JSON); empty removes them.
func (s *Store) SetMaintenanceWindows(ctx context.Context, group, windows string) error {
	if windows == "" {
		_, err := s.exec(ctx, `DELETE FROM maintenance_windows WHERE grp = ?`, group)
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO maintenance_windows (grp, windows) VALUES (?, ?) ON CONFLICT (grp) DO UPDATE SET windows = excluded.windows`, group, windows)
	return err
}

// MaintenanceWindows returns a group's windows (JSON), "" when none.
func (s *Store) MaintenanceWindows(ctx context.Context, group string) (string, error) {
	var w string
	err := s.queryRow(ctx, `SELECT windows FROM maintenance_windows WHERE grp = ?`, group).Scan(&w)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return w, err
}
