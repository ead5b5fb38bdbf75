-- The columns every check-in changes live in a narrow table, so that a
-- batch of check-ins touches few pages.
CREATE TABLE device_status (
  device_id     TEXT PRIMARY KEY REFERENCES devices(id),
  last_seen     BIGINT NOT NULL,
  health_status TEXT NOT NULL DEFAULT '',
  boot_time     BIGINT NOT NULL DEFAULT 0
);
INSERT INTO device_status (device_id, last_seen, health_status)
  SELECT id, last_seen, health_status FROM devices WHERE last_seen > 0;
