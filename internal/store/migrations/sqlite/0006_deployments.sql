-- Staged rollouts of a release to a group or a list of devices.
CREATE TABLE deployments (
  id               TEXT PRIMARY KEY,
  product          TEXT NOT NULL,
  version          TEXT NOT NULL,
  target           TEXT NOT NULL,
  grp              TEXT NOT NULL DEFAULT '',
  stages           TEXT NOT NULL,
  halt_failure_pct INTEGER NOT NULL,
  stage            INTEGER NOT NULL DEFAULT 0,
  state            TEXT NOT NULL,
  expedited        INTEGER NOT NULL DEFAULT 0,
  reason           TEXT NOT NULL DEFAULT '',
  created_at       INTEGER NOT NULL,
  created_by       TEXT NOT NULL,
  updated_at       INTEGER NOT NULL
);
CREATE INDEX deployments_state ON deployments(state);

-- One row per device in a deployment: its place in the rollout order and
-- its current status; deployment_events keeps the history.
CREATE TABLE deployment_devices (
  deployment_id TEXT NOT NULL REFERENCES deployments(id),
  device_id     TEXT NOT NULL REFERENCES devices(id),
  rank          INTEGER NOT NULL,
  status        TEXT NOT NULL,
  reason        TEXT NOT NULL DEFAULT '',
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (deployment_id, device_id)
);
CREATE INDEX deployment_devices_device ON deployment_devices(device_id, status);

CREATE TABLE deployment_events (
  deployment_id TEXT NOT NULL,
  device_id     TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  reason        TEXT NOT NULL DEFAULT '',
  at            INTEGER NOT NULL
);
CREATE INDEX deployment_events_dep ON deployment_events(deployment_id, at);

-- Maintenance windows per device group (a JSON list of weekly windows).
CREATE TABLE maintenance_windows (
  grp     TEXT PRIMARY KEY,
  windows TEXT NOT NULL
);
