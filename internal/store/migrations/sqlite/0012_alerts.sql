-- Alerts (Code of Practice guideline 10.7): a rule of internal/alert that
-- fired for a device. While an alert is open, further firings of the same
-- rule for the same device and dedup_key count on it (hit_count,
-- last_seen) instead of opening another: the partial unique index keeps
-- that true under concurrent writers. refs is a JSON array of the
-- triggering events (the most recent 100). Times are Unix microseconds.
CREATE TABLE alerts (
  id          TEXT PRIMARY KEY,
  rule        TEXT NOT NULL,
  severity_id INTEGER NOT NULL,
  device_id   TEXT NOT NULL,
  dedup_key   TEXT NOT NULL DEFAULT '',
  summary     TEXT NOT NULL,
  first_seen  INTEGER NOT NULL,
  last_seen   INTEGER NOT NULL,
  hit_count   INTEGER NOT NULL DEFAULT 1,
  status      TEXT NOT NULL DEFAULT 'open',
  acked_by    TEXT NOT NULL DEFAULT '',
  acked_at    INTEGER NOT NULL DEFAULT 0,
  resolved_at INTEGER NOT NULL DEFAULT 0,
  refs        TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX alerts_open ON alerts(rule, device_id, dedup_key) WHERE status = 'open';
CREATE INDEX alerts_last_seen ON alerts(last_seen);
CREATE INDEX alerts_device ON alerts(device_id, last_seen);

-- One row per alert and configured sink (webhook, syslog, email), written
-- with the alert, so that an alert is never lost before it is delivered.
-- A sender claims due rows by moving next_at forward (a lease), and marks
-- them delivered, or failed with the next attempt's time.
CREATE TABLE alert_deliveries (
  alert_id     TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  sink         TEXT NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_at      INTEGER NOT NULL,
  delivered_at INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (alert_id, sink)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(sink, next_at) WHERE delivered_at = 0;

-- How far the rules have read each device's events (events.id). Events of
-- one device are stored in id order (their batches are serialised by the
-- device's event_heads row), so a per-device cursor misses none. Devices
-- with events before alerting existed start at their newest event.
CREATE TABLE alert_cursors (
  device_id     TEXT PRIMARY KEY,
  last_event_id INTEGER NOT NULL
);
INSERT INTO alert_cursors (device_id, last_event_id) SELECT device_id, MAX(id) FROM events GROUP BY device_id;
CREATE INDEX events_device_id ON events(device_id, id);
