-- The columns every check-in changes live in a narrow table, so that a
-- batch of check-ins writes a few pages rather than one page per device.
CREATE TABLE device_status (
  device_id     TEXT PRIMARY KEY REFERENCES devices(id),
  last_seen     INTEGER NOT NULL,
  health_status TEXT NOT NULL DEFAULT '',
  boot_time     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO device_status (device_id, last_seen, health_status)
  SELECT id, last_seen, health_status FROM devices WHERE last_seen > 0;
