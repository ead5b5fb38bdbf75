-- Vulnerability reports (coordinated disclosure) with their timeline, and
-- the published products with support period and update policy.
CREATE TABLE disclosure_reports (
  id               TEXT PRIMARY KEY,
  key_hash         BYTEA NOT NULL,
  state            TEXT NOT NULL,
  summary          TEXT NOT NULL,
  product          TEXT NOT NULL,
  affected_version TEXT NOT NULL DEFAULT '',
  details          TEXT NOT NULL,
  email            TEXT NOT NULL DEFAULT '',
  acknowledge_as   TEXT NOT NULL DEFAULT '',
  advisory         TEXT NOT NULL DEFAULT '',
  remote           TEXT NOT NULL DEFAULT '',
  received_at      BIGINT NOT NULL,
  updated_at       BIGINT NOT NULL
);
CREATE INDEX disclosure_reports_received ON disclosure_reports (received_at);

CREATE TABLE disclosure_events (
  report_id  TEXT NOT NULL REFERENCES disclosure_reports(id) ON DELETE CASCADE,
  seq        BIGINT NOT NULL,
  ts         BIGINT NOT NULL,
  actor      TEXT NOT NULL,
  from_state TEXT NOT NULL DEFAULT '',
  to_state   TEXT NOT NULL,
  note       TEXT NOT NULL DEFAULT '',
  advisory   TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (report_id, seq)
);

CREATE TABLE products (
  name                TEXT PRIMARY KEY,
  description         TEXT NOT NULL DEFAULT '',
  support_until       TEXT NOT NULL,
  update_cadence      TEXT NOT NULL,
  critical_fix_target TEXT NOT NULL,
  created_at          BIGINT NOT NULL,
  updated_at          BIGINT NOT NULL
);
